//! The ways a request proves who sent it, as the `logout`, `permissions`
//! and `verify-cost` experiments compare them: each is a set of node
//! settings and the credential a user holds.

use serde::Serialize;

use crate::architecture::CredentialKind;

/// JWT signature algorithms tessera signs access tokens with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum JwtAlgorithm {
    /// HMAC-SHA256 with a shared secret (no JWKS: third parties need the secret).
    Hs256,
    /// Ed25519.
    EdDsa,
    /// ECDSA P-256.
    Es256,
    /// RSA PKCS#1 v1.5, 2048 bits.
    Rs256,
}

impl JwtAlgorithm {
    /// Its name in `jwt_algorithm`.
    pub fn setting(self) -> &'static str {
        match self {
            Self::Hs256 => "HS256",
            Self::EdDsa => "EdDSA",
            Self::Es256 => "ES256",
            Self::Rs256 => "RS256",
        }
    }
}

/// One mechanism under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Mechanism {
    /// Server-side session in the node's own memory (the stateful
    /// architecture: no other node knows it).
    SessionMemory,
    /// Server-side session in the node's SQLite database.
    SessionSqlite,
    /// Server-side session in a shared Redis.
    SessionRedis,
    /// Server-side session in Redis with each node's near-cache in front.
    SessionNearCache,
    /// The session sealed (encrypted) in the cookie itself; logouts go on
    /// tessera's revocation list, shared through Redis.
    SealedCookie,
    /// A bearer access token checked by tessera's nodes, signature and
    /// revocation list.
    Jwt(JwtAlgorithm),
    /// The same token verified by a third party with the JWKS alone (no
    /// revocation list): what any other service does with it.
    JwtJwksOnly,
}

impl Mechanism {
    /// Its name in tables, JSON and charts.
    pub fn name(self) -> &'static str {
        match self {
            Self::SessionMemory => "session-memory",
            Self::SessionSqlite => "session-sqlite",
            Self::SessionRedis => "session-redis",
            Self::SessionNearCache => "session-redis-near-cache",
            Self::SealedCookie => "sealed-cookie",
            Self::Jwt(JwtAlgorithm::Hs256) => "jwt-hs256",
            Self::Jwt(JwtAlgorithm::EdDsa) => "jwt-eddsa",
            Self::Jwt(JwtAlgorithm::Es256) => "jwt-es256",
            Self::Jwt(JwtAlgorithm::Rs256) => "jwt-rs256",
            Self::JwtJwksOnly => "jwt-jwks-only",
        }
    }

    /// What the user holds.
    pub fn credential(self) -> CredentialKind {
        match self {
            Self::SessionMemory
            | Self::SessionSqlite
            | Self::SessionRedis
            | Self::SessionNearCache
            | Self::SealedCookie => CredentialKind::Cookie,
            Self::Jwt(_) | Self::JwtJwksOnly => CredentialKind::Bearer,
        }
    }

    /// Whether the nodes need the lab's Redis.
    pub fn needs_redis(self) -> bool {
        matches!(
            self,
            Self::SessionRedis
                | Self::SessionNearCache
                | Self::SealedCookie
                | Self::Jwt(_)
                | Self::JwtJwksOnly
        )
    }

    /// The node settings (besides the cluster's common ones). `redis_url`
    /// is used when [`Mechanism::needs_redis`]; `shared` says whether the
    /// nodes form a cluster (Redis for revocations) or the node stands
    /// alone (`verify-cost`: the store is then what the mechanism needs
    /// and nothing more).
    pub fn env(self, redis_url: Option<&str>, shared: bool) -> Vec<(String, String)> {
        let mut env: Vec<(&str, String)> = Vec::new();
        let store = match self {
            Self::SessionMemory => "memory",
            Self::SessionSqlite => "sqlite",
            Self::SessionRedis | Self::SessionNearCache => "redis",
            Self::SealedCookie | Self::Jwt(_) | Self::JwtJwksOnly => {
                if shared {
                    "redis"
                } else {
                    "memory"
                }
            }
        };
        env.push(("TESSERA_STORE", store.to_owned()));
        if store == "redis"
            && let Some(url) = redis_url
        {
            env.push(("TESSERA_REDIS_URL", url.to_owned()));
        }
        match self {
            Self::SessionNearCache => env.push(("TESSERA_REDIS_NEAR_CACHE", "100000".to_owned())),
            Self::SealedCookie => env.push(("TESSERA_SESSION_STORAGE", "cookie".to_owned())),
            Self::Jwt(algorithm) => {
                env.push(("TESSERA_JWT_ALGORITHM", algorithm.setting().to_owned()));
            }
            Self::JwtJwksOnly => env.push(("TESSERA_JWT_ALGORITHM", "EdDSA".to_owned())),
            _ => {}
        }
        env.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
    }
}
