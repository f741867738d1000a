//! The Redis server the stateless rows' nodes share: the testkit's
//! throwaway `redis-server` (no persistence) on a free port, or one given
//! by URL.

use std::io;
use std::path::Path;

use anyhow::Context;
use tessera_testkit::RedisServer;

/// A Redis for the lab.
pub struct Redis {
    url: String,
    _server: Option<RedisServer>,
}

impl Redis {
    /// A server the lab does not own (`--redis-url`).
    pub fn external(url: String) -> Self {
        Self { url, _server: None }
    }

    /// Starts `redis-server` in `dir`, saving nothing; it is SIGKILLed when
    /// this is dropped.
    ///
    /// # Errors
    ///
    /// Redis is not installed or does not answer; the message carries its
    /// log.
    pub fn start(dir: &Path) -> anyhow::Result<Self> {
        let server = RedisServer::try_start_in(dir);
        let server = match server {
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                Err(error).context("redis-server is needed in PATH, or pass --redis-url")?
            }
            server => server?,
        };
        Ok(Self {
            url: server.url(),
            _server: Some(server),
        })
    }

    /// Its URL, for `TESSERA_REDIS_URL`.
    pub fn url(&self) -> &str {
        &self.url
    }
}
