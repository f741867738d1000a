//! Interchangeable nodes behind a real nginx (`deploy/nginx/round-robin.conf`
//! as shipped): two tessera processes sharing one data directory stand in,
//! on one machine, for nodes sharing a store. Any node serves any request,
//! a revocation on one is seen by the other at once, and killing a node
//! logs nobody out.

use std::collections::HashSet;

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::*;

const CONFIG: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../deploy/nginx/round-robin.conf"
);

type Cluster = Balanced;

async fn cluster() -> Cluster {
    behind_nginx(
        CONFIG,
        Options::default().env("TESSERA_TRUSTED_PROXIES", "127.0.0.1"),
    )
    .await
}

impl Cluster {
    fn request(&self, method: Method, path: &str, cookie: Option<&str>) -> reqwest::RequestBuilder {
        with_cookie(
            reqwest::Client::new().request(method, format!("{}{path}", self.url)),
            cookie,
        )
    }

    async fn login(&self) -> String {
        let response = self
            .request(Method::POST, "/login", None)
            .json(&json!({"email": "alice@example.com", "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        session_cookie(response.headers()).unwrap()
    }

    /// `n` requests to `/profile`; the statuses and the nodes that answered.
    async fn profiles(&self, cookie: &str, n: usize) -> (Vec<StatusCode>, HashSet<String>) {
        let mut statuses = Vec::new();
        let mut nodes = HashSet::new();
        for _ in 0..n {
            let response = self
                .request(Method::GET, "/profile", Some(cookie))
                .send()
                .await
                .unwrap();
            if let Some(node) = response.headers().get("x-tessera-node") {
                nodes.insert(node.to_str().unwrap().to_owned());
            }
            statuses.push(response.status());
        }
        (statuses, nodes)
    }
}

#[tokio::test]
async fn any_node_serves_a_session_made_on_another() {
    let cluster = cluster().await;
    let cookie = cluster.login().await;
    let (statuses, nodes) = cluster.profiles(&cookie, 20).await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
    assert_eq!(nodes.len(), 2, "round robin reached both nodes: {nodes:?}");
}

#[tokio::test]
async fn a_logout_on_one_node_is_seen_by_every_node_at_once() {
    let cluster = cluster().await;
    let cookie = cluster.login().await;
    // Both nodes have the session in their caches now.
    cluster.profiles(&cookie, 6).await;
    let logout = cluster
        .request(Method::POST, "/logout", Some(&cookie))
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), StatusCode::OK);
    let (statuses, nodes) = cluster.profiles(&cookie, 10).await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::UNAUTHORIZED),
        "{statuses:?}"
    );
    assert_eq!(nodes.len(), 2);
}

#[tokio::test]
async fn killing_a_node_logs_nobody_out() {
    let mut cluster = cluster().await;
    let cookie = cluster.login().await;
    let access = cluster.nodes[1].token_alice().await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    cluster.nodes[0].kill_9();
    let (statuses, _) = cluster.profiles(&cookie, 20).await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "sessions lost: {statuses:?}"
    );
    for _ in 0..5 {
        let response = cluster
            .request(Method::GET, "/profile", None)
            .bearer_auth(&access)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    // And a new login works on what is left.
    let fresh = cluster.login().await;
    assert!(
        cluster
            .profiles(&fresh, 3)
            .await
            .0
            .iter()
            .all(|s| *s == StatusCode::OK)
    );
}

/// Chromium's same-origin login and logout through nginx on a non-default
/// port: the Origin carries the port, so the Host tessera sees must too.
#[tokio::test]
async fn a_browser_logs_in_and_out_through_nginx_on_a_non_default_port() {
    let sticky = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/nginx/sticky.conf"
    );
    for config in [CONFIG, sticky] {
        let cluster = behind_nginx(config, Options::default()).await;
        let client = reqwest::Client::new();
        let login = client
            .post(format!("{}/login", cluster.url))
            .header("origin", &cluster.url)
            .header("sec-fetch-site", "same-origin")
            .json(&json!({"email": "alice@example.com", "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(login.status(), StatusCode::OK, "{config}");
        let cookie = session_cookie(login.headers()).unwrap();
        let logout = with_cookie(
            client.post(format!("{}/logout", cluster.url)),
            Some(&cookie),
        )
        .header("origin", &cluster.url)
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap();
        assert_eq!(logout.status(), StatusCode::OK, "{config}");
        let foreign = client
            .post(format!("{}/login", cluster.url))
            .header("origin", "http://127.0.0.1:1")
            .json(&json!({"email": "alice@example.com", "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(foreign.status(), StatusCode::FORBIDDEN, "{config}");
    }
}
