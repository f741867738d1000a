//! The assembled router, in process: real SQLite, real keys, real argon2id,
//! requests sent with tower's `oneshot`. The process-level suite (the
//! `tessera` binary over HTTP) lives in `crates/tessera/tests/api`.

mod cors;
mod csrf;
mod errors;
mod headers;
mod health;
mod new_passwords;
mod openapi;
mod rotation;
mod route_templates;
mod sealed;
mod support;
mod tokens;
