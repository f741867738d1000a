//! Tokens cross the boundary to another JWT implementation (PyJWT, which
//! `.ci/run` installs) in both directions, and `tessera token decode` agrees.

use std::process::Command;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/interop/pyjwt_interop.py"
);

fn python(args: &[&str]) -> std::process::Output {
    Command::new("python3")
        .arg(SCRIPT)
        .args(args)
        .output()
        .expect("python3 with PyJWT (see .ci/run)")
}

async fn access_token(server: &Server) -> String {
    server.token_alice().await["access_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn header_of(token: &str) -> Value {
    serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap()
}

fn claims_for(server_token: &str) -> Value {
    let claims: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(server_token.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    json!({
        "iss": claims["iss"], "aud": claims["aud"], "sub": claims["sub"], "sid": claims["sid"],
        "email": claims["email"], "roles": claims["roles"], "jti": "pyjwt-1",
        "iat": claims["iat"], "nbf": claims["nbf"], "exp": claims["exp"],
    })
}

#[tokio::test]
async fn pyjwt_verifies_our_tokens_with_the_published_jwks() {
    for algorithm in ["EdDSA", "ES256"] {
        let server = Server::start_with(Options::default().env("TESSERA_JWT_ALGORITHM", algorithm));
        let token = access_token(&server).await;
        let jwks = server
            .get("/.well-known/jwks.json", None)
            .await
            .text()
            .await
            .unwrap();
        let out = python(&["verify", &token, &jwks, "tessera", "tessera"]);
        assert!(
            out.status.success(),
            "{algorithm}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let claims: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(claims["email"], "alice@example.com");
    }
}

#[tokio::test]
async fn tokens_pyjwt_signs_with_our_hs256_secret_verify_here() {
    let secret = "interop-secret-0123456789abcdef-0123456789";
    let server = Server::start_with(Options::default().env("TESSERA_JWT_SECRET", secret));
    let ours = access_token(&server).await;
    let kid = header_of(&ours)["kid"].as_str().unwrap().to_owned();
    let out = python(&["sign-hs256", secret, &kid, &claims_for(&ours).to_string()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let response = server
        .request(Method::GET, "/profile")
        .bearer_auth(&theirs)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn tokens_pyjwt_signs_with_our_ed25519_key_verify_here() {
    let server = Server::start_with(Options::default().env("TESSERA_JWT_ALGORITHM", "EdDSA"));
    let ours = access_token(&server).await;
    let keys: Value = serde_json::from_str(
        &std::fs::read_to_string(server.data.path().join("jwt-keys.json")).unwrap(),
    )
    .unwrap();
    let key = &keys["keys"][0];
    let out = python(&[
        "sign-eddsa",
        key["private"].as_str().unwrap(),
        key["kid"].as_str().unwrap(),
        &claims_for(&ours).to_string(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let response = server
        .request(Method::GET, "/profile")
        .bearer_auth(&theirs)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn token_decode_shows_claims_and_verifies_with_a_jwks_file() {
    let server = Server::start_with(Options::default().env("TESSERA_JWT_ALGORITHM", "EdDSA"));
    let token = access_token(&server).await;
    let jwks_file = server.data.path().join("jwks.json");
    std::fs::write(
        &jwks_file,
        server
            .get("/.well-known/jwks.json", None)
            .await
            .text()
            .await
            .unwrap(),
    )
    .unwrap();
    let jwk_arg = jwks_file.to_str().unwrap();

    let out = server.data.cli(&["token", "decode", &token], "");
    assert!(out.status.success());
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["claims"]["email"], "alice@example.com");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("readable") || stderr.contains("can read"),
        "{stderr}"
    );
    assert!(stderr.contains("expires"), "{stderr}");

    let out = server
        .data
        .cli(&["token", "decode", &token, "--jwk", jwk_arg], "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("signature valid; the token is not expired")
    );

    let (head, _) = token.rsplit_once('.').unwrap();
    let forged = format!("{head}.{}", URL_SAFE_NO_PAD.encode([0u8; 64]));
    let out = server
        .data
        .cli(&["token", "decode", &forged, "--jwk", jwk_arg], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("NOT valid"));

    let out = server.data.cli(&["token", "decode", "not-a-token"], "");
    assert!(!out.status.success());
}
