//! A Redis primary, its replicas and three sentinels watching them, all
//! throwaway, on free ports: for failover tests.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::process::{Poll, ProcessGroup, free_port, poll};
use crate::redis::{RedisServer, ServerTls, redis_cli_tls};

/// The name the sentinels monitor.
pub const SERVICE: &str = "mymaster";

/// How long the set may take to form.
const FORM: Duration = Duration::from_secs(30);

/// A primary, `replicas` replicas of it and three sentinels (quorum 2),
/// SIGKILLed when dropped.
pub struct RedisSentinels {
    servers: Vec<RedisServer>,
    // Before the directory, so dropped before it.
    _sentinels: Vec<ProcessGroup>,
    sentinel_ports: Vec<u16>,
    down_after: Duration,
    tls: Option<ServerTls>,
    _dir: tempfile::TempDir,
}

impl RedisSentinels {
    /// Starts the primary, its replicas (each in sync before the sentinels
    /// start, so that the sentinels' first look finds them) and three
    /// sentinels that call the primary down after `down_after` without an
    /// answer; returns once every sentinel knows every replica and the
    /// other two sentinels.
    ///
    /// # Panics
    ///
    /// A process does not start or the set does not form in time.
    pub fn start(replicas: usize, down_after: Duration) -> Self {
        Self::form(replicas, down_after, None)
    }

    /// The same set speaking TLS only, everywhere: clients to servers and
    /// sentinels, replicas to the primary, sentinels to servers and to
    /// each other (`port 0`, `tls-port`, `tls-replication yes`). Every
    /// server and sentinel presents `tls.server`.
    ///
    /// # Panics
    ///
    /// As [`RedisSentinels::start`].
    pub fn start_tls(replicas: usize, down_after: Duration, tls: ServerTls) -> Self {
        Self::form(replicas, down_after, Some(tls))
    }

    fn form(replicas: usize, down_after: Duration, tls: Option<ServerTls>) -> Self {
        let tls_replication = if tls.is_some() { "yes" } else { "no" };
        let primary = RedisServer::start_tls_with(
            tls.clone(),
            &[
                "--repl-diskless-sync-delay",
                "0",
                "--tls-replication",
                tls_replication,
            ],
        );
        let primary_port = primary.port().to_string();
        let mut servers = vec![primary];
        for _ in 0..replicas {
            servers.push(RedisServer::start_tls_with(
                tls.clone(),
                &[
                    "--replicaof",
                    "127.0.0.1",
                    &primary_port,
                    // Promoted, it syncs the other replicas at once.
                    "--repl-diskless-sync-delay",
                    "0",
                    "--tls-replication",
                    tls_replication,
                ],
            ));
        }
        for replica in &servers[1..] {
            let synced = poll(None, FORM, || {
                replica
                    .cli(&["INFO", "replication"])
                    .contains("master_link_status:up")
            });
            assert!(matches!(synced, Poll::Ready), "a replica did not sync");
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let sentinel_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let down_ms = down_after.as_millis().to_string();
        let sentinels = sentinel_ports
            .iter()
            .map(|&port| {
                let conf = dir.path().join(format!("sentinel-{port}.conf"));
                let listen = match &tls {
                    None => format!("port {port}\n"),
                    Some(tls) => format!(
                        "port 0\ntls-port {port}\ntls-replication yes\n\
                         tls-cert-file {cert}\ntls-key-file {key}\ntls-ca-cert-file {ca}\n\
                         tls-auth-clients {auth}\n",
                        cert = tls.server.cert.display(),
                        key = tls.server.key.display(),
                        ca = tls.ca.display(),
                        auth = if tls.require_client_cert { "yes" } else { "no" },
                    ),
                };
                std::fs::write(
                    &conf,
                    format!(
                        "{listen}bind 127.0.0.1\ndir {dir}\n\
                         sentinel monitor {SERVICE} 127.0.0.1 {primary_port} 2\n\
                         sentinel down-after-milliseconds {SERVICE} {down_ms}\n\
                         sentinel failover-timeout {SERVICE} 10000\n\
                         sentinel parallel-syncs {SERVICE} 1\n",
                        dir = dir.path().display()
                    ),
                )
                .expect("write the sentinel's configuration");
                let mut command = Command::new("redis-server");
                command
                    .arg(&conf)
                    .arg("--sentinel")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null());
                ProcessGroup::spawn("redis-sentinel", &mut command)
                    .unwrap_or_else(|e| panic!("{e}"))
                    .kill_on_drop()
            })
            .collect();
        let set = Self {
            servers,
            _sentinels: sentinels,
            sentinel_ports,
            down_after,
            tls,
            _dir: dir,
        };
        for &port in &set.sentinel_ports {
            let formed = poll(None, FORM, || {
                let replicas_known = set
                    .cli(port, &["SENTINEL", "replicas", SERVICE])
                    .lines()
                    .filter(|l| *l == "name")
                    .count();
                let sentinels_known = set
                    .cli(port, &["SENTINEL", "sentinels", SERVICE])
                    .lines()
                    .filter(|l| *l == "name")
                    .count();
                replicas_known == replicas && sentinels_known == 2
            });
            assert!(
                matches!(formed, Poll::Ready),
                "sentinel on {port} did not learn the set: replicas {}, sentinels {}",
                set.cli(port, &["SENTINEL", "replicas", SERVICE]),
                set.cli(port, &["SENTINEL", "sentinels", SERVICE]),
            );
        }
        set
    }

