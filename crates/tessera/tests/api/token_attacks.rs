//! Each token form RFC 8725 warns about, sent to a running server over HTTP:
//! one test per attack, all answered 401 with a JSON error, never 500.
//! The server uses a known HS256 secret so that the tests can forge tokens
//! that are correct in every respect but the one under test.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::helpers::*;

const SECRET: &str = "attack-tests-secret-0123456789abcdef-xyz";

struct Forge {
    server: Server,
    header: Value,
    claims: Value,
}

impl Forge {
    /// A server, and the header and claims of a genuine token it issued.
    async fn new() -> Self {
        let server = Server::start_with(Options::default().env("TESSERA_JWT_SECRET", SECRET));
        let body = server.token_alice().await;
        let token = body["access_token"].as_str().unwrap();
        let mut parts = token.split('.');
        let decode = |s: &str| -> Value {
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(s).unwrap()).unwrap()
        };
        let header = decode(parts.next().unwrap());
        let claims = decode(parts.next().unwrap());
        Self {
            server,
            header,
            claims,
        }
    }

    fn sign_with(&self, key: &[u8], header: &Value, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap();
        mac.update(input.as_bytes());
        format!(
            "{input}.{}",
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        )
    }

    fn sign(&self, header: &Value, claims: &Value) -> String {
        self.sign_with(SECRET.as_bytes(), header, claims)
    }

    async fn assert_refused(&self, token: &str) {
        let response = self
            .server
            .request(Method::GET, "/profile")
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        expect_error(response, StatusCode::UNAUTHORIZED).await;
    }

    async fn assert_accepted(&self, token: &str) {
        let response = self
            .server
            .request(Method::GET, "/profile")
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test]
async fn the_forging_harness_produces_accepted_tokens() {
    let f = Forge::new().await;
    f.assert_accepted(&f.sign(&f.header, &f.claims)).await;
}

#[tokio::test]
async fn alg_none_is_rejected() {
    let f = Forge::new().await;
    for alg in ["none", "None", "NONE", "nOnE"] {
        let mut header = f.header.clone();
        header["alg"] = json!(alg);
        let unsigned = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(f.claims.to_string())
        );
        f.assert_refused(&unsigned).await;
        f.assert_refused(&f.sign(&header, &f.claims)).await;
    }
}

#[tokio::test]
async fn unknown_algorithm_is_rejected() {
    let f = Forge::new().await;
    let mut header = f.header.clone();
    header["alg"] = json!("HS512");
    f.assert_refused(&f.sign(&header, &f.claims)).await;
}

#[tokio::test]
async fn hs256_keyed_with_a_public_key_is_rejected() {
    let server = Server::start_with(Options::default().env("TESSERA_JWT_ALGORITHM", "EdDSA"));
    let jwks = server
        .get("/.well-known/jwks.json", None)
        .await
        .text()
        .await
        .unwrap();
    let jwk: Value = serde_json::from_str::<Value>(&jwks).unwrap()["keys"][0].clone();
    let body: Value = server
        .send_json(
            Method::POST,
            "/token",
            None,
            json!({"email": "alice@example.com", "password": PASSWORD}),
        )
        .await
        .json()
        .await
        .unwrap();
    let claims: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(
                body["access_token"]
                    .as_str()
                    .unwrap()
                    .split('.')
                    .nth(1)
                    .unwrap(),
            )
            .unwrap(),
    )
    .unwrap();
    let header = json!({"alg": "HS256", "typ": "at+jwt", "kid": jwk["kid"]});
    let f = Forge {
        server,
        header: header.clone(),
        claims: claims.clone(),
    };
    for key in [
        jwk["x"].as_str().unwrap().as_bytes().to_vec(),
        jwks.into_bytes(),
    ] {
        f.assert_refused(&f.sign_with(&key, &header, &claims)).await;
    }
}

#[tokio::test]
async fn embedded_jwk_is_rejected() {
    let f = Forge::new().await;
    let mut header = f.header.clone();
    header["jwk"] =
        json!({"kty": "oct", "k": URL_SAFE_NO_PAD.encode("attacker key of at least 32 bytes!!")});
    f.assert_refused(&f.sign(&header, &f.claims)).await;
}

#[tokio::test]
async fn jku_x5u_x5c_headers_are_rejected() {
    let f = Forge::new().await;
    for (name, value) in [
        ("jku", json!("https://evil.example/jwks")),
        ("x5u", json!("https://evil.example/c.pem")),
        ("x5c", json!(["MIIB"])),
    ] {
        let mut header = f.header.clone();
        header[name] = value;
        f.assert_refused(&f.sign(&header, &f.claims)).await;
    }
}

