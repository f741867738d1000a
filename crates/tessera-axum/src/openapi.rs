//! The API contract: an OpenAPI 3.1 document derived from the handlers'
//! own request and response types (`utoipa`), served at `GET /openapi.json`.
//!
//! Each handler carries its `#[utoipa::path]` (method, path, body, every
//! status it answers); [`ApiDoc`] lists them. Adding a route to the
//! document is one line in its `paths(...)`; a route in the router but not
//! here (or the other way round) fails `tests/router/openapi.rs`, which
//! compares the two. Every error response refers to the one `ErrorBody`
//! schema (the shape [`ApiError`](crate::ApiError) produces).
//!
//! The document is built once per router (the session cookie's configured
//! name goes into it) and served as fixed bytes.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi as Document, RefOr};
use utoipa::{Modify, OpenApi, ToResponse, ToSchema};

use crate::error::ErrorBody;
use crate::routes::{
    account, admin, admin_links, admin_v1, apikeys, audit, forward_auth, health, login, profile,
    recovery, sessions, signup, token,
};
use crate::state::AppState;

/// Name of the security scheme of the session cookie.
pub const SESSION_COOKIE: &str = "session_cookie";
/// Name of the security scheme of a bearer access token (JWT).
pub const BEARER: &str = "bearer";
/// Name of the security scheme of an API key (`Authorization: Bearer tsk_...`).
pub const API_KEY: &str = "api_key";

/// The document's skeleton: every operation, the shared schemas and
/// responses, the security schemes. One line per route in `paths(...)`.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "tessera",
        description = "Authentication and sessions: cookie sessions, sealed cookies, JWT access and refresh tokens, API keys.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        openapi_json,
        health::health,
        health::live,
        health::ready,
        health::details,
        login::login,
        token::token,
        token::refresh,
        token::revoke,
        token::jwks,
        signup::signup,
        signup::verify_email,
        signup::resend_verification,
        account::confirm_email_change,
        recovery::forgot,
        recovery::reset,
        profile::profile,
        forward_auth::verify,
        profile::read_session,
        profile::patch_session,
        sessions::list_sessions,
        sessions::delete_session,
        login::logout,
        admin::patch_user,
        account::change_password,
        account::request_email_change,
        account::delete_account,
        audit::list_audit,
        admin_v1::create,
        admin_v1::list,
        admin_v1::get,
        admin_v1::patch,
        admin_v1::delete,
        admin_v1::sessions,
        admin_v1::end_sessions,
        admin_v1::end_session,
        admin_links::password_reset,
        admin_links::invite,
        apikeys::create,
        apikeys::list,
        apikeys::revoke,
    ),
    components(
        schemas(ErrorBody),
        responses(
            Unauthorized,
            RequestTimeout,
            PayloadTooLarge,
            UnsupportedMediaType,
            TooManyRequests,
            Unavailable,
        )
    ),
    modifiers(&SecuritySchemes),
)]
pub struct ApiDoc;

/// The three ways to authenticate, as security schemes.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut Document) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            SESSION_COOKIE,
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                crate::cookies::DEFAULT_COOKIE_NAME,
                "The session cookie set by `POST /login` (a session id, or the sealed session). \
                 A state-changing request with it must come from the server's own origin \
                 (`Origin`), else 403 `cross_site_request`.",
            ))),
        );
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "An access token from `POST /token` or `POST /token/refresh`.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            API_KEY,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("tsk_<id>_<secret>")
                    .description(Some(
                        "An API key from `POST /admin/v1/apikeys` (admin routes only; \
                         elsewhere 403 `api_key_not_accepted`).",
                    ))
                    .build(),
            ),
        );
    }
}

