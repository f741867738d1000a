//! A browser's journeys through each shipped forward-auth proxy, run for
//! real: nginx (`deploy/nginx/forward-auth.conf`), Caddy
//! (`deploy/caddy/Caddyfile`) and Traefik (`deploy/traefik/`), each as
//! shipped but for its addresses (`scripts/test` installs them). Every
//! journey is one function, run once against each proxy (the `nginx`,
//! `caddy` and `traefik` modules at the end).
//!
//! The browser here keeps its cookies the way a real one does: every
//! `Set-Cookie` it is sent replaces the cookie of that name, and the next
//! request carries what it holds. Whatever tessera sets while checking a
//! request (a fresh session id after a role change, a re-sealed cookie
//! session) must reach it through the proxy, or it is logged out.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};
use tessera_testkit::{CaddyConfig, NginxConfig, ProcessGroup, TraefikConfig};

use crate::helpers::*;

const DEPLOY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy");
const ECHO_APP: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/forward_auth/echo_app.py"
);
const LOGIN_URL: &str = "https://login.example.com/signin";

/// The shipped forward-auth configurations.
#[derive(Debug, Clone, Copy)]
enum Proxy {
    Nginx,
    Caddy,
    Traefik,
}

impl Proxy {
    /// Starts this proxy in front of `tessera` and `app`: its URL and the
    /// guard that stops it.
    fn start(self, tessera: SocketAddr, app: SocketAddr) -> (String, Box<dyn Send>) {
        let read = |path: &str| std::fs::read_to_string(format!("{DEPLOY}/{path}")).unwrap();
        let port = free_port();
        match self {
            Self::Nginx => {
                let template = read("nginx/forward-auth.conf");
                let nginx = NginxConfig::new(&template, port)
                    .upstream("TESSERA", &[tessera])
                    .upstream("APP", &[app])
                    .start()
                    .expect("nginx (see scripts/test)");
                (nginx.url(), Box::new(nginx))
            }
            Self::Caddy => {
                let template = read("caddy/Caddyfile");
                let caddy = CaddyConfig::new(&template, port)
                    .address("AUTH_UPSTREAM", tessera)
                    .address("APP_UPSTREAM", app)
                    .start()
                    .expect("caddy (see scripts/test)");
                (caddy.url(), Box::new(caddy))
            }
            Self::Traefik => {
                let (static_config, dynamic) =
                    (read("traefik/traefik.yml"), read("traefik/dynamic.yml"));
                let traefik = TraefikConfig::new(&static_config, &dynamic, port)
                    .upstream("TESSERA", tessera)
                    .upstream("APP", app)
                    .probe("/.well-known/jwks.json")
                    .start()
                    .expect("traefik (see scripts/test)");
                (traefik.url(), Box::new(traefik))
            }
        }
    }
}

/// tessera (trusting the proxy on 127.0.0.1), the echo app, and the proxy
/// in front of both.
struct Stack {
    proxy: Proxy,
    url: String,
    client: reqwest::Client,
    _proxy: Box<dyn Send>,
    _app: ProcessGroup,
    _tessera: Server,
}

impl Stack {
    fn start(proxy: Proxy, options: Options) -> Self {
        let tessera = Server::start_with(options.env("TESSERA_TRUSTED_PROXIES", "127.0.0.1/32"));
        let app_addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let mut app = ProcessGroup::spawn(
            "the echo app",
            Command::new("python3")
                .args([ECHO_APP, &app_addr.port().to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        )
        .unwrap();
        app.wait_for_listener(app_addr, Duration::from_secs(10))
            .unwrap();
        let (url, guard) = proxy.start(tessera.addr, app_addr);
        Self {
            proxy,
            url,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            _proxy: guard,
            _app: app,
            _tessera: tessera,
        }
    }

    fn browser(&self) -> Browser<'_> {
        Browser {
            stack: self,
            jar: BTreeMap::new(),
        }
    }
}

/// A browser on a page served by the proxy: its cookies, and the headers
/// it sends with a `fetch` or a page load.
struct Browser<'a> {
    stack: &'a Stack,
    jar: BTreeMap<String, String>,
}

