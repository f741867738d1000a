//! Cross-site request refusal for cookie-authenticated, state-changing requests.
//!
//! Browsers say where a request comes from: `Sec-Fetch-Site` (all current
//! browsers) and `Origin` (on every cross-origin and every non-GET request).
//! A request is refused when either shows another site. Requests carrying
//! neither header (curl, server-to-server calls) are not from a browser and
//! pass: they cannot ride on a victim's cookies.
//!
//! "Same origin" means the `Origin` (scheme, host and port) equals the origin
//! the browser used for the request: the configured `public_url`; else, from
//! a trusted proxy, `X-Forwarded-Proto` and `X-Forwarded-Host` (a proxy in
//! front of tessera rewrites `Host`); else the request's own `Host`.

use std::net::SocketAddr;

use axum::http::{HeaderMap, Method, header};
use ipnet::IpNet;
use url::Url;

use crate::client_ip::{first_forwarded, from_trusted_proxy};
use crate::error::ApiError;

/// An absolute `http` or `https` URL (settings `public_url`, `login_url`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl(Url);

/// A `public_url` that is not an absolute `http(s)` URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected an absolute http:// or https:// URL, such as https://auth.example.com")]
pub struct InvalidHttpUrl;

impl HttpUrl {
    /// Parses and checks a URL.
    ///
    /// # Errors
    ///
    /// [`InvalidHttpUrl`].
    pub fn parse(text: &str) -> Result<Self, InvalidHttpUrl> {
        let url = Url::parse(text).map_err(|_| InvalidHttpUrl)?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(InvalidHttpUrl);
        }
        Ok(Self(url))
    }

    /// The URL.
    pub fn url(&self) -> &Url {
        &self.0
    }
}

/// Origins that may make state-changing requests besides the server's own,
/// and how the server's own origin is known.
#[derive(Debug, Clone, Default)]
pub struct OriginPolicy {
    allowed: Vec<url::Origin>,
    public: Option<url::Origin>,
    trusted_proxies: Vec<IpNet>,
    origin_required: bool,
}

impl OriginPolicy {
    /// Allows the server's own origin plus `allowed` (e.g.
    /// `https://app.example.com`; entries that are no URL are ignored). The
    /// server's own origin is `public_url`'s if given, else what trusted
    /// proxies forward, else the request's `Host`.
    pub fn new(
        allowed: impl IntoIterator<Item = String>,
        public_url: Option<&HttpUrl>,
        trusted_proxies: &[IpNet],
    ) -> Self {
        Self {
            allowed: allowed
                .into_iter()
                .filter_map(|o| Url::parse(o.trim()).ok())
                .map(|u| u.origin())
                .filter(url::Origin::is_tuple)
                .collect(),
            public: public_url.map(|u| u.0.origin()),
            trusted_proxies: trusted_proxies.to_vec(),
            origin_required: false,
        }
    }

    /// Refuses state-changing requests without an `Origin` too (for a
    /// `SameSite=None` cookie, which browsers send from any site).
    #[must_use]
    pub fn requiring_origin(mut self, required: bool) -> Self {
        self.origin_required = required;
        self
    }

    /// Whether any origin besides the server's own is allowed.
    pub fn has_allowed_origins(&self) -> bool {
        !self.allowed.is_empty()
    }

    /// Whether `origin` (an `Origin` header's value) is one of the extra
    /// allowed origins.
    pub fn is_allowed(&self, origin: &str) -> bool {
        Url::parse(origin).is_ok_and(|u| self.allowed.contains(&u.origin()))
    }

