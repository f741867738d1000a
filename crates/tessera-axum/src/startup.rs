//! Start-up: from a typed [`ServiceConfig`] to a running service.
//!
//! [`Service::start`] opens the stores the configuration names, subscribes
//! to a cluster's revocation announcements *before* the first full load of
//! the revocation list (so a revocation saved in between is not missed),
//! builds the [`AppState`], and spawns the background tasks: maintenance
//! (purges, store probes, periodic revocation sync), the announcement
//! listener and the key reload. The `tessera` binary and apps that embed
//! tessera start it the same way; neither can forget a step.
//!
//! Nothing here reads the environment, flags or configuration files: the
//! binary resolves those into a [`ServiceConfig`] and hands over the key
//! material ([`TokenKeys`]).

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use tessera_core::{
    ApiKeyStore, Outbox, PasswordHasher, SessionStore, StoreError, TicketStore, TokenStore,
    UserStore,
};
use tessera_store::{
    MemoryStore, PostgresOptions, PostgresUserStore, RedisOptions, RedisStore, RedisThrottle,
    RevocationEvent, SqliteOptions, SqliteStore,
};
use tessera_token::KeySet;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::connections::ConnectionLimits;
use crate::server::{Maintenance, spawn_maintenance};
use crate::state::{AppConfig, AppState, Backends, TokenKeys};
use crate::throttle::LocalBuckets;

/// Where sessions, refresh families, revocations and login counters live.
#[derive(Debug, Clone, Default)]
pub enum SessionBackend {
    /// The embedded SQLite database (durable).
    #[default]
    Sqlite,
    /// Process memory: everything ends with the process.
    Memory,
    /// Redis, shared by the nodes of a cluster.
    Redis(RedisOptions),
}

/// Where users and the audit log live.
#[derive(Clone, Default)]
pub enum UserBackend {
    /// The embedded SQLite database.
    #[default]
    Sqlite,
    /// PostgreSQL, shared by the nodes of a cluster (migrated on connect).
    Postgres {
        /// `postgres://...` (may carry a password: never printed).
        url: String,
        /// Pool and timeouts.
        options: PostgresOptions,
    },
}

impl std::fmt::Debug for UserBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite => f.write_str("Sqlite"),
            Self::Postgres { options, .. } => f
                .debug_struct("Postgres")
                .field("url", &"<redacted>")
                .field("options", options)
                .finish(),
        }
    }
}

/// Everything the service is built from, typed and validated.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// The HTTP application.
    pub app: AppConfig,
    /// The embedded database file (used for whatever is not elsewhere).
    pub database: PathBuf,
    /// Its options.
    pub sqlite: SqliteOptions,
    /// Sessions, tokens and throttling.
    pub sessions: SessionBackend,
    /// Users.
    pub users: UserBackend,
    /// Background work.
    pub maintenance: Maintenance,
    /// Deadlines and caps of the connections [`Service::serve`] accepts.
    pub connections: ConnectionLimits,
    /// Where to answer Prometheus scrapes (`GET /metrics`), on a listener
    /// of its own; `None` (the default): no metrics are counted.
    pub metrics_listen: Option<std::net::SocketAddr>,
}

/// Sessions a server keeps in its read cache in front of SQLite by default
/// (commands open the database without a cache).
pub const SQLITE_SESSION_CACHE: usize = 100_000;

impl ServiceConfig {
    /// The defaults, with the embedded database at `database`.
    pub fn new(database: impl Into<PathBuf>) -> Self {
        Self {
            app: AppConfig::default(),
            database: database.into(),
            sqlite: SqliteOptions {
                session_cache: SQLITE_SESSION_CACHE,
                ..SqliteOptions::default()
            },
            sessions: SessionBackend::default(),
            users: UserBackend::default(),
            maintenance: Maintenance::default(),
            connections: ConnectionLimits::default(),
            metrics_listen: None,
        }
    }
}

/// What start-up could not do.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// A store could not be opened or did not answer.
    // Not `source`: that would make it the error's source too, and a chain
    // printer (`{:#}`) would say it twice.
    #[error("cannot use {what}: {cause}")]
    Store {
        /// Which store, in the words of its settings.
        what: &'static str,
        /// Why.
        cause: StoreError,
    },
    /// A background task could not be set up.
    #[error("start-up failed: {0}")]
    Setup(String),
}

fn store(what: &'static str) -> impl FnOnce(StoreError) -> StartupError {
    move |cause| StartupError::Store { what, cause }
}

