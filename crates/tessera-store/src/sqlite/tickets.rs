//! The `TicketStore` contract on SQLite.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, Row, params};
use tessera_core::{
    Email, StoreError, Ticket, TicketHash, TicketPurpose, TicketStore, Timestamp, UserId,
};

use super::rows::{corrupt, decode_roles, encode_roles};
use super::{Affected, SqliteStore, to_store_error};

fn ticket_from_row(row: &Row<'_>) -> rusqlite::Result<Ticket> {
    let hash: [u8; 32] = row.get(0)?;
    let purpose: String = row.get(1)?;
    let user: Option<String> = row.get(2)?;
    let email: String = row.get(3)?;
    let roles: String = row.get(4)?;
    Ok(Ticket {
        hash: TicketHash::from_bytes(hash),
        purpose: purpose
            .parse()
            .map_err(|_| corrupt("ticket purpose")(purpose))?,
        user: user
            .map(|u| u.parse::<UserId>())
            .transpose()
            .map_err(|e| corrupt("ticket user")(e.to_string()))?,
        email: Email::from_sealed(email),
        roles: decode_roles(&roles)?,
        created_at: Timestamp::from_unix_millis(row.get(5)?),
        expires_at: Timestamp::from_unix_millis(row.get(6)?),
    })
}

#[async_trait]
impl TicketStore for SqliteStore {
    async fn create_ticket(&self, ticket: &Ticket) -> Result<(), StoreError> {
        let ticket = ticket.clone();
        self.write(Affected::Nothing, move |tx| {
            tx.execute(
                "INSERT INTO tickets (hash, purpose, user_id, email, roles, created_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    ticket.hash.as_bytes(),
                    ticket.purpose.as_str(),
                    ticket.user.map(|u| u.to_string()),
                    ticket.email.as_str(),
                    encode_roles(&ticket.roles),
                    ticket.created_at.unix_millis(),
                    ticket.expires_at.unix_millis(),
                ],
            )
            .map_err(to_store_error)?;
            Ok(())
        })
        .await
    }

    async fn redeem_ticket(
        &self,
        hash: &TicketHash,
        purpose: TicketPurpose,
        now: Timestamp,
    ) -> Result<Option<Ticket>, StoreError> {
        let hash = *hash;
        // One statement on the single writer: the delete is the redemption.
        let ticket = self
            .write(Affected::Nothing, move |tx| {
                tx.query_row(
                    "DELETE FROM tickets WHERE hash = ?1 AND purpose = ?2
                     RETURNING hash, purpose, user_id, email, roles, created_at, expires_at",
                    params![hash.as_bytes(), purpose.as_str()],
                    ticket_from_row,
                )
                .optional()
                .map_err(to_store_error)
            })
            .await?;
        Ok(ticket.filter(|t| now < t.expires_at))
    }

    async fn revoke_tickets(
        &self,
        user: UserId,
        purpose: TicketPurpose,
    ) -> Result<u64, StoreError> {
        self.write(Affected::Nothing, move |tx| {
            let n = tx
                .execute(
                    "DELETE FROM tickets WHERE user_id = ?1 AND purpose = ?2",
                    params![user.to_string(), purpose.as_str()],
                )
                .map_err(to_store_error)?;
            Ok(n as u64)
        })
        .await
    }

    async fn purge_expired_tickets(&self, now: Timestamp) -> Result<u64, StoreError> {
        self.write(Affected::Nothing, move |tx| {
            let n = tx
                .execute(
                    "DELETE FROM tickets WHERE expires_at <= ?1",
                    params![now.unix_millis()],
                )
                .map_err(to_store_error)?;
            Ok(n as u64)
        })
        .await
    }
}
