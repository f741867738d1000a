//! Background maintenance: purges (sessions, token state, audit events past
//! retention), store probes, revocation sync.

use std::sync::Arc;
use std::time::Duration;

use tessera_core::Timestamp;

use crate::state::AppState;

/// How often background maintenance runs.
#[derive(Debug, Clone, Copy)]
pub struct Maintenance {
    /// Between purges of expired sessions (and throttle pruning).
    pub purge_interval: Duration,
    /// Between store health probes.
    pub probe_interval: Duration,
    /// Between reloads of revocations saved by other processes (rounded up
    /// to whole probe intervals). A store that announces revocations as they
    /// happen (Redis) needs this only as a backstop.
    pub revocation_sync_interval: Duration,
    /// How long audit events are kept; older ones go at each purge.
    pub audit_retention: Duration,
}

impl Default for Maintenance {
    fn default() -> Self {
        Self {
            purge_interval: Duration::from_secs(60),
            probe_interval: Duration::from_secs(1),
            revocation_sync_interval: Duration::from_secs(1),
            audit_retention: Duration::from_secs(90 * 24 * 3600),
        }
    }
}

/// The instant before which audit events are past `retention`.
fn audit_cutoff(retention: Duration) -> Timestamp {
    let now = Timestamp::now().unix_millis();
    let keep = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
    Timestamp::from_unix_millis(now.saturating_sub(keep))
}

/// Spawns the background maintenance of `state`: purges of expired
/// sessions and token state, throttle pruning, store probes and the periodic
/// revocation sync. The tasks run until aborted.
pub fn spawn_maintenance(
    state: Arc<AppState>,
    maintenance: Maintenance,
) -> Vec<tokio::task::JoinHandle<()>> {
    let purge = {
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(maintenance.purge_interval);
            loop {
                tick.tick().await;
                match state.sessions.purge_expired(Timestamp::now()).await {
                    Ok(0) => {}
                    Ok(purged) => tracing::info!(purged, "expired sessions purged"),
                    Err(error) => tracing::warn!(%error, "purging expired sessions failed"),
                }
                state.throttle.prune();
                match state.tickets.purge_expired_tickets(Timestamp::now()).await {
                    Ok(0) => {}
                    Ok(purged) => tracing::debug!(purged, "expired tickets purged"),
                    Err(error) => tracing::warn!(%error, "purging expired tickets failed"),
                }
                if let Err(error) = state.tokens.purge().await {
                    tracing::warn!(%error, "purging expired token state failed");
                }
                match state
                    .users
                    .purge_audit(audit_cutoff(maintenance.audit_retention))
                    .await
                {
                    Ok(0) => {}
                    Ok(purged) => tracing::info!(purged, "audit events past retention purged"),
                    Err(error) => tracing::warn!(%error, "purging old audit events failed"),
                }
                let size = state.tokens.revocations().list().len();
                tracing::debug!(
                    families = size.families,
                    tokens = size.tokens,
                    users = size.users,
                    sealed = size.sealed,
                    sealed_cutoffs = size.sealed_cutoffs,
                    "revocation list size"
                );
            }
        })
    };
    let probe = tokio::spawn(async move {
        let mut tick = tokio::time::interval(maintenance.probe_interval);
        let mut last_sync = tokio::time::Instant::now();
        loop {
            tick.tick().await;
            let started = std::time::Instant::now();
            let up = state.sessions.ping().await.is_ok();
            state
                .metrics()
                .store_probe("sessions", up, started.elapsed());
            let started = std::time::Instant::now();
            let users_up = state.users.ping().await.is_ok();
            state
                .metrics()
                .store_probe("users", users_up, started.elapsed());
            if users_up != state.users_up() {
                if users_up {
                    tracing::info!(
                        backend = state.users.backend(),
                        "user store is answering again"
                    );
                } else {
                    tracing::warn!(
                        backend = state.users.backend(),
                        "user store probe failed: logins fail, sessions and tokens keep working"
                    );
                }
            }
            state.set_users_up(users_up);
            // Revocations made by other processes (the user CLI) arrive here.
            if last_sync.elapsed() >= maintenance.revocation_sync_interval {
                last_sync = tokio::time::Instant::now();
                if let Err(error) = state.tokens.revocations().sync().await {
                    tracing::warn!(%error, "could not refresh the revocation list");
                }
            }
            if up != state.store_up() {
                if up {
                    tracing::info!("store is answering again");
                } else {
                    tracing::warn!("store probe failed");
                }
            }
            state.set_store_up(up);
        }
    });
    vec![purge, probe]
}
