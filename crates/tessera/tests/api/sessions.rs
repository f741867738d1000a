use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn sessions_lists_live_sessions_with_handles_not_secrets() {
    let server = Server::start();
    let first = server.login_alice().await;
    let second = with_cookie(server.request(Method::POST, "/login"), None)
        .header("user-agent", "second-device/1.0")
        .json(&json!({"email": "alice@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let second = session_cookie(second.headers()).unwrap();
    let response = server.get("/sessions", Some(&second)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.unwrap();
    assert!(
        !text.contains(&first) && !text.contains(&second),
        "secrets leaked: {text}"
    );
    let body: Value = serde_json::from_str(&text).unwrap();
    let sessions = body["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2);
    let current: Vec<&Value> = sessions.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0]["user_agent"], "second-device/1.0");
    assert_eq!(current[0]["ip"], "127.0.0.1");
    for s in sessions {
        for field in ["handle", "login_time", "last_seen", "expires_at"] {
            assert!(s[field].is_string(), "{field} missing in {s}");
        }
    }
}

#[tokio::test]
async fn a_session_can_be_ended_by_its_handle() {
    let server = Server::start();
    let keep = server.login_alice().await;
    let end = server.login_alice().await;
    let listed: Value = server
        .get("/sessions", Some(&end))
        .await
        .json()
        .await
        .unwrap();
    let handle = listed["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["current"] == true)
        .unwrap()["handle"]
        .as_str()
        .unwrap()
        .to_owned();
    let response = with_cookie(
        server.request(Method::DELETE, &format!("/sessions/{handle}")),
        Some(&keep),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    expect_error(
        server.get("/profile", Some(&end)).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert_eq!(
        server.get("/profile", Some(&keep)).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn nobody_can_end_another_users_session() {
    let server = Server::start();
    server.data.add_user("bob@example.com", &[]);
    let alice = server.login_alice().await;
    let bob = server.login("bob@example.com", PASSWORD).await;
    let listed: Value = server
        .get("/sessions", Some(&alice))
        .await
        .json()
        .await
        .unwrap();
    let handle = listed["sessions"][0]["handle"].as_str().unwrap().to_owned();
    let response = with_cookie(
        server.request(Method::DELETE, &format!("/sessions/{handle}")),
        Some(&bob),
    )
    .send()
    .await
    .unwrap();
    expect_error(response, StatusCode::NOT_FOUND).await;
    assert_eq!(
        server.get("/profile", Some(&alice)).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn session_data_is_merged_and_kept_server_side() {
    let server = Server::start();
    let cookie = server.login_alice().await;
    let patch = |body: Value| server.send_json(Method::PATCH, "/session", Some(&cookie), body);
    assert_eq!(
        patch(json!({"theme": "dark", "lang": "en", "layout": {"cols": 2}}))
            .await
            .status(),
        StatusCode::OK
    );
    let response = patch(json!({"lang": null, "layout": {"rows": 3}})).await;
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["data"],
        json!({"theme": "dark", "layout": {"cols": 2, "rows": 3}})
    );
    let read: Value = server
        .get("/session", Some(&cookie))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        read["data"],
        json!({"theme": "dark", "layout": {"cols": 2, "rows": 3}})
    );
    assert!(read["session"]["handle"].is_string());
}

#[tokio::test]
async fn session_data_must_be_an_object_of_bounded_size() {
    let server = Server::start();
    let cookie = server.login_alice().await;
    let code = expect_error(
        server
            .send_json(Method::PATCH, "/session", Some(&cookie), json!([1, 2]))
            .await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(code, "invalid_body");
    let big = json!({"blob": "x".repeat(9000)});
    let code = expect_error(
        server
            .send_json(Method::PATCH, "/session", Some(&cookie), big)
            .await,
        StatusCode::PAYLOAD_TOO_LARGE,
    )
    .await;
    assert_eq!(code, "session_data_too_large");
}

/// With `max_sessions_per_user = 3`, five logins leave the newest three:
/// the two oldest cookies stop working and the server logs their end.
pub async fn logins_past_the_cap_end_the_oldest_sessions_on(options: Options) {
    let server = Server::start_with(options.env("TESSERA_MAX_SESSIONS_PER_USER", 3));
    let mut cookies = Vec::new();
    for _ in 0..5 {
        cookies.push(server.login_alice().await);
    }
    let listed: Value = server
        .get("/sessions", Some(&cookies[4]))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        listed["sessions"].as_array().map(Vec::len),
        Some(3),
        "{listed}"
    );
    for old in &cookies[..2] {
        expect_error(
            server.get("/profile", Some(old)).await,
            StatusCode::UNAUTHORIZED,
        )
        .await;
    }
    for kept in &cookies[2..] {
        assert_eq!(
            server.get("/profile", Some(kept)).await.status(),
            StatusCode::OK
        );
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let ended = || server.logs().matches("past max_sessions_per_user").count();
    while ended() < 2 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        ended(),
        2,
        "each ended session is logged: {}",
        server.logs()
    );
}

#[tokio::test]
async fn logins_past_the_cap_end_the_oldest_sessions() {
    logins_past_the_cap_end_the_oldest_sessions_on(Options::default()).await;
}
