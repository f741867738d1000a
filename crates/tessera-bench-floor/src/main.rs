//! The floor of `bench/profile.sh`: the least an axum server can do for
//! `GET /health` (`{"status":"ok"}`), on the same runtime and allocator as
//! the `tessera` binary. Every figure of the benchmark is also given as a
//! ratio of this one, measured in the same run.
//!
//! `tessera-bench-floor 127.0.0.1:PORT`
#![forbid(unsafe_code)]

use axum::Json;
use axum::routing::get;
use serde_json::{Value, json};

// As in the tessera binary: the comparison is of the stacks, not the
// allocators.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8089".into());
    let listener = tokio::net::TcpListener::bind(&address).await?;
    eprintln!("listening on http://{}", listener.local_addr()?);
    let app = axum::Router::new().route("/health", get(health));
    axum::serve(listener, app).await
}
