//! A throwaway PostgreSQL server that speaks TLS only: `initdb` and
//! `postgres` from `/usr/lib/postgresql/*/bin` on a free port, `ssl=on`
//! with a certificate the test issued, and a `pg_hba.conf` with `hostssl`
//! lines only, so a plain-text client is refused. Run as the `postgres`
//! user when the test runs as root (PostgreSQL refuses to run as root).

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::process::{Poll, ProcessGroup, free_port, poll};
use crate::test_ca::Issued;

/// How long the server may take to accept connections.
const READY: Duration = Duration::from_secs(30);

/// A running throwaway PostgreSQL, killed (with its directory removed)
/// when dropped. Authentication is `trust` for user `postgres`, over TLS.
pub struct TlsPostgres {
    // First, so dropped first: the server dies before its directory goes.
    _process: ProcessGroup,
    port: u16,
    _dir: tempfile::TempDir,
}

/// The directory of the newest installed PostgreSQL's programs.
fn bin_dir() -> io::Result<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("postgres").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            "no PostgreSQL under /usr/lib/postgresql/*/bin",
        )
    })
}

/// The `postgres` account's ids when we are root (PostgreSQL will not run
/// as root), else `None`.
fn run_as() -> io::Result<Option<(u32, u32)>> {
    if !rustix::process::getuid().is_root() {
        return Ok(None);
    }
    let out = Command::new("id").args(["-u", "postgres"]).output()?;
    let uid = String::from_utf8_lossy(&out.stdout).trim().parse().ok();
    let out = Command::new("id").args(["-g", "postgres"]).output()?;
    let gid = String::from_utf8_lossy(&out.stdout).trim().parse().ok();
    match (uid, gid) {
        (Some(uid), Some(gid)) => Ok(Some((uid, gid))),
        _ => Err(io::Error::other(
            "running as root and there is no postgres user to run PostgreSQL as",
        )),
    }
}

fn command(program: PathBuf, user: Option<(u32, u32)>) -> Command {
    use std::os::unix::process::CommandExt;
    let mut command = Command::new(program);
    if let Some((uid, gid)) = user {
        command.uid(uid).gid(gid);
    }
    command
}

fn own(path: &Path, user: Option<(u32, u32)>) -> io::Result<()> {
    match user {
        Some((uid, gid)) => std::os::unix::fs::chown(path, Some(uid), Some(gid)),
        None => Ok(()),
    }
}

fn copy_private(from: &Path, to: &Path, user: Option<(u32, u32)>) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::copy(from, to)?;
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o600))?;
    own(to, user)
}

impl TlsPostgres {
    /// Starts a server presenting `server` (a certificate and key, e.g. for
    /// `localhost` from a [`TestCa`](crate::TestCa)).
    ///
    /// # Panics
    ///
    /// PostgreSQL is not installed or does not start.
    pub fn start(server: &Issued) -> Self {
        Self::launch(server, None).unwrap_or_else(|e| panic!("{e}"))
    }

    /// As [`TlsPostgres::start`], and clients must also present a
    /// certificate signed by `client_ca` whose common name is the user
    /// they log in as (`hostssl ... cert`).
    ///
    /// # Panics
    ///
    /// PostgreSQL is not installed or does not start.
    pub fn start_requiring_client_certificates(server: &Issued, client_ca: &Path) -> Self {
        Self::launch(server, Some(client_ca)).unwrap_or_else(|e| panic!("{e}"))
    }

    fn launch(server: &Issued, client_ca: Option<&Path>) -> io::Result<Self> {
        let bin = bin_dir()?;
        let user = run_as()?;
        let dir = tempfile::tempdir()?;
        own(dir.path(), user)?;
        let data = dir.path().join("data");
        let out = command(bin.join("initdb"), user)
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
            .stdin(Stdio::null())
            .output()?;
        if !out.status.success() {
            return Err(io::Error::other(format!(
                "initdb failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        copy_private(&server.cert, &data.join("server.crt"), user)?;
        copy_private(&server.key, &data.join("server.key"), user)?;
        // TLS or nothing, from anywhere on the loopback; the socket
        // directory is for nobody.
        let method = match client_ca {
            None => "trust",
            Some(ca) => {
                copy_private(ca, &data.join("client-ca.crt"), user)?;
                "cert"
            }
        };
        std::fs::write(
            data.join("pg_hba.conf"),
            format!("hostssl all all 127.0.0.1/32 {method}\nhostssl all all ::1/128 {method}\n"),
        )?;
        let port = free_port();
        let process = ProcessGroup::spawn(
            "postgres",
            command(bin.join("postgres"), user)
                .arg("-D")
                .arg(&data)
                .args(["-p", &port.to_string()])
                .args(["-c", "listen_addresses=127.0.0.1"])
                .arg("-c")
                .arg(format!("unix_socket_directories={}", dir.path().display()))
                .args(["-c", "ssl=on", "-c", "fsync=off"])
                .args(if client_ca.is_some() {
                    &["-c", "ssl_ca_file=client-ca.crt"][..]
                } else {
                    &[][..]
                })
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        )?
        .kill_on_drop();
        let mut server = Self {
            _process: process,
            port,
            _dir: dir,
        };
        server.wait_ready(&bin)?;
        Ok(server)
    }

    fn wait_ready(&mut self, bin: &Path) -> io::Result<()> {
        let port = self.port.to_string();
        let ready = || {
            Command::new(bin.join("pg_isready"))
                .args(["-h", "127.0.0.1", "-p", &port, "-t", "1"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|status| status.success())
        };
        match poll(Some(&mut self._process), READY, ready) {
            Poll::Ready => Ok(()),
            Poll::Exited => Err(io::Error::other(
                "postgres ended before accepting connections",
            )),
            Poll::TimedOut => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("postgres did not accept connections within {READY:?}"),
            )),
        }
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// A URL for database `postgres` as user `postgres` at `host` (e.g.
    /// `localhost` or `127.0.0.1`), with `params` (e.g.
    /// `sslmode=verify-full&sslrootcert=/path`).
    pub fn url(&self, host: &str, params: &str) -> String {
        let url = format!("postgres://postgres@{host}:{}/postgres", self.port);
        if params.is_empty() {
            url
        } else {
            format!("{url}?{params}")
        }
    }
}
