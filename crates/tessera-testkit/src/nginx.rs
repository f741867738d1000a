//! A real nginx running one of the configurations shipped in
//! `deploy/nginx`, used as shipped except for its marker lines.
//!
//! A marker is a trailing comment of one upper-case word on a directive
//! line, e.g. `listen 127.0.0.1:8000;   # LISTEN` or
//! `server 127.0.0.1:8081 max_fails=1;   # NODE`. The `# LISTEN` line gets
//! this run's port; the first line of each upstream marker is repeated once
//! per address given for it, with the address after `server` replaced, and
//! the marker's other lines are dropped. Everything else is left alone, and
//! a template without the markers asked for is refused rather than guessed
//! at.

use std::fs::File;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::process::ProcessGroup;

/// How long nginx may take to listen.
const READY: Duration = Duration::from_secs(10);

/// The marker of the line nginx listens on.
pub const LISTEN: &str = "LISTEN";

/// The marker of the upstream `server` lines of the load-balancing
/// configurations (`round-robin.conf`, `sticky.conf`).
pub const NODE: &str = "NODE";

/// A running nginx (`daemon off;`, in its own process group), stopped when
/// dropped: SIGTERM to its group (the master stops its workers), SIGKILL
/// after a second if anything lingers.
pub struct Nginx {
    // First, so dropped first: nginx stops before its prefix is removed.
    process: ProcessGroup,
    addr: SocketAddr,
    prefix: PathBuf,
    _temp: Option<tempfile::TempDir>,
}

impl Nginx {
    /// Starts nginx with `template` (a shipped configuration's text)
    /// listening on 127.0.0.1:`listen_port`, its `# NODE` upstream servers
    /// replaced by `nodes`, in a fresh temporary prefix directory.
    ///
    /// # Errors
    ///
    /// As [`NginxConfig::start`].
    pub fn start(template: &str, listen_port: u16, nodes: &[SocketAddr]) -> io::Result<Self> {
        NginxConfig::new(template, listen_port)
            .upstream(NODE, nodes)
            .start()
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Its prefix directory: `nginx.conf`, `error.log`, `stderr.log`.
    pub fn prefix(&self) -> &Path {
        &self.prefix
    }

    /// nginx's process (to kill it, or see whether it still runs).
    pub fn process(&mut self) -> &mut ProcessGroup {
        &mut self.process
    }
}

/// What nginx is started with: a template, its listen port, the addresses
/// for its upstream markers, and where it works.
#[derive(Debug, Clone)]
pub struct NginxConfig<'a> {
    template: &'a str,
    listen_port: u16,
    upstreams: Vec<(&'a str, &'a [SocketAddr])>,
    prefix: Option<PathBuf>,
}

impl<'a> NginxConfig<'a> {
    /// `template` listening on 127.0.0.1:`listen_port`, with no upstream
    /// rewritten yet.
    pub fn new(template: &'a str, listen_port: u16) -> Self {
        Self {
            template,
            listen_port,
            upstreams: Vec::new(),
            prefix: None,
        }
    }

    /// Replaces the `server` lines marked `# MARKER` (e.g. [`NODE`]) with
    /// one per address of `servers`.
    #[must_use]
    pub fn upstream(mut self, marker: &'a str, servers: &'a [SocketAddr]) -> Self {
        self.upstreams.push((marker, servers));
        self
    }

    /// Runs nginx in `dir` (created if need be, and left in place) instead
    /// of a fresh temporary directory.
    #[must_use]
    pub fn prefix(mut self, dir: impl Into<PathBuf>) -> Self {
        self.prefix = Some(dir.into());
        self
    }

