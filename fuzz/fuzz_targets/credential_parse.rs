//! Session ids and refresh tokens: parsing never panics, and whatever parses
//! round-trips to exactly the same text (canonical encodings only).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_core::{RefreshToken, SessionId};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(id) = SessionId::parse(text) {
        assert_eq!(id.expose(), text);
    }
    if let Ok(token) = RefreshToken::parse(text) {
        assert_eq!(token.expose(), text);
    }
});
