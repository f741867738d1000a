//! A simulated user's HTTP side: logging in and calling `/profile` through
//! nginx, with a cookie or a bearer token.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use reqwest::header::{AUTHORIZATION, COOKIE, HeaderMap, RETRY_AFTER};
use reqwest::{RequestBuilder, Response, StatusCode};
use serde_json::json;

use super::accounts::PASSWORD;
use super::architecture::CredentialKind;
use super::balancer::NODE_HEADER;
use super::cookie_jar::CookieJar;

/// tessera's session cookie (the default `cookie_name`; the lab's nodes
/// run with defaults).
const SESSION_COOKIE: &str = "__Host-tessera";

/// How a request ended, as far as the user can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// 200; the node that answered, from nginx's header.
    Success {
        /// `host:port` of the node.
        node: Option<String>,
    },
    /// 401: the session or token is not (or no longer) known.
    Unauthorized,
    /// Anything else: 5xx, another 4xx, or no answer at all.
    Failure {
        /// What the server asked for with `Retry-After`, if anything.
        retry_after: Option<Duration>,
    },
}

/// One user's credentials.
#[derive(Debug)]
pub struct Identity {
    email: String,
    cookies: CookieJar,
    bearer: Option<String>,
    refresh_token: Option<String>,
    /// When the access token was issued and how long it lives.
    bearer_issued: Option<(std::time::Instant, Duration)>,
}

/// A credential as sent, for replaying it: the `Cookie` header or the
/// bearer token.
#[derive(Debug, Clone, Default)]
pub struct Credential {
    /// The `Cookie` header.
    pub cookie: Option<String>,
    /// The access token.
    pub bearer: Option<String>,
}

impl Credential {
    fn apply(&self, mut request: RequestBuilder) -> RequestBuilder {
        if let Some(token) = &self.bearer {
            request = request.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        if let Some(cookie) = &self.cookie {
            request = request.header(COOKIE, cookie);
        }
        request
    }
}

/// What `GET /profile` said of a credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// 200, with the user's id and roles.
    Accepted {
        /// The user's id.
        id: String,
        /// The user's roles as the node sees them.
        roles: Vec<String>,
    },
    /// 401.
    Refused,
    /// Anything else (5xx, no answer).
    Failed,
}

impl Identity {
    /// A user who has not logged in yet.
    pub fn new(email: String) -> Self {
        Self {
            email,
            cookies: CookieJar::default(),
            bearer: None,
            refresh_token: None,
            bearer_issued: None,
        }
    }

    /// The credential the user would send now.
    pub fn credential(&self) -> Credential {
        Credential {
            cookie: self.cookies.header(),
            bearer: self.bearer.clone(),
        }
    }

    /// Whether the access token is within `margin` of its end (a client
    /// refreshes it then).
    pub fn bearer_expiring(&self, margin: Duration) -> bool {
        self.bearer_issued
            .is_some_and(|(issued, lifetime)| issued.elapsed() + margin >= lifetime)
    }

    fn keep_tokens(&mut self, body: &[u8]) -> bool {
        let value: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
        self.bearer = value["access_token"].as_str().map(str::to_owned);
        self.refresh_token = value["refresh_token"].as_str().map(str::to_owned);
        let lifetime = Duration::from_secs(value["expires_in"].as_u64().unwrap_or(0));
        self.bearer_issued = Some((std::time::Instant::now(), lifetime));
        self.bearer.is_some()
    }
}

/// The entrance (nginx) and the kind of credential its users hold.
pub struct Gateway {
    base: String,
    client: reqwest::Client,
    kind: CredentialKind,
}