impl Browser<'_> {
    /// A request carrying the cookies it holds.
    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let request = self
            .stack
            .client
            .request(method, format!("{}{path}", self.stack.url));
        if self.jar.is_empty() {
            return request;
        }
        let cookies: Vec<String> = self.jar.iter().map(|(k, v)| format!("{k}={v}")).collect();
        request.header("cookie", cookies.join("; "))
    }

    /// What Chromium sends with a same-origin `fetch(path, {method})`.
    fn fetch(&self, method: Method, path: &str) -> RequestBuilder {
        self.request(method, path)
            .header("origin", &self.stack.url)
            .header("sec-fetch-site", "same-origin")
            .header("sec-fetch-mode", "cors")
            .header("sec-fetch-dest", "empty")
            .header("accept", "*/*")
    }

    /// What Chromium sends when the address bar loads `path`.
    fn navigate(&self, path: &str) -> RequestBuilder {
        self.request(Method::GET, path)
            .header("sec-fetch-site", "none")
            .header("sec-fetch-mode", "navigate")
            .header("sec-fetch-dest", "document")
            .header("sec-fetch-user", "?1")
            .header("accept", "text/html,application/xhtml+xml,*/*;q=0.8")
    }

    /// Sends `request` and keeps every cookie the answer sets.
    async fn send(&mut self, request: RequestBuilder) -> Response {
        let response = request.send().await.unwrap();
        for set in set_cookies(&response) {
            let pair = set.split(';').next().unwrap_or("");
            let Some((name, value)) = pair.split_once('=') else {
                continue;
            };
            let expired = set.to_ascii_lowercase().contains("max-age=0");
            if value.is_empty() || expired {
                self.jar.remove(name.trim());
            } else {
                self.jar.insert(name.trim().to_owned(), value.to_owned());
            }
        }
        response
    }

    async fn log_in(&mut self) {
        let login = self
            .send(
                self.fetch(Method::POST, "/login")
                    .json(&json!({"email": "alice@example.com", "password": PASSWORD})),
            )
            .await;
        assert_eq!(
            login.status(),
            StatusCode::OK,
            "{:?}: login",
            self.stack.proxy
        );
        assert!(self.session().is_some(), "login sets the session cookie");
    }

    /// `GET path` as a `fetch`, which must reach the app: what it saw.
    async fn app(&mut self, path: &str) -> Value {
        let response = self.send(self.fetch(Method::GET, path)).await;
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "{:?}: GET {path}",
            self.stack.proxy
        );
        response.json().await.unwrap()
    }

    /// The session cookie it holds.
    fn session(&self) -> Option<String> {
        self.jar.get(COOKIE).cloned()
    }
}

/// Every `Set-Cookie` of an answer.
fn set_cookies(response: &Response) -> Vec<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

/// The roles the app was told, sorted.
fn roles(seen: &Value) -> Vec<&str> {
    let mut roles: Vec<&str> = seen["X-Auth-Roles"].as_str().unwrap().split(',').collect();
    roles.sort_unstable();
    roles
}

