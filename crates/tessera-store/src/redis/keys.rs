//! Key and channel names.

use fred::bytes::Bytes;
use tessera_core::{FamilyId, Route, SessionIdHash, UserId};

/// Builds key names under one prefix.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    prefix: String,
}

impl Keys {
    pub(crate) fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
        }
    }

    fn tag(&self, route: Route) -> String {
        format!("{}:{{r{:04x}}}", self.prefix, route.get())
    }

    /// Prefix of a route's session keys; a session key is this plus the
    /// member. Session keys end in raw bytes (the id hash): every byte of
    /// a session record counts when there are millions.
    pub(crate) fn session_prefix(&self, route: Route) -> Bytes {
        Bytes::from(format!("{}:s:", self.tag(route)))
    }

    /// The index member naming a session: its raw id hash.
    pub(crate) fn session_member(id: &SessionIdHash) -> Bytes {
        Bytes::copy_from_slice(id.as_bytes())
    }

    pub(crate) fn session(&self, id: &SessionIdHash) -> Bytes {
        let mut key = self.session_prefix(id.route()).to_vec();
        key.extend_from_slice(id.as_bytes());
        key.into()
    }

    /// Where a rotated-away id hash names its successor during the grace
    /// window: beside the session key, under the same hash tag.
    pub(crate) fn alias(&self, id: &SessionIdHash) -> Bytes {
        let mut key = format!("{}:a:", self.tag(id.route())).into_bytes();
        key.extend_from_slice(id.as_bytes());
        key.into()
    }

    fn per_user(&self, user: UserId, kind: &str) -> Bytes {
        let mut key = format!("{}:{kind}:", self.tag(Route::of(user))).into_bytes();
        key.extend_from_slice(user.as_uuid().as_bytes());
        key.into()
    }

    pub(crate) fn user_sessions(&self, user: UserId) -> Bytes {
        self.per_user(user, "us")
    }

    pub(crate) fn family_prefix(&self, route: Route) -> String {
        format!("{}:f:", self.tag(route))
    }

    /// The family's key, or `None` for an id that is not well-formed (it
    /// cannot name a stored family).
    pub(crate) fn family(&self, id: &FamilyId) -> Option<String> {
        let route = id.route()?;
        Some(format!("{}{}", self.family_prefix(route), id.as_str()))
    }

    pub(crate) fn user_families(&self, user: UserId) -> Bytes {
        self.per_user(user, "uf")
    }

    /// The revocation list: encoded entries, save times, expiry times.
    pub(crate) fn revocations(&self) -> [String; 3] {
        ["data", "saved", "until"].map(|k| format!("{}:{{rev}}:{k}", self.prefix))
    }

    /// The user's ended sealed sessions (ids of their `Sealed` entries, by
    /// login time), for the cap: beside the revocation list, under its tag.
    pub(crate) fn user_sealed_revocations(&self, user: UserId) -> String {
        format!("{}:{{rev}}:us:{user}", self.prefix)
    }

    /// Where changed and ended sessions are announced (their id hashes).
    pub(crate) fn session_channel(&self) -> String {
        format!("{}:sessions", self.prefix)
    }

    pub(crate) fn revocation_channel(&self) -> String {
        format!("{}:revocations", self.prefix)
    }

    pub(crate) fn throttle(&self, kind: &str, key: &str) -> String {
        format!("{}:throttle:{kind}:{key}", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_core::SessionId;

    #[test]
    fn a_users_keys_share_one_hash_tag() {
        let keys = Keys::new("tessera");
        let user = UserId::generate();
        let id = SessionId::generate_for(Route::of(user)).hash();
        let family = FamilyId::generate_for(Route::of(user));
        let tag = |key: &[u8]| {
            let open = key.iter().position(|&b| b == b'{').unwrap();
            let close = key.iter().position(|&b| b == b'}').unwrap();
            key[open..=close].to_vec()
        };
        let expected = tag(&keys.session(&id));
        assert_eq!(tag(&keys.user_sessions(user)), expected);
        assert_eq!(tag(keys.family(&family).unwrap().as_bytes()), expected);
        assert_eq!(tag(&keys.user_families(user)), expected);
        assert_eq!(tag(&keys.alias(&id)), expected);
        assert_ne!(keys.alias(&id), keys.session(&id));
        let revocations = tag(keys.revocations()[0].as_bytes());
        assert_eq!(
            tag(keys.user_sealed_revocations(user).as_bytes()),
            revocations,
            "a user's sealed revocations are indexed beside the list"
        );
        assert!(
            keys.session(&id)
                .starts_with(&keys.session_prefix(id.route()))
        );
    }
}
