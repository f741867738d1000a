//! Lossless compaction of the two longest strings a session keeps besides
//! its data: the user agent and the client IP.
//!
//! User agents repeat a handful of long fragments (`Mozilla/5.0 (`,
//! `AppleWebKit/537.36 (KHTML, like Gecko) Chrome/`...). A static table
//! replaces each by one byte below 0x20, which a header value cannot contain
//! (RFC 9110 forbids control characters there); a user agent that contains
//! one anyway is kept verbatim behind a marker. A typical browser user agent
//! shrinks to a third, which keeps a session in a smaller Redis allocation.

use std::net::IpAddr;

/// Fragments, by code (code = index + 1). Order matters only for matching:
/// at each position the longest matching fragment wins.
const FRAGMENTS: [&str; 24] = [
    "Mozilla/5.0 (",
    "Windows NT 10.0; Win64; x64",
    ") AppleWebKit/537.36 (KHTML, like Gecko) Chrome/",
    " Safari/537.36",
    "Macintosh; Intel Mac OS X 10_15_7",
    "X11; Linux x86_64",
    "; rv:",
    ") Gecko/20100101 Firefox/",
    " Edg/",
    ") AppleWebKit/605.1.15 (KHTML, like Gecko) Version/",
    " Mobile/15E148 Safari/604.1",
    "iPhone; CPU iPhone OS ",
    " like Mac OS X",
    "Linux; Android ",
    " Mobile Safari/537.36",
    ".0.0.0",
    "curl/",
    "python-requests/",
    " Safari/605.1.15",
    "Windows NT 10.0; Win64; x64; rv:",
    "X11; Ubuntu; Linux x86_64; rv:",
    "iPad; CPU OS ",
    " OPR/",
    "; K)",
];

/// First byte of a compacted user agent.
const COMPACT: u8 = 1;
/// First byte of a user agent kept verbatim.
const VERBATIM: u8 = 0;

/// The user agent as stored.
pub(crate) fn compact_user_agent(ua: &str) -> Vec<u8> {
    let bytes = ua.as_bytes();
    if bytes.iter().any(|&b| b < 0x20) {
        let mut out = Vec::with_capacity(bytes.len() + 1);
        out.push(VERBATIM);
        out.extend_from_slice(bytes);
        return out;
    }
    let mut out = Vec::with_capacity(bytes.len() / 2 + 1);
    out.push(COMPACT);
    let mut rest = bytes;
    while let Some(&first) = rest.first() {
        let best = FRAGMENTS
            .iter()
            .enumerate()
            .filter(|(_, f)| rest.starts_with(f.as_bytes()))
            .max_by_key(|(_, f)| f.len());
        match best {
            Some((i, fragment)) => {
                out.push(u8::try_from(i + 1).expect("fewer than 32 fragments"));
                rest = &rest[fragment.len()..];
            }
            None => {
                out.push(first);
                rest = &rest[1..];
            }
        }
    }
    out
}

/// The user agent [`compact_user_agent`] stored, or `None` if the bytes are
/// not something it wrote.
pub(crate) fn expand_user_agent(stored: &[u8]) -> Option<String> {
    let (&marker, body) = stored.split_first()?;
    match marker {
        VERBATIM => String::from_utf8(body.to_vec()).ok(),
        COMPACT => {
            let mut out = Vec::with_capacity(body.len() * 3);
            for &b in body {
                if b < 0x20 {
                    out.extend_from_slice(
                        FRAGMENTS.get(usize::from(b).checked_sub(1)?)?.as_bytes(),
                    );
                } else {
                    out.push(b);
                }
            }
            String::from_utf8(out).ok()
        }
        _ => None,
    }
}

/// The client IP as stored: `4` and the octets, or `6` and the 16 bytes,
/// for an address in its canonical text form; else `0` and the text.
pub(crate) fn compact_ip(ip: &str) -> Vec<u8> {
    let (tag, body) = match ip.parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) if v4.to_string() == ip => (4, v4.octets().to_vec()),
        Ok(IpAddr::V6(v6)) if v6.to_string() == ip => (6, v6.octets().to_vec()),
        _ => (0, ip.as_bytes().to_vec()),
    };
    let mut out = Vec::with_capacity(body.len() + 1);
    out.push(tag);
    out.extend_from_slice(&body);
    out
}

/// The IP [`compact_ip`] stored.
pub(crate) fn expand_ip(stored: &[u8]) -> Option<String> {
    match stored.split_first()? {
        (4, octets) => Some(IpAddr::from(<[u8; 4]>::try_from(octets).ok()?).to_string()),
        (6, octets) => Some(IpAddr::from(<[u8; 16]>::try_from(octets).ok()?).to_string()),
        (0, text) => String::from_utf8(text.to_vec()).ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn browser_user_agents_shrink_and_round_trip() {
        for ua in [
            "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
            "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
        ] {
            let stored = compact_user_agent(ua);
            assert!(stored.len() * 2 < ua.len(), "{ua}: {} bytes", stored.len());
            assert_eq!(expand_user_agent(&stored).as_deref(), Some(ua));
        }
    }

    #[test]
    fn addresses_are_kept_as_octets_and_anything_else_as_text() {
        for ip in [
            "203.0.113.42",
            "2001:db8::1",
            "not an address",
            "::ffff:192.0.2.1",
        ] {
            let stored = compact_ip(ip);
            assert_eq!(expand_ip(&stored).as_deref(), Some(ip));
        }
        assert_eq!(compact_ip("203.0.113.42").len(), 5);
    }

    proptest! {
        #[test]
        fn any_user_agent_round_trips(ua in "\\PC{0,120}|[\\x00-\\x7f]{0,60}") {
            prop_assert_eq!(expand_user_agent(&compact_user_agent(&ua)), Some(ua));
        }

        #[test]
        fn any_ip_text_round_trips(ip in ".{0,40}") {
            prop_assert_eq!(expand_ip(&compact_ip(&ip)), Some(ip));
        }

        #[test]
        fn expanding_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = expand_user_agent(&bytes);
            let _ = expand_ip(&bytes);
        }
    }
}
