//! The one place where failures become HTTP responses.
//!
//! Every handler and middleware returns [`ApiError`]; its `IntoResponse` is
//! the only mapping to status codes. Bodies are always
//! `{"error": {"code": "...", "message": "..."}}`; causes of 5xx answers are
//! logged here and never shown to the client.

use std::time::Duration;

use axum::extract::rejection::{BytesRejection, JsonRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;
use tessera_core::StoreError;
use utoipa::ToSchema;

use crate::connections::BodyReadTimeout;
use crate::json::Json;

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No session, or an invalid or expired one.
    #[error("a valid session is required")]
    Unauthenticated,
    /// Login failed. Deliberately silent about why (no account enumeration).
    #[error("invalid email or password")]
    InvalidCredentials,
    /// A bearer token that is malformed, forged, expired or revoked.
    #[error("invalid access token: {0}")]
    InvalidToken(tessera_token::TokenError),
    /// An API key that is malformed, unknown, revoked or expired (one
    /// answer for all, so that it tells nothing about which keys exist).
    #[error("invalid API key")]
    InvalidApiKey,
    /// A refresh token that is unknown, expired, revoked or reused.
    #[error("invalid or expired refresh token")]
    InvalidGrant,
    /// The password checked out, but the account's address is not verified
    /// and `require_verified_email` is on.
    #[error("verify your e-mail address before logging in")]
    EmailNotVerified,
    /// A mailed link's ticket that is malformed, unknown, expired, used, or
    /// for another purpose: one answer for all.
    #[error("this link is invalid or has expired")]
    InvalidTicket,
    /// `POST /signup` while `registration = closed`.
    #[error("sign-up is closed")]
    RegistrationClosed,
    /// `POST /signup` without a valid invite while `registration = invite`.
    #[error("sign-up requires a valid invite")]
    InviteRequired,
    /// The address belongs to another account.
    #[error("that address belongs to another account")]
    EmailTaken,
    /// Authenticated, but without the role the route needs.
    #[error("this requires the {0} role")]
    Forbidden(&'static str),
    /// An API key used where only a user's credential makes sense (logout,
    /// sessions, profile, forward auth).
    #[error("an API key has no {0}: API keys are for the admin API")]
    ApiKeyNotAccepted(&'static str),
    /// A state-changing request that came from another site.
    #[error("cross-site request refused")]
    CrossSite,
    /// No such resource.
    #[error("{0}")]
    NotFound(&'static str),
    /// The request conflicts with what exists (an e-mail address taken).
    #[error("{0}")]
    Conflict(&'static str),
    /// The route exists but not for this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The request body or parameters are unusable.
    #[error("{message}")]
    BadRequest {
        /// Machine-readable code.
        code: &'static str,
        /// Human-readable explanation.
        message: String,
    },
    /// The body is larger than the configured limit.
    #[error("request body too large")]
    PayloadTooLarge,
    /// Session data would grow past its limit.
    #[error("session data may not exceed {0} bytes")]
    SessionDataTooLarge(usize),
    /// The body is not JSON.
    #[error("expected Content-Type: application/json")]
    UnsupportedMediaType,
    /// The request body did not arrive whole within `body_read_timeout`
    /// ([`BodyReadTimeout`]); the connection is closed after the answer.
    #[error("the request body did not arrive in time")]
    RequestTimeout,
    /// The request target is longer than
    /// [`MAX_URI_BYTES`](crate::connections::MAX_URI_BYTES).
    #[error("the request target may not exceed {0} bytes")]
    UriTooLong(usize),
    /// The header fields are larger than
    /// [`MAX_HEADER_BYTES`](crate::connections::MAX_HEADER_BYTES) in all.
    #[error("the request's header fields may not exceed {0} bytes")]
    HeadersTooLarge(usize),
    /// Too many failed logins; try again later.
    #[error("too many attempts, try again later")]
    Throttled {
        /// When a retry may succeed.
        retry_after: Duration,
    },
    /// Password hashing is saturated; try again shortly.
    #[error("the server is busy, try again shortly")]
    Busy {
        /// When a retry may succeed.
        retry_after: Duration,
    },
    /// A store (sessions, users or tokens) did not answer. Fail closed.
    #[error("a store is unavailable, try again shortly")]
    StoreUnavailable(String),
    /// A new password could not be checked against known breaches and
    /// `breached_password_fail` is `closed`. Details go to the log only.
    #[error("the password could not be checked against known breaches; try again shortly")]
    PasswordCheckUnavailable(String),
    /// A bug or an impossible state. Details go to the log only.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    /// A 400 with a code and a message.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::BadRequest {
            code,
            message: message.into(),
        }
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::Unauthenticated => (StatusCode::UNAUTHORIZED, "unauthenticated"),
            Self::InvalidCredentials => (StatusCode::UNAUTHORIZED, "invalid_credentials"),
            Self::InvalidToken(_) | Self::InvalidApiKey => {
                (StatusCode::UNAUTHORIZED, "invalid_token")
            }
            Self::InvalidGrant => (StatusCode::UNAUTHORIZED, "invalid_grant"),
            Self::EmailNotVerified => (StatusCode::FORBIDDEN, "email_not_verified"),
            Self::InvalidTicket => (StatusCode::BAD_REQUEST, "invalid_ticket"),
            Self::RegistrationClosed => (StatusCode::FORBIDDEN, "registration_closed"),
            Self::InviteRequired => (StatusCode::FORBIDDEN, "invite_required"),
            Self::EmailTaken => (StatusCode::CONFLICT, "email_taken"),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Self::ApiKeyNotAccepted(_) => (StatusCode::FORBIDDEN, "api_key_not_accepted"),
            Self::CrossSite => (StatusCode::FORBIDDEN, "cross_site_request"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Self::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            Self::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            Self::BadRequest { code, .. } => (StatusCode::BAD_REQUEST, code),
            Self::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            Self::SessionDataTooLarge(_) => {
                (StatusCode::PAYLOAD_TOO_LARGE, "session_data_too_large")
            }
            Self::UnsupportedMediaType => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            Self::RequestTimeout => (StatusCode::REQUEST_TIMEOUT, "request_timeout"),
            Self::UriTooLong(_) => (StatusCode::URI_TOO_LONG, "uri_too_long"),
            Self::HeadersTooLarge(_) => (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "headers_too_large",
            ),
            Self::Throttled { .. } => (StatusCode::TOO_MANY_REQUESTS, "too_many_attempts"),
            Self::Busy { .. } => (StatusCode::SERVICE_UNAVAILABLE, "busy"),
            Self::StoreUnavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable"),
            Self::PasswordCheckUnavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "password_check_unavailable",
            ),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

/// The body of every error response: `{"error": {"code", "message"}}`.
/// The API document declares it once (`ErrorBody`) and every error
/// response refers to it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody<'a> {
    /// What went wrong.
    pub error: ErrorDetail<'a>,
}

/// The `error` member of an [`ErrorBody`].
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail<'a> {
    /// Machine-readable, snake_case (`invalid_credentials`, `store_unavailable`, ...).
    #[schema(example = "invalid_credentials")]
    pub code: &'a str,
    /// For people; never names a secret or says which of several causes it was.
    pub message: &'a str,
}

/// Builds the JSON error body every error response carries.
pub fn error_body(code: &str, message: &str) -> serde_json::Value {
    json!(ErrorBody {
        error: ErrorDetail { code, message }
    })
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        match &self {
            Self::StoreUnavailable(cause) => {
                tracing::warn!(%cause, "store unavailable, failing closed")
            }
            Self::PasswordCheckUnavailable(cause) => {
                tracing::warn!(%cause, "breached-password check failed, refusing the password")
            }
            Self::Internal(cause) => tracing::error!(%cause, "internal error"),
            _ => {}
        }
        let message = self.to_string();
        let body = ErrorBody {
            error: ErrorDetail {
                code,
                message: &message,
            },
        };
        let mut response = (status, Json(body)).into_response();
        let retry_after = match &self {
            Self::Throttled { retry_after } | Self::Busy { retry_after } => Some(*retry_after),
            Self::StoreUnavailable(_) | Self::PasswordCheckUnavailable(_) => {
                Some(Duration::from_secs(1))
            }
            _ => None,
        };
        // RFC 6750 §3: tell API clients how to authenticate.
        let challenge = match &self {
            Self::InvalidToken(_) | Self::InvalidApiKey => {
                Some("Bearer realm=\"tessera\", error=\"invalid_token\"")
            }
            Self::Unauthenticated => Some("Bearer realm=\"tessera\""),
            _ => None,
        };
        if let Some(challenge) = challenge {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        // The rest of a late or oversized body may still be on its way: do
        // not read it as the next request, and tell the client not to send
        // another on this connection (it would find it closed).
        if matches!(self, Self::RequestTimeout | Self::PayloadTooLarge) {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if let Some(after) = retry_after {
            let seconds = after.as_secs() + u64::from(after.subsec_nanos() > 0);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
        }
        response
    }
}

impl From<BytesRejection> for ApiError {
    fn from(rejection: BytesRejection) -> Self {
        if BodyReadTimeout::is_cause_of(&rejection) {
            Self::RequestTimeout
        } else if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Self::PayloadTooLarge
        } else {
            Self::bad_request("invalid_body", rejection.body_text())
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Unavailable(cause) => Self::StoreUnavailable(cause),
            StoreError::DataTooLarge { limit } => Self::SessionDataTooLarge(limit),
            StoreError::Conflict => Self::bad_request("conflict", "already exists"),
            StoreError::Corrupt(cause) => Self::Internal(format!("corrupt record: {cause}")),
        }
    }
}

impl From<crate::tokens::Error> for ApiError {
    fn from(error: crate::tokens::Error) -> Self {
        use crate::tokens::Error;
        match error {
            Error::InvalidToken(reason) => Self::InvalidToken(reason),
            Error::InvalidGrant => Self::InvalidGrant,
            Error::Store(store) => Self::from(store),
            Error::Signing(cause) => Self::Internal(cause),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        if BodyReadTimeout::is_cause_of(&rejection) {
            return Self::RequestTimeout;
        }
        match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => Self::PayloadTooLarge,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Self::UnsupportedMediaType,
            _ => Self::bad_request("invalid_json", rejection.body_text()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        let response = ApiError::Throttled {
            retry_after: Duration::from_millis(1500),
        }
        .into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
    }

    #[test]
    fn store_outages_are_503_with_retry_after() {
        let response = ApiError::from(StoreError::Unavailable("down".into())).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(response.headers().contains_key(header::RETRY_AFTER));
    }

    #[test]
    fn an_oversized_body_closes_the_connection() {
        let response = ApiError::PayloadTooLarge.into_response();
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(response.headers()[header::CONNECTION], "close");
    }
}
