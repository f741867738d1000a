//! Sessions and users in process memory.

mod audit;
mod outbox;
mod tickets;
mod tokens;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use async_trait::async_trait;
use serde_json::{Map, Value};
use tessera_core::merge::merge_patch;
use tessera_core::store::data_size;
use tessera_core::{
    ApiKey, ApiKeyId, ApiKeyStore, Email, PasswordHash, PerUserCap, Role, Session, SessionHandle,
    SessionIdHash, SessionStore, StoreError, Timestamp, User, UserCopy, UserId, UserPage,
    UserQuery, UserStore,
};

use crate::lock;

/// An in-memory store. Everything is lost when the process ends.
#[derive(Debug, Default)]
pub struct MemoryStore {
    sessions: RwLock<Sessions>,
    users: RwLock<HashMap<UserId, User>>,
    tokens: tokens::TokenState,
    tickets: tickets::Tickets,
    outbox: outbox::OutboxState,
    audit: std::sync::Mutex<audit::AuditLog>,
    api_keys: RwLock<HashMap<ApiKeyId, ApiKey>>,
}

#[derive(Debug, Default)]
struct Sessions {
    by_id: HashMap<SessionIdHash, Arc<Session>>,
    by_user: HashMap<UserId, HashSet<SessionIdHash>>,
    /// Rotated-away id hashes: the successor's hash and the window's end.
    aliases: HashMap<SessionIdHash, Alias>,
}

#[derive(Debug, Clone, Copy)]
struct Alias {
    successor: SessionIdHash,
    until: Timestamp,
}

impl Sessions {
    fn insert(&mut self, session: Session) {
        self.by_user
            .entry(session.user_id)
            .or_default()
            .insert(session.id_hash);
        self.by_id.insert(session.id_hash, Arc::new(session));
    }

    fn remove(&mut self, id: &SessionIdHash) -> Option<Arc<Session>> {
        let session = self.by_id.remove(id)?;
        if let Some(ids) = self.by_user.get_mut(&session.user_id) {
            ids.remove(id);
            if ids.is_empty() {
                self.by_user.remove(&session.user_id);
            }
        }
        Some(session)
    }

    /// The live session `id` names directly.
    fn live(&self, id: &SessionIdHash, now: Timestamp) -> Option<&Arc<Session>> {
        self.by_id.get(id).filter(|s| now < s.expires_at)
    }

    /// The successor an alias names, while the alias is within its window.
    fn alias(&self, id: &SessionIdHash, now: Timestamp) -> Option<SessionIdHash> {
        self.aliases
            .get(id)
            .filter(|a| now < a.until)
            .map(|a| a.successor)
    }

    /// Ends the oldest of the user's sessions live at `now`, other than
    /// `keep`, until `room` of them are left; returns them, oldest first.
    fn end_oldest(
        &mut self,
        user: UserId,
        keep: &SessionIdHash,
        room: usize,
        now: Timestamp,
    ) -> Vec<Session> {
        let mut live: Vec<(Timestamp, SessionIdHash)> = self
            .user_ids(user)
            .into_iter()
            .filter(|id| id != keep)
            .filter_map(|id| self.live(&id, now).map(|s| (s.created_at, id)))
            .collect();
        let Some(excess) = live.len().checked_sub(room).filter(|&n| n > 0) else {
            return Vec::new();
        };
        live.sort_unstable_by(|a, b| (a.0, a.1.as_bytes()).cmp(&(b.0, b.1.as_bytes())));
        live[..excess]
            .iter()
            .filter_map(|(_, id)| self.remove(id))
            .map(Arc::unwrap_or_clone)
            .collect()
    }

    fn user_ids(&self, user: UserId) -> Vec<SessionIdHash> {
        self.by_user
            .get(&user)
            .map(|ids| ids.iter().copied().collect())
            .unwrap_or_default()
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn sessions(&self) -> RwLockReadGuard<'_, Sessions> {
        lock::read(&self.sessions)
    }

    fn sessions_mut(&self) -> RwLockWriteGuard<'_, Sessions> {
        lock::write(&self.sessions)
    }

    fn users(&self) -> RwLockReadGuard<'_, HashMap<UserId, User>> {
        lock::read(&self.users)
    }

    fn users_mut(&self) -> RwLockWriteGuard<'_, HashMap<UserId, User>> {
        lock::write(&self.users)
    }

    fn update_user(&self, id: UserId, f: impl FnOnce(&mut User)) -> bool {
        self.users_mut().get_mut(&id).map(f).is_some()
    }
}

