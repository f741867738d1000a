//! Throwaway Redis servers and a three-primary Redis Cluster.

use std::fs::OpenOptions;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::process::{Poll, ProcessGroup, free_port, poll, try_free_port};
use crate::test_ca::Issued;

/// How long a server may take to answer `PING`.
const READY: Duration = Duration::from_secs(20);

/// Runs `redis-cli -p PORT ARGS...` and returns what it printed.
pub fn redis_cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli is installed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `redis-cli` against `port`, over TLS with `tls` (presenting the
/// server's own certificate as the client's), and returns what it printed.
pub fn redis_cli_tls(port: u16, tls: Option<&ServerTls>, args: &[&str]) -> String {
    let Some(tls) = tls else {
        return redis_cli(port, args);
    };
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string(), "--tls"])
        .arg("--cacert")
        .arg(&tls.ca)
        .arg("--cert")
        .arg(&tls.server.cert)
        .arg("--key")
        .arg(&tls.server.key)
        .args(args)
        .output()
        .expect("redis-cli is installed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether a Redis on `port` answers `PING` with `PONG` (not, say, with
/// `-LOADING` while it reads its append-only file back).
fn answers_ping(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let mut reply = [0; 7];
    stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .is_ok()
        && stream.write_all(b"PING\r\n").is_ok()
        && stream.read_exact(&mut reply).is_ok()
        && &reply == b"+PONG\r\n"
}

/// Waits until the server `process` started on `port` answers `PING`.
fn wait_for_pong(process: &mut ProcessGroup, port: u16) -> io::Result<()> {
    match poll(Some(process), READY, || answers_ping(port)) {
        Poll::Ready => Ok(()),
        Poll::Exited => Err(io::Error::other(format!(
            "redis-server ended before answering PING on port {port}"
        ))),
        Poll::TimedOut => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("redis-server did not answer PING on port {port} within {READY:?}"),
        )),
    }
}

/// How a TLS `redis-server` is set up: its certificate and key, the CA it
/// checks client certificates against, and whether it requires one.
#[derive(Debug, Clone)]
pub struct ServerTls {
    /// The server's certificate and key.
    pub server: Issued,
    /// The CA clients' certificates must come from (`--tls-ca-cert-file`).
    pub ca: PathBuf,
    /// `--tls-auth-clients yes`: refuse clients without a certificate.
    pub require_client_cert: bool,
}

/// A throwaway `redis-server` on a free port, in its own process group,
/// SIGKILLed when dropped. With `persistent`, it keeps an append-only file
/// (fsync always) so that a restart brings its data back. With TLS it
/// listens on its port with TLS only (`--port 0 --tls-port`).
pub struct RedisServer {
    // First, so dropped first: the server dies before its directory goes.
    process: Option<ProcessGroup>,
    port: u16,
    dir: PathBuf,
    persistent: bool,
    tls: Option<ServerTls>,
    extra: Vec<String>,
    _temp: Option<tempfile::TempDir>,
}

