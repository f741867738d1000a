//! The `TicketStore` contract on PostgreSQL.

use async_trait::async_trait;
use tessera_core::{
    Email, Role, StoreError, Ticket, TicketHash, TicketPurpose, TicketStore, Timestamp, UserId,
};

use super::PostgresUserStore;

fn ticket_from_row(row: &tokio_postgres::Row) -> Result<Ticket, StoreError> {
    let corrupt = |what: &str| StoreError::Corrupt(format!("ticket {what}"));
    let hash: Vec<u8> = row.get(0);
    let purpose: String = row.get(1);
    let user: Option<uuid::Uuid> = row.get(2);
    let email: String = row.get(3);
    let roles: String = row.get(4);
    Ok(Ticket {
        hash: TicketHash::from_bytes(hash.try_into().map_err(|_| corrupt("hash"))?),
        purpose: purpose.parse().map_err(|_| corrupt("purpose"))?,
        user: user.map(UserId::from_uuid),
        email: Email::from_sealed(email),
        roles: roles
            .split_whitespace()
            .map(|r| Role::parse(r).map_err(|_| corrupt("role")))
            .collect::<Result<_, _>>()?,
        created_at: Timestamp::from_unix_millis(row.get(5)),
        expires_at: Timestamp::from_unix_millis(row.get(6)),
    })
}

#[async_trait]
impl TicketStore for PostgresUserStore {
    async fn create_ticket(&self, ticket: &Ticket) -> Result<(), StoreError> {
        let ticket = ticket.clone();
        let roles = ticket
            .roles
            .iter()
            .map(Role::as_str)
            .collect::<Vec<_>>()
            .join(" ");
        self.with(|c| async move {
            c.execute(
                "INSERT INTO tickets (hash, purpose, user_id, email, roles, created_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[
                    &ticket.hash.as_bytes().as_slice(),
                    &ticket.purpose.as_str(),
                    &ticket.user.map(|u| *u.as_uuid()),
                    &ticket.email.as_str(),
                    &roles,
                    &ticket.created_at.unix_millis(),
                    &ticket.expires_at.unix_millis(),
                ],
            )
            .await
            .map(|_| ())
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
        let row = self
            .with(|c| async move {
                c.query_opt(
                    "DELETE FROM tickets WHERE hash = $1 AND purpose = $2
                     RETURNING hash, purpose, user_id, email, roles, created_at, expires_at",
                    &[&hash.as_bytes().as_slice(), &purpose.as_str()],
                )
                .await
            })
            .await?;
        Ok(row
            .map(|row| ticket_from_row(&row))
            .transpose()?
            .filter(|t| now < t.expires_at))
    }

    async fn revoke_tickets(
        &self,
        user: UserId,
        purpose: TicketPurpose,
    ) -> Result<u64, StoreError> {
        self.with(|c| async move {
            c.execute(
                "DELETE FROM tickets WHERE user_id = $1 AND purpose = $2",
                &[user.as_uuid(), &purpose.as_str()],
            )
            .await
        })
        .await
    }

    async fn purge_expired_tickets(&self, now: Timestamp) -> Result<u64, StoreError> {
        self.with(|c| async move {
            c.execute(
                "DELETE FROM tickets WHERE expires_at <= $1",
                &[&now.unix_millis()],
            )
            .await
        })
        .await
    }
}