    /// Refuses the request if it changes state and comes from another site.
    /// `peer` is the address the request came from, if known (forwarded
    /// headers are believed only from trusted proxies).
    ///
    /// # Errors
    ///
    /// [`ApiError::CrossSite`].
    pub fn check(
        &self,
        method: &Method,
        headers: &HeaderMap,
        peer: Option<SocketAddr>,
    ) -> Result<(), ApiError> {
        if matches!(
            *method,
            Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
        ) {
            return Ok(());
        }
        let origin = match headers.get(header::ORIGIN) {
            Some(value) => Some(value.to_str().map_err(|_| ApiError::CrossSite)?),
            None => None,
        };
        let parsed = origin.and_then(|o| Url::parse(o).ok()).map(|u| u.origin());
        if parsed.as_ref().is_some_and(|o| self.allowed.contains(o)) {
            return Ok(());
        }
        let fetch_site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
        if fetch_site.is_some_and(|site| site.eq_ignore_ascii_case("cross-site")) {
            return Err(ApiError::CrossSite);
        }
        if origin.is_none() {
            return if self.origin_required {
                Err(ApiError::CrossSite)
            } else {
                Ok(())
            };
        }
        // "null" and anything unparsable is no origin of ours.
        let Some(origin) = parsed.filter(url::Origin::is_tuple) else {
            return Err(ApiError::CrossSite);
        };
        if self.own_origin(&origin, headers, peer) == Some(origin) {
            Ok(())
        } else {
            Err(ApiError::CrossSite)
        }
    }

    /// The origin the browser sent this request to, as well as it can be
    /// known. Without `public_url` and forwarded headers the scheme is not
    /// known: the `Origin`'s own is taken, so host and port decide.
    fn own_origin(
        &self,
        origin: &url::Origin,
        headers: &HeaderMap,
        peer: Option<SocketAddr>,
    ) -> Option<url::Origin> {
        if let Some(public) = &self.public {
            return Some(public.clone());
        }
        let url::Origin::Tuple(origin_scheme, ..) = origin else {
            return None;
        };
        let forwarded = self
            .is_trusted_proxy(peer)
            .then(|| first_forwarded(headers, "x-forwarded-host"))
            .flatten();
        let (scheme, authority) = match forwarded {
            Some(host) => {
                let scheme = first_forwarded(headers, "x-forwarded-proto")
                    .map(str::to_ascii_lowercase)
                    .unwrap_or_else(|| origin_scheme.clone());
                (scheme, host)
            }
            None => (
                origin_scheme.clone(),
                headers.get(header::HOST)?.to_str().ok()?,
            ),
        };
        let url = Url::parse(&format!("{scheme}://{authority}")).ok()?;
        // An authority with a path or user info is no authority.
        (url.path() == "/" && url.username().is_empty()).then(|| url.origin())
    }

