//! `GET /health`: liveness without authentication, the benchmark baseline.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::state::AppState;

/// Outbox figures as the sender last saw them (no store call here).
fn mail(state: &AppState) -> Value {
    let stats = state.mail().stats();
    json!({
        "transport": state.config().mail.transport_name(),
        "pending": stats.pending,
        "undeliverable": stats.undeliverable,
    })
}

/// 200 while the session store answered its last probe, 503 otherwise.
/// The probe runs in the background, so this route costs no store call.
#[utoipa::path(
    get,
    path = "/health",
    operation_id = "health",
    tag = "health",
    responses(
        (status = 200, description = "The session store answered its last probe: `{\"status\": \"ok\", ...}`.", body = Object),
        (status = 503, description = "The session store is down: `{\"status\": \"unavailable\", ...}`.", body = Object),
    ),
)]
pub async fn health(State(state): State<Arc<AppState>>) -> (StatusCode, Json<Value>) {
    let up = state.store_up();
    // The in-memory revocation list is bounded by expiry; report its size.
    let size = state.tokens.revocations().list().len();
    let revocations = json!({
        "families": size.families,
        "tokens": size.tokens,
        "users": size.users,
        "sealed": size.sealed,
        "sealed_cutoffs": size.sealed_cutoffs,
    });
    let status = if up {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if up { "ok" } else { "unavailable" },
        "store": {
            "backend": state.sessions.backend(),
            "durable": state.sessions.is_durable(),
            "status": if up { "up" } else { "down" },
        },
        "users": {
            "backend": state.users.backend(),
            "status": if state.users_up() { "up" } else { "down" },
        },
        "revocations": revocations,
        "mail": mail(&state),
        "audit": {"dropped": state.audit().dropped()},
    });
    (status, Json(body))
}