/// The document for a server whose session cookie is `cookie_name` (the
/// served JSON adds the links between operations, [`json`]).
pub fn document(cookie_name: &str) -> Document {
    let mut doc = ApiDoc::openapi();
    if let Some(components) = doc.components.as_mut()
        && let Some(SecurityScheme::ApiKey(ApiKey::Cookie(value))) =
            components.security_schemes.get_mut(SESSION_COOKIE)
    {
        value.name = cookie_name.to_owned();
    }
    add_cookie_parameters(&mut doc, cookie_name);
    if let Some(operation) = doc
        .paths
        .paths
        .get_mut("/admin/users/{email}")
        .and_then(|item| item.patch.as_mut())
    {
        operation.deprecated = Some(utoipa::openapi::Deprecated::True);
    }
    // A patch names at least one field. (utoipa 5.5 writes the derive's
    // `min_properties` as `maxProperties`: set here.)
    if let Some(components) = doc.components.as_mut() {
        for name in ["UserPatch", "LegacyUserPatch"] {
            if let Some(RefOr::T(utoipa::openapi::schema::Schema::Object(object))) =
                components.schemas.get_mut(name)
            {
                object.min_properties = Some(1);
            }
        }
    }
    // `POST /logout` takes its body or none (`OptionalJson`), but not `null`.
    if let Some(body) = doc
        .paths
        .paths
        .get_mut("/logout")
        .and_then(|item| item.post.as_mut())
        .and_then(|operation| operation.request_body.as_mut())
    {
        body.required = Some(utoipa::openapi::Required::False);
    }
    doc
}

/// Every operation the session cookie opens also names the cookie as an
/// optional cookie parameter, so that links can carry a session from
/// `POST /login` to the next request.
fn add_cookie_parameters(doc: &mut Document, cookie_name: &str) {
    use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
    use utoipa::openapi::{ObjectBuilder, Required, Type};
    for item in doc.paths.paths.values_mut() {
        for operation in operations(item) {
            let takes_cookie = operation.security.iter().flatten().any(|requirement| {
                serde_json::to_value(requirement)
                    .ok()
                    .and_then(|v| v.as_object().map(|o| o.contains_key(SESSION_COOKIE)))
                    .unwrap_or(false)
            });
            if !takes_cookie {
                continue;
            }
            let parameter = ParameterBuilder::new()
                .name(cookie_name)
                .parameter_in(ParameterIn::Cookie)
                .required(Required::False)
                .description(Some(
                    "The session cookie (see the `session_cookie` scheme).",
                ))
                .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                .build();
            operation
                .parameters
                .get_or_insert_with(Vec::new)
                .push(parameter);
        }
    }
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        item.get.as_mut(),
        item.put.as_mut(),
        item.post.as_mut(),
        item.delete.as_mut(),
        item.options.as_mut(),
        item.head.as_mut(),
        item.patch.as_mut(),
        item.trace.as_mut(),
    ]
    .into_iter()
    .flatten()
}

/// OpenAPI links between operations: what a client does with an answer
/// (login → profile, sessions, logout; token → refresh → refresh, revoke).
/// Written as JSON: utoipa 5.5's `Link` serialises its fields in
/// snake_case (`operation_id`), which no OpenAPI reader knows.
fn add_links(doc: &mut serde_json::Value, cookie_name: &str) {
    use serde_json::json;
    let session = format!("$response.header.Set-Cookie#regex:{cookie_name}=([^;]+)");
    let cookie = format!("cookie.{cookie_name}");
    let with_session = |operation: &str, description: &str| {
        json!({
            "operationId": operation,
            "parameters": {cookie.as_str(): session},
            "description": description,
        })
    };
    let refresh_token = "$response.body#/refresh_token";
    let refresh = json!({
        "operationId": "refresh",
        "requestBody": {"refresh_token": refresh_token},
        "description": "Rotates the refresh token.",
    });
    let revoke = json!({
        "operationId": "revoke",
        "requestBody": {"token": refresh_token},
        "description": "Revokes the refresh token's family.",
    });
    let links = [
        (
            "/login",
            json!({
                "profile": with_session("profile", "The profile of the session just started."),
                "sessions": with_session("list_sessions", "The user's sessions, this one marked current."),
                "logout": with_session("logout", "Ends the session just started."),
            }),
        ),
        ("/token", json!({"refresh": refresh, "revoke": revoke})),
        (
            "/token/refresh",
            json!({"refresh": refresh, "revoke": revoke}),
        ),
    ];
    for (path, links) in links {
        if let Some(response) = doc
            .pointer_mut(&format!(
                "/paths/{}/post/responses/200",
                path.replace('/', "~1")
            ))
            .and_then(serde_json::Value::as_object_mut)
        {
            response.insert("links".to_owned(), links);
        }
    }
}

