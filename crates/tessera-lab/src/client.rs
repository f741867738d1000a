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
}

impl Identity {
    /// A user who has not logged in yet.
    pub fn new(email: String) -> Self {
        Self {
            email,
            cookies: CookieJar::default(),
            bearer: None,
        }
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
            CredentialKind::Bearer => {
                identity.bearer = serde_json::from_slice::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| v["access_token"].as_str().map(str::to_owned));
                identity.bearer.is_some()
            }
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
