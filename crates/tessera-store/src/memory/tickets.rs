//! The `TicketStore` contract in memory.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use tessera_core::{StoreError, Ticket, TicketHash, TicketPurpose, TicketStore, Timestamp, UserId};

use super::MemoryStore;
use crate::lock;

/// Tickets by hash.
#[derive(Debug, Default)]
pub(super) struct Tickets(Mutex<HashMap<TicketHash, Ticket>>);

#[async_trait]
impl TicketStore for MemoryStore {
    async fn create_ticket(&self, ticket: &Ticket) -> Result<(), StoreError> {
        let mut tickets = lock::lock(&self.tickets.0);
        if tickets.contains_key(&ticket.hash) {
            return Err(StoreError::Conflict);
        }
        tickets.insert(ticket.hash, ticket.clone());
        Ok(())
    }

    async fn redeem_ticket(
        &self,
        hash: &TicketHash,
        purpose: TicketPurpose,
        now: Timestamp,
    ) -> Result<Option<Ticket>, StoreError> {
        let mut tickets = lock::lock(&self.tickets.0);
        if tickets.get(hash).is_none_or(|t| t.purpose != purpose) {
            return Ok(None);
        }
        Ok(tickets.remove(hash).filter(|t| now < t.expires_at))
    }

    async fn revoke_tickets(
        &self,
        user: UserId,
        purpose: TicketPurpose,
    ) -> Result<u64, StoreError> {
        let mut tickets = lock::lock(&self.tickets.0);
        let before = tickets.len();
        tickets.retain(|_, t| !(t.user == Some(user) && t.purpose == purpose));
        Ok((before - tickets.len()) as u64)
    }

    async fn purge_expired_tickets(&self, now: Timestamp) -> Result<u64, StoreError> {
        let mut tickets = lock::lock(&self.tickets.0);
        let before = tickets.len();
        tickets.retain(|_, t| now < t.expires_at);
        Ok((before - tickets.len()) as u64)
    }
}