#[tokio::test]
async fn unknown_crit_is_rejected() {
    let f = Forge::new().await;
    let mut header = f.header.clone();
    header["crit"] = json!(["b64"]);
    header["b64"] = json!(false);
    f.assert_refused(&f.sign(&header, &f.claims)).await;
}

#[tokio::test]
async fn empty_crit_is_rejected() {
    let f = Forge::new().await;
    let mut header = f.header.clone();
    header["crit"] = json!([]);
    f.assert_refused(&f.sign(&header, &f.claims)).await;
}

#[tokio::test]
async fn missing_exp_iss_or_aud_is_rejected() {
    let f = Forge::new().await;
    for claim in ["exp", "iss", "aud"] {
        let mut claims = f.claims.clone();
        claims.as_object_mut().unwrap().remove(claim);
        f.assert_refused(&f.sign(&f.header, &claims)).await;
    }
}

#[tokio::test]
async fn expired_token_is_rejected() {
    let f = Forge::new().await;
    let mut claims = f.claims.clone();
    claims["exp"] = json!(now() - 60);
    f.assert_refused(&f.sign(&f.header, &claims)).await;
}

#[tokio::test]
async fn future_nbf_is_rejected() {
    let f = Forge::new().await;
    let mut claims = f.claims.clone();
    claims["nbf"] = json!(now() + 120);
    f.assert_refused(&f.sign(&f.header, &claims)).await;
}

#[tokio::test]
async fn future_iat_is_rejected() {
    let f = Forge::new().await;
    let mut claims = f.claims.clone();
    claims["iat"] = json!(now() + 120);
    f.assert_refused(&f.sign(&f.header, &claims)).await;
}

#[tokio::test]
async fn wrong_issuer_or_audience_is_rejected() {
    let f = Forge::new().await;
    for (claim, value) in [("iss", "https://evil.example"), ("aud", "another-api")] {
        let mut claims = f.claims.clone();
        claims[claim] = json!(value);
        f.assert_refused(&f.sign(&f.header, &claims)).await;
    }
}

#[tokio::test]
async fn refresh_token_as_access_token_is_rejected() {
    let f = Forge::new().await;
    let body = f.server.token_alice().await;
    f.assert_refused(body["refresh_token"].as_str().unwrap())
        .await;
}

#[tokio::test]
async fn other_token_type_is_rejected() {
    let f = Forge::new().await;
    let mut header = f.header.clone();
    header["typ"] = json!("JWT");
    f.assert_refused(&f.sign(&header, &f.claims)).await;
}

#[tokio::test]
async fn non_canonical_base64url_is_rejected() {
    let f = Forge::new().await;
    let token = f.sign(&f.header, &f.claims);
    f.assert_refused(&format!("{token}=")).await;
    // The standard alphabet, when the token has a character that differs.
    let standard = token.replace('-', "+").replace('_', "/");
    if standard != token {
        f.assert_refused(&standard).await;
    }
    // Non-zero trailing bits in the 43-character HS256 signature: same bytes,
    // other text.
    let (input, signature) = token.rsplit_once('.').unwrap();
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let last = alphabet
        .iter()
        .position(|&c| c == *signature.as_bytes().last().unwrap())
        .unwrap();
    let mut tampered = signature.as_bytes().to_vec();
    *tampered.last_mut().unwrap() = alphabet[last ^ 1];
    f.assert_refused(&format!("{input}.{}", String::from_utf8(tampered).unwrap()))
        .await;
}

#[tokio::test]
async fn wrong_segment_counts_are_rejected() {
    let f = Forge::new().await;
    let token = f.sign(&f.header, &f.claims);
    let (input, _) = token.rsplit_once('.').unwrap();
    for bad in [input.to_owned(), format!("{token}.x"), format!("{input}.")] {
        f.assert_refused(&bad).await;
    }
}

#[tokio::test]
async fn oversized_token_is_rejected() {
    let f = Forge::new().await;
    let mut claims = f.claims.clone();
    claims["pad"] = json!("x".repeat(9000));
    f.assert_refused(&f.sign(&f.header, &claims)).await;
}

#[tokio::test]
async fn malformed_json_is_rejected() {
    let f = Forge::new().await;
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode("{\"alg\":"),
        URL_SAFE_NO_PAD.encode("{]")
    );
    f.assert_refused(&format!("{input}.AAAA")).await;
}

#[tokio::test]
async fn tampered_claims_are_rejected() {
    let f = Forge::new().await;
    let token = f.sign(&f.header, &f.claims);
    let mut claims = f.claims.clone();
    claims["roles"] = json!(["admin", "superuser"]);
    let parts: Vec<&str> = token.split('.').collect();
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        parts[2]
    );
    f.assert_refused(&tampered).await;
}
