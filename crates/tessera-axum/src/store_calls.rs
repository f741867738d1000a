//! Every store call, timed and traced: a wrapper around each store contract
//! that counts the call's latency and failure in the [`Metrics`]
//! (`tessera_store_operation_duration_seconds{store, operation}`,
//! `tessera_store_operation_errors_total{store, operation}`) and, with
//! [`Traces`](crate::traces::Traces) on, runs it in a `store` span (DEBUG,
//! target `tessera::store`) under the request's span (only there: calls
//! of unsampled requests and background work make none).
//!
//! [`observed`] wraps [`Backends`] only when metrics or traces are on: off,
//! the stores are called directly and a request pays for nothing here.
//! `store` is the contract (`sessions`, `users`, `tokens`, ...), not the
//! backend, so the labels are the same on every deployment; the span names
//! the backend (`db.system`).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::{Map, Value};
use tessera_core::mail::{
    ClaimToken, ClaimedMail, MessageId, Outbox, OutboxRecord, OutboxStats, OutgoingMail, Retry,
};
use tessera_core::store::{BucketRule, CacheStats, SealedRevocation};
use tessera_core::{
    ApiKey, ApiKeyId, ApiKeyStore, AuditEvent, AuditPage, AuditQuery, Email, FamilyId,
    PasswordHash, PerUserCap, Revocation, Role, Session, SessionHandle, SessionIdHash,
    SessionStore, StoreError, ThrottleStore, Ticket, TicketHash, TicketPurpose, TicketStore,
    Timestamp, TokenFamily, TokenStore, User, UserCopy, UserId, UserPage, UserQuery, UserStore,
};
use tracing::Instrument as _;

use crate::metrics::{Metrics, StoreOps};
use crate::state::Backends;
use crate::traces::STORE_SPANS;

/// `backends` with every call timed (when `metrics` count) and traced (when
/// `traces`); `backends` itself when neither.
pub(crate) fn observed(backends: Backends, metrics: &Metrics, traces: bool) -> Backends {
    if !metrics.is_enabled() && !traces {
        return backends;
    }
    let sessions_backend = backends.sessions.backend();
    let users_backend = backends.users.backend();
    let observe = |store, backend, ops| Observer {
        store,
        backend,
        ops: metrics.store_ops(store, ops),
        traces,
    };
    Backends {
        sessions: Arc::new(Observed {
            observer: observe("sessions", sessions_backend, SessionOps::NAMES),
            inner: backends.sessions,
        }),
        users: Arc::new(Observed {
            observer: observe("users", users_backend, UserOps::NAMES),
            inner: backends.users,
        }),
        tickets: Arc::new(Observed {
            observer: observe("tickets", users_backend, TicketOps::NAMES),
            inner: backends.tickets,
        }),
        tokens: Arc::new(Observed {
            observer: observe("tokens", sessions_backend, TokenOps::NAMES),
            inner: backends.tokens,
        }),
        throttle: Arc::new(Observed {
            observer: observe("throttle", sessions_backend, ThrottleOps::NAMES),
            inner: backends.throttle,
        }),
        outbox: Arc::new(Observed {
            observer: observe("outbox", users_backend, OutboxOps::NAMES),
            inner: backends.outbox,
        }),
        api_keys: Arc::new(Observed {
            observer: observe("api_keys", users_backend, ApiKeyOps::NAMES),
            inner: backends.api_keys,
        }),
    }
}

/// How one store's calls are observed.
struct Observer {
    /// The contract: the `store` label.
    store: &'static str,
    /// The backend (`sqlite`, `redis`, ...): the span's `db.system`.
    backend: &'static str,
    /// The operations' latencies and errors, by the operation's index.
    ops: Option<Arc<StoreOps>>,
    traces: bool,
}

impl Observer {
    async fn call<R>(
        &self,
        op: usize,
        name: &'static str,
        call: impl Future<Output = Result<R, StoreError>>,
    ) -> Result<R, StoreError> {
        let started = Instant::now();
        // Only under a request's span: an unsampled request makes none, and
        // background calls (probes, purges) are not traced.
        let result = if self.traces && !tracing::Span::current().is_none() {
            let span = tracing::debug_span!(
                target: STORE_SPANS,
                "store",
                otel.name = name,
                otel.kind = "client",
                db.system = self.backend,
                db.operation = name,
                store = self.store,
                error = tracing::field::Empty,
            );
            let result = call.instrument(span.clone()).await;
            if let Err(error) = &result {
                span.record("error", tracing::field::display(error));
            }
            result
        } else {
            call.await
        };
        if let Some(ops) = &self.ops {
            ops.observe(op, started.elapsed(), result.is_err());
        }
        result
    }
}

