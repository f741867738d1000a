//! tessera embedded in an axum app of its own.
//!
//! tessera's API is nested under `/auth` (`POST /auth/login`,
//! `GET /auth/profile`, ...), and the app's own `GET /hello` greets the
//! logged-in user through tessera's [`Caller`] extractor (401 with the usual
//! JSON error without a session).
//!
//! ```text
//! DEMO_PASSWORD='a long passphrase' TESSERA_DATA_DIR=./demo-data \
//!     cargo run --release -p tessera-axum --example embedded
//! ```
//!
//! Environment: `PORT` (default 3000; the app listens on 127.0.0.1),
//! `TESSERA_DATA_DIR` (default `./tessera-data`), `DEMO_PASSWORD`: at
//! start-up the user `demo@example.com` is created with it, unless that user
//! exists already.

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use tessera_axum::connections::ConnectionLimits;
use tessera_axum::{AppState, Caller, Service, ServiceConfig, TokenKeys};
use tessera_core::{Email, NewUser, Password, StoreError, Timestamp};

const DEMO_USER: &str = "demo@example.com";

/// The app's own route, for logged-in users only.
async fn hello(State(tessera): State<Arc<AppState>>, caller: Caller) -> Response {
    // A user's credential, not a machine's API key (403 for those).
    let greeting = caller
        .user("user")
        .map(|(_, email)| format!("Hello, {email}! You are logged in.\n"));
    // `reply` carries out what the credential needs on the way out (a fresh
    // session id after a privilege change, a re-sealed cookie).
    caller.reply(&tessera, greeting).await
}

/// Creates the demo user unless it exists.
async fn ensure_demo_user(tessera: &AppState, password: String) -> anyhow::Result<()> {
    let email = Email::parse(DEMO_USER)?;
    if tessera.users().by_email(&email).await?.is_some() {
        return Ok(());
    }
    let password = Password::new(password);
    password.check_policy()?;
    let hash = tessera
        .hashing()
        .run(move |hasher| hasher.hash(&password))
        .await??;
    let user = NewUser {
        email,
        roles: Vec::new(),
        password_hash: hash,
        email_verified: true,
    }
    .into_user(Timestamp::now());
    match tessera.users().create(&user).await {
        // Another instance on the same data created it meanwhile.
        Ok(()) | Err(StoreError::Conflict) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // tessera logs through `tracing`: `RUST_LOG=info` shows it.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let port: u16 = std::env::var("PORT").map_or(Ok(3000), |p| p.parse())?;
    let data_dir = PathBuf::from(
        std::env::var("TESSERA_DATA_DIR").unwrap_or_else(|_| "./tessera-data".into()),
    );
    std::fs::create_dir_all(&data_dir)?;

    // Defaults everywhere: SQLite in the data directory, server-side sessions.
    let config = ServiceConfig::new(data_dir.join("tessera.db"));
    let tessera = Service::start(config, TokenKeys::generate()?).await?;
    if let Ok(password) = std::env::var("DEMO_PASSWORD") {
        ensure_demo_user(tessera.state(), password).await?;
    }

    let app = Router::new()
        .route("/hello", get(hello))
        .with_state(Arc::clone(tessera.state()))
        .nest("/auth", tessera.router());
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("listening on http://{}", listener.local_addr()?);
    // tessera's accept loop: deadlines and caps on every connection, and
    // the peer address handlers need (logins are throttled by it).
    tessera_axum::connections::serve(
        listener,
        app,
        ConnectionLimits::default(),
        tessera.state().config(),
        async {
            let _ = tokio::signal::ctrl_c().await;
        },
    )
    .await?;
    Ok(())
}
