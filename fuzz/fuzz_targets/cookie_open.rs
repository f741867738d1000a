//! Opening a sealed session cookie never panics and never accepts a value
//! this key did not seal.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_axum::caller::sealed::{CookieKey, CookieSealer};
use tessera_core::SessionPolicy;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let sealer = CookieSealer::new(&CookieKey::from_bytes([9u8; 32]), "__Host-tessera");
    assert!(sealer.open(text, &SessionPolicy::default()).is_none(), "opened a forged cookie");
});
