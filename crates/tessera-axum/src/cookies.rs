//! The session cookie: `__Host-` prefixed, `HttpOnly; Secure; Path=/`,
//! `SameSite=Lax` (or `Strict`, `None`), no `Domain`, always with `Max-Age`.
//!
//! With a cookie domain (one login across subdomains) it is `__Secure-`
//! prefixed and carries `Domain=`: a `__Host-` cookie cannot. The price:
//! every subdomain of that domain receives the cookie, and any of them can
//! set a cookie of that name for the whole domain (shadowing the session
//! with one of its own), so every subdomain must be trusted as much as
//! tessera itself.

use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, header};
use cookie::{Cookie, SameSite};
use tessera_core::SessionId;

/// The default cookie name. The `__Host-` prefix makes browsers insist on
/// `Secure`, `Path=/` and no `Domain`, so a sibling subdomain cannot set it.
pub const DEFAULT_COOKIE_NAME: &str = "__Host-tessera";

/// The default cookie name with a cookie domain.
pub const DEFAULT_DOMAIN_COOKIE_NAME: &str = "__Secure-tessera";

/// Name of the cookie that carries the access token when
/// `access_token_cookie` is on.
pub const ACCESS_TOKEN_COOKIE: &str = "__Host-tessera-at";

/// The same with a cookie domain.
pub const DOMAIN_ACCESS_TOKEN_COOKIE: &str = "__Secure-tessera-at";

/// Name of the device cookie: proof of an earlier successful login to an
/// account, which keeps that device's own login budget (see
/// [`crate::throttle`]). Host-only whatever `cookie_domain` says: only
/// tessera's login endpoints read it.
pub const DEVICE_COOKIE: &str = "__Host-tessera-device";

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
    domain: Option<String>,
}

impl Default for SessionCookie {
    fn default() -> Self {
        Self {
            name: DEFAULT_COOKIE_NAME.to_owned(),
            same_site: SameSitePolicy::Lax,
            domain: None,
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
    /// A cookie with a `Domain` cannot be `__Host-`; it must be `__Secure-`.
    #[error(
        "with a cookie domain the cookie name must start with __Secure- (a __Host- cookie cannot have a Domain)"
    )]
    NotSecurePrefixed,
    /// Not a domain name.
    #[error("the cookie domain must be a domain name such as example.com")]
    InvalidDomain,
}