impl RedisServer {
    /// Starts a server that keeps nothing on disk.
    ///
    /// # Panics
    ///
    /// `redis-server` is missing or does not answer.
    pub fn start() -> Self {
        Self::launch(None, false).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts a server whose data survives [`RedisServer::restart`].
    ///
    /// # Panics
    ///
    /// `redis-server` is missing or does not answer.
    pub fn start_persistent() -> Self {
        Self::launch(None, true).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts a server that keeps nothing on disk, working in `dir`
    /// (created if need be, and left in place; its output goes to
    /// `redis.log` there), and reports failure instead of panicking.
    ///
    /// # Errors
    ///
    /// `dir` cannot be created, `redis-server` cannot be started (kind
    /// `NotFound` when it is not installed), or it ended or did not answer
    /// `PING` in time; the message then carries its log.
    pub fn try_start_in(dir: &Path) -> io::Result<Self> {
        Self::launch(Some(dir), false)
    }

    /// Starts a server that speaks TLS only, with `tls`.
    ///
    /// # Panics
    ///
    /// `redis-server` is missing, built without TLS, or does not start.
    pub fn start_tls(tls: ServerTls) -> Self {
        Self::launch_with(None, false, Some(tls), Vec::new()).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts a server with extra `redis-server` arguments (such as
    /// `--replicaof 127.0.0.1 PORT`).
    ///
    /// # Panics
    ///
    /// `redis-server` is missing or does not answer.
    pub fn start_with(args: &[&str]) -> Self {
        Self::start_tls_with(None, args)
    }

    /// Starts a server with extra `redis-server` arguments, speaking TLS
    /// only when `tls` is given.
    ///
    /// # Panics
    ///
    /// `redis-server` is missing or does not start.
    pub fn start_tls_with(tls: Option<ServerTls>, args: &[&str]) -> Self {
        let extra = args.iter().map(|&a| a.to_owned()).collect();
        Self::launch_with(None, false, tls, extra).unwrap_or_else(|e| panic!("{e}"))
    }

    fn launch(dir: Option<&Path>, persistent: bool) -> io::Result<Self> {
        Self::launch_with(dir, persistent, None, Vec::new())
    }

    fn launch_with(
        dir: Option<&Path>,
        persistent: bool,
        tls: Option<ServerTls>,
        extra: Vec<String>,
    ) -> io::Result<Self> {
        let (temp, dir) = match dir {
            Some(dir) => {
                std::fs::create_dir_all(dir).map_err(|e| {
                    io::Error::new(e.kind(), format!("cannot create {}: {e}", dir.display()))
                })?;
                (None, dir.to_owned())
            }
            None => {
                let temp = tempfile::tempdir()?;
                let dir = temp.path().to_owned();
                (Some(temp), dir)
            }
        };
        let mut server = Self {
            process: None,
            port: try_free_port()?,
            dir,
            persistent,
            tls,
            extra,
            _temp: temp,
        };
        server.spawn()?;
        Ok(server)
    }

    fn spawn(&mut self) -> io::Result<()> {
        let log_path = self.dir.join("redis.log");
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)?;
        let appendonly = if self.persistent { "yes" } else { "no" };
        let mut command = Command::new("redis-server");
        match &self.tls {
            None => {
                command.args(["--port", &self.port.to_string()]);
            }
            Some(tls) => {
                command
                    .args(["--port", "0", "--tls-port", &self.port.to_string()])
                    .arg("--tls-cert-file")
                    .arg(&tls.server.cert)
                    .arg("--tls-key-file")
                    .arg(&tls.server.key)
                    .arg("--tls-ca-cert-file")
                    .arg(&tls.ca)
                    .args([
                        "--tls-auth-clients",
                        if tls.require_client_cert { "yes" } else { "no" },
                    ]);
            }
        }
        command
            .args(["--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", appendonly])
            .args(["--appendfsync", "always"])
            // Lets tests make it slow on purpose (`DEBUG SLEEP`).
            .args(["--enable-debug-command", "yes"])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.extra)
            .stdout(log)
            .stderr(Stdio::null());
        let mut process = ProcessGroup::spawn("redis-server", &mut command)?.kill_on_drop();
        let ready = if self.tls.is_some() {
            wait_for_log(&mut process, &log_path, self.port)
        } else {
            wait_for_pong(&mut process, self.port)
        };
        if let Err(error) = ready {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            return Err(io::Error::new(error.kind(), format!("{error}\n{log}")));
        }
        self.process = Some(process);
        Ok(())
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT`, or `rediss://` with TLS.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// Runs `redis-cli` against it (with TLS, presenting the server's own
    /// certificate as the client's) and returns what it printed.
    pub fn cli(&self, args: &[&str]) -> String {
        redis_cli_tls(self.port, self.tls.as_ref(), args)
    }

    /// Kills it (SIGKILL): clients see connections drop and refused.
    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            let _ = process.kill();
        }
    }

    /// Starts it again on the same port and directory.
    ///
    /// # Panics
    ///
    /// It does not come back.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn().unwrap_or_else(|e| panic!("{e}"));
    }

    /// Freezes it (SIGSTOP): connections stay open, nothing is answered.
    pub fn pause(&self) {
        if let Some(process) = &self.process {
            process.pause().expect("SIGSTOP redis-server");
        }
    }

