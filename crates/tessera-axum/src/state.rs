//! What every request handler shares, and the settings it is built from.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ipnet::IpNet;
use tessera_core::{
    ApiKeyStore, ChainKey, DeviceKey, Email, Outbox, Password, PasswordHasher, PerUserCap,
    SessionPolicy, SessionStore, ThrottleStore, TicketStore, TokenStore, UserStore,
};
use tessera_token::KeySet;

use crate::access_log::AccessLog;
use crate::accounts::Accounts;
use crate::apikeys::ApiKeys;
use crate::audit::{AuditTrail, AuditTrailConfig};
use crate::caller::sealed::{CookieKey, CookieSealer};
use crate::cookies::{SameSitePolicy, SessionCookie};
use crate::csrf::{HttpUrl, OriginPolicy};
use crate::error::ApiError;
use crate::hashing::HashingPool;
use crate::mail::{Mail, MailConfig};
use crate::metrics::Metrics;
use crate::passwords::{NewPasswordRefused, NewPasswordRules};
use crate::self_service::SelfServiceConfig;
use crate::throttle::{LocalBuckets, LoginThrottle, ThrottleSettings};
use crate::tokens::{RevocationLifetimes, Revocations, TokenConfig, TokenService};
use crate::traces::Traces;

/// Where session state lives.
#[derive(Debug, Clone, Default)]
pub enum SessionStorage {
    /// In the session store; the cookie holds a random id.
    #[default]
    Server,
    /// In the cookie itself, sealed (AES-256-GCM) with this key.
    Cookie(CookieKey),
}

/// Settings of the HTTP application: plain data. The binary builds this from
/// flags, environment and file; embedders build it in code. Defaults are the
/// secure ones.
#[derive(Debug, Clone)]
pub struct AppConfig {
    /// Idle and absolute session timeouts.
    pub policy: SessionPolicy,
    /// How long a session id replaced after a privilege change keeps
    /// working (and yields the same fresh id), so that requests already in
    /// flight with it are not refused; zero ends it at once.
    pub session_rotation_grace: std::time::Duration,
    /// Name and `SameSite` of the session cookie.
    pub cookie: SessionCookie,
    /// Where session state lives.
    pub session_storage: SessionStorage,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Origins besides our own that may send state-changing requests.
    pub allowed_origins: Vec<String>,
    /// The URL people reach tessera at, when a proxy in front of it does not
    /// say (`X-Forwarded-Proto`/`-Host` from a trusted proxy) or is not
    /// trusted: the origin state-changing requests must come from.
    pub public_url: Option<HttpUrl>,
    /// Where people whose page load a forward-auth proxy refused are sent
    /// (with `rd`, the URL they asked for); `None`: they get the 401.
    pub login_url: Option<HttpUrl>,
    /// Login throttling.
    pub throttle: ThrottleSettings,
    /// Concurrent password hashes.
    pub hash_workers: usize,
    /// Password hashes allowed to wait for a worker.
    pub hash_queue: usize,
    /// Places (running or waiting) one client may hold in the hashing
    /// queue (see [`crate::hashing::fair_share`]).
    pub hash_per_client: usize,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Largest session data object, in bytes of JSON.
    pub session_data_max_bytes: usize,
    /// Live server-side sessions a user may have; a login past it ends the
    /// user's oldest. Sealed-cookie sessions are not stored and not capped.
    pub max_sessions_per_user: PerUserCap,
    /// Access and refresh tokens.
    pub tokens: TokenConfig,
    /// Hand browsers the access token in an `HttpOnly` cookie
    /// (`__Host-tessera-at`) instead of the JSON body.
    pub access_token_cookie: bool,
    /// Outgoing mail: transport, sender address, templates, retries.
    pub mail: MailConfig,
    /// Sign-up, verification, recovery and the other self-service flows.
    pub self_service: SelfServiceConfig,
    /// The rules a new password must pass (never applied at login).
    pub new_passwords: NewPasswordRules,
    /// Count Prometheus metrics ([`Metrics`]); on when a metrics listener
    /// is configured, off by default (nothing is counted then).
    pub metrics: bool,
    /// Distributed tracing: request and store spans with the
    /// OpenTelemetry fields, a trusted proxy's trace continued (see
    /// [`crate::traces`]); `None` (the default): off, at no cost.
    pub traces: Option<Traces>,
    /// The access log: a line per request ([`crate::access_log`]); `None`
    /// (the default): none.
    pub access_log: Option<AccessLog>,
}