    /// The configuration nginx will read.
    ///
    /// # Errors
    ///
    /// The template has not exactly one `# LISTEN` line, lacks a line for an
    /// upstream marker, an upstream has no address, or a marked line has no
    /// address to replace.
    pub fn render(&self) -> io::Result<String> {
        let listen = SocketAddr::from(([127, 0, 0, 1], self.listen_port));
        let mut out = String::with_capacity(self.template.len() + 256);
        let mut listens = 0;
        let mut seen = vec![0_usize; self.upstreams.len()];
        for line in self.template.lines() {
            let upstream = marker(line).and_then(|marker| {
                self.upstreams
                    .iter()
                    .position(|(wanted, _)| *wanted == marker)
            });
            if marker(line) == Some(LISTEN) {
                listens += 1;
                out.push_str(&replace_address(line, "listen", listen)?);
                out.push('\n');
            } else if let Some(index) = upstream {
                seen[index] += 1;
                let (marker, servers) = self.upstreams[index];
                if seen[index] > 1 {
                    continue;
                }
                if servers.is_empty() {
                    return Err(invalid(format!("no address for the `# {marker}` servers")));
                }
                if servers.len() > 1 && line.contains('{') {
                    return Err(invalid(format!(
                        "the `# {marker}` line holds a whole upstream block: it takes one address"
                    )));
                }
                for server in servers {
                    out.push_str(&replace_address(line, "server", *server)?);
                    out.push('\n');
                }
            } else {
                out.push_str(line);
                out.push('\n');
            }
        }
        if listens != 1 {
            return Err(invalid(format!(
                "the nginx configuration needs exactly one `# {LISTEN}` line, not {listens}"
            )));
        }
        for ((marker, _), seen) in self.upstreams.iter().zip(seen) {
            if seen == 0 {
                return Err(invalid(format!(
                    "the nginx configuration has no `# {marker}` line"
                )));
            }
        }
        Ok(out)
    }

