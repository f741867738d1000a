//! The processes the lab starts (nodes, nginx, Redis) are
//! [`tessera_testkit::ProcessGroup`]s, started by the testkit's harness.
//!
//! Each runs in its own process group: one signal then reaches everything
//! it forked (nginx's workers), and a Ctrl-C in the terminal reaches only
//! the lab, which stops them itself. Dropping a guard stops its group —
//! SIGKILL for nodes and Redis, SIGTERM then SIGKILL for nginx — so every
//! way out of the lab (normal exit, error, panic, or the interrupted
//! experiment being dropped on SIGINT/SIGTERM) takes the children along.
//! (Only a SIGKILL of the lab itself cannot be handled.)
//!
//! This module keeps what is the lab's own: the tail of a child's log for
//! error messages, and the environment its children start with.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

/// The last lines a child wrote, for error messages.
#[derive(Clone, Default)]
pub struct LogTail(Arc<Mutex<VecDeque<String>>>);

impl LogTail {
    const LINES: usize = 20;

    /// Keeps `line`, forgetting the oldest beyond the last 20.
    pub fn push(&self, line: String) {
        let mut lines = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if lines.len() == Self::LINES {
            lines.pop_front();
        }
        lines.push_back(line);
    }
}

impl fmt::Display for LogTail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        for line in lines.iter() {
            writeln!(f, "    {line}")?;
        }
        Ok(())
    }
}

/// Removes the lab's own `TESSERA_*` settings and `RUST_LOG` from a child's
/// environment: the lab decides every setting of the processes it starts.
pub fn clear_settings(command: &mut std::process::Command) {
    for (key, _) in std::env::vars_os() {
        let name = key.to_string_lossy();
        if name.starts_with("TESSERA_") || name == "RUST_LOG" {
            command.env_remove(&key);
        }
    }
}