impl Default for AppConfig {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let hash_workers = cores.saturating_sub(1).max(1);
        Self {
            policy: SessionPolicy::default(),
            session_rotation_grace: std::time::Duration::from_secs(30),
            cookie: SessionCookie::default(),
            session_storage: SessionStorage::Server,
            trusted_proxies: Vec::new(),
            allowed_origins: Vec::new(),
            public_url: None,
            login_url: None,
            throttle: ThrottleSettings::default(),
            // Leave a core to the async workers so a login flood cannot starve
            // session checks.
            hash_workers,
            hash_queue: 32,
            hash_per_client: crate::hashing::fair_share(hash_workers, 32),
            max_body_bytes: 64 * 1024,
            session_data_max_bytes: 8 * 1024,
            // More devices and browsers than a person uses, and half of what
            // Auth0 keeps per user and application (200 refresh tokens).
            max_sessions_per_user: PerUserCap::new(100).expect("not 0"),
            tokens: TokenConfig::default(),
            access_token_cookie: false,
            mail: MailConfig::default(),
            self_service: SelfServiceConfig::default(),
            new_passwords: NewPasswordRules::default(),
            metrics: false,
            traces: None,
            access_log: None,
        }
    }
}

impl AppConfig {
    /// How long revocations must be kept under these settings: a per-user
    /// cutoff outlives every access token and sealed cookie it refuses.
    pub fn revocation_lifetimes(&self) -> RevocationLifetimes {
        RevocationLifetimes::new(&self.tokens, self.policy.absolute_timeout())
    }

    /// Revocations in `store`, sized for these settings. The `tessera user`
    /// commands use this to end credentials without any key material.
    pub fn revocations(&self, store: Arc<dyn TokenStore>) -> Arc<Revocations> {
        Arc::new(
            Revocations::new(store, self.revocation_lifetimes())
                .with_sealed_cap(self.tokens.max_sealed_revocations_per_user),
        )
    }

    /// Account changes over these stores, with every effect these settings
    /// call for (see [`Accounts`]).
    pub fn accounts(
        &self,
        users: Arc<dyn UserStore>,
        sessions: Arc<dyn SessionStore>,
        revocations: Arc<Revocations>,
        audit: AuditTrail,
    ) -> Accounts {
        let sealed = matches!(self.session_storage, SessionStorage::Cookie(_));
        Accounts::new(users, sessions, revocations, sealed, audit)
    }
}

/// The stores the service runs on.
#[derive(Clone)]
pub struct Backends {
    /// Server-side sessions.
    pub sessions: Arc<dyn SessionStore>,
    /// Users and the audit log.
    pub users: Arc<dyn UserStore>,
    /// Tickets (mailed single-use links), beside the users.
    pub tickets: Arc<dyn TicketStore>,
    /// Refresh families and revocations.
    pub tokens: Arc<dyn TokenStore>,
    /// Login-throttling buckets: shared by a cluster (Redis), or this
    /// process's own ([`LocalBuckets`]).
    pub throttle: Arc<dyn ThrottleStore>,
    /// The mail outbox: in the user store (SQLite or PostgreSQL; memory for
    /// the memory store).
    pub outbox: Arc<dyn Outbox>,
    /// API keys (beside the users).
    pub api_keys: Arc<dyn ApiKeyStore>,
}

impl Backends {
    /// Everything in one store that implements every contract (memory,
    /// SQLite), with this process's throttling buckets.
    pub fn single<S>(store: Arc<S>) -> Self
    where
        S: SessionStore + UserStore + TokenStore + TicketStore + Outbox + ApiKeyStore,
    {
        Self {
            sessions: Arc::clone(&store) as Arc<dyn SessionStore>,
            users: Arc::clone(&store) as Arc<dyn UserStore>,
            outbox: Arc::clone(&store) as Arc<dyn Outbox>,
            tickets: Arc::clone(&store) as Arc<dyn TicketStore>,
            api_keys: Arc::clone(&store) as Arc<dyn ApiKeyStore>,
            tokens: store as Arc<dyn TokenStore>,
            throttle: Arc::new(LocalBuckets::default()),
        }
    }
}