    /// Writes the configuration to the prefix directory and starts
    /// `nginx -p PREFIX -c PREFIX/nginx.conf -g 'daemon off;'`, waiting
    /// until it listens.
    ///
    /// # Errors
    ///
    /// The template is refused (see [`NginxConfig::render`]); the prefix
    /// cannot be made; nginx cannot be started (kind `NotFound` when it is
    /// not installed); or it ended or did not listen in time, and then the
    /// message carries its standard error and error log.
    pub fn start(self) -> io::Result<Nginx> {
        let config = self.render()?;
        let (temp, prefix) = match self.prefix {
            Some(prefix) => (None, prefix),
            None => {
                let temp = tempfile::Builder::new().prefix("nginx-").tempdir()?;
                let prefix = temp.path().to_owned();
                (Some(temp), prefix)
            }
        };
        std::fs::create_dir_all(prefix.join("tmp")).map_err(|e| {
            io::Error::new(e.kind(), format!("cannot create {}: {e}", prefix.display()))
        })?;
        let conf_path = prefix.join("nginx.conf");
        std::fs::write(&conf_path, config)?;
        let stderr = File::create(prefix.join("stderr.log"))?;
        let mut command = Command::new("nginx");
        command
            .arg("-p")
            .arg(&prefix)
            .arg("-c")
            .arg(&conf_path)
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(stderr);
        let mut process = ProcessGroup::spawn("nginx", &mut command)?;
        let addr = SocketAddr::from(([127, 0, 0, 1], self.listen_port));
        if let Err(error) = process.wait_for_listener(addr, READY) {
            let logs = ["stderr.log", "error.log"]
                .map(|name| std::fs::read_to_string(prefix.join(name)).unwrap_or_default());
            return Err(io::Error::new(
                error.kind(),
                format!("{error}\n{}{}", logs[0], logs[1]),
            ));
        }
        Ok(Nginx {
            process,
            addr,
            prefix,
            _temp: temp,
        })
    }
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

/// The marker of a directive line: its comment, when that is one upper-case
/// word. Comment lines carry none (they may mention markers).
fn marker(line: &str) -> Option<&str> {
    let (directive, comment) = line.split_once('#')?;
    let word = comment.trim();
    let is_marker = !directive.trim().is_empty()
        && !word.is_empty()
        && word.bytes().all(|b| b.is_ascii_uppercase() || b == b'_');
    is_marker.then_some(word)
}

/// `line` with the address after `directive` replaced by `addr`.
fn replace_address(line: &str, directive: &str, addr: SocketAddr) -> io::Result<String> {
    let mut words = line.split_whitespace();
    while let Some(word) = words.next() {
        if word == directive {
            let old = words
                .next()
                .map(|word| word.trim_end_matches(';'))
                .filter(|old| !old.is_empty())
                .ok_or_else(|| invalid(format!("`{directive}` without an address in {line:?}")))?;
            return Ok(line.replacen(old, &addr.to_string(), 1));
        }
    }
    Err(invalid(format!("no `{directive}` in {line:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::{alive, poll};

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn shipped(name: &str) -> String {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../deploy/nginx")
            .join(name);
        std::fs::read_to_string(path).unwrap()
    }

    /// The lines of `config` that are not comments.
    fn directives(config: &str) -> Vec<&str> {
        config
            .lines()
            .filter(|line| !line.trim_start().starts_with('#'))
            .collect()
    }

    #[test]
    fn only_the_marker_lines_of_the_shipped_balancers_change() {
        for name in ["round-robin.conf", "sticky.conf"] {
            let template = shipped(name);
            let nodes = [addr(1), addr(2), addr(3)];
            let config = NginxConfig::new(&template, 9000)
                .upstream(NODE, &nodes)
                .render()
                .unwrap();
            let unmarked = |text: &str| -> Vec<String> {
                text.lines()
                    .filter(|line| marker(line).is_none())
                    .map(str::to_owned)
                    .collect()
            };
            assert_eq!(unmarked(&config), unmarked(&template), "{name}");
            let text = directives(&config).join("\n");
            assert!(text.contains("listen 127.0.0.1:9000;"), "{config}");
            for port in 1..=3 {
                let line = format!("server 127.0.0.1:{port} max_fails=1 fail_timeout=5s;");
                assert!(text.contains(&line), "{config}");
            }
            for default in [":8081", ":8082", ":8000"] {
                assert!(!text.contains(default), "{config}");
            }
        }
    }

    #[test]
    fn forward_auth_has_one_marker_per_upstream() {
        let template = shipped("forward-auth.conf");
        assert!(
            Nginx::start(&template, 1, &[addr(2)]).is_err(),
            "it has no `# NODE` lines"
        );
        let config = NginxConfig::new(&template, 8001)
            .upstream("TESSERA", &[addr(8)])
            .upstream("APP", &[addr(9)])
            .render()
            .unwrap();
        let text = directives(&config).join("\n");
        for line in [
            "upstream tessera { server 127.0.0.1:8;",
            "upstream app     { server 127.0.0.1:9;",
            "listen 127.0.0.1:8001;",
        ] {
            assert!(text.contains(line), "{line} in {config}");
        }
        let two = [addr(8), addr(9)];
        let refused = NginxConfig::new(&template, 8001).upstream("APP", &two);
        assert!(
            refused.render().is_err(),
            "a one-line upstream takes one address"
        );
    }

    #[test]
    fn refuses_templates_without_the_markers() {
        let bare = "listen 127.0.0.1:8000;\nserver 127.0.0.1:8081;\n";
        assert!(Nginx::start(bare, 1, &[addr(2)]).is_err());
        let listen_only = "listen 127.0.0.1:8000; # LISTEN\nserver 127.0.0.1:8081;\n";
        let error = NginxConfig::new(listen_only, 1)
            .upstream(NODE, &[addr(2)])
            .render()
            .unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
        // A marker named in a comment line is not a marker.
        let commented = "# listen 1.2.3.4:5; # LISTEN\nserver 127.0.0.1:8081; # NODE\n";
        assert!(
            NginxConfig::new(commented, 1)
                .upstream(NODE, &[addr(2)])
                .render()
                .is_err()
        );
        let empty = NginxConfig::new(listen_only, 1).upstream("X", &[]);
        assert!(empty.render().is_err());
    }

    #[test]
    fn runs_the_shipped_configuration_and_stops_with_its_guard() {
        use std::io::{Read, Write};
        // A one-shot HTTP "node" that says which it is.
        let node = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let node_addr = node.local_addr().unwrap();
        let answer = std::thread::spawn(move || {
            let (mut stream, _) = node.accept().unwrap();
            let mut request = [0; 1024];
            let _ = stream.read(&mut request).unwrap();
            stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi")
                .unwrap();
        });
        let template = shipped("round-robin.conf");
        let port = crate::free_port();
        let mut nginx = Nginx::start(&template, port, &[node_addr]).unwrap();
        assert_eq!(nginx.url(), format!("http://127.0.0.1:{port}"));
        let prefix = nginx.prefix().to_owned();
        let leader = nginx.process().id();

        let mut client = std::net::TcpStream::connect(nginx.addr()).unwrap();
        client
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut response = String::new();
        client.read_to_string(&mut response).unwrap();
        answer.join().unwrap();
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        let node_header = format!("X-Tessera-Node: {node_addr}");
        assert!(response.contains(&node_header), "{response}");

        let workers = children_of(leader);
        assert!(!workers.is_empty(), "nginx runs a worker");
        drop(nginx);
        assert!(!prefix.exists(), "the prefix directory is removed");
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
        let gone = || !workers.iter().any(|worker| alive(*worker));
        poll(None, Duration::from_secs(5), gone);
        assert!(gone(), "workers {workers:?} survived");
    }

    /// Pids whose parent is `parent`.
    fn children_of(parent: u32) -> Vec<u32> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            let fields: Vec<&str> = stat.rsplit(") ").next().unwrap_or("").split(' ').collect();
            if fields.get(1).and_then(|p| p.parse().ok()) == Some(parent) {
                found.push(pid);
            }
        }
        found
    }
}
