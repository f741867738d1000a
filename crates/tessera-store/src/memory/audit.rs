//! The audit log in memory: events in the order they were appended.

use std::collections::VecDeque;

use tessera_core::{
    AuditEvent, AuditId, AuditOrder, AuditPage, AuditQuery, AuditRecord, Timestamp,
};

/// Appended events with increasing ids (never reused, even after a purge).
#[derive(Debug, Default)]
pub(super) struct AuditLog {
    events: VecDeque<AuditRecord>,
    last_id: i64,
}

impl AuditLog {
    pub(super) fn append(&mut self, event: AuditEvent) {
        self.last_id += 1;
        self.events.push_back(AuditRecord {
            id: AuditId(self.last_id),
            event,
        });
    }

    pub(super) fn page(&self, query: &AuditQuery) -> AuditPage {
        let size = query.page_size();
        let wanted = |r: &&AuditRecord| query.matches(&r.event);
        let records: Vec<AuditRecord> = match query.order {
            AuditOrder::NewestFirst => self
                .events
                .iter()
                .rev()
                .filter(|r| query.after.is_none_or(|after| r.id < after))
                .filter(wanted)
                .take(size + 1)
                .cloned()
                .collect(),
            AuditOrder::OldestFirst => self
                .events
                .iter()
                .filter(|r| query.after.is_none_or(|after| r.id > after))
                .filter(wanted)
                .take(size + 1)
                .cloned()
                .collect(),
        };
        AuditPage::from_overfetch(records, size)
    }

    pub(super) fn purge(&mut self, before: Timestamp) -> u64 {
        let len = self.events.len();
        self.events.retain(|r| r.event.at >= before);
        (len - self.events.len()) as u64
    }
}
