//! Verification cost against its floor, measured in one run.
//!
//! - HS256: full strict verification vs the floor the issue defines
//!   (base64url decode + HMAC-SHA256 + claims parse of the same token).
//! - EdDSA / ES256 / RS256: full verification vs the primitive's raw
//!   signature check of the same signing input.
//!
//! `cargo bench -p tessera-token --bench verify`

use std::hint::black_box;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{Criterion, criterion_group, criterion_main};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use tessera_token::claims::Audience;
use tessera_token::jws::{Algorithm, SigningKey};
use tessera_token::{AccessClaims, KeySet, Validation};

const NOW: i64 = 1_800_000_000;

fn claims() -> AccessClaims {
    AccessClaims {
        iss: "tessera".into(),
        sub: "8d5e0a7e-4c2b-4a55-9c53-2b1b4c1e9f00".into(),
        aud: Audience::One("tessera".into()),
        exp: NOW + 900,
        iat: NOW,
        nbf: NOW,
        jti: "c2lnbmF0dXJlLWp0aQ".into(),
        sid: "ZmFtaWx5LWlkLTEyMzQ".into(),
        roles: vec!["admin".into(), "member".into()],
        email: Some("alice@example.com".into()),
        email_verified: Some(true),
    }
}

fn validation() -> Validation {
    Validation {
        issuer: "tessera".into(),
        audience: "tessera".into(),
        leeway_secs: 30,
    }
}

fn hs256(c: &mut Criterion) {
    let secret = [7u8; 32];
    let keys = KeySet::from_secret(&secret).unwrap();
    let token = keys.sign(&claims()).unwrap();
    let mut group = c.benchmark_group("HS256");
    group.bench_function("floor: b64 decode + HMAC + claims parse", |b| {
        b.iter(|| {
            let token = black_box(token.as_str());
            let (input, sig) = token.rsplit_once('.').unwrap();
            let (header, payload) = input.split_once('.').unwrap();
            let _header = URL_SAFE_NO_PAD.decode(header).unwrap();
            let payload = URL_SAFE_NO_PAD.decode(payload).unwrap();
            let sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
            let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&secret).unwrap();
            mac.update(input.as_bytes());
            mac.verify_slice(&sig).unwrap();
            serde_json::from_slice::<AccessClaims>(&payload).unwrap()
        })
    });
    group.bench_function("tessera verify (strict)", |b| {
        b.iter(|| keys.verify(black_box(&token), &validation(), NOW).unwrap())
    });
    group.finish();
}

fn asymmetric(c: &mut Criterion) {
    for algorithm in [Algorithm::EdDSA, Algorithm::ES256, Algorithm::RS256] {
        let keys = KeySet::generate(algorithm, NOW).unwrap();
        let token = keys.sign(&claims()).unwrap();
        let (input, sig) = token.rsplit_once('.').unwrap();
        let sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
        let verifying = keys.active().verifying.clone();
        let mut group = c.benchmark_group(algorithm.as_str());
        group.bench_function("raw signature check", |b| {
            b.iter(|| assert!(verifying.verify(black_box(input.as_bytes()), black_box(&sig))))
        });
        group.bench_function("tessera verify (strict)", |b| {
            b.iter(|| keys.verify(black_box(&token), &validation(), NOW).unwrap())
        });
        group.finish();
        let _ = SigningKey::generate;
    }
}

criterion_group!(benches, hs256, asymmetric);
criterion_main!(benches);
