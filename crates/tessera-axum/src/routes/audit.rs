//! `GET /admin/v1/audit`: the audit log, newest first, admins only.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tessera_core::{
    Actor, AuditId, AuditKind, AuditPage, AuditQuery, AuditRecord, Email, Role, Timestamp, UserId,
    UserStore,
};
use utoipa::{IntoParams, ToSchema};

use crate::caller::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::json::Json;
use crate::openapi::{Unauthorized, Unavailable};
use crate::state::AppState;

/// The default page size.
pub const DEFAULT_LIMIT: usize = 50;

/// Query parameters, all optional.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// A user id, or an e-mail address.
    pub user: Option<String>,
    /// An event kind (`login_failed`, …).
    pub kind: Option<String>,
    /// RFC 3339, or unix seconds.
    pub since: Option<String>,
    /// A previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// 1 to 500 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500)]
    pub limit: Option<String>,
}

/// One event as the API (and `tessera audit tail --json`) shows it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = AuditEvent)]
pub struct AuditEventView<'a> {
    /// Its position in the log.
    pub id: String,
    /// When, RFC 3339.
    pub at: String,
    /// What happened (`login_failed`, `roles_changed`, ...).
    #[schema(value_type = String)]
    pub kind: AuditKind,
    /// Who did it: `{"type": "user" | "api_key", "id": ...}`, or
    /// `{"type": "anonymous" | "cli" | "system"}`.
    #[schema(value_type = Object)]
    pub actor: &'a Actor,
    /// Whose account.
    #[schema(value_type = Option<uuid::Uuid>)]
    pub subject: Option<UserId>,
    /// From which address.
    pub ip: Option<String>,
    /// With which `User-Agent`.
    pub user_agent: Option<&'a str>,
    /// The session handle concerned.
    pub session: Option<&'a str>,
    /// The `X-Request-Id` of the request that caused it (the access log's).
    pub request_id: Option<&'a str>,
    /// For people.
    pub detail: &'a str,
}

impl<'a> AuditEventView<'a> {
    /// The view of a stored event.
    pub fn of(record: &'a AuditRecord) -> Self {
        let event = &record.event;
        Self {
            id: record.id.to_string(),
            at: event.at.to_rfc3339(),
            kind: event.kind,
            actor: &event.actor,
            subject: event.subject,
            ip: event.ip.map(|ip| ip.to_string()),
            user_agent: event.user_agent.as_deref(),
            session: event.session.as_deref(),
            request_id: event.request_id.as_deref(),
            detail: &event.detail,
        }
    }
}

/// A page as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = AuditPage)]
pub struct AuditPageView<'a> {
    events: Vec<AuditEventView<'a>>,
    /// The `cursor` of the next page; `null` at the end.
    next_cursor: Option<String>,
}

impl<'a> AuditPageView<'a> {
    /// The view of a page.
    pub fn of(page: &'a AuditPage) -> Self {
        Self {
            events: page.events.iter().map(AuditEventView::of).collect(),
            next_cursor: page.next.map(|id| id.to_string()),
        }
    }
}

