//! The `embedded` example, run as a person would run it: its own axum app
//! with tessera nested under `/auth` and a route of its own behind tessera's
//! extractor. `scripts/test` builds the examples before the tests.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

const PASSWORD: &str = "a long demo passphrase";

fn example_binary() -> PathBuf {
    // target/<profile>/deps/embedded-<hash> → target/<profile>/examples/embedded
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let binary = profile_dir.join("examples").join("embedded");
    assert!(
        binary.exists(),
        "{} is missing: build it first with `cargo build -p tessera-axum --examples`",
        binary.display()
    );
    binary
}

struct Example {
    child: Child,
    url: String,
}

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(data: &std::path::Path) -> Example {
    let port = tessera_testkit::free_port();
    let mut child = Command::new(example_binary())
        .env("PORT", port.to_string())
        .env("TESSERA_DATA_DIR", data)
        .env("DEMO_PASSWORD", PASSWORD)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the example");
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    assert!(line.starts_with("listening on http://127.0.0.1:"), "{line}");
    Example {
        child,
        url: format!("http://127.0.0.1:{port}"),
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// `method path` on the example, with the session cookie if given.
async fn send(
    app: &Example,
    client: &reqwest::Client,
    method: reqwest::Method,
    path: &str,
    cookie: Option<&str>,
) -> reqwest::Response {
    let mut request = client.request(method, format!("{}{path}", app.url));
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    request.send().await.unwrap()
}

async fn login(app: &Example, client: &reqwest::Client) -> String {
    let response = client
        .post(format!("{}/auth/login", app.url))
        .json(&json!({"email": "demo@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let set_cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    set_cookie.split(';').next().unwrap().to_owned()
}

#[tokio::test]
async fn the_app_greets_a_logged_in_user_and_refuses_everyone_else() {
    let data = tempfile::tempdir().unwrap();
    let app = start(data.path());
    let client = client();

    let get = reqwest::Method::GET;
    let anonymous = send(&app, &client, get.clone(), "/hello", None).await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let body: Value = anonymous.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthenticated");

    let cookie = login(&app, &client).await;
    assert!(cookie.starts_with("__Host-tessera="), "{cookie}");
    let hello = send(&app, &client, get.clone(), "/hello", Some(&cookie)).await;
    assert_eq!(hello.status(), StatusCode::OK);
    assert!(hello.text().await.unwrap().contains("demo@example.com"));

    let profile = send(&app, &client, get.clone(), "/auth/profile", Some(&cookie)).await;
    let profile: Value = profile.json().await.unwrap();
    assert_eq!(profile["user"]["email"], "demo@example.com");

    let logout = send(
        &app,
        &client,
        reqwest::Method::POST,
        "/auth/logout",
        Some(&cookie),
    )
    .await;
    assert_eq!(logout.status(), StatusCode::OK);
    let after = send(&app, &client, get, "/hello", Some(&cookie)).await;
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn sessions_and_the_demo_user_survive_a_restart() {
    let data = tempfile::tempdir().unwrap();
    let client = client();
    let cookie = {
        let app = start(data.path());
        login(&app, &client).await
    };
    // Started again on the same data: the user is not created twice and the
    // session (in SQLite) still works.
    let app = start(data.path());
    let hello = send(&app, &client, reqwest::Method::GET, "/hello", Some(&cookie)).await;
    assert_eq!(hello.status(), StatusCode::OK);
    login(&app, &client).await;
}
