//! Access-token claims and their validation.

use serde::{Deserialize, Serialize};

use crate::jws::TokenError;

/// The `typ` of tessera access tokens (RFC 9068).
pub const ACCESS_TOKEN_TYPE: &str = "at+jwt";

/// `aud` as JWTs carry it: one string or a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    /// A single audience.
    One(String),
    /// Several audiences.
    Many(Vec<String>),
}

impl Audience {
    fn contains(&self, audience: &str) -> bool {
        match self {
            Self::One(a) => a == audience,
            Self::Many(list) => list.iter().any(|a| a == audience),
        }
    }
}

/// The claims of a tessera access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// Issuer.
    pub iss: String,
    /// Subject: the user id.
    pub sub: String,
    /// Audience.
    pub aud: Audience,
    /// Expiry (seconds since the epoch).
    pub exp: i64,
    /// Issued at.
    pub iat: i64,
    /// Not before.
    pub nbf: i64,
    /// Token id.
    pub jti: String,
    /// The family (refresh chain or session) the token belongs to.
    pub sid: String,
    /// The user's roles when the token was issued.
    #[serde(default)]
    pub roles: Vec<String>,
    /// The user's e-mail address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Whether the user's address was verified (OpenID Connect Core's
    /// standard claim). Absent in tokens issued before tessera sent it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
}

/// What an access token must satisfy besides its signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validation {
    /// Required `iss`.
    pub issuer: String,
    /// Required member of `aud`.
    pub audience: String,
    /// Clock skew allowed for `exp`, `nbf` and `iat`, in seconds.
    pub leeway_secs: i64,
}

impl AccessClaims {
    /// Checks issuer, audience and times against `now` (seconds).
    ///
    /// # Errors
    ///
    /// The first failed check.
    pub fn validate(&self, validation: &Validation, now: i64) -> Result<(), TokenError> {
        if self.iss != validation.issuer {
            return Err(TokenError::Issuer);
        }
        if !self.aud.contains(&validation.audience) {
            return Err(TokenError::Audience);
        }
        if now >= self.exp.saturating_add(validation.leeway_secs) {
            return Err(TokenError::Expired);
        }
        let latest = now.saturating_add(validation.leeway_secs);
        if self.nbf > latest || self.iat > latest {
            return Err(TokenError::NotYetValid);
        }
        Ok(())
    }

    /// Parses claims from a verified payload.
    ///
    /// # Errors
    ///
    /// [`TokenError::Claims`] when a required claim is missing or mistyped.
    pub fn from_payload(payload: &[u8]) -> Result<Self, TokenError> {
        serde_json::from_slice(payload).map_err(|_| TokenError::Claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(now: i64) -> AccessClaims {
        AccessClaims {
            iss: "https://auth.example".into(),
            sub: "u1".into(),
            aud: Audience::One("api".into()),
            exp: now + 900,
            iat: now,
            nbf: now,
            jti: "j".into(),
            sid: "s".into(),
            roles: vec![],
            email: None,
            email_verified: None,
        }
    }

    fn validation() -> Validation {
        Validation {
            issuer: "https://auth.example".into(),
            audience: "api".into(),
            leeway_secs: 30,
        }
    }

    #[test]
    fn times_are_checked_with_leeway() {
        let now = 1_000_000;
        assert!(claims(now).validate(&validation(), now).is_ok());
        assert_eq!(
            claims(now).validate(&validation(), now + 930),
            Err(TokenError::Expired)
        );
        assert!(claims(now).validate(&validation(), now + 929).is_ok());
        let mut future = claims(now);
        future.iat = now + 31;
        assert_eq!(
            future.validate(&validation(), now),
            Err(TokenError::NotYetValid)
        );
        future.iat = now;
        future.nbf = now + 31;
        assert_eq!(
            future.validate(&validation(), now),
            Err(TokenError::NotYetValid)
        );
    }

    #[test]
    fn issuer_and_audience_must_match() {
        let now = 1_000_000;
        let mut c = claims(now);
        c.aud = Audience::Many(vec!["other".into(), "api".into()]);
        assert!(c.validate(&validation(), now).is_ok());
        c.aud = Audience::One("other".into());
        assert_eq!(c.validate(&validation(), now), Err(TokenError::Audience));
        let mut c = claims(now);
        c.iss = "evil".into();
        assert_eq!(c.validate(&validation(), now), Err(TokenError::Issuer));
    }

    #[test]
    fn email_verified_is_the_oidc_claim_and_optional() {
        let mut c = claims(1_000_000);
        let json = serde_json::to_value(&c).unwrap();
        assert!(json.get("email_verified").is_none(), "absent when unknown");
        c.email_verified = Some(false);
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["email_verified"], serde_json::json!(false));
        let back = AccessClaims::from_payload(json.to_string().as_bytes()).unwrap();
        assert_eq!(back.email_verified, Some(false));
        let mut old = json;
        old.as_object_mut().unwrap().remove("email_verified");
        let back = AccessClaims::from_payload(old.to_string().as_bytes()).unwrap();
        assert_eq!(back.email_verified, None);
    }

    #[test]
    fn required_claims_must_be_present() {
        assert_eq!(
            AccessClaims::from_payload(br#"{"iss":"x"}"#),
            Err(TokenError::Claims)
        );
        assert_eq!(AccessClaims::from_payload(b"[]"), Err(TokenError::Claims));
    }
}