/// The document as JSON, built once for a router.
pub fn json(cookie_name: &str) -> Bytes {
    let mut document =
        serde_json::to_value(document(cookie_name)).expect("the API document serialises");
    add_links(&mut document, cookie_name);
    Bytes::from(document.to_string())
}

/// `GET /openapi.json`: this document, built at the first request and
/// served as the same bytes afterwards. Anonymous.
#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "openapi",
    tag = "meta",
    responses((status = 200, description = "The OpenAPI 3.1 document of this server.", content_type = "application/json", body = Object)),
)]
pub async fn openapi_json(State(state): State<Arc<AppState>>) -> Response {
    let document = state
        .openapi
        .get_or_init(|| json(state.config.cookie.name()))
        .clone();
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        document,
    )
        .into_response()
}

/// Declares a reusable error response: its status text, description and
/// headers, with the `ErrorBody` schema.
macro_rules! error_response {
    ($(#[$doc:meta])* $name:ident, $description:literal $(, $header:literal => $header_doc:literal)*) => {
        $(#[$doc])*
        pub struct $name;

        impl<'r> ToResponse<'r> for $name {
            fn response() -> (&'r str, RefOr<utoipa::openapi::Response>) {
                use utoipa::openapi::{ContentBuilder, ResponseBuilder};
                let content = ContentBuilder::new()
                    .schema(Some(utoipa::openapi::Ref::from_schema_name(
                        <ErrorBody<'_> as ToSchema>::name(),
                    )))
                    .build();
                #[allow(unused_mut)]
                let mut response = ResponseBuilder::new()
                    .description($description)
                    .content("application/json", content);
                $(
                    response = response.header(
                        $header,
                        utoipa::openapi::HeaderBuilder::new()
                            .schema(
                                utoipa::openapi::schema::ObjectBuilder::new()
                                    .schema_type(utoipa::openapi::Type::String),
                            )
                            .description(Some($header_doc))
                            .build(),
                    );
                )*
                (stringify!($name), RefOr::T(response.build()))
            }
        }
    };
}

error_response!(
    /// 401: no credential, or one that is invalid, expired or revoked.
    Unauthorized,
    "No valid credential: `unauthenticated`, `invalid_token` (a bearer token or API key that is malformed, forged, expired or revoked).",
    "WWW-Authenticate" => "`Bearer realm=\"tessera\"`, with `error=\"invalid_token\"` for a refused token."
);
error_response!(
    /// 408: the body did not arrive within `body_read_timeout`.
    RequestTimeout,
    "`request_timeout`: the request body did not arrive in time; the connection closes."
);
error_response!(
    /// 413: the body is larger than `max_body_bytes`.
    PayloadTooLarge,
    "`payload_too_large`: the body is larger than the server accepts; the connection closes."
);
error_response!(
    /// 415: the body is not JSON.
    UnsupportedMediaType,
    "`unsupported_media_type`: the body must be `Content-Type: application/json`."
);
error_response!(
    /// 429: throttled.
    TooManyRequests,
    "`too_many_attempts`: too many attempts from this client or for this account; retry after `Retry-After` seconds.",
    "Retry-After" => "Seconds until a retry may succeed."
);
error_response!(
    /// 503: a store does not answer (fail closed), or hashing is saturated.
    Unavailable,
    "`store_unavailable` (a store does not answer: fail closed), `busy` (password hashing saturated), `password_check_unavailable`.",
    "Retry-After" => "Seconds until a retry may succeed."
);

/// A role's name as `Role::parse` takes it (1–64 of `a-z 0-9 _ - . :`):
/// the schema of every `roles` item (the role type lives in the core,
/// which knows no schemas).
pub struct RoleName;

impl utoipa::PartialSchema for RoleName {
    fn schema() -> RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::Type::String)
            .pattern(Some("^[a-z0-9_.:-]{1,64}$"))
            .description(Some("A role: 1 to 64 of a-z, 0-9, `_`, `-`, `.`, `:`."))
            .into()
    }
}

impl ToSchema for RoleName {}