impl Gateway {
    /// Users of `kind` going through `addr`, sharing one keep-alive pool.
    ///
    /// # Errors
    ///
    /// The HTTP client cannot be built.
    pub fn new(addr: SocketAddr, kind: CredentialKind) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .context("cannot build the HTTP client")?;
        Ok(Self {
            base: format!("http://{addr}"),
            client,
            kind,
        })
    }

    /// `POST /login` or `POST /token`, keeping what it hands out (401:
    /// the credentials were refused).
    pub async fn log_in(&self, identity: &mut Identity) -> Outcome {
        let path = match self.kind {
            CredentialKind::Cookie => "/login",
            CredentialKind::Bearer => "/token",
        };
        let request = self
            .client
            .post(format!("{}{path}", self.base))
            .json(&json!({"email": identity.email, "password": PASSWORD}));
        let Ok(response) = with_cookies(request, identity).send().await else {
            return Outcome::Failure { retry_after: None };
        };
        identity.cookies.absorb(response.headers());
        let status = response.status();
        let node = node_of(response.headers());
        let retry_after = retry_after(response.headers());
        let Ok(body) = response.bytes().await else {
            return Outcome::Failure { retry_after: None };
        };
        match status {
            StatusCode::OK => {}
            StatusCode::UNAUTHORIZED => return Outcome::Unauthorized,
            _ => return Outcome::Failure { retry_after },
        }
        let credential_held = match self.kind {
            CredentialKind::Cookie => identity.cookies.holds(SESSION_COOKIE),
            CredentialKind::Bearer => identity.keep_tokens(&body),
        };
        if credential_held {
            Outcome::Success { node }
        } else {
            Outcome::Failure { retry_after: None }
        }
    }

    /// `GET /profile` with the user's credential; on 401 the credential is
    /// dropped.
    pub async fn profile(&self, identity: &mut Identity) -> Outcome {
        let mut request = self.client.get(format!("{}/profile", self.base));
        if let Some(token) = &identity.bearer {
            request = request.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        let outcome = match with_cookies(request, identity).send().await {
            Ok(response) => self.read(response, identity).await,
            Err(_) => Outcome::Failure { retry_after: None },
        };
        if outcome == Outcome::Unauthorized {
            identity.bearer = None;
            identity.cookies.remove(SESSION_COOKIE);
        }
        outcome
    }

    /// `GET /profile` with `credential`, leaving it as it is.
    pub async fn check(&self, credential: &Credential) -> Check {
        let request = credential.apply(self.client.get(format!("{}/profile", self.base)));
        let Ok(response) = request.send().await else {
            return Check::Failed;
        };
        let status = response.status();
        let Ok(body) = response.bytes().await else {
            return Check::Failed;
        };
        match status {
            StatusCode::OK => {
                let value: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                let user = &value["user"];
                Check::Accepted {
                    id: user["id"].as_str().unwrap_or_default().to_owned(),
                    roles: user["roles"]
                        .as_array()
                        .map(|roles| {
                            roles
                                .iter()
                                .filter_map(|r| r.as_str().map(str::to_owned))
                                .collect()
                        })
                        .unwrap_or_default(),
                }
            }
            StatusCode::UNAUTHORIZED => Check::Refused,
            _ => Check::Failed,
        }
    }

    /// `POST /logout` with `credential`: whether it was acknowledged (200).
    pub async fn log_out(&self, credential: &Credential) -> bool {
        let request = credential.apply(self.client.post(format!("{}/logout", self.base)));
        matches!(request.send().await, Ok(r) if r.status() == StatusCode::OK)
    }

    /// `POST /token/refresh` with the user's refresh token, keeping the new
    /// tokens: whether it worked.
    pub async fn refresh(&self, identity: &mut Identity) -> bool {
        let Some(refresh_token) = identity.refresh_token.clone() else {
            return false;
        };
        let request = self
            .client
            .post(format!("{}/token/refresh", self.base))
            .json(&json!({"refresh_token": refresh_token}));
        let Ok(response) = request.send().await else {
            return false;
        };
        if response.status() != StatusCode::OK {
            return false;
        }
        match response.bytes().await {
            Ok(body) => identity.keep_tokens(&body),
            Err(_) => false,
        }
    }

    /// `PATCH /admin/v1/users/{id}` as `admin`: whether it was acknowledged.
    pub async fn admin_patch(
        &self,
        admin: &Credential,
        user_id: &str,
        patch: &serde_json::Value,
    ) -> bool {
        let request = admin.apply(
            self.client
                .patch(format!("{}/admin/v1/users/{user_id}", self.base))
                .json(patch),
        );
        matches!(request.send().await, Ok(r) if r.status() == StatusCode::OK)
    }

    /// `GET /.well-known/jwks.json`.
    ///
    /// # Errors
    ///
    /// No answer, or not a JWK set.
    pub async fn jwks(&self) -> anyhow::Result<tessera_token::jwk::Jwks> {
        let response = self
            .client
            .get(format!("{}/.well-known/jwks.json", self.base))
            .send()
            .await
            .context("cannot fetch the JWKS")?;
        response.json().await.context("the JWKS is not a JWK set")
    }

    /// `GET` of `path` without credentials: whether it answered 200.
    pub async fn get_ok(&self, path: &str) -> bool {
        match self.client.get(format!("{}{path}", self.base)).send().await {
            Ok(response) => {
                let ok = response.status() == StatusCode::OK;
                response.bytes().await.is_ok() && ok
            }
            Err(_) => false,
        }
    }

    async fn read(&self, response: Response, identity: &mut Identity) -> Outcome {
        identity.cookies.absorb(response.headers());
        let status = response.status();
        let node = node_of(response.headers());
        let retry_after = retry_after(response.headers());
        // Read the body so the connection goes back to the pool.
        if response.bytes().await.is_err() {
            return Outcome::Failure { retry_after: None };
        }
        match status {
            StatusCode::OK => Outcome::Success { node },
            StatusCode::UNAUTHORIZED => Outcome::Unauthorized,
            _ => Outcome::Failure { retry_after },
        }
    }
}

fn with_cookies(request: RequestBuilder, identity: &Identity) -> RequestBuilder {
    match identity.cookies.header() {
        Some(cookies) => request.header(COOKIE, cookies),
        None => request,
    }
}

/// The node that finally answered: nginx lists every node it tried
/// (`a, b` after a retry), the last one answered.
fn node_of(headers: &HeaderMap) -> Option<String> {
    let tried = headers.get(NODE_HEADER)?.to_str().ok()?;
    // `$upstream_addr` separates retries with ", " and internal redirects
    // with " : "; an address itself contains ':' but no spaces.
    tried
        .split([',', ' '])
        .rfind(|part| !part.is_empty() && *part != ":")
        .map(str::to_owned)
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let seconds: u64 = headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(node: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(NODE_HEADER, HeaderValue::from_static(node));
        headers
    }

    #[test]
    fn the_node_is_the_last_one_nginx_tried() {
        assert_eq!(
            node_of(&headers("127.0.0.1:1")).as_deref(),
            Some("127.0.0.1:1")
        );
        assert_eq!(
            node_of(&headers("127.0.0.1:1, 127.0.0.1:2")).as_deref(),
            Some("127.0.0.1:2")
        );
        assert_eq!(
            node_of(&headers("127.0.0.1:1 : 127.0.0.1:3")).as_deref(),
            Some("127.0.0.1:3")
        );
        assert_eq!(node_of(&HeaderMap::new()), None);
    }
}
