//! `tessera serve`.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tessera_axum::{AppState, Maintenance};
use tessera_core::{PasswordHasher, SessionStore, UserStore};
use tessera_store::SqliteStore;
use tracing_subscriber::EnvFilter;

use crate::settings::{Settings, StoreKind};

/// Starts the server and runs until SIGTERM or Ctrl-C.
pub fn run(settings: Settings) -> anyhow::Result<ExitCode> {
    let filter =
        EnvFilter::try_from_default_env().or_else(|_| EnvFilter::try_new(&settings.log))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let app_config = settings.app_config()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    runtime.block_on(serve(settings, app_config))?;
    Ok(ExitCode::SUCCESS)
}

async fn serve(settings: Settings, mut app_config: tessera_axum::AppConfig) -> anyhow::Result<()> {
    let database = crate::commands::user::open_database(&settings, true)?;
    if settings.session_storage == crate::settings::SessionStorage::Cookie {
        let key = crate::keyfiles::cookie_key(&settings)?;
        app_config.cookie_sessions = Some(tessera_axum::caller::sealed::CookieSealer::new(
            &key,
            app_config.cookie.name(),
        ));
        tracing::info!(
            "session storage: sealed cookies (AES-256-GCM), no session rows in any store"
        );
    }
    let users: Arc<dyn UserStore> = crate::commands::user::open_users(&settings, &database).await?;
    let stores = crate::stores::open(&settings, &database, true).await?;
    let sessions = Arc::clone(&stores.sessions);
    if let Some(redis) = &stores.redis {
        app_config.shared_throttle = Some(tessera_axum::state::SharedThrottle(Arc::new(
            tessera_store::RedisThrottle::new(redis.clone()),
        )));
    }

    let started = Instant::now();
    let hasher = tokio::task::spawn_blocking(PasswordHasher::owasp)
        .await
        .context("password hasher setup failed")?;
    tracing::info!(
        hash_ms = started.elapsed().as_millis() as u64,
        workers = app_config.hash_workers,
        queue = app_config.hash_queue,
        "argon2id ready (m=19456 KiB, t=2, p=1)"
    );

    let shutdown = shutdown_signal()?;
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let address = listener.local_addr()?;
    log_store(&settings, &database, sessions.as_ref());

    let token_store = Arc::clone(&stores.tokens);
    let key_set = crate::keyfiles::load_or_create(&settings)?;
    tracing::info!(algorithm = %key_set.active().signing.algorithm(), kid = %key_set.active().kid, "access tokens ready");
    let tokens = tessera_axum::tokens::TokenService::new(
        settings.token_config()?,
        key_set,
        crate::keyfiles::chain_key(&settings)?,
        token_store,
    );
    // Subscribe before the full load, so that a revocation saved in between
    // is not missed (it waits in the channel until the state exists).
    let announcements = match &stores.redis {
        Some(redis) => Some(
            redis
                .watch_revocations()
                .await
                .context("cannot subscribe to Redis revocation announcements")?,
        ),
        None => None,
    };
    let restored = tokens
        .sync_revocations()
        .await
        .context("cannot load the revocation list")?;
    if restored > 0 {
        tracing::info!(restored, "revocation list loaded");
    }
    let state = AppState::new(app_config, sessions, users, hasher, tokens);
    let maintenance = Maintenance {
        purge_interval: Duration::from_secs(settings.purge_interval.max(1)),
        // Redis announces every revocation as it is saved (and the list is
        // reloaded after a reconnect); the periodic reload is a backstop.
        revocation_sync_interval: if stores.redis.is_some() {
            Duration::from_secs(30)
        } else {
            Maintenance::default().revocation_sync_interval
        },
        ..Maintenance::default()
    };
    if settings.jwt_secret.is_none() {
        tokio::spawn(crate::keyfiles::watch(settings.clone(), Arc::clone(&state)));
    }
    if let Some(events) = announcements {
        tokio::spawn(apply_announced_revocations(events, Arc::clone(&state)));
    }
    tracing::info!(%address, store = state.sessions().backend(), "listening on http://{address}");
    tessera_axum::serve(listener, state, maintenance, shutdown).await?;
    tracing::info!("stopped");
    Ok(())
}

/// Applies revocations other nodes announce, so that their access tokens
/// are refused here within milliseconds rather than at the next periodic
/// sync; reloads the whole list whenever announcements may have been missed.
async fn apply_announced_revocations(
    mut events: tokio::sync::mpsc::UnboundedReceiver<tessera_store::RevocationEvent>,
    state: Arc<AppState>,
) {
    use tessera_store::RevocationEvent;
    while let Some(event) = events.recv().await {
        match event {
            RevocationEvent::Revoked(revocation) => state.tokens().revocations().apply(&revocation),
            RevocationEvent::Resubscribed => match state.tokens().reload_revocations().await {
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

fn log_store(settings: &Settings, database: &SqliteStore, sessions: &dyn SessionStore) {
    let path = database.path().display().to_string();
    if settings.store == StoreKind::Redis {
        tracing::info!(store = sessions.backend(), prefix = %settings.redis_prefix, users = %path, "sessions, tokens and throttling in Redis");
    } else if sessions.is_durable() {
        tracing::info!(store = sessions.backend(), database = %path, "sessions and users in the embedded database");
    } else {
        tracing::warn!(
            store = sessions.backend(),
            users = %path,
            "sessions live in process memory: they are lost when tessera stops ({:?} store)",
            settings.store
        );
    }
}

/// Registers the SIGTERM and SIGINT handlers now (before the server says it
/// listens, so a signal sent right after cannot kill it uncleanly) and
/// returns the future that completes on either.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => {},
            _ = interrupt.recv() => {},
        }
        tracing::info!("shutting down: finishing in-flight requests");
    })
}
