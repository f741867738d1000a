//! The checks of a *new* password (sign-up, reset, change, `tessera user
//! add`/`passwd`; never login): the [`PasswordPolicy`] of `tessera-core`,
//! then, when configured, a breached-password service asked by k-anonymity.
//!
//! The service is a trait, [`BreachedPasswords`], so that this library
//! needs no HTTP client: the binary implements it (Have I Been Pwned's range
//! API or an offline mirror of it). Only the first 5 hex digits of the
//! password's SHA-1 leave the process; the suffixes that come back are
//! compared here.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tessera_core::{Email, Password, PasswordPolicy, WeakPassword};
use thiserror::Error;

/// A breached-password corpus queried by hash prefix.
#[async_trait]
pub trait BreachedPasswords: Send + Sync + fmt::Debug + 'static {
    /// The range of `prefix` (5 upper-case hex digits of a SHA-1): lines of
    /// `SUFFIX:COUNT` (the other 35 hex digits and how often that password
    /// was seen), as `GET {url}/range/{prefix}` answers.
    ///
    /// # Errors
    ///
    /// [`BreachCheckUnavailable`] if the service did not answer (in time).
    async fn range(&self, prefix: &str) -> Result<String, BreachCheckUnavailable>;
}

/// The breached-password service did not answer usefully.
#[derive(Debug, Clone, Error)]
#[error("breached-password service unavailable: {0}")]
pub struct BreachCheckUnavailable(pub String);

/// What an unreachable breached-password service means
/// (`breached_password_fail`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BreachFailure {
    /// The password is accepted (the other rules still apply).
    #[default]
    Open,
    /// The password is refused for now (503): nothing unchecked gets in.
    Closed,
}

/// A configured breached-password service.
#[derive(Debug, Clone)]
pub struct BreachCheck {
    /// Where to ask.
    pub source: Arc<dyn BreachedPasswords>,
    /// What a failure to answer means.
    pub on_failure: BreachFailure,
    /// Longest wait for an answer (the source may have its own, shorter).
    pub timeout: Duration,
}

/// Every rule a new password must pass.
#[derive(Debug, Clone, Default)]
pub struct NewPasswordRules {
    /// Length, common passwords, the address's name.
    pub policy: PasswordPolicy,
    /// The breached-password service, if any.
    pub breached: Option<BreachCheck>,
}

/// Why a new password was not accepted.
#[derive(Debug, Clone, Error)]
pub enum NewPasswordRefused {
    /// It breaks a rule (which one is in the message).
    #[error(transparent)]
    Weak(#[from] WeakPassword),
    /// The breached-password service did not answer and
    /// `breached_password_fail` is `closed`.
    #[error("the password could not be checked against known breaches; try again later")]
    Unchecked(BreachCheckUnavailable),
}

impl NewPasswordRules {
    /// Checks `password` as the new password of the account at `email`.
    ///
    /// # Errors
    ///
    /// [`NewPasswordRefused::Weak`] with the rule broken;
    /// [`NewPasswordRefused::Unchecked`] when the breach service failed and
    /// failures close.
    pub async fn check(
        &self,
        password: &Password,
        email: &Email,
    ) -> Result<(), NewPasswordRefused> {
        self.policy.check(password, Some(email))?;
        let Some(breached) = &self.breached else {
            return Ok(());
        };
        let (prefix, suffix) = password.breach_range_key();
        let answer = tokio::time::timeout(breached.timeout, breached.source.range(&prefix))
            .await
            .unwrap_or_else(|_| Err(BreachCheckUnavailable("timed out".into())));
        match answer {
            Ok(range) if in_range(&range, &suffix) => Err(WeakPassword::Breached.into()),
            Ok(_) => Ok(()),
            Err(error) => match breached.on_failure {
                BreachFailure::Open => {
                    tracing::warn!(%error, "password accepted without the breach check (breached_password_fail = open)");
                    Ok(())
                }
                BreachFailure::Closed => Err(NewPasswordRefused::Unchecked(error)),
            },
        }
    }
}

/// Whether a range answer lists `suffix` with a count above zero (padding
/// entries of the real service have count 0).
fn in_range(range: &str, suffix: &str) -> bool {
    range.lines().any(|line| {
        let Some((found, count)) = line.trim().split_once(':') else {
            return false;
        };
        found.eq_ignore_ascii_case(suffix) && count.trim().parse::<u64>().is_ok_and(|n| n > 0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Fixed(Result<String, ()>);

    #[async_trait]
    impl BreachedPasswords for Fixed {
        async fn range(&self, _prefix: &str) -> Result<String, BreachCheckUnavailable> {
            self.0
                .clone()
                .map_err(|()| BreachCheckUnavailable("down".into()))
        }
    }

    fn rules(answer: Result<String, ()>, on_failure: BreachFailure) -> NewPasswordRules {
        NewPasswordRules {
            policy: PasswordPolicy::default(),
            breached: Some(BreachCheck {
                source: Arc::new(Fixed(answer)),
                on_failure,
                timeout: Duration::from_secs(1),
            }),
        }
    }

    fn email() -> Email {
        Email::parse("zed@example.com").unwrap()
    }

    #[tokio::test]
    async fn a_listed_suffix_is_refused_and_padding_is_not() {
        let password = Password::new("tr0ub4dor and 3");
        let (_, suffix) = password.breach_range_key();
        let listed = rules(
            Ok(format!(
                "0018A45C4D1DEF81644B54AB7F969B88D65:1\r\n{suffix}:42\r\n"
            )),
            BreachFailure::Open,
        );
        assert!(matches!(
            listed.check(&password, &email()).await,
            Err(NewPasswordRefused::Weak(WeakPassword::Breached))
        ));
        let padded = rules(Ok(format!("{suffix}:0\n")), BreachFailure::Open);
        assert!(padded.check(&password, &email()).await.is_ok());
    }

    #[tokio::test]
    async fn an_unanswered_check_opens_or_closes_as_configured() {
        let password = Password::new("tr0ub4dor and 3");
        assert!(
            rules(Err(()), BreachFailure::Open)
                .check(&password, &email())
                .await
                .is_ok()
        );
        assert!(matches!(
            rules(Err(()), BreachFailure::Closed)
                .check(&password, &email())
                .await,
            Err(NewPasswordRefused::Unchecked(_))
        ));
    }
}