    /// Lets a frozen server go on (SIGCONT).
    pub fn resume(&self) {
        if let Some(process) = &self.process {
            process.resume().expect("SIGCONT redis-server");
        }
    }

    /// `used_memory` from `INFO memory`, in bytes.
    pub fn used_memory(&self) -> u64 {
        redis_cli(self.port, &["INFO", "memory"])
            .lines()
            .find_map(|l| l.strip_prefix("used_memory:"))
            .and_then(|v| v.trim().parse().ok())
            .expect("INFO memory reports used_memory")
    }
}

/// Waits until the server's log says it accepts connections (a TLS
/// server cannot be `PING`ed in plain text).
fn wait_for_log(process: &mut ProcessGroup, log: &Path, port: u16) -> io::Result<()> {
    let ready = || {
        std::fs::read_to_string(log).is_ok_and(|l| l.contains("Ready to accept connections"))
            && TcpStream::connect(("127.0.0.1", port)).is_ok()
    };
    match poll(Some(process), READY, ready) {
        Poll::Ready => Ok(()),
        Poll::Exited => Err(io::Error::other(format!(
            "redis-server ended before listening on port {port}"
        ))),
        Poll::TimedOut => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("redis-server did not listen on port {port} within {READY:?}"),
        )),
    }
}

/// A port that is free, and whose cluster bus port (+10000) is free too.
fn free_cluster_port() -> u16 {
    loop {
        let port = free_port();
        if port < 55_000 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

/// Three cluster-enabled `redis-server` primaries joined with
/// `redis-cli --cluster create`, with or without a replica each;
/// SIGKILLed when dropped.
pub struct RedisCluster {
    /// The primaries' ports.
    ports: Vec<u16>,
    /// Every node's port, in the order of `nodes`.
    node_ports: Vec<u16>,
    /// Each replica's port and its primary's.
    replicas: Vec<(u16, u16)>,
    // Before the directory, so dropped before it.
    nodes: Vec<ProcessGroup>,
    _dir: tempfile::TempDir,
}

impl RedisCluster {
    /// Starts the three primaries and waits until the cluster is `ok`.
    ///
    /// # Panics
    ///
    /// A node does not start, or the cluster does not form.
    pub fn start() -> Self {
        Self::form(0)
    }

    /// Three primaries with a replica each, every replica in sync and
    /// counted by its primary's `WAIT`.
    ///
    /// # Panics
    ///
    /// A node does not start, or the cluster does not form.
    pub fn start_with_replicas() -> Self {
        Self::form(1)
    }

    fn form(replicas_each: usize) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let count = 3 * (1 + replicas_each);
        let node_ports: Vec<u16> = (0..count).map(|_| free_cluster_port()).collect();
        let mut nodes: Vec<ProcessGroup> = node_ports
            .iter()
            .map(|port| spawn_cluster_node(dir.path(), *port))
            .collect();
        for (node, &port) in nodes.iter_mut().zip(&node_ports) {
            wait_for_pong(node, port).unwrap_or_else(|e| panic!("cluster node: {e}"));
        }
        let addresses: Vec<String> = node_ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addresses)
            .args([
                "--cluster-replicas",
                &replicas_each.to_string(),
                "--cluster-yes",
            ])
            .output()
            .expect("redis-cli is installed");
        assert!(
            out.status.success(),
            "cluster create: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        for &port in &node_ports {
            let formed = poll(None, READY, || {
                redis_cli(port, &["CLUSTER", "INFO"]).contains("cluster_state:ok")
            });
            assert!(
                matches!(formed, Poll::Ready),
                "cluster did not become ready"
            );
        }
        // Which node replicates which: as the replicas say, once in sync.
        let mut replicas = Vec::new();
        let mut ports = Vec::new();
        for &port in &node_ports {
            let info = redis_cli(port, &["INFO", "replication"]);
            if info.contains("role:master") {
                ports.push(port);
                continue;
            }
            let synced = poll(None, READY, || {
                redis_cli(port, &["INFO", "replication"]).contains("master_link_status:up")
            });
            assert!(matches!(synced, Poll::Ready), "replica {port} did not sync");
            let primary = redis_cli(port, &["INFO", "replication"])
                .lines()
                .find_map(|l| l.trim().strip_prefix("master_port:")?.parse().ok())
                .expect("a replica names its primary");
            replicas.push((port, primary));
        }
        // A primary counts a replica for WAIT only once it has acknowledged
        // an offset.
        for &(_, primary) in &replicas {
            let counted = poll(None, READY, || {
                redis_cli(primary, &["WAIT", "1", "200"]).trim() == "1"
            });
            assert!(
                matches!(counted, Poll::Ready),
                "primary {primary} does not count its replica"
            );
        }
        Self {
            ports,
            node_ports,
            replicas,
            nodes,
            _dir: dir,
        }
    }

    /// The primaries' ports.
    pub fn ports(&self) -> &[u16] {
        &self.ports
    }

    /// The port of `primary`'s replica.
    ///
    /// # Panics
    ///
    /// `primary` has no replica.
    pub fn replica_of(&self, primary: u16) -> u16 {
        self.replicas
            .iter()
            .find(|(_, p)| *p == primary)
            .map(|(replica, _)| *replica)
            .expect("a primary with a replica")
    }

    /// Freezes the node on `port` (SIGSTOP): connections stay open,
    /// nothing is answered.
    pub fn pause(&self, port: u16) {
        self.node(port).pause().expect("SIGSTOP a cluster node");
    }

    /// Thaws the node on `port`.
    pub fn resume(&self, port: u16) {
        self.node(port).resume().expect("SIGCONT a cluster node");
    }

    fn node(&self, port: u16) -> &ProcessGroup {
        let index = self
            .node_ports
            .iter()
            .position(|p| *p == port)
            .expect("a node of this cluster");
        &self.nodes[index]
    }

    /// The URL tessera takes for a cluster: one seed and the others.
    pub fn url(&self) -> String {
        let mut url = format!("redis-cluster://127.0.0.1:{}", self.ports[0]);
        for (i, port) in self.ports[1..].iter().enumerate() {
            url.push(if i == 0 { '?' } else { '&' });
            url.push_str(&format!("node=127.0.0.1:{port}"));
        }
        url
    }

    /// Keys held by each primary.
    pub fn key_counts(&self) -> Vec<u64> {
        self.ports
            .iter()
            .map(|&p| redis_cli(p, &["DBSIZE"]).trim().parse().unwrap_or(0))
            .collect()
    }
}

