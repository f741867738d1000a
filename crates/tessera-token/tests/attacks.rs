//! Every token form RFC 8725 warns about, one test each, named for the attack.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use tessera_token::claims::{AccessClaims, Audience};
use tessera_token::jws::{Algorithm, SigningKey, TokenError};
use tessera_token::{KeySet, Validation};

const NOW: i64 = 1_800_000_000;

fn validation() -> Validation {
    Validation {
        issuer: "https://auth.example".into(),
        audience: "https://api.example".into(),
        leeway_secs: 30,
    }
}

fn claims() -> Value {
    json!({
        "iss": "https://auth.example", "sub": "user-1", "aud": "https://api.example",
        "exp": NOW + 900, "iat": NOW, "nbf": NOW, "jti": "j1", "sid": "f1", "roles": ["admin"]
    })
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

/// Signs arbitrary header and claims with `key`, as an attacker holding (or
/// guessing) key material would.
fn forge(header: Value, claims: Value, key: &SigningKey) -> String {
    let input = format!("{}.{}", b64(&header), b64(&claims));
    let sig = key.sign(input.as_bytes()).unwrap();
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

fn set(alg: Algorithm) -> KeySet {
    KeySet::generate(alg, NOW).unwrap()
}

fn honest_header(set: &KeySet) -> Value {
    json!({"alg": set.active().signing.algorithm().as_str(), "typ": "at+jwt", "kid": set.active().kid})
}

fn verify(set: &KeySet, token: &str) -> Result<AccessClaims, TokenError> {
    set.verify(token, &validation(), NOW)
}

#[test]
fn an_honest_token_verifies() {
    let keys = set(Algorithm::EdDSA);
    let token = forge(honest_header(&keys), claims(), &keys.active().signing);
    assert_eq!(verify(&keys, &token).unwrap().sub, "user-1");
}

#[test]
fn alg_none_in_any_spelling_is_rejected() {
    let keys = set(Algorithm::HS256);
    for alg in ["none", "None", "NONE", "nOnE"] {
        let mut header = honest_header(&keys);
        header["alg"] = json!(alg);
        for signature in ["", "AAAA"] {
            let token = format!("{}.{}.{signature}", b64(&header), b64(&claims()));
            assert!(
                verify(&keys, &token).is_err(),
                "{alg} with signature {signature:?} accepted"
            );
        }
    }
}

#[test]
fn unknown_algorithms_are_rejected() {
    let keys = set(Algorithm::HS256);
    for alg in ["HS512", "PS256", "ES256K", "hs256", ""] {
        let mut header = honest_header(&keys);
        header["alg"] = json!(alg);
        let token = forge(header, claims(), &keys.active().signing);
        assert_eq!(
            verify(&keys, &token).unwrap_err(),
            TokenError::Algorithm,
            "{alg}"
        );
    }
}

#[test]
fn hs256_keyed_with_the_public_key_is_rejected() {
    // Algorithm confusion: the attacker HMACs with our *public* key bytes.
    for alg in [Algorithm::EdDSA, Algorithm::ES256] {
        let keys = set(alg);
        let jwk = keys.jwks().keys.remove(0);
        let public_bytes = serde_json::to_vec(&jwk).unwrap();
        let mut header = honest_header(&keys);
        header["alg"] = json!("HS256");
        let token = forge(header, claims(), &SigningKey::Hs256(public_bytes));
        assert_eq!(
            verify(&keys, &token).unwrap_err(),
            TokenError::Algorithm,
            "{alg}"
        );
    }
}

#[test]
fn embedded_jwk_header_is_rejected() {
    let keys = set(Algorithm::EdDSA);
    let attacker = SigningKey::generate(Algorithm::EdDSA).unwrap();
    let attacker_keys = KeySet::generate(Algorithm::EdDSA, NOW).unwrap();
    let mut header = honest_header(&keys);
    header["jwk"] = serde_json::to_value(&attacker_keys.jwks().keys[0]).unwrap();
    let token = forge(header, claims(), &attacker);
    assert_eq!(
        verify(&keys, &token).unwrap_err(),
        TokenError::ForbiddenHeader
    );
}

#[test]
fn jku_x5u_and_x5c_headers_are_rejected() {
    let keys = set(Algorithm::EdDSA);
    for (name, value) in [
        ("jku", json!("https://evil.example/jwks.json")),
        ("x5u", json!("https://evil.example/cert.pem")),
        ("x5c", json!(["MIIB"])),
    ] {
        let mut header = honest_header(&keys);
        header[name] = value;
        let token = forge(header, claims(), &keys.active().signing);
        assert_eq!(
            verify(&keys, &token).unwrap_err(),
            TokenError::ForbiddenHeader,
            "{name}"
        );
    }
}

#[test]
fn unknown_crit_parameters_are_rejected() {
    let keys = set(Algorithm::EdDSA);
    let mut header = honest_header(&keys);
    header["crit"] = json!(["exp-ext"]);
    header["exp-ext"] = json!(true);
    let token = forge(header, claims(), &keys.active().signing);
    assert_eq!(
        verify(&keys, &token).unwrap_err(),
        TokenError::ForbiddenHeader
    );
}

#[test]
fn an_empty_crit_is_rejected() {
    let keys = set(Algorithm::EdDSA);
    let mut header = honest_header(&keys);
    header["crit"] = json!([]);
    let token = forge(header, claims(), &keys.active().signing);
    assert_eq!(
        verify(&keys, &token).unwrap_err(),
        TokenError::ForbiddenHeader
    );
}

#[test]
fn missing_exp_iss_or_aud_is_rejected() {
    let keys = set(Algorithm::EdDSA);
    for claim in ["exp", "iss", "aud", "sub", "sid"] {
        let mut c = claims();
        c.as_object_mut().unwrap().remove(claim);
        let token = forge(honest_header(&keys), c, &keys.active().signing);
        assert_eq!(
            verify(&keys, &token).unwrap_err(),
            TokenError::Claims,
            "{claim}"
        );
    }
}

#[test]
fn an_expired_token_is_rejected() {
    let keys = set(Algorithm::EdDSA);
    let mut c = claims();
    c["exp"] = json!(NOW - 31);
    let token = forge(honest_header(&keys), c, &keys.active().signing);
    assert_eq!(verify(&keys, &token).unwrap_err(), TokenError::Expired);
}

#[test]
fn nbf_in_the_future_beyond_the_leeway_is_rejected() {
    let keys = set(Algorithm::EdDSA);
    let mut c = claims();
    c["nbf"] = json!(NOW + 31);
    let token = forge(honest_header(&keys), c, &keys.active().signing);
    assert_eq!(verify(&keys, &token).unwrap_err(), TokenError::NotYetValid);
}

#[test]
fn iat_in_the_future_beyond_the_leeway_is_rejected() {
    let keys = set(Algorithm::EdDSA);
    let mut c = claims();
    c["iat"] = json!(NOW + 3600);
    let token = forge(honest_header(&keys), c, &keys.active().signing);
    assert_eq!(verify(&keys, &token).unwrap_err(), TokenError::NotYetValid);
}

#[test]
fn wrong_issuer_or_audience_is_rejected() {
    let keys = set(Algorithm::EdDSA);
    let mut c = claims();
    c["iss"] = json!("https://evil.example");
    let token = forge(honest_header(&keys), c, &keys.active().signing);
    assert_eq!(verify(&keys, &token).unwrap_err(), TokenError::Issuer);
    let mut c = claims();
    c["aud"] = json!(["https://other.example"]);
    let token = forge(honest_header(&keys), c, &keys.active().signing);
    assert_eq!(verify(&keys, &token).unwrap_err(), TokenError::Audience);
}

#[test]
fn another_token_type_is_never_accepted_as_an_access_token() {
    let keys = set(Algorithm::EdDSA);
    for typ in [
        json!("JWT"),
        json!("refresh+jwt"),
        json!("id_token"),
        Value::Null,
    ] {
        let mut header = honest_header(&keys);
        if typ.is_null() {
            header.as_object_mut().unwrap().remove("typ");
        } else {
            header["typ"] = typ.clone();
        }
        let token = forge(header, claims(), &keys.active().signing);
        assert_eq!(
            verify(&keys, &token).unwrap_err(),
            TokenError::WrongType,
            "{typ}"
        );
    }
}

#[test]
fn an_opaque_refresh_token_is_not_an_access_token() {
    let keys = set(Algorithm::EdDSA);
    let refresh = URL_SAFE_NO_PAD.encode([7u8; 32]);
    assert_eq!(verify(&keys, &refresh).unwrap_err(), TokenError::Malformed);
}

#[test]
fn a_signature_by_another_key_under_our_kid_is_rejected() {
    let keys = set(Algorithm::EdDSA);
    let attacker = SigningKey::generate(Algorithm::EdDSA).unwrap();
    let token = forge(honest_header(&keys), claims(), &attacker);
    assert_eq!(verify(&keys, &token).unwrap_err(), TokenError::BadSignature);
}

#[test]
fn unknown_or_missing_kid_is_rejected() {
    let keys = set(Algorithm::EdDSA);
    let mut header = honest_header(&keys);
    header["kid"] = json!("not-our-key");
    let token = forge(header.clone(), claims(), &keys.active().signing);
    assert_eq!(verify(&keys, &token).unwrap_err(), TokenError::UnknownKey);
    header.as_object_mut().unwrap().remove("kid");
    let token = forge(header, claims(), &keys.active().signing);
    assert_eq!(verify(&keys, &token).unwrap_err(), TokenError::UnknownKey);
}

#[test]
fn non_canonical_base64url_is_rejected() {
    let keys = set(Algorithm::HS256);
    let token = forge(honest_header(&keys), claims(), &keys.active().signing);
    let (input, sig) = token.rsplit_once('.').unwrap();
    let padded = format!("{input}.{sig}=");
    assert_eq!(verify(&keys, &padded).unwrap_err(), TokenError::Malformed);
    let standard_alphabet = token.replace('-', "+").replace('_', "/");
    if standard_alphabet != token {
        assert_eq!(
            verify(&keys, &standard_alphabet).unwrap_err(),
            TokenError::Malformed
        );
    }
    // HS256 signatures are 32 bytes: 43 characters whose last carries 2 zero
    // bits. Setting one keeps the bytes and changes the text.
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let last = alphabet
        .iter()
        .position(|&c| c == *sig.as_bytes().last().unwrap())
        .unwrap();
    let mut tampered = sig.as_bytes().to_vec();
    *tampered.last_mut().unwrap() = alphabet[last | 1];
    if alphabet[last | 1] != alphabet[last] {
        let token = format!("{input}.{}", String::from_utf8(tampered).unwrap());
        assert_eq!(verify(&keys, &token).unwrap_err(), TokenError::Malformed);
    }
}

#[test]
fn wrong_segment_counts_are_rejected() {
    let keys = set(Algorithm::HS256);
    let token = forge(honest_header(&keys), claims(), &keys.active().signing);
    let (input, _) = token.rsplit_once('.').unwrap();
    for bad in [
        input.to_owned(),
        format!("{input}."),
        format!("{token}.extra"),
        String::new(),
        "..".into(),
    ] {
        assert_eq!(
            verify(&keys, &bad).unwrap_err(),
            TokenError::Malformed,
            "{bad:?}"
        );
    }
}

#[test]
fn oversized_tokens_are_rejected_before_any_work() {
    let keys = set(Algorithm::HS256);
    let mut c = claims();
    c["padding"] = json!("x".repeat(9000));
    let token = forge(honest_header(&keys), c, &keys.active().signing);
    assert_eq!(verify(&keys, &token).unwrap_err(), TokenError::TooLarge);
}

#[test]
fn malformed_json_is_rejected() {
    let keys = set(Algorithm::HS256);
    let header = URL_SAFE_NO_PAD.encode("{\"alg\":\"HS256\",");
    let token = format!("{header}.{}.AAAA", b64(&claims()));
    assert_eq!(verify(&keys, &token).unwrap_err(), TokenError::Malformed);
    let input = format!(
        "{}.{}",
        b64(&honest_header(&keys)),
        URL_SAFE_NO_PAD.encode("{not json")
    );
    let sig = keys.active().signing.sign(input.as_bytes()).unwrap();
    let token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig));
    assert_eq!(verify(&keys, &token).unwrap_err(), TokenError::Claims);
}

proptest::proptest! {
    #[test]
    fn verification_never_panics(text in "[A-Za-z0-9_.=+/-]{0,300}") {
        let keys = KeySet::from_secret(&[1u8; 32]).unwrap();
        let _ = keys.verify(&text, &validation(), NOW);
    }

    #[test]
    fn verification_never_panics_on_structured_junk(
        header in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
        payload in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
        signature in proptest::collection::vec(proptest::num::u8::ANY, 0..80),
    ) {
        let keys = KeySet::from_secret(&[1u8; 32]).unwrap();
        let token = format!("{}.{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(payload), URL_SAFE_NO_PAD.encode(signature));
        let _ = keys.verify(&token, &validation(), NOW);
    }
}

#[test]
fn audience_may_be_a_list() {
    let keys = set(Algorithm::EdDSA);
    let mut c = claims();
    c["aud"] = json!(["https://other.example", "https://api.example"]);
    let token = forge(honest_header(&keys), c, &keys.active().signing);
    assert!(matches!(
        verify(&keys, &token).unwrap().aud,
        Audience::Many(_)
    ));
}
