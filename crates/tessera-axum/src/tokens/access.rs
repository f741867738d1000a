//! Access tokens: what a verified token says about its bearer.

use tessera_core::{Email, FamilyId, Role, SessionHandle, Timestamp, UserId};
use tessera_token::{AccessClaims, TokenError};

/// A verified access token: its claims, and the identity and family they
/// name. Shared from the memo of verified tokens, so a repeated token costs
/// no parsing and no allocation.
#[derive(Debug, Clone)]
pub struct AccessToken {
    /// The verified claims.
    pub claims: AccessClaims,
    /// `sub`.
    pub user_id: UserId,
    /// `email`.
    pub email: Email,
    /// `roles`, as issued.
    pub roles: Vec<Role>,
    /// `email_verified`, as issued (a token from before tessera sent the
    /// claim counts as verified: only operators created accounts then).
    pub email_verified: bool,
    /// `sid`: the refresh family the token belongs to.
    pub family: FamilyId,
    /// The family's public name, as the sessions API shows it.
    pub handle: SessionHandle,
    /// `iat`.
    pub issued_at: Timestamp,
    /// `exp`.
    pub expires_at: Timestamp,
}

impl AccessToken {
    /// Reads the identity out of claims whose signature and times checked out.
    ///
    /// # Errors
    ///
    /// [`TokenError::Claims`] when `sub`, `email` or `roles` are not what
    /// this server issues.
    pub fn from_claims(claims: AccessClaims) -> Result<Self, TokenError> {
        let user_id: UserId = claims.sub.parse().map_err(|_| TokenError::Claims)?;
        // Signed by us: the address as the account had it when the token
        // was issued (possibly a spelling from before the address rules).
        let email = claims
            .email
            .as_deref()
            .filter(|e| e.contains('@'))
            .map(|e| Email::from_sealed(e.to_owned()))
            .ok_or(TokenError::Claims)?;
        let roles = claims
            .roles
            .iter()
            .map(|r| Role::parse(r))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| TokenError::Claims)?;
        Ok(Self {
            user_id,
            email,
            roles,
            email_verified: claims.email_verified.unwrap_or(true),
            family: FamilyId::new(claims.sid.clone()),
            handle: SessionHandle::new(claims.sid.clone()),
            issued_at: Timestamp::from_unix_millis(claims.iat.saturating_mul(1000)),
            expires_at: Timestamp::from_unix_millis(claims.exp.saturating_mul(1000)),
            claims,
        })
    }
}
