//! The Redis server the stateless rows' nodes share: a throwaway
//! `redis-server` (no persistence) on a free port, or one given by URL.

use std::fs::File;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::process::Command;

use super::process::{ChildProcess, free_port, wait_for_listener};

/// A Redis for the lab.
pub struct Redis {
    url: String,
    _process: Option<ChildProcess>,
}

impl Redis {
    /// A server the lab does not own (`--redis-url`).
    pub fn external(url: String) -> Self {
        Self {
            url,
            _process: None,
        }
    }

    /// Starts `redis-server` in `dir`, saving nothing.
    ///
    /// # Errors
    ///
    /// Redis is not installed or does not listen.
    pub async fn start(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let port = free_port()?;
        let log = File::create(dir.join("redis.log"))?;
        let mut command = Command::new("redis-server");
        command
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir)
            .stdout(log)
            .stderr(Stdio::null());
        let mut process = ChildProcess::spawn("redis-server", command)
            .context("redis-server is needed in PATH, or pass --redis-url")?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        if let Err(error) = wait_for_listener(&mut process, addr, Duration::from_secs(10)).await {
            let log = std::fs::read_to_string(dir.join("redis.log")).unwrap_or_default();
            bail!("{error:#}\n{log}");
        }
        Ok(Self {
            url: format!("redis://{addr}"),
            _process: Some(process),
        })
    }

    /// Its URL, for `TESSERA_REDIS_URL`.
    pub fn url(&self) -> &str {
        &self.url
    }
}
