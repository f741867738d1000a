//! The tests of every store backend, in one binary.
//!
//! `contract/` holds the checks of each store contract (`SessionStore`,
//! `UserStore`, `TokenStore`), written once against `Arc<dyn Trait>`. Each
//! backend file makes stores for them, runs the contracts that backend
//! implements with `contract::contract_tests!`, and holds the tests only that
//! backend has. A backend's tests are built with its cargo feature.
// Without every backend feature, some checks have no backend to run on.
#![cfg_attr(
    not(all(
        feature = "memory",
        feature = "sqlite",
        feature = "redis",
        feature = "postgres"
    )),
    allow(dead_code)
)]

#[cfg(any(
    feature = "memory",
    feature = "sqlite",
    feature = "redis",
    feature = "postgres"
))]
mod contract;

#[cfg(feature = "memory")]
mod memory;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "redis")]
mod redis_replicas;
#[cfg(feature = "redis")]
mod redis_tls;
#[cfg(feature = "sqlite")]
mod sqlite;
