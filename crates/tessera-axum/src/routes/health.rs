//! Health for load balancers, orchestrators and operators.
//!
//! - `GET /health`: the status only, no authentication (the benchmark
//!   baseline: no store call, a static body).
//! - `GET /health/live`: the process serves (always 200 while it does).
//! - `GET /health/ready`: 200 when every [`Check`] passes, else 503 naming
//!   the checks that failed (names only).
//! - `GET /admin/v1/health`: the details (backends, revocation list,
//!   outbox, audit drops), for the `admin` role.
//!
//! Nothing here calls a store: store status comes from the background probe
//! (`server::spawn_maintenance`), the outbox figures from what the mail
//! sender last saw.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tessera_core::Role;

use crate::caller::Caller;
use crate::json::{Json, json_response};
use crate::state::AppState;

const OK: &str = r#"{"status":"ok"}"#;
const UNAVAILABLE: &str = r#"{"status":"unavailable"}"#;

/// `GET /health`: 200 `{"status":"ok"}` while the session store answered
/// its last probe, 503 `{"status":"unavailable"}` otherwise. Nothing else:
/// anonymous callers learn neither backends nor activity.
#[utoipa::path(
    get,
    path = "/health",
    operation_id = "health",
    tag = "health",
    responses(
        (status = 200, description = "The session store answered its last probe: `{\"status\": \"ok\"}`.", body = HealthStatus),
        (status = 503, description = "The session store is down: `{\"status\": \"unavailable\"}`.", body = HealthStatus),
    ),
)]
pub async fn health(State(state): State<Arc<AppState>>) -> Response {
    if state.store_up() {
        json_response(StatusCode::OK, OK)
    } else {
        json_response(StatusCode::SERVICE_UNAVAILABLE, UNAVAILABLE)
    }
}

/// `GET /health/live`: 200 `{"status":"ok"}` whenever the process answers
/// at all (a liveness probe restarts a process that stops answering, never
/// one whose stores are down).
#[utoipa::path(
    get,
    path = "/health/live",
    operation_id = "health_live",
    tag = "health",
    responses(
        (status = 200, description = "The process answers: `{\"status\": \"ok\"}`.", body = HealthStatus),
    ),
)]
pub async fn live() -> Response {
    json_response(StatusCode::OK, OK)
}

/// What `/health`, `/health/live` and `/health/ready` answer (the document's
/// view of the static bodies they send).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct HealthStatus {
    /// `ok` or `unavailable`.
    status: String,
    /// `/health/ready` only, when unavailable: the names of the failed checks.
    failed: Option<Vec<String>>,
}

/// One condition of readiness, by the name `/health/ready` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// The session store answered its last probe.
    SessionStore,
    /// The user store answered its last probe.
    UserStore,
    /// The revocation list is loaded from the token store, and no reload
    /// after a lost announcement channel has failed since.
    RevocationList,
}

impl Check {
    /// Every check, in the order they are reported.
    pub const ALL: [Self; 3] = [Self::SessionStore, Self::UserStore, Self::RevocationList];

    /// The name reported when it fails.
    pub fn name(self) -> &'static str {
        match self {
            Self::SessionStore => "session_store",
            Self::UserStore => "user_store",
            Self::RevocationList => "revocation_list",
        }
    }

    /// Whether it passes now (no store call: probe results and flags).
    pub fn passes(self, state: &AppState) -> bool {
        match self {
            Self::SessionStore => state.store_up(),
            Self::UserStore => state.users_up(),
            Self::RevocationList => state.tokens.revocations().is_loaded(),
        }
    }
}

/// The names of the checks that fail now.
pub fn failed_checks(state: &AppState) -> Vec<&'static str> {
    Check::ALL
        .into_iter()
        .filter(|check| !check.passes(state))
        .map(Check::name)
        .collect()
}

/// `GET /health/ready`: 200 `{"status":"ok"}` when every [`Check`] passes;
/// else 503 `{"status":"unavailable","failed":["user_store", ...]}`.
/// (Signing keys and migrated stores are what the state is built from:
/// `tessera serve` opens its listener only once they are loaded.)
#[utoipa::path(
    get,
    path = "/health/ready",
    operation_id = "health_ready",
    tag = "health",
    responses(
        (status = 200, description = "Every readiness check passes: `{\"status\": \"ok\"}`.", body = HealthStatus),
        (status = 503, description = "`{\"status\": \"unavailable\", \"failed\": [...]}`: the checks that fail, by name.", body = HealthStatus),
    ),
)]
pub async fn ready(State(state): State<Arc<AppState>>) -> Response {
    let failed = failed_checks(&state);
    if failed.is_empty() {
        return json_response(StatusCode::OK, OK);
    }
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({"status": "unavailable", "failed": failed})),
    )
        .into_response()
}

/// `GET /admin/v1/health` (`admin` role): the status, the readiness checks
/// and the details anonymous callers no longer see: backends, durability,
/// the revocation list's size, the outbox as the sender last saw it, and
/// audit events dropped.
#[utoipa::path(
    get,
    path = "/admin/v1/health",
    operation_id = "health_details",
    tag = "admin",
    security(("session_cookie" = []), ("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The status, each readiness check, the stores, the revocation list's size, the outbox and audit drops.", body = Object),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, description = "`forbidden`: no `admin` role.", body = crate::error::ErrorBody),
        (status = 503, response = crate::openapi::Unavailable),
    ),
)]
pub async fn details(State(state): State<Arc<AppState>>, caller: Caller) -> Response {
    let result = caller
        .require_role(Role::ADMIN)
        .map(|()| Json(details_body(&state)));
    caller.reply(&state, result).await
}

fn details_body(state: &AppState) -> serde_json::Value {
    let up = state.store_up();
    let size = state.tokens.revocations().list().len();
    let mail = state.mail().stats();
    json!({
        "status": if up { "ok" } else { "unavailable" },
        "ready": {
            "status": if failed_checks(state).is_empty() { "ok" } else { "unavailable" },
            "checks": Check::ALL
                .into_iter()
                .map(|check| {
                    let result = if check.passes(state) { "ok" } else { "failed" };
                    (check.name().to_owned(), json!(result))
                })
                .collect::<serde_json::Map<_, _>>(),
        },
        "store": {
            "backend": state.sessions.backend(),
            "durable": state.sessions.is_durable(),
            "status": if up { "up" } else { "down" },
        },
        "users": {
            "backend": state.users.backend(),
            "status": if state.users_up() { "up" } else { "down" },
        },
        "revocations": {
            "loaded": state.tokens.revocations().is_loaded(),
            "families": size.families,
            "tokens": size.tokens,
            "users": size.users,
            "sealed": size.sealed,
            "sealed_cutoffs": size.sealed_cutoffs,
        },
        "mail": {
            "transport": state.config().mail.transport_name(),
            "pending": mail.pending,
            "undeliverable": mail.undeliverable,
        },
        "audit": {"dropped": state.audit().dropped()},
    })
}
