//! Sticky routing for memory-store nodes behind a real nginx
//! (`deploy/nginx/sticky.conf` as shipped, ports rewritten): nginx gives
//! each client a routing cookie and pins it to one node; a node's death
//! costs its clients their sessions (401, never a 5xx), and a new login
//! works on the survivor.

use std::collections::HashSet;

use reqwest::header::{HeaderMap, SET_COOKIE};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::*;

const CONFIG: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../deploy/nginx/sticky.conf"
);
const ROUTE: &str = "tessera_route";

type Cluster = Balanced;

async fn cluster() -> Cluster {
    behind_nginx(
        CONFIG,
        Options::default()
            .env("TESSERA_STORE", "memory")
            .env("TESSERA_TRUSTED_PROXIES", "127.0.0.1"),
    )
    .await
}

/// A browser-like client: keeps the cookies it is given (both `Secure`, so
/// sent by hand over the test's plain HTTP).
#[derive(Default)]
struct Client {
    route: Option<String>,
    session: Option<String>,
}

impl Client {
    fn absorb(&mut self, headers: &HeaderMap) {
        for value in headers.get_all(SET_COOKIE) {
            let text = value.to_str().unwrap();
            let pair = text.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            match name {
                ROUTE => self.route = Some(value.to_owned()),
                COOKIE => self.session = Some(value.to_owned()),
                _ => {}
            }
        }
    }

    fn cookie_header(&self) -> Option<String> {
        let mut pairs = Vec::new();
        if let Some(route) = &self.route {
            pairs.push(format!("{ROUTE}={route}"));
        }
        if let Some(session) = &self.session {
            pairs.push(format!("{COOKIE}={session}"));
        }
        (!pairs.is_empty()).then(|| pairs.join("; "))
    }

    /// Sends a request with the client's cookies; the status and the node
    /// that answered (the last one nginx tried).
    async fn send(
        &mut self,
        cluster: &Cluster,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (StatusCode, String) {
        let mut request = reqwest::Client::new().request(method, format!("{}{path}", cluster.url));
        if let Some(cookies) = self.cookie_header() {
            request = request.header("cookie", cookies);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        self.absorb(response.headers());
        let node = response
            .headers()
            .get("x-tessera-node")
            .map(|v| v.to_str().unwrap().rsplit(", ").next().unwrap().to_owned())
            .unwrap_or_default();
        (response.status(), node)
    }

    async fn login(&mut self, cluster: &Cluster) -> String {
        let credentials = json!({"email": "alice@example.com", "password": PASSWORD});
        let (status, node) = self
            .send(cluster, Method::POST, "/login", Some(credentials))
            .await;
        assert_eq!(status, StatusCode::OK, "login");
        assert!(self.session.is_some(), "login sets the session cookie");
        node
    }

    async fn profile(&mut self, cluster: &Cluster) -> (StatusCode, String) {
        self.send(cluster, Method::GET, "/profile", None).await
    }
}

#[tokio::test]
async fn a_client_stays_on_the_node_that_logged_it_in() {
    let cluster = cluster().await;
    let mut client = Client::default();
    let login_node = client.login(&cluster).await;
    let route = client
        .route
        .clone()
        .expect("nginx hands out a routing cookie");
    assert_eq!(route.len(), 32, "{route}");
    for _ in 0..20 {
        let (status, node) = client.profile(&cluster).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(node, login_node, "the client moved");
    }
    assert_eq!(
        client.route.as_deref(),
        Some(route.as_str()),
        "the route is stable"
    );
}

#[tokio::test]
async fn clients_spread_over_the_nodes() {
    let cluster = cluster().await;
    let mut nodes = HashSet::new();
    for _ in 0..16 {
        let mut client = Client::default();
        nodes.insert(client.login(&cluster).await);
        assert_eq!(client.profile(&cluster).await.0, StatusCode::OK);
    }
    let expected: HashSet<String> = cluster.nodes.iter().map(|n| n.addr.to_string()).collect();
    assert_eq!(nodes, expected, "16 clients all hashed to one node");
}

#[tokio::test]
async fn a_forged_route_is_replaced_not_echoed() {
    let cluster = cluster().await;
    let mut client = Client {
        route: Some("../../evil".to_owned()),
        session: None,
    };
    client.send(&cluster, Method::GET, "/health", None).await;
    let route = client.route.unwrap();
    assert_ne!(route, "../../evil");
    assert!(route.len() == 32 && route.bytes().all(|b| b.is_ascii_hexdigit()));
}

#[tokio::test]
async fn killing_the_clients_node_loses_its_session_and_a_new_login_works_elsewhere() {
    let mut cluster = cluster().await;
    let mut client = Client::default();
    let first = client.login(&cluster).await;
    assert_eq!(client.profile(&cluster).await.0, StatusCode::OK);
    let victim = cluster
        .nodes
        .iter()
        .position(|n| n.addr.to_string() == first)
        .unwrap();
    cluster.nodes[victim].kill_9();

    // nginx finds the node dead and sends the request to the survivor,
    // which has never heard of the session: 401, not 502.
    let (status, node) = client.profile(&cluster).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "answered by {node}");
    assert_ne!(node, first);

    let second = client.login(&cluster).await;
    assert_ne!(second, first, "the login went to the survivor");
    for _ in 0..10 {
        assert_eq!(
            client.profile(&cluster).await,
            (StatusCode::OK, second.clone())
        );
    }
}
