//! The processes the lab starts (nodes, nginx, Redis).
//!
//! Each runs in its own process group: one signal then reaches everything
//! it forked (nginx's workers), and a Ctrl-C in the terminal reaches only
//! the lab, which stops them itself. Dropping a [`ChildProcess`] SIGKILLs
//! its group, so every way out of the lab — normal exit, error, panic, or
//! the interrupted experiment being dropped on SIGINT/SIGTERM — takes the
//! children along. (Only a SIGKILL of the lab itself cannot be handled.)

use std::collections::VecDeque;
use std::fmt;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rustix::process::{Pid, Signal, kill_process_group};
use tokio::process::{Child, ChildStderr, Command};

/// A running child, killed with its whole process group when dropped.
pub struct ChildProcess {
    name: String,
    child: Child,
    group: Pid,
    reaped: bool,
}

impl ChildProcess {
    /// Starts `command` as the leader of a new process group.
    ///
    /// # Errors
    ///
    /// The program cannot be started (e.g. it is not installed).
    pub fn spawn(name: impl Into<String>, mut command: Command) -> anyhow::Result<Self> {
        let name = name.into();
        command
            .process_group(0)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        let child = command
            .spawn()
            .with_context(|| format!("cannot start {name}"))?;
        let group = child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .and_then(Pid::from_raw)
            .with_context(|| format!("{name} has no process id"))?;
        Ok(Self {
            name,
            child,
            group,
            reaped: false,
        })
    }

    /// What the lab calls it in messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its standard error, if it was piped and not taken yet.
    pub fn take_stderr(&mut self) -> Option<ChildStderr> {
        self.child.stderr.take()
    }

    /// SIGKILL to the whole group, then waits for the leader to end.
    ///
    /// # Errors
    ///
    /// Waiting failed.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        self.signal_group();
        self.child
            .wait()
            .await
            .with_context(|| format!("waiting for {} to end", self.name))?;
        self.reaped = true;
        Ok(())
    }

    /// Whether it has ended by itself.
    pub fn has_exited(&mut self) -> bool {
        let exited = matches!(self.child.try_wait(), Ok(Some(_)));
        self.reaped |= exited;
        exited
    }

    fn signal_group(&self) {
        // Until the leader is reaped its pid names this group and no other,
        // so the signal cannot reach an unrelated process.
        if !self.reaped {
            let _ = kill_process_group(self.group, Signal::KILL);
        }
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        self.signal_group();
    }
}

/// The last lines a child wrote, for error messages.
#[derive(Clone, Default)]
pub struct LogTail(Arc<Mutex<VecDeque<String>>>);

impl LogTail {
    const LINES: usize = 20;

    /// Keeps `line`, forgetting the oldest beyond the last 20.
    pub fn push(&self, line: String) {
        let mut lines = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if lines.len() == Self::LINES {
            lines.pop_front();
        }
        lines.push_back(line);
    }
}

impl fmt::Display for LogTail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        for line in lines.iter() {
            writeln!(f, "    {line}")?;
        }
        Ok(())
    }
}

/// Removes the lab's own `TESSERA_*` settings and `RUST_LOG` from a child's
/// environment: the lab decides every setting of the processes it starts.
pub fn clear_settings(command: &mut Command) {
    for (key, _) in std::env::vars_os() {
        let name = key.to_string_lossy();
        if name.starts_with("TESSERA_") || name == "RUST_LOG" {
            command.env_remove(&key);
        }
    }
}

/// A loopback port nothing listens on right now.
///
/// # Errors
///
/// No port could be bound.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("cannot find a free port")?;
    Ok(listener.local_addr()?.port())
}

/// Waits until `addr` accepts connections, while `process` keeps running.
///
/// # Errors
///
/// The process ended, or nothing listened within `patience`.
pub async fn wait_for_listener(
    process: &mut ChildProcess,
    addr: SocketAddr,
    patience: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + patience;
    loop {
        let attempt = tokio::net::TcpStream::connect(addr);
        if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(200), attempt).await {
            return Ok(());
        }
        if process.has_exited() {
            bail!("{} ended before listening on {addr}", process.name());
        }
        if Instant::now() > deadline {
            bail!(
                "{} did not listen on {addr} within {patience:?}",
                process.name()
            );
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
