//! The HTTPS listener's certificate files (`tls_cert`, `tls_key`) as a
//! [`CertificateSource`]: read at start-up, read again on SIGHUP, and when
//! a poll of the files every [`WATCH_EVERY`] sees them change and then
//! hold still for one more poll (a renewal writes two files; reading
//! between the two writes would pair a new certificate with an old key).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use tessera_axum::tls::{CertificateSource, PemIdentity};
use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::config::TlsFiles;

/// How often the files are looked at (two `stat` calls).
pub const WATCH_EVERY: Duration = Duration::from_secs(2);

/// What a file looks like from outside: replaced or rewritten, one of
/// these changes (a renamed-in file has another inode; a Kubernetes secret
/// volume swaps a symlink, which `metadata` follows).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).ok()?;
    Some(Stamp {
        modified: meta.modified().ok(),
        len: meta.len(),
        inode: meta.ino(),
    })
}

/// `tls_cert` and `tls_key`, watched.
pub struct CertificateFiles {
    files: TlsFiles,
    hangup: Signal,
    tick: tokio::time::Interval,
    /// The files as last loaded.
    loaded: [Option<Stamp>; 2],
    /// A change seen at the last poll, waiting to hold still.
    pending: Option<[Option<Stamp>; 2]>,
}

impl CertificateFiles {
    /// Watches `files` from their current state; handles SIGHUP from now
    /// on. Call within the runtime.
    pub fn watch(files: TlsFiles) -> anyhow::Result<Self> {
        let hangup = signal(SignalKind::hangup()).context("cannot handle SIGHUP")?;
        let mut tick = tokio::time::interval(WATCH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let loaded = stamps(&files);
        Ok(Self {
            files,
            hangup,
            tick,
            loaded,
            pending: None,
        })
    }
}

fn stamps(files: &TlsFiles) -> [Option<Stamp>; 2] {
    [stamp(&files.cert), stamp(&files.key)]
}

fn read(setting: &str, path: &PathBuf) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{setting}: cannot read {}: {e}", path.display()))
}

#[async_trait::async_trait]
impl CertificateSource for CertificateFiles {
    fn load(&mut self) -> Result<PemIdentity, String> {
        self.loaded = stamps(&self.files);
        Ok(PemIdentity {
            cert_chain: read("tls_cert", &self.files.cert)?,
            private_key: read("tls_key", &self.files.key)?,
        })
    }

    async fn changed(&mut self) {
        loop {
            tokio::select! {
                _ = self.hangup.recv() => {
                    tracing::info!("SIGHUP: reloading tls_cert and tls_key");
                    self.pending = None;
                    return;
                }
                _ = self.tick.tick() => {
                    let now = stamps(&self.files);
                    if now == self.loaded {
                        self.pending = None;
                    } else if self.pending.as_ref() == Some(&now) {
                        tracing::info!("tls_cert or tls_key changed: reloading");
                        self.pending = None;
                        return;
                    } else {
                        self.pending = Some(now);
                    }
                }
            }
        }
    }
}
