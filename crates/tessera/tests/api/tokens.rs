//! JWT access tokens, refresh rotation with reuse detection, revocation.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

async fn tokens(server: &Server) -> Value {
    let body = server.token_alice().await;
    assert!(body["access_token"].is_string());
    body
}

/// Polls `/profile` with a bearer token until it answers `wanted` (within
/// 3 s, e.g. while a revocation made by the CLI is synced); the last status.
async fn bearer_status_eventually(server: &Server, token: &str, wanted: StatusCode) -> StatusCode {
    let mut status = bearer(server, "/profile", token).await.status();
    for _ in 0..30 {
        if status == wanted {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        status = bearer(server, "/profile", token).await.status();
    }
    status
}

fn decode(segment: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(segment).unwrap()).unwrap()
}

#[tokio::test]
async fn token_answers_in_the_oauth_shape() {
    let server = Server::start();
    let response = server
        .send_json(
            Method::POST,
            "/token",
            None,
            json!({"email": "alice@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert_eq!(
        body["refresh_token"].as_str().unwrap().len(),
        64,
        "opaque, 48 random-looking bytes"
    );
    let access = body["access_token"].as_str().unwrap();
    let parts: Vec<&str> = access.split('.').collect();
    assert_eq!(parts.len(), 3);
    let header = decode(parts[0]);
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "HS256");
    assert!(header["kid"].is_string());
    let claims = decode(parts[1]);
    for claim in [
        "iss", "sub", "aud", "exp", "iat", "nbf", "jti", "sid", "roles",
    ] {
        assert!(!claims[claim].is_null(), "{claim} missing in {claims}");
    }
    assert_eq!(claims["roles"], json!(["admin"]));
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        900
    );
}

#[tokio::test]
async fn a_bearer_token_opens_protected_routes() {
    let server = Server::start();
    let access = tokens(&server).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let response = bearer(&server, "/profile", &access).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["user"]["email"], "alice@example.com");
    assert_eq!(body["user"]["roles"], json!(["admin"]));
}

#[tokio::test]
async fn a_forged_or_truncated_bearer_token_is_401_with_www_authenticate() {
    let server = Server::start();
    let access = tokens(&server).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (head, _) = access.rsplit_once('.').unwrap();
    for bad in [
        format!("{head}.AAAA"),
        access[..access.len() - 5].to_owned(),
        "x".repeat(20_000),
        "a.b.c".into(),
        String::new(),
    ] {
        let response = bearer(&server, "/profile", &bad).await;
        assert!(
            response.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("Bearer")
        );
        let code = expect_error(response, StatusCode::UNAUTHORIZED).await;
        assert!(
            code == "invalid_token" || code == "unauthenticated",
            "{code}"
        );
    }
}

