//! Integration tests over HTTP against the real `tessera` binary.
//! One test binary (fast to link); one module per capability.

mod helpers;

mod account_changes;
mod admin;
mod admin_v1;
mod apikeys;
mod audit;
mod cluster;
mod config;
mod connections;
mod cookie_storage;
mod csrf;
mod durability;
mod enumeration;
mod expiry;
mod forward_auth;
mod hashing;
mod inputs;
mod interop;
mod lab;
mod login;
mod login_redirect;
mod passwords;
mod postgres_users;
mod proxies;
mod redis_store;
mod remember;
mod rotation;
mod sessions;
mod sticky;
mod throttle;
mod token_attacks;
mod tokens;
mod users_cli;
