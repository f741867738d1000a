//! Taking a lock whether or not it is poisoned.
//!
//! A lock is poisoned when a thread panics while holding it. No lock in this
//! crate guards state that such a panic can leave half-updated in a way that
//! matters more than losing the process would, so every lock is taken
//! through these helpers, which ignore the poison and return the guard.

#[cfg(any(feature = "memory", feature = "sqlite"))]
use std::sync::{Mutex, MutexGuard};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Locks `mutex`, ignoring poison.
#[cfg(any(feature = "memory", feature = "sqlite"))]
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Takes `lock` for reading, ignoring poison.
pub(crate) fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

/// Takes `lock` for writing, ignoring poison.
pub(crate) fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}
