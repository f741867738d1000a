//! The three ways of running a cluster the lab compares, one table row each.

use clap::ValueEnum;

/// How nginx spreads requests over the nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Routing {
    /// `deploy/nginx/sticky.conf`: each client pinned to one node.
    Sticky,
    /// `deploy/nginx/round-robin.conf`: any node, in turn.
    RoundRobin,
}

/// What a simulated user holds after logging in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialKind {
    /// The session cookie from `POST /login`.
    Cookie,
    /// A bearer access token from `POST /token`.
    Bearer,
}

/// One architecture under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub enum Architecture {
    /// Sessions in each node's memory, nginx sticky by client.
    #[value(name = "stateful")]
    Stateful,
    /// Sessions in a shared Redis, nginx round-robin.
    #[value(name = "redis")]
    StatelessRedis,
    /// Signed access tokens any node verifies alone, nginx round-robin.
    #[value(name = "jwt")]
    StatelessJwt,
}

impl Architecture {
    /// The row's name in the table, the JSON and the chart.
    pub fn name(self) -> &'static str {
        match self {
            Self::Stateful => "stateful",
            Self::StatelessRedis => "stateless-redis",
            Self::StatelessJwt => "stateless-jwt",
        }
    }

    /// The nginx configuration in front of the nodes.
    pub fn routing(self) -> Routing {
        match self {
            Self::Stateful => Routing::Sticky,
            Self::StatelessRedis | Self::StatelessJwt => Routing::RoundRobin,
        }
    }

    /// How users authenticate their `/profile` calls.
    pub fn credential(self) -> CredentialKind {
        match self {
            Self::Stateful | Self::StatelessRedis => CredentialKind::Cookie,
            Self::StatelessJwt => CredentialKind::Bearer,
        }
    }

    /// Whether a node holds sessions no other node can serve (so that
    /// killing it must lose them).
    pub fn sessions_live_on_nodes(self) -> bool {
        self == Self::Stateful
    }

    /// Whether the nodes need a Redis server.
    pub fn needs_redis(self) -> bool {
        matches!(self, Self::StatelessRedis | Self::StatelessJwt)
    }

    /// The store settings of its nodes: `TESSERA_STORE`, and
    /// `TESSERA_REDIS_URL` when the store is Redis.
    pub fn store_env(self, redis_url: Option<&str>) -> Vec<(String, String)> {
        let mut env = vec![("TESSERA_STORE".to_owned(), self.store().to_owned())];
        if let (true, Some(url)) = (self.needs_redis(), redis_url) {
            env.push(("TESSERA_REDIS_URL".to_owned(), url.to_owned()));
        }
        env
    }

    fn store(self) -> &'static str {
        match self {
            Self::Stateful => "memory",
            // For the JWT row Redis holds only what the access tokens do not
            // carry: refresh families and revocations. Verifying an access
            // token needs no store at all.
            Self::StatelessRedis | Self::StatelessJwt => "redis",
        }
    }
}
