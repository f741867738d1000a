//! API keys for machines: create (the secret shown once), list, revoke,
//! and the check of a presented key.
//!
//! A presented key is looked up in the store on every request, by its
//! public id, and its secret's SHA-256 compared in constant time: a
//! revocation (a deleted row) is refused by every node at once, with no
//! cache to keep honest. `last_used` is written at most once a minute per
//! key. The `/admin/v1/apikeys` routes and `tessera apikey` both call
//! [`ApiKeys`].

use std::sync::Arc;
use std::time::Duration;

use tessera_core::{
    Actor, ApiKey, ApiKeyId, ApiKeyStore, ApiKeyToken, AuditEvent, AuditKind, InvalidApiKey, Role,
    StoreError, Timestamp,
};

use crate::audit::{AuditContext, AuditTrail};
use crate::error::ApiError;

/// How often `last_used` is written for a key in use.
pub const LAST_USED_INTERVAL: Duration = Duration::from_secs(60);

/// A key's use is recorded in the audit trail when it was last used longer
/// ago than this (or never): its first use in each hour.
pub const USE_AUDIT_INTERVAL: Duration = Duration::from_secs(3600);

/// Why a key could not be created.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The name is unusable.
    #[error(transparent)]
    Invalid(#[from] InvalidApiKey),
    /// The expiry is not in the future.
    #[error("the expiry must be in the future")]
    ExpiryInPast,
    /// The store did not answer.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        match error {
            Error::Invalid(e) => Self::bad_request("invalid_api_key", e.to_string()),
            Error::ExpiryInPast => Self::bad_request("invalid_expiry", error.to_string()),
            Error::Store(e) => Self::from(e),
        }
    }
}

/// The key operations over a store.
#[derive(Clone)]
pub struct ApiKeys {
    store: Arc<dyn ApiKeyStore>,
    audit: AuditTrail,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeys").finish_non_exhaustive()
    }
}

/// A key just created, with its one-time text.
#[derive(Debug)]
pub struct CreatedKey {
    /// The stored key.
    pub key: ApiKey,
    /// The text to hand to the machine; shown once, never stored.
    pub token: ApiKeyToken,
}

impl ApiKeys {
    /// Key operations over `store`, recorded in `audit` (`api_key_created`,
    /// `api_key_revoked`, and `api_key_used` at a key's first use in each
    /// hour, not on every request).
    pub fn new(store: Arc<dyn ApiKeyStore>, audit: AuditTrail) -> Self {
        Self { store, audit }
    }

    /// Creates a key named `name` holding `roles`, working until
    /// `expires_at` (`None`: until revoked).
    ///
    /// # Errors
    ///
    /// An unusable name, an expiry not in the future, store errors.
    pub async fn create(
        &self,
        context: &AuditContext,
        name: &str,
        roles: Vec<Role>,
        expires_at: Option<Timestamp>,
    ) -> Result<CreatedKey, Error> {
        let now = Timestamp::now();
        if expires_at.is_some_and(|end| end <= now) {
            return Err(Error::ExpiryInPast);
        }
        let (key, token) = ApiKey::generate(name, roles, expires_at, now)?;
        self.store.create_api_key(&key).await?;
        self.audit
            .record_now(context.event(AuditKind::ApiKeyCreated).detail(format!(
                "key {} ({}); roles: {}; expires: {}",
                key.id,
                key.name,
                role_list(&key.roles),
                key.expires_at
                    .map_or_else(|| "never".to_owned(), Timestamp::to_rfc3339)
            )))
            .await?;
        Ok(CreatedKey { key, token })
    }

    /// Every key, oldest first (no secrets: none are stored).
    ///
    /// # Errors
    ///
    /// Store errors.
    pub async fn list(&self) -> Result<Vec<ApiKey>, StoreError> {
        self.store.list_api_keys().await
    }

    /// Revokes (deletes) a key; every node refuses it from the next
    /// request on. Returns the key, or `None` if there was none.
    ///
    /// # Errors
    ///
    /// Store errors.
    pub async fn revoke(
        &self,
        context: &AuditContext,
        id: &ApiKeyId,
    ) -> Result<Option<ApiKey>, StoreError> {
        let Some(key) = self.store.api_key(id).await? else {
            return Ok(None);
        };
        if !self.store.delete_api_key(id).await? {
            return Ok(None);
        }
        self.audit
            .record_now(
                context
                    .event(AuditKind::ApiKeyRevoked)
                    .detail(format!("key {} ({})", key.id, key.name)),
            )
            .await?;
        Ok(Some(key))
    }

    /// Checks a presented key (`tsk_...`): the stored key, if it exists,
    /// matches and has not expired. Records its use at most once a minute.
    ///
    /// # Errors
    ///
    /// [`ApiError::InvalidApiKey`] for a malformed, unknown, revoked or
    /// expired key (one answer for all); 503 when the store does not answer.
    pub async fn verify(&self, presented: &str) -> Result<Arc<ApiKey>, ApiError> {
        let token = ApiKeyToken::parse(presented).map_err(|_| ApiError::InvalidApiKey)?;
        let now = Timestamp::now();
        let mut key = self
            .store
            .api_key(token.id())
            .await?
            .filter(|key| key.matches(&token) && key.is_live(now))
            .ok_or(ApiError::InvalidApiKey)?;
        let due = key
            .last_used
            .is_none_or(|last| now >= last.plus(LAST_USED_INTERVAL));
        if key
            .last_used
            .is_none_or(|last| now >= last.plus(USE_AUDIT_INTERVAL))
        {
            // Never waits: a channel send.
            self.audit.record(
                AuditEvent::new(AuditKind::ApiKeyUsed, Actor::ApiKey(key.id.to_string()))
                    .at(now)
                    .detail(format!("key {} ({})", key.id, key.name)),
            );
        }
        if due {
            // Bookkeeping: a failed write does not refuse the request.
            match self.store.touch_api_key(&key.id, now).await {
                Ok(true) => key.last_used = Some(now),
                // Revoked since it was read.
                Ok(false) => return Err(ApiError::InvalidApiKey),
                Err(error) => tracing::warn!(%error, key = %key.id, "last_used not recorded"),
            }
        }
        Ok(Arc::new(key))
    }
}

fn role_list(roles: &[Role]) -> String {
    if roles.is_empty() {
        "-".into()
    } else {
        roles.iter().map(Role::as_str).collect::<Vec<_>>().join(",")
    }
}