impl std::fmt::Debug for Backends {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backends")
            .field("sessions", &self.sessions.backend())
            .field("users", &self.users.backend())
            .finish_non_exhaustive()
    }
}

/// The keys access and refresh tokens need.
#[derive(Debug)]
pub struct TokenKeys {
    /// Signing and verification keys of access tokens.
    pub signing: KeySet,
    /// The secret that derives refresh-token successors.
    pub chain: ChainKey,
}

impl TokenKeys {
    /// Fresh random keys (EdDSA signing). They live as long as the value:
    /// access and refresh tokens issued before a restart stop working after
    /// it. Keep them (the `tessera` binary writes them to its data
    /// directory) wherever tokens must survive restarts.
    ///
    /// # Errors
    ///
    /// Key generation failed (no system randomness).
    pub fn generate() -> Result<Self, tessera_token::TokenError> {
        let now = tessera_core::Timestamp::now().unix_seconds();
        Ok(Self {
            signing: KeySet::generate(tessera_token::Algorithm::EdDSA, now)?,
            chain: ChainKey::generate(),
        })
    }
}

/// The shared state behind every request.
pub struct AppState {
    pub(crate) config: AppConfig,
    pub(crate) sessions: Arc<dyn SessionStore>,
    pub(crate) users: Arc<dyn UserStore>,
    pub(crate) tickets: Arc<dyn TicketStore>,
    pub(crate) sealer: Option<CookieSealer>,
    pub(crate) accounts: Accounts,
    pub(crate) audit: AuditTrail,
    pub(crate) hashing: HashingPool,
    pub(crate) throttle: LoginThrottle,
    pub(crate) origins: OriginPolicy,
    pub(crate) tokens: TokenService,
    pub(crate) mail: Mail,
    pub(crate) api_keys: ApiKeys,
    pub(crate) metrics: Metrics,
    store_up: AtomicBool,
    users_up: AtomicBool,
    /// `GET /openapi.json`, built at its first request ([`crate::openapi`]).
    pub(crate) openapi: std::sync::OnceLock<axum::body::Bytes>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("config", &self.config)
            .field("sessions", &self.sessions.backend())
            .field("users", &self.users.backend())
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// Assembles the state from settings, stores, token keys and a password
    /// hasher. Starts the audit trail's writer: call within a Tokio runtime.
    pub fn new(
        config: AppConfig,
        backends: Backends,
        keys: TokenKeys,
        hasher: PasswordHasher,
    ) -> Arc<Self> {
        let metrics = if config.metrics {
            Metrics::enabled()
        } else {
            Metrics::disabled()
        };
        let backends = crate::store_calls::observed(backends, &metrics, config.traces.is_some());
        let revocations = Arc::new(
            Revocations::new(Arc::clone(&backends.tokens), config.revocation_lifetimes())
                .with_sealed_cap(config.tokens.max_sealed_revocations_per_user)
                .with_metrics(metrics.clone()),
        );
        let devices = DeviceKey::derive(&keys.chain);
        let audit = AuditTrail::spawn(Arc::clone(&backends.users), AuditTrailConfig::default());
        let tokens = TokenService::new(
            config.tokens.clone(),
            keys.signing,
            keys.chain,
            backends.tokens,
            Arc::clone(&revocations),
        )
        .with_audit(audit.clone())
        .with_metrics(metrics.clone());
        let sealer = match &config.session_storage {
            SessionStorage::Server => None,
            SessionStorage::Cookie(key) => Some(CookieSealer::new(key, config.cookie.name())),
        };
        let mail = Mail::new(config.mail.is_configured().then_some(backends.outbox));
        Arc::new(Self {
            accounts: config
                .accounts(
                    Arc::clone(&backends.users),
                    Arc::clone(&backends.sessions),
                    revocations,
                    audit.clone(),
                )
                .with_tickets(Arc::clone(&backends.tickets))
                .with_mail(mail.clone()),
            api_keys: ApiKeys::new(backends.api_keys, audit.clone()),
            audit,
            hashing: HashingPool::new(
                hasher,
                config.hash_workers,
                config.hash_queue,
                config.hash_per_client,
            )
            .with_metrics(metrics.clone()),
            throttle: LoginThrottle::new(config.throttle, backends.throttle, devices),
            origins: OriginPolicy::new(
                config.allowed_origins.iter().cloned(),
                config.public_url.as_ref(),
                &config.trusted_proxies,
            )
            .requiring_origin(config.cookie.same_site() == SameSitePolicy::None),
            tokens,
            sealer,
            mail,
            metrics,
            sessions: backends.sessions,
            users: backends.users,
            tickets: backends.tickets,
            config,
            store_up: AtomicBool::new(true),
            users_up: AtomicBool::new(true),
            openapi: std::sync::OnceLock::new(),
        })
    }