    /// `redis-cli` against a server or sentinel of this set (over TLS
    /// when the set speaks it).
    fn cli(&self, port: u16, args: &[&str]) -> String {
        redis_cli_tls(port, self.tls.as_ref(), args)
    }

    /// `redis-sentinel://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3/?service=mymaster`
    /// (`rediss-sentinel://` with TLS).
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .sentinel_ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        let scheme = if self.tls.is_some() {
            "rediss-sentinel"
        } else {
            "redis-sentinel"
        };
        format!("{scheme}://{}/?service={SERVICE}", hosts.join(","))
    }

    /// The sentinels' ports.
    pub fn sentinel_ports(&self) -> &[u16] {
        &self.sentinel_ports
    }

    /// `down-after-milliseconds`.
    pub fn down_after(&self) -> Duration {
        self.down_after
    }

    /// The port of the primary, as the first sentinel that answers sees it.
    pub fn primary_port(&self) -> Option<u16> {
        self.sentinel_ports.iter().find_map(|&port| {
            self.cli(port, &["SENTINEL", "get-master-addr-by-name", SERVICE])
                .lines()
                .nth(1)
                .and_then(|p| p.trim().parse().ok())
        })
    }

    /// The ports of every server started (primary first, as started).
    pub fn server_ports(&self) -> Vec<u16> {
        self.servers.iter().map(RedisServer::port).collect()
    }

    /// Every server started (primary first, as started); a test may
    /// freeze a replica with [`RedisServer::pause`].
    pub fn servers(&self) -> &[RedisServer] {
        &self.servers
    }

    /// SIGKILLs the current primary; returns its port.
    ///
    /// # Panics
    ///
    /// No sentinel names a primary this set started.
    pub fn kill_primary(&mut self) -> u16 {
        let port = self.primary_port().expect("a sentinel names the primary");
        let server = self
            .servers
            .iter_mut()
            .find(|s| s.port() == port)
            .expect("the primary is one of ours");
        server.kill();
        port
    }

    /// Waits until every sentinel names a primary other than `old` and
    /// that server answers as a primary; returns its port and when that
    /// was first seen, or `None` after `patience`.
    pub fn wait_for_failover(&self, old: u16, patience: Duration) -> Option<(u16, Instant)> {
        let deadline = Instant::now() + patience;
        while Instant::now() < deadline {
            if let Some(new) = self.primary_port().filter(|&p| p != old)
                && self.cli(new, &["ROLE"]).starts_with("master")
            {
                return Some((new, Instant::now()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sentinels_promote_the_replica_when_the_primary_dies() {
        let mut set = RedisSentinels::start(1, Duration::from_millis(1000));
        let old = set.kill_primary();
        let (new, _) = set
            .wait_for_failover(old, Duration::from_secs(30))
            .expect("a failover");
        assert_ne!(new, old);
        assert!(set.server_ports().contains(&new));
    }

    #[test]
    fn a_tls_set_forms_and_fails_over_over_tls() {
        let ca = crate::TestCa::new("sentinel test CA");
        let tls = ServerTls {
            server: ca.leaf(&["localhost", "127.0.0.1"]),
            ca: ca.cert(),
            require_client_cert: false,
        };
        let mut set = RedisSentinels::start_tls(1, Duration::from_millis(1000), tls);
        assert!(set.url().starts_with("rediss-sentinel://"));
        // Nothing answers in plain text.
        for port in set.sentinel_ports().iter().chain(&set.server_ports()) {
            assert_eq!(crate::redis_cli(*port, &["PING"]).trim(), "", "port {port}");
        }
        let old = set.kill_primary();
        let (new, _) = set
            .wait_for_failover(old, Duration::from_secs(30))
            .expect("a failover");
        assert_ne!(new, old);
    }
}
