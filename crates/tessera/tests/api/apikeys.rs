//! API keys against the real binary: created by the CLI or the API, sent as
//! `Authorization: Bearer tsk_...`, refused at once on every node once
//! revoked, refused once expired, never stored in the clear.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;
use crate::postgres_users::Database;

/// `tessera apikey create` on `data` (with `env`); the key it printed.
fn cli_key(data: &DataDir, args: &[&str], env: &[(&str, &str)]) -> String {
    let mut all = vec!["apikey", "create"];
    all.extend_from_slice(args);
    let out = data.cli_with_env(&all, "", env);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(key.starts_with("tsk_") && key.len() == 64, "{key:?}");
    key
}

/// The key's public id: the 16 characters after `tsk_`.
fn id_of(key: &str) -> &str {
    &key[4..20]
}

async fn with_key(server: &Server, method: Method, path: &str, key: &str) -> reqwest::Response {
    server
        .request(method, path)
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_cli_key_is_an_admin_bearer_until_it_is_revoked() {
    let server = Server::start();
    let key = cli_key(&server.data, &["--name", "ci", "--role", "admin"], &[]);

    let listed = with_key(&server, Method::GET, "/admin/v1/users?limit=1", &key).await;
    assert_eq!(listed.status(), StatusCode::OK);
    let listed: Value = listed.json().await.unwrap();
    assert_eq!(listed["users"][0]["email"], "alice@example.com");
    // Writes too: create a user with the key.
    let created = server
        .request(Method::POST, "/admin/v1/users")
        .bearer_auth(&key)
        .json(&json!({"email": "bot-made@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);

    // Listed without its secret, with its last use.
    let keys: Value = with_key(&server, Method::GET, "/admin/v1/apikeys", &key)
        .await
        .json()
        .await
        .unwrap();
    let entry = &keys["api_keys"][0];
    assert_eq!(entry["id"], id_of(&key));
    assert_eq!(entry["name"], "ci");
    assert_eq!(entry["roles"], json!(["admin"]));
    assert!(entry["last_used"].is_string(), "{keys}");
    assert_eq!(entry["expires_at"], Value::Null);
    assert!(
        !keys.to_string().contains(&key[21..]),
        "no secret in {keys}"
    );
    let table = server.data.cli(&["apikey", "list"], "");
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.contains(id_of(&key)) && !table.contains(&key[21..]),
        "{table}"
    );

    // A key is no user: the user-only routes refuse it clearly.
    for (method, path) in [
        (Method::GET, "/profile"),
        (Method::GET, "/session"),
        (Method::GET, "/sessions"),
        (Method::POST, "/logout"),
        (Method::GET, "/auth/verify"),
    ] {
        let response = with_key(&server, method, path, &key).await;
        assert_eq!(
            expect_error(response, StatusCode::FORBIDDEN).await,
            "api_key_not_accepted",
            "{path}"
        );
    }

    // Revoked through the API by another key: refused from the next request.
    let other = cli_key(&server.data, &["--name", "ops", "--role", "admin"], &[]);
    let revoked = with_key(
        &server,
        Method::DELETE,
        &format!("/admin/v1/apikeys/{}", id_of(&key)),
        &other,
    )
    .await;
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
    let refused = with_key(&server, Method::GET, "/admin/v1/users?limit=1", &key).await;
    assert_eq!(
        refused.headers()["www-authenticate"],
        "Bearer realm=\"tessera\", error=\"invalid_token\""
    );
    assert_eq!(
        expect_error(refused, StatusCode::UNAUTHORIZED).await,
        "invalid_token"
    );
    let again = with_key(
        &server,
        Method::DELETE,
        &format!("/admin/v1/apikeys/{}", id_of(&key)),
        &other,
    )
    .await;
    expect_error(again, StatusCode::NOT_FOUND).await;
    let malformed = with_key(&server, Method::DELETE, "/admin/v1/apikeys/short", &other).await;
    assert_eq!(
        expect_error(malformed, StatusCode::BAD_REQUEST).await,
        "invalid_id"
    );

    // And by the CLI.
    let out = server.data.cli(&["apikey", "revoke", id_of(&other)], "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let refused = with_key(&server, Method::GET, "/admin/v1/apikeys", &other).await;
    expect_error(refused, StatusCode::UNAUTHORIZED).await;
}

#[tokio::test]
async fn keys_are_created_over_http_with_the_secret_shown_once_and_checked_strictly() {
    let server = Server::start();
    let alice = server.login_alice().await;
    let create = |body: Value| {
        with_cookie(
            server.request(Method::POST, "/admin/v1/apikeys"),
            Some(&alice),
        )
        .json(&body)
        .send()
    };
    let response =
        create(json!({"name": "support tool", "roles": ["support"], "expires_in": 3600}))
            .await
            .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    let support = body["key"].as_str().unwrap().to_owned();
    assert_eq!(body["api_key"]["id"], id_of(&support));
    assert!(body["api_key"]["expires_at"].is_string());
    for bad in [
        json!({}),
        json!({"name": ""}),
        json!({"name": "x\ny"}),
        json!({"name": "ci", "roles": ["ADMIN"]}),
        json!({"name": "ci", "expires_in": 0}),
        json!({"name": "ci", "expires_in": -5}),
        json!({"name": "ci", "secret": "mine"}),
    ] {
        expect_error(create(bad).await.unwrap(), StatusCode::BAD_REQUEST).await;
    }

    // A key without the admin role reaches no admin route.
    for (method, path) in [
        (Method::GET, "/admin/v1/users"),
        (Method::GET, "/admin/v1/apikeys"),
        (Method::POST, "/admin/v1/apikeys"),
    ] {
        let response = with_key(&server, method, path, &support).await;
        assert_eq!(
            expect_error(response, StatusCode::FORBIDDEN).await,
            "forbidden"
        );
    }
    // Nor does a non-admin user manage keys.
    server.data.add_user("bob@example.com", &["member"]);
    let bob = server.login("bob@example.com", PASSWORD).await;
    let response = server.get("/admin/v1/apikeys", Some(&bob)).await;
    expect_error(response, StatusCode::FORBIDDEN).await;

    // Garbage that claims to be a key: 401 JSON, never a 500 or a token
    // check.
    let forged = format!("{}{}", &support[..21], "A".repeat(43));
    let unknown_id = format!("tsk_{}{}", "B".repeat(16), &support[20..]);
    for garbage in [
        "tsk_".to_owned(),
        "tsk_x".to_owned(),
        format!("{support}x"),
        support[..63].to_owned(),
        forged,
        unknown_id,
    ] {
        let response = with_key(&server, Method::GET, "/admin/v1/users", &garbage).await;
        assert_eq!(
            expect_error(response, StatusCode::UNAUTHORIZED).await,
            "invalid_token",
            "{garbage}"
        );
    }
}

#[tokio::test]
async fn an_expired_key_is_refused() {
    let server = Server::start();
    let key = cli_key(
        &server.data,
        &["--name", "short", "--role", "admin", "--expires", "2s"],
        &[],
    );
    assert_eq!(
        with_key(&server, Method::GET, "/admin/v1/apikeys", &key)
            .await
            .status(),
        StatusCode::OK
    );
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let refused = with_key(&server, Method::GET, "/admin/v1/apikeys", &key).await;
    assert_eq!(
        expect_error(refused, StatusCode::UNAUTHORIZED).await,
        "invalid_token"
    );
    let bad = server
        .data
        .cli(&["apikey", "create", "--name", "x", "--expires", "90y"], "");
    assert!(!bad.status.success());
}

#[tokio::test]
async fn the_secret_is_not_on_disk_and_uses_are_audited_once_per_hour() {
    let server = Server::start();
    let key = cli_key(&server.data, &["--name", "ci", "--role", "admin"], &[]);
    for _ in 0..5 {
        assert_eq!(
            with_key(&server, Method::GET, "/admin/v1/users", &key)
                .await
                .status(),
            StatusCode::OK
        );
    }
    let secret_text = &key[21..];
    let secret_bytes = URL_SAFE_NO_PAD.decode(secret_text).unwrap();
    let files = files_below(server.data.path());
    assert!(!files.is_empty());
    for file in files {
        let bytes = std::fs::read(&file).unwrap();
        for needle in [key.as_bytes(), secret_text.as_bytes(), &secret_bytes] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "{} holds the key's secret",
                file.display()
            );
        }
    }
    // The audit trail: created once, used once (first use in the hour).
    let db = rusqlite::Connection::open(server.data.path().join("tessera.db")).unwrap();
    let count = |kind: &str| -> i64 {
        db.query_row(
            "SELECT count(*) FROM audit_log WHERE kind = ?1 AND (actor_id = ?2 OR detail LIKE '%' || ?2 || '%')",
            [kind, id_of(&key)],
            |r| r.get(0),
        )
        .unwrap()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while count("api_key_used") == 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(count("api_key_created"), 1);
    assert_eq!(count("api_key_used"), 1);
}

/// Two nodes on one data directory: a key revoked on one is refused by the
/// other from its very next request.
#[tokio::test]
async fn a_revocation_on_one_node_is_seen_by_a_node_sharing_the_data_dir_at_once() {
    let data = Arc::new(DataDir::new());
    data.add_user("alice@example.com", &["admin"]);
    let a = Server::start_on(Arc::clone(&data), Options::default());
    let b = Server::start_on(Arc::clone(&data), Options::default());
    let key = cli_key(&data, &["--name", "ci", "--role", "admin"], &[]);
    for node in [&a, &b] {
        assert_eq!(
            with_key(node, Method::GET, "/admin/v1/users", &key)
                .await
                .status(),
            StatusCode::OK
        );
    }
    let alice = a.login_alice().await;
    let revoked = with_cookie(
        a.request(
            Method::DELETE,
            &format!("/admin/v1/apikeys/{}", id_of(&key)),
        ),
        Some(&alice),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
    let refused = with_key(&b, Method::GET, "/admin/v1/users", &key).await;
    expect_error(refused, StatusCode::UNAUTHORIZED).await;
}

/// A cluster: sessions in Redis, users and keys in PostgreSQL, nodes with
/// data directories of their own.
#[tokio::test]
async fn a_revocation_reaches_every_node_of_a_redis_and_postgres_cluster_at_once() {
    let db = Database::create();
    let url = db.url();
    let prefix = format!("tessera-apikeys-{}", std::process::id());
    let env: [(&str, &str); 4] = [
        ("TESSERA_USERS", "postgres"),
        ("TESSERA_DATABASE_URL", url.as_str()),
        ("TESSERA_STORE", "redis"),
        ("TESSERA_REDIS_URL", "redis://127.0.0.1:6379"),
    ];
    let env: Vec<(&str, &str)> = env
        .into_iter()
        .chain([("TESSERA_REDIS_PREFIX", prefix.as_str())])
        .collect();
    let key = cli_key(&DataDir::new(), &["--name", "ci", "--role", "admin"], &env);
    let options = env.iter().fold(Options::default(), |o, (k, v)| o.env(k, v));
    let a = Server::start_on(Arc::new(DataDir::new()), options.clone());
    let b = Server::start_on(Arc::new(DataDir::new()), options);
    for node in [&a, &b] {
        assert_eq!(
            with_key(node, Method::GET, "/admin/v1/apikeys", &key)
                .await
                .status(),
            StatusCode::OK
        );
    }
    let revoked = with_key(
        &a,
        Method::DELETE,
        &format!("/admin/v1/apikeys/{}", id_of(&key)),
        &key,
    )
    .await;
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
    for node in [&b, &a] {
        let refused = with_key(node, Method::GET, "/admin/v1/apikeys", &key).await;
        expect_error(refused, StatusCode::UNAUTHORIZED).await;
    }
}
