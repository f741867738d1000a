//! The tessera HTTP service as a library: login, server-side sessions,
//! sealed cookies, access and refresh tokens and the admin API, over any
//! [`tessera_core::SessionStore`], [`tessera_core::UserStore`] and
//! [`tessera_core::TokenStore`].
//!
//! The `tessera` binary reads flags, environment and files and calls into
//! this library; embedders build an [`AppState`] in code and mount
//! [`router`] in their own axum app.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod accounts;
pub mod app;
pub mod caller;
pub mod client_ip;
pub mod cookies;
pub mod csrf;
pub mod error;
pub mod hashing;
pub mod json;
pub mod routes;
pub mod server;
pub mod startup;
pub mod state;
pub mod throttle;
pub mod tokens;

pub use app::router;
pub use caller::{Caller, Credential};
pub use error::ApiError;
pub use server::Maintenance;
pub use startup::{Service, ServiceConfig};
pub use state::{AppConfig, AppState, Backends, SessionStorage, TokenKeys};