/// A store whose calls are observed.
struct Observed<T: ?Sized> {
    observer: Observer,
    inner: Arc<T>,
}

/// Implements `$contract` for `Observed<dyn $contract>`: each listed async
/// method calls the inner store through [`Observer::call`]; `$ops` is the enum
/// of their indexes (and names). Items under `plain` are copied as they are.
macro_rules! observed_store {
    (
        $contract:ident, $ops:ident,
        plain { $($plain:item)* }
        $(fn $name:ident(&self $(, $arg:ident: $ty:ty)*) -> $ret:ty;)*
    ) => {
        #[allow(non_camel_case_types, clippy::enum_variant_names)]
        enum $ops {
            $($name,)*
        }

        impl $ops {
            const NAMES: &'static [&'static str] = &[$(stringify!($name),)*];
        }

        #[async_trait]
        impl $contract for Observed<dyn $contract> {
            $($plain)*

            $(
                async fn $name(&self $(, $arg: $ty)*) -> $ret {
                    self.observer
                        .call($ops::$name as usize, stringify!($name), self.inner.$name($($arg),*))
                        .await
                }
            )*
        }
    };
}

observed_store! {
    SessionStore, SessionOps,
    plain {
        fn backend(&self) -> &'static str {
            self.inner.backend()
        }

        fn is_durable(&self) -> bool {
            self.inner.is_durable()
        }

        fn cache_stats(&self) -> Option<CacheStats> {
            self.inner.cache_stats()
        }
    }
    fn create(&self, session: &Session, cap: PerUserCap) -> Result<Vec<Session>, StoreError>;
    fn load(&self, id: &SessionIdHash, now: Timestamp) -> Result<Option<Arc<Session>>, StoreError>;
    fn touch(&self, id: &SessionIdHash, last_seen: Timestamp, expires_at: Timestamp) -> Result<bool, StoreError>;
    fn merge_data(&self, id: &SessionIdHash, patch: &Map<String, Value>, limit: usize) -> Result<Option<Map<String, Value>>, StoreError>;
    fn rotate(&self, old: &SessionIdHash, successor: &Session, grace_until: Timestamp) -> Result<bool, StoreError>;
    fn delete(&self, id: &SessionIdHash) -> Result<bool, StoreError>;
    fn list_for_user(&self, user: UserId, now: Timestamp) -> Result<Vec<Session>, StoreError>;
    fn delete_by_handle(&self, user: UserId, handle: &SessionHandle) -> Result<bool, StoreError>;
    fn delete_all_for_user(&self, user: UserId) -> Result<u64, StoreError>;
    fn update_user_copy(&self, user: UserId, copy: &UserCopy) -> Result<u64, StoreError>;
    fn purge_expired(&self, now: Timestamp) -> Result<u64, StoreError>;
    fn ping(&self) -> Result<(), StoreError>;
}

observed_store! {
    UserStore, UserOps,
    plain {
        fn backend(&self) -> &'static str {
            self.inner.backend()
        }
    }
    fn create(&self, user: &User) -> Result<(), StoreError>;
    fn by_email(&self, email: &Email) -> Result<Option<User>, StoreError>;
    fn by_id(&self, id: UserId) -> Result<Option<User>, StoreError>;
    fn list(&self) -> Result<Vec<User>, StoreError>;
    fn list_page(&self, query: &UserQuery) -> Result<UserPage, StoreError>;
    fn delete_user(&self, id: UserId) -> Result<bool, StoreError>;
    fn set_roles(&self, id: UserId, roles: &[Role]) -> Result<bool, StoreError>;
    fn set_disabled(&self, id: UserId, disabled: bool) -> Result<bool, StoreError>;
    fn set_email(&self, id: UserId, email: &Email) -> Result<bool, StoreError>;
    fn set_email_verified(&self, id: UserId, verified: bool) -> Result<bool, StoreError>;
    fn set_password_hash(&self, id: UserId, hash: &PasswordHash) -> Result<bool, StoreError>;
    fn record_audit(&self, event: &AuditEvent) -> Result<(), StoreError>;
    fn record_audit_batch(&self, events: &[AuditEvent]) -> Result<(), StoreError>;
    fn audit_events(&self, query: &AuditQuery) -> Result<AuditPage, StoreError>;
    fn purge_audit(&self, before: Timestamp) -> Result<u64, StoreError>;
    fn ping(&self) -> Result<(), StoreError>;
}