/// Who opens the stores: a long-running server, or a short command on the
/// same data (which reads and writes the stores directly, with no caches,
/// and cannot reach a memory-store server's memory: it works on the data
/// directory instead).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// `tessera serve`, or an embedding app.
    Server,
    /// `tessera user ...` and other administrative commands.
    Command,
}

/// The stores the configuration names, open.
#[derive(Debug, Clone)]
pub struct OpenStores {
    /// For the application.
    pub backends: Backends,
    /// The Redis store, when that is the session backend (for its extras).
    pub redis: Option<RedisStore>,
}

/// Opens the stores `config` names.
///
/// # Errors
///
/// A store that cannot be opened or reached.
pub async fn open_stores(
    config: &ServiceConfig,
    purpose: Purpose,
) -> Result<OpenStores, StartupError> {
    let server = purpose == Purpose::Server;
    let needs_database = !matches!(
        (&config.sessions, &config.users, purpose),
        (SessionBackend::Redis(_), UserBackend::Postgres { .. }, _)
            | (
                SessionBackend::Memory,
                UserBackend::Postgres { .. },
                Purpose::Server
            )
    );
    let database = if needs_database {
        let options = SqliteOptions {
            session_cache: if server {
                config.sqlite.session_cache
            } else {
                0
            },
            ..config.sqlite.clone()
        };
        Some(SqliteStore::open(&config.database, options).map_err(store("the embedded database"))?)
    } else {
        None
    };
    let embedded = || database.clone().expect("opened when needed");
    // Users and what lives beside them (tickets, the outbox, API keys) share
    // one store.
    let stores: AccountStores = match &config.users {
        UserBackend::Sqlite => AccountStores::of(Arc::new(embedded())),
        UserBackend::Postgres { url, options } => AccountStores::of(Arc::new(
            PostgresUserStore::connect(url, options.clone())
                .await
                .map_err(store("the PostgreSQL user store (database_url)"))?,
        )),
    };
    let AccountStores {
        users,
        tickets,
        outbox,
        api_keys,
    } = stores;
    let local = || Arc::new(LocalBuckets::default());
    Ok(match &config.sessions {
        SessionBackend::Sqlite => OpenStores {
            backends: Backends {
                users,
                tickets,
                outbox,
                api_keys,
                ..Backends::single(Arc::new(embedded()))
            },
            redis: None,
        },
        SessionBackend::Memory if server => {
            let memory = Arc::new(MemoryStore::new());
            OpenStores {
                backends: Backends {
                    sessions: Arc::clone(&memory) as Arc<dyn SessionStore>,
                    tokens: memory as Arc<dyn TokenStore>,
                    users,
                    tickets,
                    outbox,
                    api_keys,
                    throttle: local(),
                },
                redis: None,
            }
        }
        SessionBackend::Memory => OpenStores {
            backends: Backends {
                users,
                tickets,
                outbox,
                api_keys,
                ..Backends::single(Arc::new(embedded()))
            },
            redis: None,
        },
        SessionBackend::Redis(options) => {
            let options = RedisOptions {
                near_cache: if server { options.near_cache } else { 0 },
                ..options.clone()
            };
            let redis = RedisStore::connect(options)
                .await
                .map_err(store("the Redis store (redis_url)"))?;
            OpenStores {
                backends: Backends {
                    sessions: Arc::new(redis.clone()),
                    tokens: Arc::new(redis.clone()),
                    users,
                    tickets,
                    outbox,
                    api_keys,
                    throttle: Arc::new(RedisThrottle::new(redis.clone())),
                },
                redis: Some(redis),
            }
        }
    })
}

/// The stores that live beside the users (SQLite or PostgreSQL).
struct AccountStores {
    users: Arc<dyn UserStore>,
    tickets: Arc<dyn TicketStore>,
    outbox: Arc<dyn Outbox>,
    api_keys: Arc<dyn ApiKeyStore>,
}

impl AccountStores {
    fn of<S>(store: Arc<S>) -> Self
    where
        S: UserStore + TicketStore + Outbox + ApiKeyStore,
    {
        Self {
            users: Arc::clone(&store) as _,
            tickets: Arc::clone(&store) as _,
            outbox: Arc::clone(&store) as _,
            api_keys: store as _,
        }
    }
}

/// Where a running service finds new signing keys (the binary: the key file
/// that `tessera keys rotate` rewrites). Polled every second.
pub trait KeySource: Send + 'static {
    /// A new key set, if it changed since the last call.
    fn changed(&mut self) -> Option<KeySet>;
}

