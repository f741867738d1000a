//! tessera nodes: this very binary, run as `tessera serve`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use tessera_testkit::ProcessGroup;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::ChildStderr;
use tokio::sync::oneshot;

use super::process::{LogTail, clear_settings};

/// How long a node may take to say it listens.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// What every node of one architecture runs with.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    /// The `tessera` binary.
    pub binary: PathBuf,
    /// The data directory the nodes share (users; refresh families when the
    /// store is SQLite).
    pub data_dir: PathBuf,
    /// `TESSERA_*` settings.
    pub env: Vec<(String, String)>,
}

/// One running (or killed) node.
pub struct Node {
    name: String,
    spec: NodeSpec,
    addr: SocketAddr,
    process: Option<ProcessGroup>,
}

impl Node {
    /// Starts `tessera serve` on a free port and waits until it listens.
    ///
    /// # Errors
    ///
    /// The node did not start; the message carries its last log lines.
    pub async fn start(index: usize, spec: NodeSpec) -> anyhow::Result<Self> {
        let name = format!("node {}", index + 1);
        let wildcard = SocketAddr::from(([127, 0, 0, 1], 0));
        let (process, addr) = launch(&name, &spec, wildcard).await?;
        Ok(Self {
            name,
            spec,
            addr,
            process: Some(process),
        })
    }

    /// Its listening address (kept across restarts).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its name in messages (`node 1`, ...).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The process id of the running node (for its CPU time).
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(ProcessGroup::id)
    }

    /// SIGTERM: the node finishes its requests in flight and exits (a
    /// graceful removal); SIGKILL after `grace`.
    ///
    /// # Errors
    ///
    /// Waiting for the process failed.
    pub async fn terminate(&mut self, grace: Duration) -> anyhow::Result<()> {
        if let Some(mut process) = self.process.take() {
            tokio::task::spawn_blocking(move || process.terminate(grace))
                .await
                .context("the stop was cancelled")??;
        }
        Ok(())
    }

    /// SIGKILL: no chance to finish anything.
    ///
    /// # Errors
    ///
    /// Waiting for the process failed.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut process) = self.process.take() {
            process.kill()?;
        }
        Ok(())
    }

    /// Starts it again on the same address, with the same settings.
    ///
    /// # Errors
    ///
    /// As [`Node::start`].
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.kill()?;
        let (process, _) = launch(&self.name, &self.spec, self.addr).await?;
        self.process = Some(process);
        Ok(())
    }
}

async fn launch(
    name: &str,
    spec: &NodeSpec,
    listen: SocketAddr,
) -> anyhow::Result<(ProcessGroup, SocketAddr)> {
    let mut command = Command::new(&spec.binary);
    clear_settings(&mut command);
    command
        .arg("--data-dir")
        .arg(&spec.data_dir)
        .args(["serve", "--listen", &listen.to_string()])
        // Warnings, and the start-up lines that say where it listens (logged
        // under the stable target `tessera::serve`).
        .env("TESSERA_LOG", "warn,tessera::serve=info")
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut process = ProcessGroup::spawn(name, &mut command)?.kill_on_drop();
    let stderr = process
        .take_stderr()
        .context("the node's log is not piped")?;
    let stderr = ChildStderr::from_std(stderr).context("cannot read the node's log")?;
    let tail = LogTail::default();
    let (ready, listening) = oneshot::channel();
    tokio::spawn(read_log(stderr, ready, tail.clone()));
    match tokio::time::timeout(READY_TIMEOUT, listening).await {
        Ok(Ok(addr)) => Ok((process, addr)),
        Ok(Err(_)) => bail!("{name} exited before it was ready:\n{tail}"),
        Err(_) => bail!("{name} was not ready within {READY_TIMEOUT:?}:\n{tail}"),
    }
}

/// Reads the node's log until it ends (the pipe must be drained or the node
/// would block), reporting the address from `listening on http://ADDR`.
async fn read_log(stderr: ChildStderr, ready: oneshot::Sender<SocketAddr>, tail: LogTail) {
    let mut ready = Some(ready);
    let mut lines = BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(addr) = listening_address(&line)
            && let Some(ready) = ready.take()
        {
            let _ = ready.send(addr);
        }
        tail.push(line);
    }
}

fn listening_address(line: &str) -> Option<SocketAddr> {
    let rest = line.split("listening on http://").nth(1)?;
    rest.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_address_in_the_start_up_line() {
        let line = "2026-01-01T00:00:00Z  INFO tessera::serve: listening on http://127.0.0.1:4321 address=127.0.0.1:4321";
        assert_eq!(
            listening_address(line),
            Some(SocketAddr::from(([127, 0, 0, 1], 4321)))
        );
        assert_eq!(listening_address("INFO tessera::serve: stopped"), None);
    }
}
