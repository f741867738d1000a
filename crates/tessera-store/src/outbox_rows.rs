//! How an outbox row holds a message, for the SQLite and PostgreSQL
//! outboxes alike: the recipient as text and the notice as JSON, both
//! erased (`NULL`) once the message is sent or given up.

use tessera_core::{Email, Notice, OutgoingMail, StoreError};

/// The notice as the `body` column stores it.
pub(crate) fn encode(notice: &Notice) -> Result<String, StoreError> {
    serde_json::to_string(notice).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// The message a row's `recipient` and `body` hold; `None` once erased.
pub(crate) fn decode(
    recipient: Option<String>,
    body: Option<String>,
) -> Result<Option<OutgoingMail>, StoreError> {
    match (recipient, body) {
        (Some(to), Some(body)) => {
            let to = Email::parse(&to).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let notice: Notice =
                serde_json::from_str(&body).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            Ok(Some(OutgoingMail { to, notice }))
        }
        _ => Ok(None),
    }
}