fn spawn_cluster_node(dir: &Path, port: u16) -> ProcessGroup {
    let mut command = Command::new("redis-server");
    command
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--cluster-enabled", "yes"])
        .arg("--cluster-config-file")
        .arg(dir.join(format!("nodes-{port}.conf")))
        .arg("--dir")
        .arg(dir)
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    ProcessGroup::spawn("redis-server", &mut command)
        .unwrap_or_else(|e| panic!("{e}"))
        .kill_on_drop()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_answers_freezes_and_comes_back_with_its_data() {
        let mut server = RedisServer::start_persistent();
        assert!(redis_cli(server.port(), &["SET", "k", "v"]).contains("OK"));
        server.pause();
        assert!(!answers_ping(server.port()), "a frozen server answers");
        server.resume();
        assert!(answers_ping(server.port()));
        server.kill();
        assert!(!answers_ping(server.port()));
        server.restart();
        assert_eq!(redis_cli(server.port(), &["GET", "k"]).trim(), "v");
    }

    #[test]
    fn a_server_started_in_a_directory_logs_there_and_dies_with_its_guard() {
        let dir = tempfile::tempdir().unwrap();
        let server = RedisServer::try_start_in(&dir.path().join("redis")).unwrap();
        let port = server.port();
        assert_eq!(server.url(), format!("redis://127.0.0.1:{port}"));
        server.pause();
        drop(server);
        assert!(!answers_ping(port), "a frozen server survived its guard");
        let log = std::fs::read_to_string(dir.path().join("redis/redis.log")).unwrap();
        assert!(log.contains("Ready to accept connections"), "{log}");
    }
}
