//! The tests of every store backend, in one binary.
//!
//! `contract/` holds the checks of each store contract (`SessionStore`,
//! `UserStore`, `TokenStore`), written once against `Arc<dyn Trait>`. Each
//! backend file makes stores for them, runs the contracts that backend
//! implements with `contract::contract_tests!`, and holds the tests only that
//! backend has.

mod contract;

mod memory;
mod postgres;
mod redis;
mod sqlite;
