//! Integration tests over HTTP against the real `tessera` binary.
//! One test binary (fast to link); one module per capability.

mod helpers;

mod account_changes;
mod addresses;
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
mod email_verified;
mod enumeration;
mod expiry;
mod forward_auth;
mod hashing;
mod inputs;
mod interop;
mod invites;
mod lab;
mod login;
mod login_redirect;
mod mail;
mod mailbox;
mod observability;
mod password_policy;
mod passwords;
mod postgres_users;
mod proxies;
mod recovery;
mod redis_store;
mod remember;
mod rotation;
mod self_service;
mod sessions;
mod signup;
mod sticky;
mod throttle;
mod token_attacks;
mod tokens;
mod users_cli;