observed_store! {
    TokenStore, TokenOps,
    plain {}
    fn create_family(&self, family: &TokenFamily, cap: PerUserCap) -> Result<Vec<TokenFamily>, StoreError>;
    fn load_family(&self, id: &FamilyId, now: Timestamp) -> Result<Option<TokenFamily>, StoreError>;
    fn advance_family(&self, id: &FamilyId, generation: u32, new_hash: [u8; 32], now: Timestamp) -> Result<bool, StoreError>;
    fn delete_family(&self, id: &FamilyId) -> Result<bool, StoreError>;
    fn families_for_user(&self, user: UserId, now: Timestamp) -> Result<Vec<TokenFamily>, StoreError>;
    fn delete_families_for_user(&self, user: UserId) -> Result<Vec<TokenFamily>, StoreError>;
    fn save_revocation(&self, revocation: &Revocation) -> Result<(), StoreError>;
    fn save_sealed_revocation(&self, revocation: &SealedRevocation, cap: PerUserCap, session_lifetime: Duration) -> Result<Option<Revocation>, StoreError>;
    fn load_revocations(&self, now: Timestamp, changed_since: Option<Timestamp>) -> Result<Vec<Revocation>, StoreError>;
    fn purge_expired_tokens(&self, now: Timestamp) -> Result<u64, StoreError>;
}

observed_store! {
    ThrottleStore, ThrottleOps,
    plain {
        fn prune(&self) {
            self.inner.prune();
        }
    }
    fn update(&self, kind: &str, name: &str, rule: BucketRule, delta: i64) -> Result<Duration, StoreError>;
}

observed_store! {
    TicketStore, TicketOps,
    plain {}
    fn create_ticket(&self, ticket: &Ticket) -> Result<(), StoreError>;
    fn redeem_ticket(&self, hash: &TicketHash, purpose: TicketPurpose, now: Timestamp) -> Result<Option<Ticket>, StoreError>;
    fn revoke_tickets(&self, user: UserId, purpose: TicketPurpose) -> Result<u64, StoreError>;
    fn purge_expired_tickets(&self, now: Timestamp) -> Result<u64, StoreError>;
}

observed_store! {
    Outbox, OutboxOps,
    plain {}
    fn enqueue(&self, mail: &OutgoingMail, now: Timestamp) -> Result<(), StoreError>;
    fn claim(&self, now: Timestamp, lease: Duration, limit: usize, token: ClaimToken) -> Result<Vec<ClaimedMail>, StoreError>;
    fn mark_sent(&self, id: MessageId, token: ClaimToken, now: Timestamp) -> Result<bool, StoreError>;
    fn mark_failed(&self, id: MessageId, token: ClaimToken, error: &str, retry: Retry, now: Timestamp) -> Result<bool, StoreError>;
    fn stats(&self) -> Result<OutboxStats, StoreError>;
    fn next_due(&self) -> Result<Option<Timestamp>, StoreError>;
    fn record(&self, id: MessageId) -> Result<Option<OutboxRecord>, StoreError>;
    fn purge(&self, before: Timestamp) -> Result<u64, StoreError>;
}

observed_store! {
    ApiKeyStore, ApiKeyOps,
    plain {}
    fn create_api_key(&self, key: &ApiKey) -> Result<(), StoreError>;
    fn api_key(&self, id: &ApiKeyId) -> Result<Option<ApiKey>, StoreError>;
    fn list_api_keys(&self) -> Result<Vec<ApiKey>, StoreError>;
    fn delete_api_key(&self, id: &ApiKeyId) -> Result<bool, StoreError>;
    fn touch_api_key(&self, id: &ApiKeyId, at: Timestamp) -> Result<bool, StoreError>;
}
