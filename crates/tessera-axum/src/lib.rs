//! The tessera HTTP service as a library: login, server-side sessions,
//! sealed cookies, access and refresh tokens and the admin API, over any
//! [`tessera_core::SessionStore`], [`tessera_core::UserStore`] and
//! [`tessera_core::TokenStore`].
//!
//! The `tessera` binary reads flags, environment and files and calls into
//! this library; this crate reads none of them.
//!
//! # Embedding
//!
//! [`Service::start`] opens the stores a [`ServiceConfig`] names and runs the
//! background work; nest its [`Service::router`] in your app and protect
//! your own routes with the [`Caller`] extractor (401 with tessera's JSON
//! error without a valid credential):
//!
//! ```no_run
//! use std::sync::Arc;
//!
//! use axum::{Router, extract::State, response::Response, routing::get};
//! use tessera_axum::connections::{self, ConnectionLimits};
//! use tessera_axum::{AppState, Caller, Service, ServiceConfig, TokenKeys};
//!
//! async fn hello(State(tessera): State<Arc<AppState>>, caller: Caller) -> Response {
//!     // A user's credential (an API key, a machine's, is refused: 403).
//!     let greeting = caller.user("user").map(|(_, email)| format!("Hello, {email}!"));
//!     // Carries out what the credential needs on the way out (a fresh
//!     // session id after a privilege change, a re-sealed cookie).
//!     caller.reply(&tessera, greeting).await
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! // SQLite in ./data, server-side sessions, secure defaults.
//! let tessera = Service::start(ServiceConfig::new("data/tessera.db"), TokenKeys::generate()?).await?;
//! let app = Router::new()
//!     .route("/hello", get(hello))
//!     .with_state(Arc::clone(tessera.state()))
//!     .nest("/auth", tessera.router()); // POST /auth/login, GET /auth/profile, ...
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! // Deadlines and caps on every connection, and the peer address that
//! // login throttling keys on (or, at least, axum::serve with
//! // `into_make_service_with_connect_info::<SocketAddr>()`).
//! let limits = ConnectionLimits::default();
//! connections::serve(listener, app, limits, tessera.state().config(), async {
//!     let _ = tokio::signal::ctrl_c().await;
//! })
//! .await?;
//! # Ok(()) }
//! ```
//!
//! `examples/embedded.rs` is the same as a program
//! (`cargo run --release -p tessera-axum --example embedded`).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod access_log;
pub mod accounts;
pub mod apikeys;
pub mod app;
pub mod audit;
pub mod caller;
pub mod client_ip;
pub mod connections;
pub mod cookies;
pub mod cors;
pub mod csrf;
pub mod error;
pub mod hashing;
mod header_timer;
pub mod invites;
pub mod json;
pub mod mail;
pub mod metrics;
pub mod observe;
pub mod openapi;
pub mod passwords;
pub mod routes;
pub mod self_service;
pub mod server;
mod shares;
pub mod startup;
pub mod state;
mod store_calls;
pub mod throttle;
pub mod tls;
pub mod tokens;
pub mod traces;

pub use app::{router, service};
pub use audit::{AuditContext, AuditTrail};
pub use caller::{Caller, Credential};
pub use error::ApiError;
pub use mail::{Mail, MailConfig};
pub use server::Maintenance;
pub use startup::{Service, ServiceConfig};
pub use state::{AppConfig, AppState, Backends, SessionStorage, TokenKeys};