/// A started service: its state, and the background tasks that keep it
/// honest (stopped when this is dropped). Keep it alive as long as its
/// router serves.
#[derive(Debug)]
pub struct Service {
    state: Arc<AppState>,
    tasks: Vec<JoinHandle<()>>,
    connections: ConnectionLimits,
    metrics_address: Option<std::net::SocketAddr>,
}

impl Drop for Service {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Service {
    /// Opens the stores, loads the revocation list (after subscribing to
    /// announcements), builds the state and spawns the background tasks.
    ///
    /// # Errors
    ///
    /// A store that cannot be opened or reached.
    pub async fn start(config: ServiceConfig, keys: TokenKeys) -> Result<Self, StartupError> {
        Self::start_with(config, keys, None).await
    }

    /// As [`Service::start`], reloading signing keys from `keys_source`.
    ///
    /// # Errors
    ///
    /// As [`Service::start`].
    pub async fn start_with(
        mut config: ServiceConfig,
        keys: TokenKeys,
        key_source: Option<Box<dyn KeySource>>,
    ) -> Result<Self, StartupError> {
        let metrics_listener = match config.metrics_listen {
            Some(address) => Some(TcpListener::bind(address).await.map_err(|e| {
                StartupError::Setup(format!("cannot listen on {address} (metrics_listen): {e}"))
            })?),
            None => None,
        };
        config.app.metrics = config.app.metrics || metrics_listener.is_some();
        config
            .connections
            .check()
            .map_err(|e| StartupError::Setup(e.to_string()))?;
        let stores = open_stores(&config, Purpose::Server).await?;
        log_stores(&config, &stores);
        let hasher = owasp_hasher(&config.app).await?;
        // Subscribe before the full load, so that a revocation saved in
        // between is not missed (it waits in the channel until the state
        // exists).
        let announcements = match &stores.redis {
            Some(redis) => Some(
                redis
                    .watch_revocations()
                    .await
                    .map_err(store("Redis revocation announcements"))?,
            ),
            None => None,
        };
        let maintenance = Maintenance {
            // Redis announces every revocation as it is saved (and the list
            // is reloaded after a reconnect); the periodic reload is a backstop.
            revocation_sync_interval: if stores.redis.is_some() {
                Duration::from_secs(30)
            } else {
                config.maintenance.revocation_sync_interval
            },
            ..config.maintenance
        };
        let state = AppState::new(config.app, stores.backends, keys, hasher);
        let restored = state
            .tokens()
            .revocations()
            .sync()
            .await
            .map_err(store("the revocation list"))?;
        if restored > 0 {
            tracing::info!(restored, "revocation list loaded");
        }
        let mut tasks = spawn_maintenance(Arc::clone(&state), maintenance);
        if let Some(sender) =
            crate::mail::spawn_sender(&state).map_err(|e| StartupError::Setup(e.to_string()))?
        {
            tracing::info!(
                transport = state.config().mail.transport_name(),
                "mail sender started"
            );
            tasks.push(sender);
        }
        if let Some(events) = announcements {
            tasks.push(tokio::spawn(apply_announced_revocations(
                events,
                Arc::clone(&state),
            )));
        }
        if let Some(source) = key_source {
            tasks.push(tokio::spawn(reload_keys(source, Arc::clone(&state))));
        }
        let mut metrics_address = None;
        if let Some(listener) = metrics_listener {
            let address = listener
                .local_addr()
                .map_err(|e| StartupError::Setup(format!("metrics listener: {e}")))?;
            metrics_address = Some(address);
            tracing::info!(target: "tessera::serve", %address, "metrics on http://{address}/metrics");
            let state = Arc::clone(&state);
            tasks.push(tokio::spawn(async move {
                if let Err(error) =
                    crate::metrics::serve(listener, state, std::future::pending()).await
                {
                    tracing::error!(%error, "the metrics listener failed");
                }
            }));
        }
        Ok(Self {
            state,
            tasks,
            connections: config.connections,
            metrics_address,
        })
    }

    /// Where the metrics listener listens (with `metrics_listen`).
    pub fn metrics_address(&self) -> Option<std::net::SocketAddr> {
        self.metrics_address
    }

    /// The shared state.
    pub fn state(&self) -> &Arc<AppState> {
        &self.state
    }

    /// The whole API, to serve or to nest in an app's own router. Serve it
    /// with [`connections::serve`](crate::connections::serve) (or at least
    /// with `into_make_service_with_connect_info::<SocketAddr>()`): logins
    /// throttle by the client's address.
    pub fn router(&self) -> Router {
        crate::app::router(Arc::clone(&self.state))
    }