/// `GET /admin/v1/audit?user=&kind=&since=&cursor=&limit=`: one page of the
/// audit log, newest first; `next_cursor` continues it (`null` at the end).
///
/// Answers 403 without the `admin` role, 400 for a bad parameter, 503 when
/// the user store does not answer.
#[utoipa::path(
    get,
    path = "/admin/v1/audit",
    operation_id = "list_audit",
    tag = "admin",
    params(AuditParams),
    security(("session_cookie" = []), ("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "One page of the audit log, newest first.", body = AuditPageView),
        (status = 400, description = "`invalid_query`, `invalid_user`, `invalid_kind`, `invalid_since`, `invalid_cursor`, `invalid_limit`.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 403, description = "`forbidden`: no `admin` role.", body = ErrorBody),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn list_audit(State(state): State<Arc<AppState>>, caller: Caller, uri: Uri) -> Response {
    let result = list(&state, &caller, &uri).await;
    caller.reply(&state, result).await
}

async fn list(state: &AppState, caller: &Caller, uri: &Uri) -> Result<Response, ApiError> {
    caller.require_role(Role::ADMIN)?;
    let Query(params) = Query::<AuditParams>::try_from_uri(uri)
        .map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    let Some(query) = params.to_query(state.users.as_ref()).await? else {
        return Ok(Json(AuditPageView::of(&AuditPage::default())).into_response());
    };
    let page = state.users.audit_events(&query).await?;
    Ok(Json(AuditPageView::of(&page)).into_response())
}

impl AuditParams {
    /// The store query these parameters ask for; `None` when the `user` is
    /// an address no account has (nothing can match).
    ///
    /// # Errors
    ///
    /// 400 for a malformed parameter, store errors from looking up an
    /// address.
    pub async fn to_query(&self, users: &dyn UserStore) -> Result<Option<AuditQuery>, ApiError> {
        let mut query = AuditQuery::latest(DEFAULT_LIMIT);
        if let Some(user) = self.user.as_deref() {
            match parse_user(user, users).await? {
                Some(id) => query.user = Some(id),
                None => return Ok(None),
            }
        }
        if let Some(kind) = self.kind.as_deref() {
            query.kind = Some(kind.parse().map_err(|_| {
                ApiError::bad_request("invalid_kind", format!("unknown event kind {kind:?}"))
            })?);
        }
        if let Some(since) = self.since.as_deref() {
            query.since = Some(parse_since(since).ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_since",
                    "since must be RFC 3339 (2026-01-31T12:00:00Z) or unix seconds",
                )
            })?);
        }
        if let Some(cursor) = self.cursor.as_deref() {
            query.after = Some(cursor.parse::<AuditId>().map_err(|_| {
                ApiError::bad_request("invalid_cursor", "cursor must be a next_cursor value")
            })?);
        }
        if let Some(limit) = self.limit.as_deref() {
            query.limit = limit
                .parse::<usize>()
                .ok()
                .filter(|l| (1..=AuditQuery::MAX_LIMIT).contains(l))
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "invalid_limit",
                        format!("limit must be 1 to {}", AuditQuery::MAX_LIMIT),
                    )
                })?;
        }
        Ok(Some(query))
    }
}

/// A user id, or the id of the account with that address (`None`: no
/// account has it).
///
/// # Errors
///
/// 400 for text that is neither, store errors.
pub async fn parse_user(text: &str, users: &dyn UserStore) -> Result<Option<UserId>, ApiError> {
    if let Ok(id) = text.parse::<UserId>() {
        return Ok(Some(id));
    }
    let email = Email::parse(text).map_err(|_| {
        ApiError::bad_request(
            "invalid_user",
            "user must be a user id or an e-mail address",
        )
    })?;
    Ok(users.by_email(&email).await?.map(|u| u.id))
}

/// RFC 3339 text or whole unix seconds.
pub fn parse_since(text: &str) -> Option<Timestamp> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        let seconds = text.parse::<i64>().ok()?;
        return Some(Timestamp::from_unix_millis(seconds.checked_mul(1000)?));
    }
    let at =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    let millis = i64::try_from(at.unix_timestamp_nanos() / 1_000_000).ok()?;
    Some(Timestamp::from_unix_millis(millis))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_rfc3339_and_unix_seconds() {
        assert_eq!(
            parse_since("1700000000"),
            Some(Timestamp::from_unix_millis(1_700_000_000_000))
        );
        assert_eq!(
            parse_since("2023-11-14T22:13:20Z"),
            Some(Timestamp::from_unix_millis(1_700_000_000_000))
        );
        assert_eq!(
            parse_since("2023-11-14T23:13:20.5+01:00"),
            Some(Timestamp::from_unix_millis(1_700_000_000_500))
        );
        for bad in ["", "yesterday", "-5", "2023-11-14", "99999999999999999999"] {
            assert_eq!(parse_since(bad), None, "{bad}");
        }
    }
}
