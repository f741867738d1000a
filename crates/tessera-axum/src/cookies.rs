//! The session cookie: `__Host-` prefixed, `HttpOnly; Secure; Path=/`,
//! `SameSite=Lax` (or `Strict`), no `Domain`, always with `Max-Age`.

use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, header};
use cookie::{Cookie, SameSite};
use tessera_core::SessionId;

/// The default cookie name. The `__Host-` prefix makes browsers insist on
/// `Secure`, `Path=/` and no `Domain`, so a sibling subdomain cannot set it.
pub const DEFAULT_COOKIE_NAME: &str = "__Host-tessera";

/// Name of the cookie that carries the access token when
/// `access_token_cookie` is on.
pub const ACCESS_TOKEN_COOKIE: &str = "__Host-tessera-at";

/// `SameSite` policy of the session cookie (setting `session_same_site`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SameSitePolicy {
    /// Sent on top-level navigations from other sites (links keep working).
    #[default]
    Lax,
    /// Never sent on requests started by another site.
    Strict,
    /// Sent on every request, also from other sites: for a SPA on another
    /// site. The cookie is `Secure` (it always is), and every
    /// state-changing request must then carry an `Origin` tessera accepts.
    None,
}

/// How the session cookie is named and scoped.
#[derive(Debug, Clone)]
pub struct SessionCookie {
    name: String,
    same_site: SameSitePolicy,
}

impl Default for SessionCookie {
    fn default() -> Self {
        Self {
            name: DEFAULT_COOKIE_NAME.to_owned(),
            same_site: SameSitePolicy::Lax,
        }
    }
}

/// A cookie name tessera refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CookieNameError {
    /// Without the prefix, a sibling subdomain or a plain-HTTP page could set
    /// or shadow the cookie.
    #[error(
        "the cookie name must start with __Host- (it keeps the cookie Secure, Path=/ and host-only)"
    )]
    NotHostPrefixed,
    /// Characters outside the safe token set.
    #[error("the cookie name may contain only letters, digits, '_', '-' and '.'")]
    InvalidCharacters,
}

