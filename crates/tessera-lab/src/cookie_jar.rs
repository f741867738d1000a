//! A client's cookies, sent back by hand.
//!
//! tessera's session cookie and nginx's routing cookie are `Secure`; a
//! real cookie jar would not send them over the lab's plain-HTTP loopback,
//! so the simulated users keep them here, as a browser over HTTPS would.

use reqwest::header::{HeaderMap, SET_COOKIE};

/// Cookies by name, in the order first set.
#[derive(Debug, Default, Clone)]
pub struct CookieJar(Vec<(String, String)>);

impl CookieJar {
    /// Takes in every `Set-Cookie` of a response; an empty value or
    /// `Max-Age=0` removes the cookie.
    pub fn absorb(&mut self, headers: &HeaderMap) {
        for value in headers.get_all(SET_COOKIE) {
            let Ok(text) = value.to_str() else { continue };
            let mut parts = text.split(';').map(str::trim);
            let Some((name, value)) = parts.next().and_then(|pair| pair.split_once('=')) else {
                continue;
            };
            let expired = value.is_empty()
                || parts.any(|attribute| attribute.eq_ignore_ascii_case("max-age=0"));
            self.0.retain(|(existing, _)| existing != name);
            if !expired {
                self.0.push((name.to_owned(), value.to_owned()));
            }
        }
    }

    /// Whether a cookie called `name` is held.
    pub fn holds(&self, name: &str) -> bool {
        self.0.iter().any(|(existing, _)| existing == name)
    }

    /// Forgets the cookie called `name`.
    pub fn remove(&mut self, name: &str) {
        self.0.retain(|(existing, _)| existing != name);
    }

    /// The `Cookie` request header, or `None` when empty.
    pub fn header(&self) -> Option<String> {
        if self.0.is_empty() {
            return None;
        }
        let pairs: Vec<String> = self.0.iter().map(|(n, v)| format!("{n}={v}")).collect();
        Some(pairs.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn set_cookies(values: &[&'static str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(SET_COOKIE, HeaderValue::from_static(value));
        }
        headers
    }

    #[test]
    fn keeps_secure_cookies_and_replaces_by_name() {
        let mut jar = CookieJar::default();
        jar.absorb(&set_cookies(&[
            "__Host-tessera=abc; HttpOnly; SameSite=Lax; Secure; Path=/; Max-Age=86400",
            "tessera_route=0123; Path=/; HttpOnly; Secure",
        ]));
        assert_eq!(
            jar.header().as_deref(),
            Some("__Host-tessera=abc; tessera_route=0123")
        );
        jar.absorb(&set_cookies(&["__Host-tessera=def; Secure"]));
        assert_eq!(
            jar.header().as_deref(),
            Some("tessera_route=0123; __Host-tessera=def")
        );
        assert!(jar.holds("__Host-tessera"));
    }

    #[test]
    fn an_expired_cookie_is_removed() {
        let mut jar = CookieJar::default();
        jar.absorb(&set_cookies(&["a=1", "b=2"]));
        jar.absorb(&set_cookies(&["a=; Max-Age=0", "b=3; Max-Age=0"]));
        assert_eq!(jar.header(), None);
        jar.absorb(&set_cookies(&["c=4"]));
        jar.remove("c");
        assert!(!jar.holds("c"));
    }
}