#[tokio::test]
async fn token_login_is_as_enumeration_resistant_as_session_login() {
    let server = Server::start();
    server.data.add_user("carol@example.com", &[]);
    assert!(
        server
            .data
            .cli(&["user", "disable", "carol@example.com"], "")
            .status
            .success()
    );
    let mut bodies = Vec::new();
    for (email, password) in [
        ("nobody@example.com", PASSWORD),
        ("alice@example.com", "wrong password"),
        ("carol@example.com", PASSWORD),
    ] {
        let response = server
            .send_json(
                Method::POST,
                "/token",
                None,
                json!({"email": email, "password": password}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        bodies.push(response.bytes().await.unwrap());
    }
    assert!(bodies.iter().all(|b| b == &bodies[0]));
}

#[tokio::test]
async fn refresh_rotates_both_tokens() {
    let server = Server::start();
    let first = tokens(&server).await;
    let response = refresh(&server, first["refresh_token"].as_str().unwrap()).await;
    assert_eq!(response.status(), StatusCode::OK);
    let second: Value = response.json().await.unwrap();
    assert_ne!(second["refresh_token"], first["refresh_token"]);
    assert_ne!(second["access_token"], first["access_token"]);
    assert_eq!(
        bearer(
            &server,
            "/profile",
            second["access_token"].as_str().unwrap()
        )
        .await
        .status(),
        StatusCode::OK
    );
    // Chains keep going.
    let third = refresh(&server, second["refresh_token"].as_str().unwrap()).await;
    assert_eq!(third.status(), StatusCode::OK);
}

#[tokio::test]
async fn within_the_grace_window_the_old_token_yields_the_same_successor() {
    let server = Server::start();
    let first = tokens(&server).await;
    let old = first["refresh_token"].as_str().unwrap();
    let a: Value = refresh(&server, old).await.json().await.unwrap();
    let b: Value = refresh(&server, old).await.json().await.unwrap();
    assert_eq!(a["refresh_token"], b["refresh_token"], "no fork");
}

#[tokio::test]
async fn reuse_after_the_grace_window_revokes_the_whole_family() {
    let server = Server::start_with(Options::default().env("TESSERA_JWT_REFRESH_GRACE", 1));
    let first = tokens(&server).await;
    let old = first["refresh_token"].as_str().unwrap();
    let second: Value = refresh(&server, old).await.json().await.unwrap();
    let live_access = second["access_token"].as_str().unwrap();
    assert_eq!(
        bearer(&server, "/profile", live_access).await.status(),
        StatusCode::OK
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;

    // An attacker replays the stolen, already-rotated token.
    let replay = refresh(&server, old).await;
    assert_eq!(
        expect_error(replay, StatusCode::UNAUTHORIZED).await,
        "invalid_grant"
    );
    // The family is gone: the newest refresh token and its access token too.
    expect_error(
        refresh(&server, second["refresh_token"].as_str().unwrap()).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    let response = bearer(&server, "/profile", live_access).await;
    assert_eq!(
        expect_error(response, StatusCode::UNAUTHORIZED).await,
        "invalid_token"
    );
    assert!(
        server.logs().contains("refresh token reused"),
        "audit log: {}",
        server.logs()
    );
}

#[tokio::test]
async fn ten_concurrent_refreshes_give_at_most_one_successor() {
    let server = Server::start();
    let first = tokens(&server).await;
    let old = first["refresh_token"].as_str().unwrap().to_owned();
    let calls: Vec<_> = (0..10)
        .map(|_| {
            let url = server.url("/token/refresh");
            let old = old.clone();
            tokio::spawn(async move {
                reqwest::Client::new()
                    .post(url)
                    .json(&json!({"refresh_token": old}))
                    .send()
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut successors = std::collections::HashSet::new();
    for call in calls {
        let response = call.await.unwrap();
        assert!(
            response.status().is_success() || response.status() == StatusCode::UNAUTHORIZED,
            "{}",
            response.status()
        );
        if response.status().is_success() {
            let body: Value = response.json().await.unwrap();
            successors.insert(body["refresh_token"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(successors.len(), 1, "{successors:?}");
}

#[tokio::test]
async fn a_forged_refresh_token_is_refused_without_harming_the_family() {
    let server = Server::start();
    let first = tokens(&server).await;
    let real = first["refresh_token"].as_str().unwrap();
    // Same family id (it is public: the access token's sid), random secret.
    let mut bytes = URL_SAFE_NO_PAD.decode(real).unwrap();
    for b in &mut bytes[16..] {
        *b ^= 0x5a;
    }
    let forged = URL_SAFE_NO_PAD.encode(bytes);
    expect_error(refresh(&server, &forged).await, StatusCode::UNAUTHORIZED).await;
    assert_eq!(
        refresh(&server, real).await.status(),
        StatusCode::OK,
        "the family lives on"
    );
    for junk in ["", "short", &"A".repeat(64), &"!".repeat(64)] {
        expect_error(refresh(&server, junk).await, StatusCode::UNAUTHORIZED).await;
    }
}

#[tokio::test]
async fn logout_with_a_bearer_token_ends_its_family_on_the_next_request() {
    let server = Server::start();
    let body = tokens(&server).await;
    let access = body["access_token"].as_str().unwrap();
    let response = server
        .request(Method::POST, "/logout")
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    expect_error(
        bearer(&server, "/profile", access).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    expect_error(
        refresh(&server, body["refresh_token"].as_str().unwrap()).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
}

#[tokio::test]
async fn logout_everywhere_ends_tokens_and_sessions_but_not_later_logins() {
    let server = Server::start();
    let cookie = server.login_alice().await;
    let body = tokens(&server).await;
    let other = tokens(&server).await;
    let response = server
        .request(Method::POST, "/logout")
        .bearer_auth(body["access_token"].as_str().unwrap())
        .json(&json!({"everywhere": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    expect_error(
        server.get("/profile", Some(&cookie)).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    expect_error(
        bearer(&server, "/profile", other["access_token"].as_str().unwrap()).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    expect_error(
        refresh(&server, other["refresh_token"].as_str().unwrap()).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    // Logging in again right away works, even within the same second.
    let fresh = tokens(&server).await;
    assert_eq!(
        bearer(&server, "/profile", fresh["access_token"].as_str().unwrap())
            .await
            .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn revoke_always_answers_200_and_revokes_what_it_recognises() {
    let server = Server::start();
    let body = tokens(&server).await;
    for junk in ["nonsense", "", "a.b.c"] {
        let response = server
            .send_json(Method::POST, "/token/revoke", None, json!({"token": junk}))
            .await;
        assert_eq!(response.status(), StatusCode::OK);
    }
    let access = body["access_token"].as_str().unwrap();
    let response = server
        .send_json(
            Method::POST,
            "/token/revoke",
            None,
            json!({"token": access}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    expect_error(
        bearer(&server, "/profile", access).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;

    let refresh_token = body["refresh_token"].as_str().unwrap();
    let response = server
        .send_json(
            Method::POST,
            "/token/revoke",
            None,
            json!({"token": refresh_token, "token_type_hint": "refresh_token"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    expect_error(
        refresh(&server, refresh_token).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
}

#[tokio::test]
async fn revocations_survive_a_restart() {
    let mut server = Server::start();
    let body = tokens(&server).await;
    let access = body["access_token"].as_str().unwrap();
    server
        .send_json(
            Method::POST,
            "/token/revoke",
            None,
            json!({"token": access}),
        )
        .await;
    server.restart();
    expect_error(
        bearer(&server, "/profile", access).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    let kept = tokens(&server).await;
    assert_eq!(
        bearer(&server, "/profile", kept["access_token"].as_str().unwrap())
            .await
            .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn disabling_a_user_ends_their_tokens() {
    let server = Server::start();
    server.data.add_user("bob@example.com", &[]);
    let response = server
        .send_json(
            Method::POST,
            "/token",
            None,
            json!({"email": "bob@example.com", "password": PASSWORD}),
        )
        .await;
    let bob: Value = response.json().await.unwrap();
    let access = bob["access_token"].as_str().unwrap();
    let out = server.data.cli(&["user", "disable", "bob@example.com"], "");
    assert!(out.status.success());
    // The CLI's revocation reaches the running server within its sync interval.
    assert_eq!(
        bearer_status_eventually(&server, access, StatusCode::UNAUTHORIZED).await,
        StatusCode::UNAUTHORIZED
    );
    expect_error(
        refresh(&server, bob["refresh_token"].as_str().unwrap()).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
}

#[tokio::test]
async fn jwks_publishes_public_keys_only() {
    let server = Server::start_with(Options::default().env("TESSERA_JWT_ALGORITHM", "EdDSA"));
    let jwks: Value = server
        .get("/.well-known/jwks.json", None)
        .await
        .json()
        .await
        .unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    let key = &keys[0];
    assert_eq!(
        (
            key["kty"].as_str(),
            key["alg"].as_str(),
            key["use"].as_str()
        ),
        (Some("OKP"), Some("EdDSA"), Some("sig"))
    );
    assert!(key["kid"].is_string() && key["x"].is_string());
    for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
        assert!(key.get(private).is_none(), "{private} published");
    }
    let access = tokens(&server).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let header = decode(access.split('.').next().unwrap());
    assert_eq!(header["alg"], "EdDSA");
    assert_eq!(header["kid"], key["kid"]);
    let hs: Value = Server::start()
        .get("/.well-known/jwks.json", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(hs["keys"], json!([]), "an HS256 secret is never published");
}

#[tokio::test]
async fn generated_keys_are_private_files_and_are_reused() {
    use std::os::unix::fs::PermissionsExt;
    let mut server = Server::start_with(Options::default().env("TESSERA_JWT_ALGORITHM", "ES256"));
    let access = tokens(&server).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    for file in ["jwt-keys.json", "refresh-chain.key"] {
        let mode = std::fs::metadata(server.data.path().join(file))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "{file} is readable by others: {mode:o}");
    }
    server.restart();
    assert_eq!(
        bearer(&server, "/profile", &access).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_short_hs256_secret_is_refused_at_start_up() {
    let data = DataDir::new();
    let out = std::process::Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .env("TESSERA_JWT_SECRET", "too-short")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("at least 32"), "{stderr}");
}

#[tokio::test]
async fn a_configured_secret_is_shared_by_nodes_and_redacted_in_config_print() {
    let secret = "0123456789abcdef0123456789abcdef-shared";
    let options = Options::default().env("TESSERA_JWT_SECRET", secret);
    let a = Server::start_with(options.clone());
    let b = Server::start_with(options);
    let access = tokens(&a).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        bearer(&b, "/profile", &access).await.status(),
        StatusCode::OK,
        "any node verifies"
    );
    let out = std::process::Command::new(BIN)
        .args(["config", "print"])
        .env("TESSERA_JWT_SECRET", secret)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        !text.contains(secret) && text.contains("jwt_secret = \"<redacted>\""),
        "{text}"
    );
}

#[tokio::test]
async fn key_rotation_keeps_tokens_of_the_old_key_valid() {
    let server = Server::start_with(Options::default().env("TESSERA_JWT_ALGORITHM", "EdDSA"));
    let old = tokens(&server).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = server.data.cli_with_env(
        &["keys", "rotate"],
        "",
        &[("TESSERA_JWT_ALGORITHM", "EdDSA")],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let old_kid = decode(old.split('.').next().unwrap())["kid"].clone();
    let mut new_kid = old_kid.clone();
    for _ in 0..30 {
        let fresh = tokens(&server).await["access_token"]
            .as_str()
            .unwrap()
            .to_owned();
        new_kid = decode(fresh.split('.').next().unwrap())["kid"].clone();
        if new_kid != old_kid {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_ne!(
        new_kid, old_kid,
        "the running server signs with the new key"
    );
    assert_eq!(
        bearer(&server, "/profile", &old).await.status(),
        StatusCode::OK,
        "old tokens still verify"
    );
    let jwks: Value = server
        .get("/.well-known/jwks.json", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
    let listed = String::from_utf8(server.data.cli(&["keys", "list"], "").stdout).unwrap();
    assert!(
        listed.contains("active (signing)") && listed.contains("retired"),
        "{listed}"
    );
}

#[tokio::test]
async fn an_access_token_stops_working_when_it_expires_even_after_use() {
    let server = Server::start_with(
        Options::default()
            .env("TESSERA_JWT_ACCESS_TTL", 1)
            .env("TESSERA_JWT_LEEWAY", 0),
    );
    let access = tokens(&server).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    // Used while valid (and so remembered as verified)...
    assert_eq!(
        bearer(&server, "/profile", &access).await.status(),
        StatusCode::OK
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    // ...and refused once expired.
    let response = bearer(&server, "/profile", &access).await;
    assert_eq!(
        expect_error(response, StatusCode::UNAUTHORIZED).await,
        "invalid_token"
    );
}

#[tokio::test]
async fn browsers_can_get_the_access_token_in_an_http_only_cookie() {
    let server =
        Server::start_with(Options::default().env("TESSERA_JWT_ACCESS_TOKEN_COOKIE", "true"));
    let response = server
        .send_json(
            Method::POST,
            "/token",
            None,
            json!({"email": "alice@example.com", "password": PASSWORD}),
        )
        .await;
    let set_cookie = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|v| v.starts_with("__Host-tessera-at="))
        .expect("access token cookie");
    for attribute in [
        "HttpOnly",
        "Secure",
        "Path=/",
        "SameSite=Lax",
        "Max-Age=900",
    ] {
        assert!(
            set_cookie.contains(attribute),
            "{set_cookie} lacks {attribute}"
        );
    }
    let access = set_cookie
        .split(';')
        .next()
        .unwrap()
        .trim_start_matches("__Host-tessera-at=")
        .to_owned();
    let body: Value = response.json().await.unwrap();
    assert!(
        body.get("access_token").is_none(),
        "not in the body: {body}"
    );
    assert!(body["refresh_token"].is_string());

    let with_access_cookie = |method: Method, path: &str| {
        server
            .request(method, path)
            .header("cookie", format!("__Host-tessera-at={access}"))
    };
    assert_eq!(
        with_access_cookie(Method::GET, "/profile")
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    // An ambient credential: a cross-site state change is refused.
    let cross = with_access_cookie(Method::POST, "/logout")
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    expect_error(cross, StatusCode::FORBIDDEN).await;
    let logout = with_access_cookie(Method::POST, "/logout")
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), StatusCode::OK);
    let cleared: Vec<String> = logout
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert!(
        cleared
            .iter()
            .any(|c| c.starts_with("__Host-tessera-at=;") && c.contains("Max-Age=0")),
        "{cleared:?}"
    );
    expect_error(
        with_access_cookie(Method::GET, "/profile")
            .send()
            .await
            .unwrap(),
        StatusCode::UNAUTHORIZED,
    )
    .await;
}

#[tokio::test]
async fn refresh_never_extends_a_family_past_its_absolute_lifetime() {
    let server = Server::start_with(
        Options::default()
            .env("TESSERA_JWT_ACCESS_TTL", 1)
            .env("TESSERA_JWT_REFRESH_TTL", 2),
    );
    let mut current = tokens(&server).await["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let started = std::time::Instant::now();
    // Refresh diligently; the family still ends two seconds after login.
    let mut last = StatusCode::OK;
    while started.elapsed() < Duration::from_millis(3000) {
        tokio::time::sleep(Duration::from_millis(400)).await;
        let response = refresh(&server, &current).await;
        last = response.status();
        if last != StatusCode::OK {
            break;
        }
        current = response.json::<Value>().await.unwrap()["refresh_token"]
            .as_str()
            .unwrap()
            .to_owned();
    }
    assert_eq!(last, StatusCode::UNAUTHORIZED);
    assert!(
        started.elapsed() >= Duration::from_millis(1900),
        "ended early: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_password_change_ends_every_token_family() {
    let server = Server::start();
    let body = tokens(&server).await;
    let out = server.data.cli(
        &["user", "passwd", "alice@example.com", "--password-stdin"],
        "a brand new password\n",
    );
    assert!(out.status.success());
    expect_error(
        refresh(&server, body["refresh_token"].as_str().unwrap()).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    let access = body["access_token"].as_str().unwrap();
    assert_eq!(
        bearer_status_eventually(&server, access, StatusCode::UNAUTHORIZED).await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn admin_health_reports_the_size_of_the_revocation_list() {
    let server = Server::start();
    let body = tokens(&server).await;
    server
        .send_json(
            Method::POST,
            "/token/revoke",
            None,
            json!({"token": body["access_token"]}),
        )
        .await;
    let health = server.admin_health().await;
    assert_eq!(health["revocations"]["tokens"], 1, "{health}");
    // Anonymous callers see no activity.
    let anonymous: Value = server.get("/health", None).await.json().await.unwrap();
    assert_eq!(anonymous, json!({"status": "ok"}));
}

#[tokio::test]
async fn a_retired_key_is_dropped_once_its_tokens_have_expired() {
    let env = [
        ("TESSERA_JWT_ALGORITHM", "EdDSA"),
        ("TESSERA_JWT_ACCESS_TTL", "1"),
        ("TESSERA_JWT_LEEWAY", "0"),
    ];
    let options = env.iter().fold(
        Options::default().env("TESSERA_PURGE_INTERVAL", 1),
        |o, (k, v)| o.env(k, v),
    );
    let server = Server::start_with(options);
    let out = server.data.cli_with_env(&["keys", "rotate"], "", &env);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key_count = || async {
        let jwks: Value = server
            .get("/.well-known/jwks.json", None)
            .await
            .json()
            .await
            .unwrap();
        jwks["keys"].as_array().unwrap().len()
    };
    let mut seen_two = false;
    for _ in 0..60 {
        match key_count().await {
            2 => seen_two = true,
            1 if seen_two => return,
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "the retired key was {} dropped",
        if seen_two {
            "never"
        } else {
            "never even loaded, let alone"
        }
    );
}

/// With a cap of two refresh families, the third `POST /token` ends the
/// first family: its refresh token and its access token are refused, the
/// two newer work. Run on SQLite here and on Redis in `redis_store.rs`.
pub async fn past_the_family_cap_the_oldest_tokens_are_refused(options: Options) {
    let server = Server::start_with(options.env("TESSERA_MAX_REFRESH_FAMILIES_PER_USER", 2));
    let mut issued = Vec::new();
    for _ in 0..3 {
        issued.push(tokens(&server).await);
    }
    let first = &issued[0];
    let response = bearer(&server, "/profile", first["access_token"].as_str().unwrap()).await;
    assert_eq!(
        expect_error(response, StatusCode::UNAUTHORIZED).await,
        "invalid_token"
    );
    assert_eq!(
        expect_error(
            refresh(&server, first["refresh_token"].as_str().unwrap()).await,
            StatusCode::UNAUTHORIZED
        )
        .await,
        "invalid_grant"
    );
    for newer in &issued[1..] {
        let access = newer["access_token"].as_str().unwrap();
        assert_eq!(
            bearer(&server, "/profile", access).await.status(),
            StatusCode::OK
        );
        let refreshed = refresh(&server, newer["refresh_token"].as_str().unwrap()).await;
        assert_eq!(refreshed.status(), StatusCode::OK);
    }
    assert!(
        server.logs().contains("oldest refresh family ended"),
        "{}",
        server.logs()
    );
}

#[tokio::test]
async fn past_the_family_cap_a_token_grant_ends_the_oldest_family() {
    past_the_family_cap_the_oldest_tokens_are_refused(Options::default()).await;
}