/// `name` if it has `prefix` (and more) and only safe characters.
fn checked_name(
    name: String,
    prefix: &str,
    unprefixed: CookieNameError,
) -> Result<String, CookieNameError> {
    if !name.starts_with(prefix) || name.len() <= prefix.len() {
        return Err(unprefixed);
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
    {
        return Err(CookieNameError::InvalidCharacters);
    }
    Ok(name)
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
        let name = checked_name(name.into(), "__Host-", CookieNameError::NotHostPrefixed)?;
        Ok(Self {
            name,
            same_site,
            domain: None,
        })
    }

    /// A cookie for `domain` and all its subdomains (one login across
    /// them), named `name`.
    ///
    /// # Errors
    ///
    /// A name without the `__Secure-` prefix or with characters outside
    /// letters, digits, `_`, `-` and `.`; a domain that is no domain name.
    pub fn for_domain(
        name: impl Into<String>,
        same_site: SameSitePolicy,
        domain: &str,
    ) -> Result<Self, CookieNameError> {
        let name = checked_name(name.into(), "__Secure-", CookieNameError::NotSecurePrefixed)?;
        let domain = domain.trim().trim_start_matches('.').to_ascii_lowercase();
        let labels_ok = domain.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
        if !labels_ok || domain.parse::<std::net::IpAddr>().is_ok() {
            return Err(CookieNameError::InvalidDomain);
        }
        Ok(Self {
            name,
            same_site,
            domain: Some(domain),
        })
    }

    /// The cookie that carries access tokens, with the same attributes.
    pub fn access_token_cookie(&self) -> Self {
        let name = match self.domain {
            Some(_) => DOMAIN_ACCESS_TOKEN_COOKIE,
            None => ACCESS_TOKEN_COOKIE,
        };
        Self {
            name: name.to_owned(),
            same_site: self.same_site,
            domain: self.domain.clone(),
        }
    }

    /// The device cookie: host-only, with the session cookie's `SameSite`
    /// (a cross-site SPA that logs in sends it as it sends the session).
    pub fn device_cookie(&self) -> Self {
        Self {
            name: DEVICE_COOKIE.to_owned(),
            same_site: self.same_site,
            domain: None,
        }
    }

    /// The domain the cookie is set for, if any.
    pub fn domain(&self) -> Option<&str> {
        self.domain.as_deref()
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

    /// `Set-Cookie` value that hands the client `id`, valid for `max_age`
    /// (`None`: a browser-session cookie, gone when the browser closes).
    pub fn issue(&self, id: &SessionId, max_age: Option<Duration>) -> HeaderValue {
        self.render(id.expose(), max_age)
    }

    /// `Set-Cookie` value carrying a sealed session (cookie storage) or an
    /// access token.
    pub fn issue_sealed(&self, sealed: String, max_age: Option<Duration>) -> HeaderValue {
        self.render(sealed, max_age)
    }

    /// `Set-Cookie` value that makes the client forget the cookie.
    pub fn clear(&self) -> HeaderValue {
        self.render(String::new(), Some(Duration::ZERO))
    }

    fn render(&self, value: String, max_age: Option<Duration>) -> HeaderValue {
        let mut cookie = Cookie::build((self.name.clone(), value))
            .http_only(true)
            .secure(true)
            .path("/")
            .same_site(match self.same_site {
                SameSitePolicy::Lax => SameSite::Lax,
                SameSitePolicy::Strict => SameSite::Strict,
                SameSitePolicy::None => SameSite::None,
            });
        if let Some(max_age) = max_age {
            let seconds = i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX);
            cookie = cookie.max_age(cookie::time::Duration::seconds(seconds));
        }
        if let Some(domain) = &self.domain {
            cookie = cookie.domain(domain.clone());
        }
        let cookie = cookie.build();
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
        let value = SessionCookie::default().issue(&id, Some(Duration::from_secs(3600)));
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
            .issue(&SessionId::generate(), Some(Duration::from_secs(1)));
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
    fn a_domain_cookie_is_secure_prefixed_and_names_its_domain() {
        let cookie =
            SessionCookie::for_domain("__Secure-tessera", SameSitePolicy::Lax, ".Example.com")
                .unwrap();
        let text = cookie
            .issue(&SessionId::generate(), Some(Duration::from_secs(60)))
            .to_str()
            .unwrap()
            .to_owned();
        assert!(text.starts_with("__Secure-tessera="), "{text}");
        for attribute in [
            "Domain=example.com",
            "Secure",
            "HttpOnly",
            "Path=/",
            "SameSite=Lax",
        ] {
            assert!(text.contains(attribute), "{text} lacks {attribute}");
        }
        let at = cookie.access_token_cookie();
        assert_eq!(
            (at.name(), at.domain()),
            ("__Secure-tessera-at", Some("example.com"))
        );
        assert_eq!(
            SessionCookie::for_domain("__Host-tessera", SameSitePolicy::Lax, "example.com")
                .unwrap_err(),
            CookieNameError::NotSecurePrefixed
        );
        for domain in ["", "exa mple.com", "127.0.0.1", "a..b"] {
            assert_eq!(
                SessionCookie::for_domain("__Secure-t", SameSitePolicy::Lax, domain).unwrap_err(),
                CookieNameError::InvalidDomain,
                "{domain:?}"
            );
        }
    }

    #[test]
    fn a_browser_session_cookie_has_no_max_age_or_expiry() {
        let text = SessionCookie::default()
            .issue(&SessionId::generate(), None)
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            !text.contains("Max-Age") && !text.contains("Expires"),
            "{text}"
        );
        assert!(
            text.contains("HttpOnly") && text.contains("Secure"),
            "{text}"
        );
    }

    #[test]
    fn same_site_none_is_secure() {
        let value = SessionCookie::new("__Host-x", SameSitePolicy::None)
            .unwrap()
            .issue(&SessionId::generate(), Some(Duration::from_secs(1)));
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
