//! The tessera HTTP service: login, server-side sessions, and the admin API,
//! over any [`tessera_core::SessionStore`] and [`tessera_core::UserStore`].
//!
//! The binary (`src/main.rs`) reads flags, environment and files and calls
//! into this library; embedders build an [`AppState`] in code and mount
//! [`router`] in their own axum app.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod accounts;
pub mod app;
pub mod auth;
pub mod client_ip;
pub mod cookie_session;
pub mod cookies;
pub mod csrf;
pub mod error;
pub mod hashing;
pub mod json;
pub mod routes;
pub mod server;
pub mod state;
pub mod throttle;
pub mod tokens;
pub mod verified;

pub use app::router;
pub use error::ApiError;
pub use server::{Maintenance, serve};
pub use state::{AppConfig, AppState};
