//! `/admin/v1/users` against the real binary: every route's happy path and
//! its errors, pagination over many users, and deletion ending every
//! credential at once (through the API and through `tessera user delete`).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

/// A request as alice (an admin) with her session cookie.
async fn admin(
    server: &Server,
    cookie: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let request = with_cookie(server.request(method, path), Some(cookie));
    match body {
        Some(body) => request.json(&body),
        None => request,
    }
    .send()
    .await
    .unwrap()
}

async fn create_user(server: &Server, cookie: &str, body: Value) -> Value {
    let response = admin(server, cookie, Method::POST, "/admin/v1/users", Some(body)).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    response.json::<Value>().await.unwrap()["user"].clone()
}

#[tokio::test]
async fn users_are_created_read_changed_and_deleted_with_every_error_answered_in_json() {
    let server = Server::start();
    let alice = server.login_alice().await;

    // Create.
    let bob = create_user(
        &server,
        &alice,
        json!({"email": " Bob@Example.com ", "password": PASSWORD, "roles": ["member"]}),
    )
    .await;
    assert_eq!(bob["email"], "bob@example.com");
    assert_eq!(bob["roles"], json!(["member"]));
    assert_eq!(bob["email_verified"], false);
    assert_eq!(bob["disabled"], false);
    assert!(bob.get("password_hash").is_none());
    let id = bob["id"].as_str().unwrap().to_owned();
    assert_eq!(
        server
            .login_response("bob@example.com", PASSWORD)
            .await
            .status(),
        StatusCode::OK
    );

    let taken = admin(
        &server,
        &alice,
        Method::POST,
        "/admin/v1/users",
        Some(json!({"email": "bob@example.com", "password": PASSWORD})),
    )
    .await;
    assert_eq!(expect_error(taken, StatusCode::CONFLICT).await, "conflict");
    for bad in [
        json!({"email": "carol@example.com"}),
        json!({"email": "not an address", "password": PASSWORD}),
        json!({"email": "carol@example.com", "password": "short"}),
        json!({"email": "carol@example.com", "password": PASSWORD, "roles": ["Not A Role"]}),
        json!({"email": "carol@example.com", "password": PASSWORD, "admin": true}),
        json!({"email": "carol@example.com", "password": 12345678901_u64}),
        json!(["carol@example.com"]),
    ] {
        let response = admin(
            &server,
            &alice,
            Method::POST,
            "/admin/v1/users",
            Some(bad.clone()),
        )
        .await;
        expect_error(response, StatusCode::BAD_REQUEST).await;
    }
    let not_json = with_cookie(
        server.request(Method::POST, "/admin/v1/users"),
        Some(&alice),
    )
    .body("email=x")
    .send()
    .await
    .unwrap();
    expect_error(not_json, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;

    // Read.
    let path = format!("/admin/v1/users/{id}");
    let got: Value = admin(&server, &alice, Method::GET, &path, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(got["user"], bob);
    let malformed = admin(
        &server,
        &alice,
        Method::GET,
        "/admin/v1/users/not-a-uuid",
        None,
    )
    .await;
    assert_eq!(
        expect_error(malformed, StatusCode::BAD_REQUEST).await,
        "invalid_id"
    );
    let unknown = "/admin/v1/users/00000000-0000-4000-8000-000000000000";
    for method in [Method::GET, Method::DELETE] {
        let response = admin(&server, &alice, method, unknown, None).await;
        assert_eq!(
            expect_error(response, StatusCode::NOT_FOUND).await,
            "not_found"
        );
    }
    for sub in ["/sessions"] {
        let response = admin(
            &server,
            &alice,
            Method::GET,
            &format!("{unknown}{sub}"),
            None,
        )
        .await;
        expect_error(response, StatusCode::NOT_FOUND).await;
        let response = admin(
            &server,
            &alice,
            Method::DELETE,
            &format!("{unknown}{sub}"),
            None,
        )
        .await;
        expect_error(response, StatusCode::NOT_FOUND).await;
    }
    let patch_unknown = admin(
        &server,
        &alice,
        Method::PATCH,
        unknown,
        Some(json!({"disabled": true})),
    )
    .await;
    expect_error(patch_unknown, StatusCode::NOT_FOUND).await;

    // Change.
    let changed = admin(
        &server,
        &alice,
        Method::PATCH,
        &path,
        Some(json!({"roles": ["member", "billing"], "email_verified": true})),
    )
    .await;
    assert_eq!(changed.status(), StatusCode::OK);
    let changed: Value = changed.json().await.unwrap();
    assert_eq!(changed["user"]["roles"], json!(["billing", "member"]));
    assert_eq!(changed["user"]["email_verified"], true);
    for bad in [
        json!({}),
        json!({"roles": "admin"}),
        json!({"email": "nope"}),
        json!({"disabled": "yes"}),
        json!({"password": "x"}),
    ] {
        let response = admin(&server, &alice, Method::PATCH, &path, Some(bad)).await;
        expect_error(response, StatusCode::BAD_REQUEST).await;
    }
    let taken = admin(
        &server,
        &alice,
        Method::PATCH,
        &path,
        Some(json!({"email": "alice@example.com"})),
    )
    .await;
    assert_eq!(expect_error(taken, StatusCode::CONFLICT).await, "conflict");

    // An e-mail change ends the user's credentials (each carries the old
    // address) and the new address logs in.
    let bob_cookie = server.login("bob@example.com", PASSWORD).await;
    let moved = admin(
        &server,
        &alice,
        Method::PATCH,
        &path,
        Some(json!({"email": "robert@example.com"})),
    )
    .await;
    assert_eq!(moved.status(), StatusCode::OK);
    let moved: Value = moved.json().await.unwrap();
    assert_eq!(moved["user"]["email"], "robert@example.com");
    // Bob's two logins (the first check's and this one) ended.
    assert_eq!(moved["sessions_affected"], 2);
    assert_eq!(
        server.get("/profile", Some(&bob_cookie)).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        server
            .login_response("bob@example.com", PASSWORD)
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    let robert = server.login("robert@example.com", PASSWORD).await;

    // Sessions: listed with their facts, ended one by one or all at once.
    let token = server
        .send_json(
            Method::POST,
            "/token",
            None,
            json!({"email": "robert@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(token.status(), StatusCode::OK);
    let token: Value = token.json().await.unwrap();
    let listed: Value = admin(
        &server,
        &alice,
        Method::GET,
        &format!("{path}/sessions"),
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    let sessions = listed["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 1, "{listed}");
    assert!(sessions[0]["handle"].is_string() && sessions[0]["last_seen"].is_string());
    assert!(sessions[0]["ip"].is_string() && sessions[0].get("user_agent").is_some());
    assert_eq!(
        listed["token_families"].as_array().unwrap().len(),
        1,
        "{listed}"
    );
    let family = listed["token_families"][0]["handle"]
        .as_str()
        .unwrap()
        .to_owned();
    let ended = admin(
        &server,
        &alice,
        Method::DELETE,
        &format!("{path}/sessions/{family}"),
        None,
    )
    .await;
    assert_eq!(ended.status(), StatusCode::NO_CONTENT);
    let access = token["access_token"].as_str().unwrap();
    assert_eq!(
        bearer(&server, "/profile", access).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        server.get("/profile", Some(&robert)).await.status(),
        StatusCode::OK,
        "the other login stays"
    );
    let again = admin(
        &server,
        &alice,
        Method::DELETE,
        &format!("{path}/sessions/{family}"),
        None,
    )
    .await;
    expect_error(again, StatusCode::NOT_FOUND).await;
    let all = admin(
        &server,
        &alice,
        Method::DELETE,
        &format!("{path}/sessions"),
        None,
    )
    .await;
    assert_eq!(all.status(), StatusCode::OK);
    assert_eq!(all.json::<Value>().await.unwrap()["sessions_ended"], 1);
    assert_eq!(
        server.get("/profile", Some(&robert)).await.status(),
        StatusCode::UNAUTHORIZED
    );

    // Only admins.
    let robert = server.login("robert@example.com", PASSWORD).await;
    for (method, route) in [
        (Method::GET, "/admin/v1/users".to_owned()),
        (Method::POST, "/admin/v1/users".to_owned()),
        (Method::GET, path.clone()),
        (Method::PATCH, path.clone()),
        (Method::DELETE, path.clone()),
        (Method::GET, format!("{path}/sessions")),
        (Method::DELETE, format!("{path}/sessions")),
        (Method::DELETE, format!("{path}/sessions/x")),
    ] {
        let response = with_cookie(server.request(method.clone(), &route), Some(&robert))
            .json(&json!({"roles": ["admin"]}))
            .send()
            .await
            .unwrap();
        assert_eq!(
            expect_error(response, StatusCode::FORBIDDEN).await,
            "forbidden",
            "{method} {route}"
        );
        let anonymous = server.request(method.clone(), &route).send().await.unwrap();
        expect_error(anonymous, StatusCode::UNAUTHORIZED).await;
    }

    // Delete.
    let deleted = admin(&server, &alice, Method::DELETE, &path, None).await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    expect_error(
        admin(&server, &alice, Method::GET, &path, None).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    expect_error(
        admin(&server, &alice, Method::DELETE, &path, None).await,
        StatusCode::NOT_FOUND,
    )
    .await;

    // The old route keeps working.
    let legacy = admin(
        &server,
        &alice,
        Method::PATCH,
        "/admin/users/alice@example.com",
        Some(json!({"roles": ["admin", "ops"]})),
    )
    .await;
    assert_eq!(legacy.status(), StatusCode::OK);
}

/// Walks every page of `query` (`limit` per page), returning the addresses.
async fn walk(server: &Server, cookie: &str, query: &str, limit: usize) -> Vec<String> {
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/admin/v1/users?limit={limit}{query}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let response = admin(server, cookie, Method::GET, &path, None).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let page: Value = response.json().await.unwrap();
        let users = page["users"].as_array().unwrap();
        assert!(users.len() <= limit);
        seen.extend(
            users
                .iter()
                .map(|u| u["email"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return seen,
        }
        assert!(seen.len() < 1000, "the pages never end");
    }
}

#[tokio::test]
async fn thirty_users_page_with_filters_without_duplicates_or_gaps() {
    let server = Server::start();
    let alice = server.login_alice().await;
    let mut all = BTreeSet::from(["alice@example.com".to_owned()]);
    let (mut ops, mut verified, mut disabled, mut m_prefix) = (
        BTreeSet::new(),
        BTreeSet::new(),
        BTreeSet::new(),
        BTreeSet::new(),
    );
    for i in 0..30 {
        let email = format!("{}{i:02}@example.com", if i % 2 == 0 { "m" } else { "n" });
        let roles = if i % 3 == 0 {
            json!(["ops"])
        } else {
            json!([])
        };
        let user = create_user(&server, &alice,
            json!({"email": email, "password": PASSWORD, "roles": roles, "email_verified": i % 5 == 0})).await;
        if i % 7 == 0 {
            let path = format!("/admin/v1/users/{}", user["id"].as_str().unwrap());
            let response = admin(
                &server,
                &alice,
                Method::PATCH,
                &path,
                Some(json!({"disabled": true})),
            )
            .await;
            assert_eq!(response.status(), StatusCode::OK);
            disabled.insert(email.clone());
        }
        if i % 3 == 0 {
            ops.insert(email.clone());
        }
        if i % 5 == 0 {
            verified.insert(email.clone());
        }
        if i % 2 == 0 {
            m_prefix.insert(email.clone());
        }
        all.insert(email);
    }
    verified.insert("alice@example.com".to_owned());
    let sorted = |set: &BTreeSet<String>| set.iter().cloned().collect::<Vec<_>>();
    for limit in [1, 7, 30, 31, 500] {
        assert_eq!(
            walk(&server, &alice, "", limit).await,
            sorted(&all),
            "limit {limit}"
        );
    }
    assert_eq!(walk(&server, &alice, "&role=ops", 4).await, sorted(&ops));
    assert_eq!(
        walk(&server, &alice, "&verified=true", 2).await,
        sorted(&verified)
    );
    assert_eq!(
        walk(&server, &alice, "&disabled=true", 2).await,
        sorted(&disabled)
    );
    assert_eq!(
        walk(&server, &alice, "&email_prefix=M", 6).await,
        sorted(&m_prefix)
    );
    let both: Vec<String> = ops
        .intersection(&m_prefix)
        .filter(|e| !disabled.contains(*e))
        .cloned()
        .collect();
    assert_eq!(
        walk(
            &server,
            &alice,
            "&email_prefix=m&role=ops&disabled=false",
            2
        )
        .await,
        both
    );
    assert_eq!(
        walk(&server, &alice, "&email_prefix=%25", 5).await,
        Vec::<String>::new(),
        "% is literal"
    );
    // The default page is 50.
    let page: Value = admin(&server, &alice, Method::GET, "/admin/v1/users", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["users"].as_array().unwrap().len(), 31);
    assert_eq!(page["next_cursor"], Value::Null);

    for bad in [
        "limit=0",
        "limit=501",
        "limit=x",
        "cursor=garbage",
        "cursor=",
        "disabled=maybe",
        "role=Ops",
        "sort=email",
    ] {
        let response = admin(
            &server,
            &alice,
            Method::GET,
            &format!("/admin/v1/users?{bad}"),
            None,
        )
        .await;
        let code = expect_error(response, StatusCode::BAD_REQUEST).await;
        assert!(code.starts_with("invalid_"), "{bad}: {code}");
    }
}

/// Bob logged in three ways: a session cookie, and an access token with
/// its refresh token.
struct Logins {
    cookie: String,
    access: String,
    refresh: String,
}

async fn bob_everywhere(server: &Server) -> Logins {
    let cookie = server.login("bob@example.com", PASSWORD).await;
    let tokens: Value = server
        .send_json(
            Method::POST,
            "/token",
            None,
            json!({"email": "bob@example.com", "password": PASSWORD}),
        )
        .await
        .json()
        .await
        .unwrap();
    let logins = Logins {
        cookie,
        access: tokens["access_token"].as_str().unwrap().to_owned(),
        refresh: tokens["refresh_token"].as_str().unwrap().to_owned(),
    };
    assert_eq!(
        server.get("/profile", Some(&logins.cookie)).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        bearer(server, "/profile", &logins.access).await.status(),
        StatusCode::OK
    );
    logins
}

/// Everything bob had is refused (within `bound`, for changes another
/// process made), and he cannot log in again.
async fn all_refused(server: &Server, logins: &Logins, bound: Duration) {
    let started = Instant::now();
    loop {
        let cookie = server.get("/profile", Some(&logins.cookie)).await.status();
        let access = bearer(server, "/profile", &logins.access).await.status();
        if cookie == StatusCode::UNAUTHORIZED && access == StatusCode::UNAUTHORIZED {
            break;
        }
        assert!(
            started.elapsed() < bound,
            "after {bound:?}: cookie {cookie}, bearer {access}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    expect_error(
        refresh(server, &logins.refresh).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    expect_error(
        server.login_response("bob@example.com", PASSWORD).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
}

#[tokio::test]
async fn deleting_a_user_ends_the_cookie_the_bearer_token_and_the_refresh_token_at_once() {
    let server = Server::start();
    server.data.add_user("bob@example.com", &["member"]);
    let alice = server.login_alice().await;
    let logins = bob_everywhere(&server).await;
    let page: Value = admin(
        &server,
        &alice,
        Method::GET,
        "/admin/v1/users?email_prefix=bob",
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    let id = page["users"][0]["id"].as_str().unwrap().to_owned();
    let deleted = admin(
        &server,
        &alice,
        Method::DELETE,
        &format!("/admin/v1/users/{id}"),
        None,
    )
    .await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    all_refused(&server, &logins, Duration::ZERO).await;
    let users = server.data.cli(&["user", "list"], "");
    assert!(!String::from_utf8_lossy(&users.stdout).contains("bob@"));
    // The audit trail keeps the deletion, by id, without the address.
    let db = rusqlite::Connection::open(server.data.path().join("tessera.db")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    let row: (String, String, String) = loop {
        let found = db.query_row(
            "SELECT user_id, actor_kind, detail FROM audit_log WHERE kind = 'user_deleted'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        );
        match found {
            Ok(row) => break row,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("no user_deleted event: {e}"),
        }
    };
    assert_eq!((row.0.as_str(), row.1.as_str()), (id.as_str(), "user"));
    assert!(!row.2.contains("bob"), "{}", row.2);
}

#[tokio::test]
async fn cli_user_delete_ends_everything_the_running_server_accepted() {
    let server = Server::start();
    server.data.add_user("bob@example.com", &["member"]);
    let logins = bob_everywhere(&server).await;
    let out = server.data.cli(&["user", "delete", "bob@example.com"], "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("deleted"));
    // The session store is shared at once; the per-user cutoff reaches the
    // server's revocation list with its next sync (every second).
    all_refused(&server, &logins, Duration::from_secs(3)).await;
    let again = server.data.cli(&["user", "delete", "bob@example.com"], "");
    assert!(!again.status.success(), "a second delete names no user");
}