    /// The settings.
    pub fn config(&self) -> &AppConfig {
        &self.config
    }

    /// The token service.
    pub fn tokens(&self) -> &TokenService {
        &self.tokens
    }

    /// Account changes, with all their effects.
    pub fn accounts(&self) -> &Accounts {
        &self.accounts
    }

    /// Outgoing mail (see [`Mail::send`]).
    pub fn mail(&self) -> &Mail {
        &self.mail
    }

    /// API keys: create, list, revoke, verify.
    pub fn api_keys(&self) -> &ApiKeys {
        &self.api_keys
    }

    /// Invites and recovery links made by an admin or operator.
    pub fn operator_mail(&self) -> crate::invites::OperatorMail<'_> {
        crate::invites::OperatorMail {
            users: self.users.as_ref(),
            tickets: self.tickets.as_ref(),
            mail: &self.mail,
            config: &self.config.self_service,
            audit: &self.audit,
        }
    }

    /// Where audit events go (never blocks: see [`AuditTrail::record`]).
    pub fn audit(&self) -> &AuditTrail {
        &self.audit
    }

    /// The session store.
    pub fn sessions(&self) -> &Arc<dyn SessionStore> {
        &self.sessions
    }

    /// The user store.
    pub fn users(&self) -> &Arc<dyn UserStore> {
        &self.users
    }

    /// The password hashing pool (hashes off the async executor).
    pub fn hashing(&self) -> &HashingPool {
        &self.hashing
    }

    /// Whether the session store answered its last probe.
    pub fn store_up(&self) -> bool {
        self.store_up.load(Ordering::Relaxed)
    }

    /// Records the result of a store probe.
    pub fn set_store_up(&self, up: bool) {
        self.store_up.store(up, Ordering::Relaxed);
    }

    /// Whether the user store answered its last probe. Only logins need it:
    /// a node whose user store is down still serves existing sessions.
    pub fn users_up(&self) -> bool {
        self.users_up.load(Ordering::Relaxed)
    }

    /// Records the result of a user-store probe.
    pub fn set_users_up(&self, up: bool) {
        self.users_up.store(up, Ordering::Relaxed);
    }

    /// The service's metrics (disabled unless `AppConfig::metrics`).
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The login throttle, e.g. for periodic pruning.
    pub fn throttle(&self) -> &LoginThrottle {
        &self.throttle
    }
}

impl AppState {
    /// Checks a new password for the account at `email` against every rule
    /// (`AppConfig::new_passwords`): for sign-up, reset and change, never
    /// for login.
    ///
    /// # Errors
    ///
    /// 400 `weak_password` with the rule broken in the message; 503
    /// `password_check_unavailable` when the breached-password service did
    /// not answer and `breached_password_fail` is `closed`.
    pub async fn check_new_password(
        &self,
        password: &Password,
        email: &Email,
    ) -> Result<(), ApiError> {
        self.config
            .new_passwords
            .check(password, email)
            .await
            .map_err(|refused| match refused {
                NewPasswordRefused::Weak(weak) => {
                    ApiError::bad_request("weak_password", weak.to_string())
                }
                NewPasswordRefused::Unchecked(cause) => {
                    ApiError::PasswordCheckUnavailable(cause.to_string())
                }
            })
    }
}
