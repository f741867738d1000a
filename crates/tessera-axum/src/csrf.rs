//! Cross-site request refusal for cookie-authenticated, state-changing requests.
//!
//! Browsers say where a request comes from: `Sec-Fetch-Site` (all current
//! browsers) and `Origin` (on every cross-origin and every non-GET request).
//! A request is refused when either shows another site. Requests carrying
//! neither header (curl, server-to-server calls) are not from a browser and
//! pass: they cannot ride on a victim's cookies.

use axum::http::{HeaderMap, Method, header};

use crate::error::ApiError;

/// Origins that may make state-changing requests besides the server's own.
#[derive(Debug, Clone, Default)]
pub struct OriginPolicy {
    allowed: Vec<String>,
}

impl OriginPolicy {
    /// Allows the server's own origin plus `allowed` (e.g. `https://app.example.com`).
    pub fn new(allowed: impl IntoIterator<Item = String>) -> Self {
        Self {
            allowed: allowed
                .into_iter()
                .map(|o| o.trim_end_matches('/').to_ascii_lowercase())
                .collect(),
        }
    }

    /// Refuses the request if it changes state and comes from another site.
    ///
    /// # Errors
    ///
    /// [`ApiError::CrossSite`].
    pub fn check(&self, method: &Method, headers: &HeaderMap) -> Result<(), ApiError> {
        if matches!(
            *method,
            Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
        ) {
            return Ok(());
        }
        let origin = match headers.get(header::ORIGIN) {
            Some(value) => Some(
                value
                    .to_str()
                    .map_err(|_| ApiError::CrossSite)?
                    .to_ascii_lowercase(),
            ),
            None => None,
        };
        if origin.as_ref().is_some_and(|o| self.allowed.contains(o)) {
            return Ok(());
        }
        let fetch_site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
        if fetch_site.is_some_and(|site| site.eq_ignore_ascii_case("cross-site")) {
            return Err(ApiError::CrossSite);
        }
        let Some(origin) = origin else {
            return Ok(());
        };
        // Same origin: the Origin's authority is the Host the request was sent to.
        let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
        let authority = origin
            .strip_prefix("https://")
            .or_else(|| origin.strip_prefix("http://"));
        match (authority, host) {
            (Some(authority), Some(host)) if authority.eq_ignore_ascii_case(host) => Ok(()),
            _ => Err(ApiError::CrossSite),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

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
        assert!(p.check(&Method::POST, &headers(&[])).is_ok());
        let same = headers(&[
            ("host", "auth.example.com"),
            ("origin", "https://auth.example.com"),
        ]);
        assert!(p.check(&Method::POST, &same).is_ok());
        assert!(
            p.check(
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
            p.check(&Method::POST, &foreign),
            Err(ApiError::CrossSite)
        ));
        assert!(
            p.check(
                &Method::DELETE,
                &headers(&[("sec-fetch-site", "cross-site")])
            )
            .is_err()
        );
        assert!(
            p.check(
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
            p.check(&Method::GET, &headers(&[("sec-fetch-site", "cross-site")]))
                .is_ok()
        );
    }

    #[test]
    fn configured_origins_are_allowed() {
        let p = OriginPolicy::new(["https://app.example.com/".to_string()]);
        let h = headers(&[
            ("host", "auth.example.com"),
            ("origin", "https://app.example.com"),
        ]);
        assert!(p.check(&Method::POST, &h).is_ok());
    }
}
