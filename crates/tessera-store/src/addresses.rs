//! Re-normalising stored addresses (SQLite migration 6, PostgreSQL 3): what
//! the migrations log.

use tessera_core::AddressCollision;

/// Logs what re-normalising addresses did: counts and user ids, never an
/// address.
pub(crate) fn report(updated: usize, collisions: &[AddressCollision]) {
    tracing::info!(
        updated,
        collisions = collisions.len(),
        "stored e-mail addresses re-normalised"
    );
    for c in collisions {
        tracing::warn!(
            user = %c.user,
            holder = ?c.holder.map(|h| h.to_string()),
            "an account's address is another spelling of another account's (or is no longer \
             valid) and was left as it was; `tessera user collisions` lists them"
        );
    }
}
