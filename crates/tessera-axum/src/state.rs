//! What every request handler shares, and the settings it is built from.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ipnet::IpNet;
use tessera_core::{PasswordHasher, SessionPolicy, SessionStore, UserStore};

use crate::accounts::Accounts;
use crate::cookies::SessionCookie;
use crate::csrf::OriginPolicy;
use crate::hashing::HashingPool;
use crate::throttle::{LoginThrottle, SharedBuckets, ThrottleSettings};
use crate::tokens::TokenService;

/// Settings of the HTTP application. The binary builds this from flags,
/// environment and file; embedders build it in code. Defaults are the secure
/// ones.
#[derive(Debug, Clone)]
pub struct AppConfig {
    /// Idle and absolute session timeouts.
    pub policy: SessionPolicy,
    /// Name and `SameSite` of the session cookie.
    pub cookie: SessionCookie,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Origins besides our own that may send state-changing requests.
    pub allowed_origins: Vec<String>,
    /// Login throttling.
    pub throttle: ThrottleSettings,
    /// Where a cluster keeps the throttling buckets (`None`: in this process).
    pub shared_throttle: Option<SharedThrottle>,
    /// Concurrent password hashes.
    pub hash_workers: usize,
    /// Password hashes allowed to wait for a worker.
    pub hash_queue: usize,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Largest session data object, in bytes of JSON.
    pub session_data_max_bytes: usize,
    /// `Some`: sessions live in sealed cookies instead of the session store.
    pub cookie_sessions: Option<crate::caller::sealed::CookieSealer>,
    /// Hand browsers the access token in an `HttpOnly` cookie
    /// (`__Host-tessera-at`) instead of the JSON body.
    pub access_token_cookie: bool,
}

impl Default for AppConfig {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self {
            policy: SessionPolicy::default(),
            cookie: SessionCookie::default(),
            trusted_proxies: Vec::new(),
            allowed_origins: Vec::new(),
            throttle: ThrottleSettings::default(),
            shared_throttle: None,
            // Leave a core to the async workers so a login flood cannot starve
            // session checks.
            hash_workers: cores.saturating_sub(1).max(1),
            hash_queue: 32,
            max_body_bytes: 64 * 1024,
            session_data_max_bytes: 8 * 1024,
            cookie_sessions: None,
            access_token_cookie: false,
        }
    }
}

/// Throttling buckets shared by a cluster (see [`SharedBuckets`]).
#[derive(Clone)]
pub struct SharedThrottle(pub Arc<dyn SharedBuckets>);

impl std::fmt::Debug for SharedThrottle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedThrottle")
    }
}

/// The shared state behind every request.
pub struct AppState {
    pub(crate) config: AppConfig,
    pub(crate) sessions: Arc<dyn SessionStore>,
    pub(crate) users: Arc<dyn UserStore>,
    pub(crate) accounts: Accounts,
    pub(crate) hashing: HashingPool,
    pub(crate) throttle: LoginThrottle,
    pub(crate) origins: OriginPolicy,
    pub(crate) tokens: TokenService,
    store_up: AtomicBool,
    users_up: AtomicBool,
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
    /// Assembles the state from settings, stores, a password hasher and the
    /// token service.
    pub fn new(
        config: AppConfig,
        sessions: Arc<dyn SessionStore>,
        users: Arc<dyn UserStore>,
        hasher: PasswordHasher,
        tokens: TokenService,
    ) -> Arc<Self> {
        Arc::new(Self {
            accounts: Accounts::new(Arc::clone(&users), Arc::clone(&sessions)),
            hashing: HashingPool::new(hasher, config.hash_workers, config.hash_queue),
            throttle: match &config.shared_throttle {
                Some(shared) => {
                    LoginThrottle::new(config.throttle).with_shared(Arc::clone(&shared.0))
                }
                None => LoginThrottle::new(config.throttle),
            },
            origins: OriginPolicy::new(config.allowed_origins.iter().cloned()),
            tokens,
            sessions,
            users,
            config,
            store_up: AtomicBool::new(true),
            users_up: AtomicBool::new(true),
        })
    }

    /// The token service.
    pub fn tokens(&self) -> &TokenService {
        &self.tokens
    }

    /// The session store.
    pub fn sessions(&self) -> &Arc<dyn SessionStore> {
        &self.sessions
    }

    /// The user store.
    pub fn users(&self) -> &Arc<dyn UserStore> {
        &self.users
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

    /// The login throttle, e.g. for periodic pruning.
    pub fn throttle(&self) -> &LoginThrottle {
        &self.throttle
    }
}