/// Login, the app, an admin's change of her own roles, five more requests
/// (each with the newest cookie), logout.
async fn a_session_survives_a_role_change_and_ends_at_logout(proxy: Proxy) {
    let stack = Stack::start(proxy, Options::default());
    let mut browser = stack.browser();
    // tessera's own endpoints pass straight through, without a credential.
    let jwks = browser
        .send(browser.request(Method::GET, "/.well-known/jwks.json"))
        .await;
    assert_eq!(jwks.status(), StatusCode::OK);
    assert!(jwks.json::<Value>().await.unwrap()["keys"].is_array());

    browser.log_in().await;
    let first_id = browser.session();
    let seen = browser.app("/reports").await;
    assert_eq!(seen["X-Auth-Email"], "alice@example.com");
    assert_eq!(roles(&seen), ["admin"]);
    assert_eq!(seen["X-Auth-Email-Verified"], "true");

    let patch = browser
        .send(
            browser
                .fetch(Method::PATCH, "/admin/users/alice@example.com")
                .json(&json!({"roles": ["admin", "auditor"]})),
        )
        .await;
    assert_eq!(patch.status(), StatusCode::OK, "{proxy:?}: the role change");

    // The first request rotates the session id on /auth/verify's answer;
    // the app sets a cookie of its own on the same answer.
    let response = browser
        .send(browser.fetch(Method::GET, "/reports?app-cookie"))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let cookies = set_cookies(&response);
    assert!(
        cookies.iter().any(|c| c.starts_with(&format!("{COOKIE}=")))
            && cookies.iter().any(|c| c.starts_with("app=seen")),
        "{proxy:?}: tessera's and the app's cookies reach the browser: {cookies:?}"
    );
    assert_ne!(browser.session(), first_id, "the session id was rotated");
    let seen: Value = response.json().await.unwrap();
    assert_eq!(roles(&seen), ["admin", "auditor"]);
    let names = seen["headers"].as_array().unwrap();
    assert!(
        !names
            .iter()
            .any(|n| n.as_str().unwrap().contains("cookie") && n != "cookie"),
        "{proxy:?}: the new cookie does not reach the app in a header: {names:?}"
    );
    for i in 1..5 {
        let seen = browser.app(&format!("/reports/{i}")).await;
        assert_eq!(roles(&seen), ["admin", "auditor"], "{proxy:?}: request {i}");
    }
    let post = browser.send(browser.fetch(Method::POST, "/reports")).await;
    assert_eq!(
        post.status(),
        StatusCode::OK,
        "a same-origin POST to the app"
    );

    let last_id = browser.session().unwrap();
    let logout = browser.send(browser.fetch(Method::POST, "/logout")).await;
    assert_eq!(logout.status(), StatusCode::OK, "{proxy:?}: logout");
    let after = browser.send(browser.fetch(Method::GET, "/reports")).await;
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED);
    let replayed = stack
        .client
        .get(format!("{}/reports", stack.url))
        .header("cookie", format!("{COOKIE}={last_id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        replayed.status(),
        StatusCode::UNAUTHORIZED,
        "{proxy:?}: the logged-out id"
    );
}

/// A sealed cookie session with a 3 s idle timeout, used every second for
/// eight seconds: each re-sealed cookie must reach the browser.
async fn a_sealed_cookie_session_lives_on_while_in_use(proxy: Proxy) {
    let options = Options::default()
        .env("TESSERA_SESSION_STORAGE", "cookie")
        .env("TESSERA_SESSION_IDLE_TIMEOUT", 3);
    let stack = Stack::start(proxy, options);
    let mut browser = stack.browser();
    browser.log_in().await;
    let mut cookies = vec![browser.session()];
    for second in 1..=8 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let seen = browser.app("/reports").await;
        assert_eq!(
            seen["X-Auth-Email"], "alice@example.com",
            "{proxy:?}: at {second} s"
        );
        cookies.push(browser.session());
    }
    cookies.dedup();
    assert!(
        cookies.len() >= 8,
        "{proxy:?}: re-sealed on (nearly) every request"
    );
}

/// With `login_url`: a page load without a session is sent to log in with
/// the URL it asked for; a `fetch` gets the 401; once logged in the page
/// loads, and after logout it is sent to log in again.
async fn a_page_load_without_a_session_is_sent_to_log_in(proxy: Proxy) {
    let stack = Stack::start(
        proxy,
        Options::default().env("TESSERA_LOGIN_URL", LOGIN_URL),
    );
    let mut browser = stack.browser();
    let asked = format!("{}/reports/7?tab=a%20b&ids=1,2", stack.url);
    let sent_to_log_in = |response: &Response| {
        assert!(
            matches!(response.status(), StatusCode::FOUND | StatusCode::SEE_OTHER),
            "{proxy:?}: {}",
            response.status()
        );
        let location = response.headers()["location"].to_str().unwrap();
        assert!(location.starts_with(LOGIN_URL), "{location}");
        let url = reqwest::Url::parse(location).unwrap();
        let rd: Vec<_> = url
            .query_pairs()
            .filter(|(k, _)| k == "rd")
            .map(|(_, v)| v.into_owned())
            .collect();
        assert_eq!(
            rd,
            std::slice::from_ref(&asked),
            "{proxy:?}: where it was going"
        );
    };
    // What a client says about where it was going is not believed.
    let response = browser
        .send(
            browser
                .navigate("/reports/7?tab=a%20b&ids=1,2")
                .header("x-forwarded-host", "evil.example")
                .header("x-forwarded-proto", "https")
                .header("x-forwarded-uri", "/elsewhere"),
        )
        .await;
    sent_to_log_in(&response);
    let fetch = browser
        .send(browser.fetch(Method::GET, "/reports/7?tab=a%20b&ids=1,2"))
        .await;
    assert_eq!(fetch.status(), StatusCode::UNAUTHORIZED, "{proxy:?}: fetch");
    assert!(fetch.headers().get("location").is_none());

    browser.log_in().await;
    let page = browser
        .send(browser.navigate("/reports/7?tab=a%20b&ids=1,2"))
        .await;
    assert_eq!(page.status(), StatusCode::OK, "{proxy:?}: logged in");
    let logout = browser.send(browser.fetch(Method::POST, "/logout")).await;
    assert_eq!(logout.status(), StatusCode::OK);
    let again = browser
        .send(browser.navigate("/reports/7?tab=a%20b&ids=1,2"))
        .await;
    sent_to_log_in(&again);
}