impl SessionCookie {
    /// A cookie named `name` with the given `SameSite` policy.
    ///
    /// # Errors
    ///
    /// A name without the `__Host-` prefix (or only the prefix), or with
    /// characters outside letters, digits, `_`, `-` and `.`.
    pub fn new(
        name: impl Into<String>,
        same_site: SameSitePolicy,
    ) -> Result<Self, CookieNameError> {
        let name = name.into();
        if !name.starts_with("__Host-") || name.len() <= "__Host-".len() {
            return Err(CookieNameError::NotHostPrefixed);
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
        {
            return Err(CookieNameError::InvalidCharacters);
        }
        Ok(Self { name, same_site })
    }

    /// The cookie that carries access tokens, with the same attributes.
    pub fn access_token_cookie(&self) -> Self {
        Self {
            name: ACCESS_TOKEN_COOKIE.to_owned(),
            same_site: self.same_site,
        }
    }

    /// The `SameSite` policy.
    pub fn same_site(&self) -> SameSitePolicy {
        self.same_site
    }

    /// The cookie's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The cookie's value from the request's `Cookie` headers, if present.
    /// The raw bytes are split on `;`: a pair that is malformed or not text
    /// (another app's `greeting=Grüß Gott`, sent as UTF-8) is skipped, never
    /// the whole header. The first cookie with our name wins.
    pub fn read<'a>(&self, headers: &'a HeaderMap) -> Option<&'a str> {
        headers
            .get_all(header::COOKIE)
            .iter()
            .flat_map(|v| v.as_bytes().split(|&b| b == b';'))
            .filter_map(|pair| {
                let pair = pair.trim_ascii();
                let eq = pair.iter().position(|&b| b == b'=')?;
                Some((&pair[..eq], &pair[eq + 1..]))
            })
            .find(|(name, _)| name.trim_ascii() == self.name.as_bytes())
            .and_then(|(_, value)| std::str::from_utf8(value.trim_ascii()).ok())
            .map(|value| value.trim_matches('"'))
    }

    /// `Set-Cookie` value that hands the client `id`, valid for `max_age`.
    pub fn issue(&self, id: &SessionId, max_age: Duration) -> HeaderValue {
        self.render(id.expose(), max_age)
    }

    /// `Set-Cookie` value carrying a sealed session (cookie storage).
    pub fn issue_sealed(&self, sealed: String, max_age: Duration) -> HeaderValue {
        self.render(sealed, max_age)
    }

    /// `Set-Cookie` value that makes the client forget the cookie.
    pub fn clear(&self) -> HeaderValue {
        self.render(String::new(), Duration::ZERO)
    }

    fn render(&self, value: String, max_age: Duration) -> HeaderValue {
        let seconds = i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX);
        let cookie = Cookie::build((self.name.clone(), value))
            .http_only(true)
            .secure(true)
            .path("/")
            .same_site(match self.same_site {
                SameSitePolicy::Lax => SameSite::Lax,
                SameSitePolicy::Strict => SameSite::Strict,
                SameSitePolicy::None => SameSite::None,
            })
            .max_age(cookie::time::Duration::seconds(seconds))
            .build();
        HeaderValue::from_str(&cookie.to_string())
            .expect("cookie names and base64url values are valid header text")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_cookies_carry_every_protective_attribute() {
        let id = SessionId::generate();
        let value = SessionCookie::default().issue(&id, Duration::from_secs(3600));
        let text = value.to_str().unwrap();
        assert!(text.starts_with(&format!("__Host-tessera={}", id.expose())));
        for attribute in [
            "HttpOnly",
            "Secure",
            "Path=/",
            "SameSite=Lax",
            "Max-Age=3600",
        ] {
            assert!(text.contains(attribute), "{text} lacks {attribute}");
        }
        assert!(!text.contains("Domain"));
    }

    #[test]
    fn strict_same_site_is_configurable() {
        let value = SessionCookie::new("__Host-x", SameSitePolicy::Strict)
            .unwrap()
            .issue(&SessionId::generate(), Duration::from_secs(1));
        assert!(value.to_str().unwrap().contains("SameSite=Strict"));
    }

    #[test]
    fn names_without_the_host_prefix_or_with_odd_characters_are_refused() {
        for name in ["tessera", "__Secure-tessera", "__Host-", "host-tessera"] {
            assert_eq!(
                SessionCookie::new(name, SameSitePolicy::Lax).unwrap_err(),
                CookieNameError::NotHostPrefixed,
                "{name}"
            );
        }
        for name in ["__Host-a b", "__Host-a;b", "__Host-ä"] {
            assert_eq!(
                SessionCookie::new(name, SameSitePolicy::Lax).unwrap_err(),
                CookieNameError::InvalidCharacters,
                "{name}"
            );
        }
        assert!(SessionCookie::new("__Host-app.session_1", SameSitePolicy::Lax).is_ok());
    }

    #[test]
    fn same_site_none_is_secure() {
        let value = SessionCookie::new("__Host-x", SameSitePolicy::None)
            .unwrap()
            .issue(&SessionId::generate(), Duration::from_secs(1));
        let text = value.to_str().unwrap();
        assert!(
            text.contains("SameSite=None") && text.contains("Secure"),
            "{text}"
        );
    }

    #[test]
    fn clearing_uses_the_same_name_and_path_with_max_age_zero() {
        let text = SessionCookie::default()
            .clear()
            .to_str()
            .unwrap()
            .to_owned();
        assert!(text.starts_with("__Host-tessera=;"));
        assert!(text.contains("Max-Age=0") && text.contains("Path=/"));
    }

    #[test]
    fn reads_our_cookie_among_others_and_skips_garbage() {
        let mut headers = HeaderMap::new();
        headers.append(header::COOKIE, HeaderValue::from_static("junk; other=1"));
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("a=b; __Host-tessera=abc; __Host-tessera=def"),
        );
        assert_eq!(SessionCookie::default().read(&headers), Some("abc"));
        assert_eq!(SessionCookie::default().read(&HeaderMap::new()), None);
    }

    #[test]
    fn a_non_ascii_cookie_of_another_app_does_not_hide_ours() {
        let mut headers = HeaderMap::new();
        let raw = "greeting=Grüß Gott; __Host-tessera=abc; lang=fr";
        headers.append(
            header::COOKIE,
            HeaderValue::from_bytes(raw.as_bytes()).unwrap(),
        );
        assert_eq!(SessionCookie::default().read(&headers), Some("abc"));
        let mut after = HeaderMap::new();
        let raw = b"__Host-tessera=abc; tracker=\xff\xfe";
        after.append(header::COOKIE, HeaderValue::from_bytes(raw).unwrap());
        assert_eq!(SessionCookie::default().read(&after), Some("abc"));
        // A value that is not text is no session id.
        let mut ours = HeaderMap::new();
        ours.append(
            header::COOKIE,
            HeaderValue::from_bytes(b"__Host-tessera=\xff").unwrap(),
        );
        assert_eq!(SessionCookie::default().read(&ours), None);
    }
}
