//! The assembled router over real parts: a SQLite file in a temporary
//! directory, freshly generated token keys and argon2id at the OWASP
//! parameters. Requests go in with `oneshot`, as in axum's testing example.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use cookie::Cookie;
use serde_json::Value;
use tempfile::TempDir;
use tessera_axum::{AppConfig, AppState, Backends, TokenKeys};
use tessera_core::{Email, NewUser, Password, PasswordHasher, Role, Timestamp};
use tessera_store::{SqliteOptions, SqliteStore};
use tower::ServiceExt;

/// The password of every test user.
pub const PASSWORD: &str = "correct horse battery staple";

/// The session cookie's name.
pub const COOKIE: &str = "__Host-tessera";

/// The host the tests address the service as.
pub const HOST: &str = "auth.example.com";

/// One service: its state, its router and the directory its database lives in.
pub struct App {
    pub state: Arc<AppState>,
    router: Router,
    hasher: PasswordHasher,
    _dir: TempDir,
}

impl App {
    /// The service with default settings.
    pub fn new() -> Self {
        Self::with_config(AppConfig::default())
    }

    /// The service with `config`.
    pub fn with_config(config: AppConfig) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let store = SqliteStore::open(dir.path().join("tessera.db"), SqliteOptions::default())
            .expect("open the SQLite store");
        let hasher = PasswordHasher::owasp();
        let state = AppState::new(
            config,
            Backends::single(Arc::new(store)),
            TokenKeys::generate().expect("token keys"),
            hasher.clone(),
        );
        let peer = SocketAddr::from(([192, 0, 2, 7], 40_000));
        let router = tessera_axum::router(Arc::clone(&state)).layer(MockConnectInfo(peer));
        Self {
            state,
            router,
            hasher,
            _dir: dir,
        }
    }

    /// Creates a user with [`PASSWORD`] and `roles`.
    pub async fn add_user(&self, email: &str, roles: &[&str]) {
        let hash = self.hasher.hash(&Password::new(PASSWORD)).expect("hash");
        let user = NewUser {
            email: Email::parse(email).expect("email"),
            roles: roles
                .iter()
                .map(|r| Role::parse(r).expect("role"))
                .collect(),
            password_hash: hash,
            email_verified: true,
        }
        .into_user(Timestamp::now());
        self.state.users().create(&user).await.expect("create user");
    }

    /// Sends one request through the whole router.
    pub async fn send(&self, call: Call) -> Reply {
        let request = call.builder.body(call.body).expect("a well-formed request");
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("the router is infallible");
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, usize::MAX)
            .await
            .expect("read the body");
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    /// Logs `email` in with [`PASSWORD`]; the login must succeed.
    pub async fn login(&self, email: &str) -> Login {
        let reply = self
            .send(Call::new(Method::POST, "/login").json(&login_body(email)))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "login: {}", reply.body);
        let cookie = reply
            .only_session_cookie()
            .expect("login sets the session cookie");
        let handle = reply.body["session"]["handle"]
            .as_str()
            .expect("login answers the session handle")
            .to_owned();
        Login {
            cookie: cookie.value().to_owned(),
            handle,
            reply,
        }
    }

    /// An access token for `email` from `POST /token`.
    pub async fn access_token(&self, email: &str) -> String {
        let reply = self
            .send(Call::new(Method::POST, "/token").json(&login_body(email)))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "token: {}", reply.body);
        reply.body["access_token"]
            .as_str()
            .expect("an access token in the body")
            .to_owned()
    }

    /// The status `GET /profile` answers with this session cookie.
    pub async fn profile_status(&self, cookie: &str) -> StatusCode {
        self.send(Call::new(Method::GET, "/profile").cookie(cookie))
            .await
            .status
    }
}

/// The body of `POST /login` and `POST /token`.
pub fn login_body(email: &str) -> Value {
    serde_json::json!({"email": email, "password": PASSWORD})
}

/// A logged-in session.
pub struct Login {
    /// The session cookie's value.
    pub cookie: String,
    /// The session's public handle.
    pub handle: String,
    /// The login's response.
    pub reply: Reply,
}

/// A request under construction.
pub struct Call {
    builder: axum::http::request::Builder,
    body: Body,
}

impl Call {
    /// `method uri`, without a body.
    pub fn new(method: Method, uri: &str) -> Self {
        Self {
            builder: Request::builder().method(method).uri(uri),
            body: Body::empty(),
        }
    }

    /// With the session cookie `value`.
    pub fn cookie(self, value: &str) -> Self {
        self.header(header::COOKIE.as_str(), &format!("{COOKIE}={value}"))
    }

    /// With an `Authorization: Bearer` header.
    pub fn bearer(self, token: &str) -> Self {
        self.header(header::AUTHORIZATION.as_str(), &format!("Bearer {token}"))
    }

    /// As sent by a page on `origin` to [`HOST`].
    pub fn sent_from(self, origin: &str) -> Self {
        self.header(header::HOST.as_str(), HOST)
            .header(header::ORIGIN.as_str(), origin)
    }

    /// With a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.builder = self.builder.header(name, value);
        self
    }

    /// With a JSON body.
    pub fn json(self, body: &Value) -> Self {
        self.raw("application/json", body.to_string())
    }

    /// With a body of any content type.
    pub fn raw(mut self, content_type: &str, body: impl Into<Body>) -> Self {
        self.builder = self.builder.header(header::CONTENT_TYPE, content_type);
        self.body = body.into();
        self
    }
}

/// A response, its body read (`Null` unless it was JSON).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    /// Every `Set-Cookie` for the session cookie.
    pub fn session_cookies(&self) -> Vec<Cookie<'static>> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| {
                Cookie::parse(v.to_str().expect("text").to_owned()).expect("a valid Set-Cookie")
            })
            .filter(|c| c.name() == COOKIE)
            .collect()
    }

    /// The one `Set-Cookie` for the session cookie; an error if there are
    /// none or several.
    pub fn only_session_cookie(&self) -> Result<Cookie<'static>, String> {
        match self.session_cookies().as_slice() {
            [one] => Ok(one.clone()),
            other => Err(format!(
                "expected one {COOKIE} Set-Cookie, got {}: [{}]",
                other.len(),
                other
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(" | ")
            )),
        }
    }

    /// A header's value as text, if present.
    pub fn header(&self, name: header::HeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}
