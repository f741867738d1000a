//! Strict access-token verification never panics on any input, and never
//! accepts a token it did not sign.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_token::{KeySet, Validation};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let keys = KeySet::from_secret(&[42u8; 32]).expect("valid secret");
    let validation = Validation {
        issuer: "tessera".into(),
        audience: "tessera".into(),
        leeway_secs: 30,
    };
    let result = keys.verify(text, &validation, 1_800_000_000);
    assert!(result.is_err(), "accepted a token it never signed: {text:?}");
    let _ = tessera_token::jws::parse_compact(text);
});