/// Identity headers, a cookie to be handed back and the method of the
/// checked request, as a client forges them: none is believed.
async fn headers_a_client_forges_are_not_believed(proxy: Proxy) {
    let stack = Stack::start(proxy, Options::default());
    let mut browser = stack.browser();
    let forged = |request: RequestBuilder| {
        request
            .header("x-auth-user-id", "00000000-0000-0000-0000-000000000000")
            .header("x-auth-email", "root@example.com")
            .header("x-auth-roles", "admin,root")
            .header("x-auth-email-verified", "false")
            .header("x-tessera-set-cookie", "evil=1; Path=/")
    };
    let anonymous = browser
        .send(forged(browser.fetch(Method::GET, "/reports")))
        .await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED, "{proxy:?}");

    browser.log_in().await;
    let response = browser
        .send(forged(browser.fetch(Method::GET, "/reports")))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        !set_cookies(&response).iter().any(|c| c.contains("evil")),
        "{proxy:?}"
    );
    let seen: Value = response.json().await.unwrap();
    assert_eq!(seen["X-Auth-Email"], "alice@example.com", "{proxy:?}");
    assert_eq!(roles(&seen), ["admin"]);
    assert_eq!(seen["X-Auth-User-Id"].as_str().unwrap().len(), 36);
    assert_eq!(seen["X-Auth-Email-Verified"], "true", "{proxy:?}");

    // A cross-site POST that claims to be a GET is still a POST.
    for claim in [None, Some("GET")] {
        let mut post = browser
            .request(Method::POST, "/reports")
            .header("origin", "https://evil.example")
            .header("sec-fetch-site", "cross-site");
        if let Some(method) = claim {
            post = post.header("x-forwarded-method", method);
        }
        let response = browser.send(post).await;
        assert_eq!(
            response.status(),
            StatusCode::FORBIDDEN,
            "{proxy:?}: X-Forwarded-Method {claim:?}"
        );
    }
}

/// One test per journey and proxy: `proxies::<proxy>::<journey>`.
macro_rules! through {
    ($module:ident, $proxy:expr) => {
        mod $module {
            use super::Proxy;

            #[tokio::test]
            async fn a_session_survives_a_role_change_and_ends_at_logout() {
                super::a_session_survives_a_role_change_and_ends_at_logout($proxy).await;
            }

            #[tokio::test]
            async fn a_sealed_cookie_session_lives_on_while_in_use() {
                super::a_sealed_cookie_session_lives_on_while_in_use($proxy).await;
            }

            #[tokio::test]
            async fn a_page_load_without_a_session_is_sent_to_log_in() {
                super::a_page_load_without_a_session_is_sent_to_log_in($proxy).await;
            }

            #[tokio::test]
            async fn headers_a_client_forges_are_not_believed() {
                super::headers_a_client_forges_are_not_believed($proxy).await;
            }
        }
    };
}

through!(nginx, Proxy::Nginx);
through!(caddy, Proxy::Caddy);
through!(traefik, Proxy::Traefik);