    /// Serves the API ([`crate::app::service`]: as [`Service::router`], with
    /// no per-route level) on `listener` within the configured
    /// [`ConnectionLimits`] until `shutdown` completes, then finishes
    /// in-flight requests for at most `shutdown_timeout` and returns
    /// ([`connections::serve`](crate::connections::serve)).
    ///
    /// # Errors
    ///
    /// As [`connections::serve`](crate::connections::serve).
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let served = crate::connections::serve(
            listener,
            crate::app::service(Arc::clone(&self.state)),
            self.connections.clone(),
            &self.state.config,
            shutdown,
        )
        .await;
        self.finish(served).await
    }

    /// As [`Service::serve`], speaking HTTPS only, with the certificate
    /// `tls` serves (and replaces when its source changes).
    ///
    /// # Errors
    ///
    /// As [`connections::serve`](crate::connections::serve).
    pub async fn serve_tls(
        self,
        listener: TcpListener,
        tls: crate::tls::ServerTls,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let served = crate::connections::serve_tls(
            listener,
            crate::app::service(Arc::clone(&self.state)),
            self.connections.clone(),
            &self.state.config,
            tls,
            shutdown,
        )
        .await;
        self.finish(served).await
    }

    async fn finish(self, served: std::io::Result<()>) -> std::io::Result<()> {
        // The last requests' audit events may still be queued: write them,
        // briefly (a hung store must not hold the exit).
        let flush = self.state.audit().flush();
        if tokio::time::timeout(AUDIT_FLUSH_AT_EXIT, flush)
            .await
            .is_err()
        {
            tracing::warn!("audit events still queued at exit were not written");
        }
        served
    }
}

/// How long an exiting server waits for queued audit events to be written.
const AUDIT_FLUSH_AT_EXIT: Duration = Duration::from_millis(500);

/// The password hasher at OWASP's argon2id parameters, set up off the
/// executor (the first hash allocates its memory).
async fn owasp_hasher(app: &AppConfig) -> Result<PasswordHasher, StartupError> {
    let started = Instant::now();
    let hasher = tokio::task::spawn_blocking(PasswordHasher::owasp)
        .await
        .map_err(|e| StartupError::Setup(format!("password hasher: {e}")))?;
    tracing::info!(
        hash_ms = started.elapsed().as_millis() as u64,
        workers = app.hash_workers,
        queue = app.hash_queue,
        "argon2id ready (m=19456 KiB, t=2, p=1)"
    );
    Ok(hasher)
}

fn log_stores(config: &ServiceConfig, stores: &OpenStores) {
    let sessions = stores.backends.sessions.as_ref();
    let database = config.database.display().to_string();
    if matches!(
        config.app.session_storage,
        crate::state::SessionStorage::Cookie(_)
    ) {
        tracing::info!(
            "session storage: sealed cookies (AES-256-GCM), no session rows in any store"
        );
    }
    match &config.sessions {
        SessionBackend::Redis(options) => tracing::info!(
            store = sessions.backend(),
            prefix = %options.prefix,
            users = stores.backends.users.backend(),
            "sessions, tokens and throttling in Redis"
        ),
        SessionBackend::Sqlite => tracing::info!(
            store = sessions.backend(),
            %database,
            "sessions and users in the embedded database"
        ),
        SessionBackend::Memory => tracing::warn!(
            store = sessions.backend(),
            users = stores.backends.users.backend(),
            "sessions live in process memory: they are lost when tessera stops (Memory store)"
        ),
    }
}

/// Applies revocations other nodes announce, so that their access tokens
/// are refused here within milliseconds rather than at the next periodic
/// sync; reloads the whole list whenever announcements may have been missed.
async fn apply_announced_revocations(
    mut events: tokio::sync::mpsc::UnboundedReceiver<RevocationEvent>,
    state: Arc<AppState>,
) {
    let revocations = state.tokens().revocations();
    while let Some(event) = events.recv().await {
        match event {
            RevocationEvent::Revoked(revocation) => revocations.list().apply(&revocation),
            RevocationEvent::Resubscribed => match revocations.reload().await {
                Ok(n) => tracing::info!(
                    revocations = n,
                    "revocation list reloaded after reconnecting"
                ),
                Err(e) => {
                    tracing::warn!(error = %e, "revocation list reload failed; the periodic sync will retry")
                }
            },
        }
    }
}

async fn reload_keys(mut source: Box<dyn KeySource>, state: Arc<AppState>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        if let Some(set) = source.changed() {
            tracing::info!(kid = %set.active().kid, "signing keys reloaded");
            state.tokens().replace_keys(set);
        }
    }
}