    fn is_trusted_proxy(&self, peer: Option<SocketAddr>) -> bool {
        from_trusted_proxy(peer, &self.trusted_proxies)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn check(p: &OriginPolicy, method: &Method, headers: &HeaderMap) -> Result<(), ApiError> {
        p.check(method, headers, None)
    }

    fn from_peer(peer: &str) -> Option<SocketAddr> {
        Some(SocketAddr::new(peer.parse().unwrap(), 5000))
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn same_origin_and_headerless_requests_pass() {
        let p = OriginPolicy::default();
        assert!(check(&p, &Method::POST, &headers(&[])).is_ok());
        let same = headers(&[
            ("host", "auth.example.com"),
            ("origin", "https://auth.example.com"),
        ]);
        assert!(check(&p, &Method::POST, &same).is_ok());
        assert!(
            check(
                &p,
                &Method::POST,
                &headers(&[("sec-fetch-site", "same-origin")])
            )
            .is_ok()
        );
    }

    #[test]
    fn other_sites_are_refused() {
        let p = OriginPolicy::default();
        let foreign = headers(&[
            ("host", "auth.example.com"),
            ("origin", "https://evil.example"),
        ]);
        assert!(matches!(
            check(&p, &Method::POST, &foreign),
            Err(ApiError::CrossSite)
        ));
        assert!(
            check(
                &p,
                &Method::DELETE,
                &headers(&[("sec-fetch-site", "cross-site")])
            )
            .is_err()
        );
        assert!(
            check(
                &p,
                &Method::PATCH,
                &headers(&[("host", "a"), ("origin", "null")])
            )
            .is_err()
        );
    }

    #[test]
    fn safe_methods_are_never_refused() {
        let p = OriginPolicy::default();
        assert!(
            check(
                &p,
                &Method::GET,
                &headers(&[("sec-fetch-site", "cross-site")])
            )
            .is_ok()
        );
    }

    #[test]
    fn configured_origins_are_allowed() {
        let p = OriginPolicy::new(["https://app.example.com/".to_string()], None, &[]);
        let h = headers(&[
            ("host", "auth.example.com"),
            ("origin", "https://app.example.com"),
        ]);
        assert!(check(&p, &Method::POST, &h).is_ok());
    }

    #[test]
    fn with_same_site_none_a_state_change_must_carry_an_origin() {
        let p = OriginPolicy::default().requiring_origin(true);
        assert!(check(&p, &Method::POST, &headers(&[])).is_err());
        assert!(
            check(
                &p,
                &Method::POST,
                &headers(&[("sec-fetch-site", "same-origin")])
            )
            .is_err()
        );
        let same = headers(&[("host", "a.example"), ("origin", "https://a.example")]);
        assert!(check(&p, &Method::POST, &same).is_ok());
        assert!(check(&p, &Method::GET, &headers(&[])).is_ok());
    }

    #[test]
    fn the_port_is_part_of_the_origin() {
        let p = OriginPolicy::default();
        let other_port = headers(&[
            ("host", "localhost:8000"),
            ("origin", "http://localhost:9000"),
        ]);
        assert!(check(&p, &Method::POST, &other_port).is_err());
        let same_port = headers(&[
            ("host", "localhost:8000"),
            ("origin", "http://localhost:8000"),
        ]);
        assert!(check(&p, &Method::POST, &same_port).is_ok());
        let default_port = headers(&[
            ("host", "example.com:443"),
            ("origin", "https://example.com"),
        ]);
        assert!(check(&p, &Method::POST, &default_port).is_ok());
    }

    #[test]
    fn behind_a_trusted_proxy_the_forwarded_host_and_scheme_are_the_origin() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let p = OriginPolicy::new([], None, &trusted);
        let proxied = headers(&[
            ("host", "tessera"),
            ("x-forwarded-host", "auth.example.com:8443"),
            ("x-forwarded-proto", "https"),
            ("origin", "https://auth.example.com:8443"),
        ]);
        assert!(
            p.check(&Method::POST, &proxied, from_peer("10.0.0.2"))
                .is_ok()
        );
        // The same headers from anyone else are not believed.
        assert!(
            p.check(&Method::POST, &proxied, from_peer("192.0.2.7"))
                .is_err()
        );
        assert!(check(&p, &Method::POST, &proxied).is_err(), "no peer known");
        // The scheme counts when the proxy says it.
        let downgraded = headers(&[
            ("x-forwarded-host", "auth.example.com:8443"),
            ("x-forwarded-proto", "https"),
            ("origin", "http://auth.example.com:8443"),
        ]);
        assert!(
            p.check(&Method::POST, &downgraded, from_peer("10.0.0.2"))
                .is_err()
        );
    }

    #[test]
    fn a_configured_public_url_is_the_origin() {
        let public = HttpUrl::parse("https://auth.example.com/base").unwrap();
        let p = OriginPolicy::new([], Some(&public), &[]);
        let ok = headers(&[
            ("host", "internal:8080"),
            ("origin", "https://auth.example.com"),
        ]);
        assert!(check(&p, &Method::POST, &ok).is_ok());
        let spoofed = headers(&[("host", "evil.example"), ("origin", "https://evil.example")]);
        assert!(check(&p, &Method::POST, &spoofed).is_err());
        assert!(HttpUrl::parse("auth.example.com").is_err());
        assert!(HttpUrl::parse("ftp://auth.example.com").is_err());
    }
}