#[async_trait]
impl SessionStore for MemoryStore {
    fn backend(&self) -> &'static str {
        "memory"
    }

    fn is_durable(&self) -> bool {
        false
    }

    async fn create(&self, session: &Session, cap: PerUserCap) -> Result<Vec<Session>, StoreError> {
        let mut sessions = self.sessions_mut();
        // Room for `cap - 1` others beside the new session.
        let room = usize::try_from(cap.get() - 1).unwrap_or(usize::MAX);
        let ended =
            sessions.end_oldest(session.user_id, &session.id_hash, room, session.created_at);
        sessions.insert(session.clone());
        Ok(ended)
    }

    async fn load(
        &self,
        id: &SessionIdHash,
        now: Timestamp,
    ) -> Result<Option<Arc<Session>>, StoreError> {
        let sessions = self.sessions();
        if let Some(session) = sessions.by_id.get(id) {
            return Ok(Some(session).filter(|s| now < s.expires_at).cloned());
        }
        Ok(sessions
            .alias(id, now)
            .and_then(|successor| sessions.live(&successor, now))
            .cloned())
    }

    async fn touch(
        &self,
        id: &SessionIdHash,
        last_seen: Timestamp,
        expires_at: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut sessions = self.sessions_mut();
        let Some(session) = sessions.by_id.get_mut(id).map(Arc::make_mut) else {
            return Ok(false);
        };
        session.last_seen = last_seen;
        session.expires_at = expires_at;
        Ok(true)
    }

    async fn merge_data(
        &self,
        id: &SessionIdHash,
        patch: &Map<String, Value>,
        limit: usize,
    ) -> Result<Option<Map<String, Value>>, StoreError> {
        let mut sessions = self.sessions_mut();
        let Some(session) = sessions.by_id.get_mut(id).map(Arc::make_mut) else {
            return Ok(None);
        };
        let mut data = session.data.clone();
        merge_patch(&mut data, patch);
        if data_size(&data) > limit {
            return Err(StoreError::DataTooLarge { limit });
        }
        session.data = data.clone();
        Ok(Some(data))
    }

    async fn rotate(
        &self,
        old: &SessionIdHash,
        successor: &Session,
        grace_until: Timestamp,
    ) -> Result<bool, StoreError> {
        let now = successor.last_seen;
        let mut sessions = self.sessions_mut();
        let Some(stored) = sessions.remove(old) else {
            // A concurrent rotation to the same successor got here first.
            return Ok(sessions.alias(old, now) == Some(successor.id_hash)
                && sessions.live(&successor.id_hash, now).is_some());
        };
        // What is stored now (roles, data) carries over: a role change or
        // merge since the caller read the session is not undone. Only the
        // id and the activity come from the successor.
        sessions.insert(Session {
            id_hash: successor.id_hash,
            last_seen: successor.last_seen,
            expires_at: successor.expires_at,
            rotate: false,
            ..Session::clone(&stored)
        });
        let until = grace_until.min(successor.expires_at);
        if now < until {
            sessions.aliases.insert(
                *old,
                Alias {
                    successor: successor.id_hash,
                    until,
                },
            );
        }
        Ok(true)
    }

    async fn delete(&self, id: &SessionIdHash) -> Result<bool, StoreError> {
        Ok(self.sessions_mut().remove(id).is_some())
    }

    async fn list_for_user(
        &self,
        user: UserId,
        now: Timestamp,
    ) -> Result<Vec<Session>, StoreError> {
        let sessions = self.sessions();
        let mut live: Vec<Session> = sessions
            .user_ids(user)
            .iter()
            .filter_map(|id| sessions.by_id.get(id))
            .filter(|s| now < s.expires_at)
            .map(|s| Session::clone(s))
            .collect();
        live.sort_by_key(|s| s.created_at);
        Ok(live)
    }

    async fn delete_by_handle(
        &self,
        user: UserId,
        handle: &SessionHandle,
    ) -> Result<bool, StoreError> {
        let mut sessions = self.sessions_mut();
        let target = sessions
            .user_ids(user)
            .into_iter()
            .find(|id| sessions.by_id.get(id).is_some_and(|s| &s.handle == handle));
        Ok(target.and_then(|id| sessions.remove(&id)).is_some())
    }

    async fn delete_all_for_user(&self, user: UserId) -> Result<u64, StoreError> {
        let mut sessions = self.sessions_mut();
        let ids = sessions.user_ids(user);
        Ok(ids
            .iter()
            .filter(|id| sessions.remove(id).is_some())
            .count() as u64)
    }

    async fn update_user_copy(&self, user: UserId, copy: &UserCopy) -> Result<u64, StoreError> {
        let mut sessions = self.sessions_mut();
        let mut changed = 0;
        for id in sessions.user_ids(user) {
            if let Some(session) = sessions.by_id.get_mut(&id).map(Arc::make_mut) {
                session.set_user_copy(copy);
                changed += 1;
            }
        }
        Ok(changed)
    }

    async fn purge_expired(&self, now: Timestamp) -> Result<u64, StoreError> {
        let mut sessions = self.sessions_mut();
        let expired: Vec<SessionIdHash> = sessions
            .by_id
            .values()
            .filter(|s| s.expires_at <= now)
            .map(|s| s.id_hash)
            .collect();
        for id in &expired {
            sessions.remove(id);
        }
        sessions.aliases.retain(|_, alias| now < alias.until);
        Ok(expired.len() as u64)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

#[async_trait]
impl UserStore for MemoryStore {
    fn backend(&self) -> &'static str {
        "memory"
    }

    async fn create(&self, user: &User) -> Result<(), StoreError> {
        let mut users = self.users_mut();
        if users.values().any(|u| u.email == user.email) || users.contains_key(&user.id) {
            return Err(StoreError::Conflict);
        }
        users.insert(user.id, user.clone());
        Ok(())
    }

    async fn by_email(&self, email: &Email) -> Result<Option<User>, StoreError> {
        Ok(self.users().values().find(|u| &u.email == email).cloned())
    }

    async fn by_id(&self, id: UserId) -> Result<Option<User>, StoreError> {
        Ok(self.users().get(&id).cloned())
    }

    async fn list(&self) -> Result<Vec<User>, StoreError> {
        let mut all: Vec<User> = self.users().values().cloned().collect();
        all.sort_by(|a, b| a.email.cmp(&b.email));
        Ok(all)
    }

    async fn list_page(&self, query: &UserQuery) -> Result<UserPage, StoreError> {
        let size = query.page_size();
        let mut matching: Vec<User> = self
            .users()
            .values()
            .filter(|u| query.matches(u) && query.is_after_cursor(u))
            .cloned()
            .collect();
        matching.sort_by(|a, b| (a.email.as_str(), a.id).cmp(&(b.email.as_str(), b.id)));
        matching.truncate(size + 1);
        Ok(UserPage::from_rows(matching, size))
    }

    async fn delete_user(&self, id: UserId) -> Result<bool, StoreError> {
        Ok(self.users_mut().remove(&id).is_some())
    }

    async fn set_roles(&self, id: UserId, roles: &[Role]) -> Result<bool, StoreError> {
        let roles = tessera_core::user::normalise_roles(roles.to_vec());
        Ok(self.update_user(id, |u| u.roles = roles))
    }

    async fn set_disabled(&self, id: UserId, disabled: bool) -> Result<bool, StoreError> {
        Ok(self.update_user(id, |u| u.disabled = disabled))
    }

    async fn set_email(&self, id: UserId, email: &Email) -> Result<bool, StoreError> {
        let mut users = self.users_mut();
        if users.values().any(|u| u.email == *email && u.id != id) {
            return Err(StoreError::Conflict);
        }
        Ok(users
            .get_mut(&id)
            .map(|u| u.email = email.clone())
            .is_some())
    }

    async fn set_email_verified(&self, id: UserId, verified: bool) -> Result<bool, StoreError> {
        Ok(self.update_user(id, |u| u.email_verified = verified))
    }

    async fn set_password_hash(&self, id: UserId, hash: &PasswordHash) -> Result<bool, StoreError> {
        Ok(self.update_user(id, |u| u.password_hash = hash.clone()))
    }

    async fn record_audit(&self, event: &tessera_core::AuditEvent) -> Result<(), StoreError> {
        lock::lock(&self.audit).append(event.clone());
        Ok(())
    }

    async fn audit_events(
        &self,
        query: &tessera_core::AuditQuery,
    ) -> Result<tessera_core::AuditPage, StoreError> {
        Ok(lock::lock(&self.audit).page(query))
    }

    async fn purge_audit(&self, before: Timestamp) -> Result<u64, StoreError> {
        Ok(lock::lock(&self.audit).purge(before))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

#[async_trait]
impl ApiKeyStore for MemoryStore {
    async fn create_api_key(&self, key: &ApiKey) -> Result<(), StoreError> {
        let mut keys = lock::write(&self.api_keys);
        if keys.contains_key(&key.id) {
            return Err(StoreError::Conflict);
        }
        keys.insert(key.id.clone(), key.clone());
        Ok(())
    }

    async fn api_key(&self, id: &ApiKeyId) -> Result<Option<ApiKey>, StoreError> {
        Ok(lock::read(&self.api_keys).get(id).cloned())
    }

    async fn list_api_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        let mut all: Vec<ApiKey> = lock::read(&self.api_keys).values().cloned().collect();
        all.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(all)
    }

    async fn delete_api_key(&self, id: &ApiKeyId) -> Result<bool, StoreError> {
        Ok(lock::write(&self.api_keys).remove(id).is_some())
    }

    async fn touch_api_key(&self, id: &ApiKeyId, at: Timestamp) -> Result<bool, StoreError> {
        Ok(lock::write(&self.api_keys)
            .get_mut(id)
            .map(|k| k.last_used = Some(at))
            .is_some())
    }
}
