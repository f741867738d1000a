//! What the Caddy and Traefik starters share: the running proxy, the
//! rewriting of marked addresses, and asking a listener over plain HTTP.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::process::{Poll, ProcessGroup, poll};

/// How long a proxy may take to listen and load its routes.
pub(crate) const READY: Duration = Duration::from_secs(15);

/// A running reverse proxy (Caddy or Traefik) in its own process group and
/// working directory, stopped when dropped: SIGTERM to its group, SIGKILL
/// after a second if anything lingers; then the directory is removed.
pub struct ProxyServer {
    // First, so dropped first: the proxy stops before its directory goes.
    process: ProcessGroup,
    addr: SocketAddr,
    dir: PathBuf,
    _temp: tempfile::TempDir,
}

impl ProxyServer {
    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Its working directory: the configuration it read, `stderr.log`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The proxy's process (to kill it, or see whether it still runs).
    pub fn process(&mut self) -> &mut ProcessGroup {
        &mut self.process
    }
}

/// A fresh working directory for a proxy called `name`.
pub(crate) fn work_dir(name: &str) -> io::Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix(&format!("{name}-"))
        .tempdir()
}

/// Starts `command` (its working directory and standard error set here:
/// `dir`, `dir/stderr.log`), waits until it listens on `addr` and then
/// until `ready` holds; on failure the error carries its standard error.
pub(crate) fn start(
    name: &str,
    command: &mut Command,
    addr: SocketAddr,
    temp: tempfile::TempDir,
    ready: impl FnMut() -> bool,
) -> io::Result<ProxyServer> {
    let dir = temp.path().to_owned();
    let stderr = std::fs::File::create(dir.join("stderr.log"))?;
    command
        .current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(stderr);
    let mut process = ProcessGroup::spawn(name, command)?;
    let failed = |error: io::Error| {
        let log = std::fs::read_to_string(dir.join("stderr.log")).unwrap_or_default();
        io::Error::new(error.kind(), format!("{error}\n{log}"))
    };
    process.wait_for_listener(addr, READY).map_err(failed)?;
    match poll(Some(&mut process), READY, ready) {
        Poll::Ready => {}
        Poll::Exited => {
            return Err(failed(io::Error::other(format!(
                "{name} ended before it was ready"
            ))));
        }
        Poll::TimedOut => {
            return Err(failed(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("{name} listened on {addr} but had no route within {READY:?}"),
            )));
        }
    }
    Ok(ProxyServer {
        process,
        addr,
        dir,
        _temp: temp,
    })
}

/// `GET path` on `addr` over HTTP/1.1: the status and the body, or `None`
/// if there was no complete answer.
pub(crate) fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let timeout = Duration::from_secs(2);
    let mut stream = TcpStream::connect_timeout(&addr, timeout).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).ok()?;
    let answer = String::from_utf8_lossy(&answer);
    let status = answer.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()?;
    let body = answer.split_once("\r\n\r\n")?.1.to_owned();
    Some((status, body))
}

pub(crate) fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

/// The marker of a line: its trailing comment, when that is one upper-case
/// word after something else. Comment lines carry none (they may mention
/// markers).
pub(crate) fn marker(line: &str) -> Option<&str> {
    let (directive, comment) = line.split_once('#')?;
    let word = comment.trim();
    let is_marker = !directive.trim().is_empty()
        && !word.is_empty()
        && word.bytes().all(|b| b.is_ascii_uppercase() || b == b'_');
    is_marker.then_some(word)
}

/// Rewrites the addresses of marked lines: on each line marked with one of
/// `addresses`' markers, the first `IPv4:port` becomes that address.
/// Returns the text and how often each marker was seen.
///
/// # Errors
///
/// A line carries a marker not in `addresses` (its address would be left
/// pointing at the shipped default), or a marked line has no `IPv4:port`.
pub(crate) fn rewrite_marked(
    text: &str,
    addresses: &[(&str, SocketAddr)],
) -> io::Result<(String, Vec<usize>)> {
    let mut seen = vec![0; addresses.len()];
    let mut out = String::with_capacity(text.len() + 64);
    for line in text.lines() {
        match marker(line) {
            None => out.push_str(line),
            Some(found) => {
                let index = addresses
                    .iter()
                    .position(|(marker, _)| *marker == found)
                    .ok_or_else(|| invalid(format!("no address given for `# {found}`")))?;
                seen[index] += 1;
                out.push_str(&replace_first_address(line, addresses[index].1)?);
            }
        }
        out.push('\n');
    }
    Ok((out, seen))
}

/// `line` with its first `IPv4:port` replaced by `addr`.
fn replace_first_address(line: &str, addr: SocketAddr) -> io::Result<String> {
    let bytes = line.as_bytes();
    for start in 0..bytes.len() {
        if start > 0 && (bytes[start - 1].is_ascii_digit() || bytes[start - 1] == b'.') {
            continue;
        }
        if let Some(len) = ipv4_with_port(&bytes[start..]) {
            let mut out = String::with_capacity(line.len() + 8);
            out.push_str(&line[..start]);
            out.push_str(&addr.to_string());
            out.push_str(&line[start + len..]);
            return Ok(out);
        }
    }
    Err(invalid(format!("no IPv4:port to replace in {line:?}")))
}

/// The length of the `a.b.c.d:port` that `bytes` starts with, if it does.
fn ipv4_with_port(bytes: &[u8]) -> Option<usize> {
    let digits = |from: usize| {
        bytes[from..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count()
    };
    let mut at = 0;
    for part in 0..4 {
        let n = digits(at);
        if !(1..=3).contains(&n) {
            return None;
        }
        at += n;
        let separator = if part < 3 { b'.' } else { b':' };
        if bytes.get(at) != Some(&separator) {
            return None;
        }
        at += 1;
    }
    let n = digits(at);
    (1..=5).contains(&n).then_some(at + n)
}

/// Stand-ins for tessera and an app, for the starters' own tests.
#[cfg(test)]
pub(crate) mod fake {
    use std::io::{BufRead, BufReader, Write};
    use std::net::{SocketAddr, TcpListener};

    /// A server that answers every request on its own thread, forever:
    /// `/auth/verify` with 204, the identity and a cookie; anything else
    /// with 200 and the `X-Auth-Email` it was sent.
    pub(crate) fn server() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(&stream);
                    let mut lines = Vec::new();
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                            break;
                        }
                        lines.push(line.trim_end().to_owned());
                    }
                    let email = lines
                        .iter()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("x-auth-email: ")
                                .map(str::to_owned)
                        })
                        .unwrap_or_default();
                    let answer = if lines.first().is_some_and(|l| l.contains(" /auth/verify")) {
                        "HTTP/1.1 204 No Content\r\nX-Auth-Email: a@example.com\r\n\
                         Set-Cookie: __Host-tessera=fresh; Path=/\r\nConnection: close\r\n\r\n"
                            .to_owned()
                    } else {
                        format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{email}",
                            email.len()
                        )
                    };
                    let _ = (&stream).write_all(answer.as_bytes());
                });
            }
        });
        addr
    }

    /// Checks a proxy started in front of two [`server`]s on `port`: it
    /// passes the check's cookie and identity on (not the client's forged
    /// one), and dropping it stops it and removes its directory.
    pub(crate) fn check_and_stop(mut proxy: super::ProxyServer, port: u16) {
        assert_eq!(proxy.url(), format!("http://127.0.0.1:{port}"));
        let answer = get(proxy.addr());
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(
            answer.contains("\r\nSet-Cookie: __Host-tessera=fresh; Path=/\r\n"),
            "{answer}"
        );
        assert!(
            answer.ends_with("\r\n\r\na@example.com"),
            "the identity, not the forged one: {answer}"
        );
        let dir = proxy.dir().to_owned();
        let leader = proxy.process().id();
        drop(proxy);
        assert!(!dir.exists(), "the working directory is removed");
        assert!(!crate::process::alive(leader));
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    }

    /// `GET /x` through `proxy`: the whole answer.
    pub(crate) fn get(proxy: SocketAddr) -> String {
        use std::io::Read;
        let mut stream = std::net::TcpStream::connect(proxy).unwrap();
        stream
            .write_all(b"GET /x HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Auth-Email: forged\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn only_the_address_of_a_marked_line_changes() {
        let text = "\
# a comment naming 127.0.0.1:1 # APP
url: \"http://127.0.0.1:9000\" # APP
address: \"http://10.0.0.1:8080/auth/verify\" # TESSERA
other: 127.0.0.1:9000
";
        let (out, seen) = rewrite_marked(text, &[("APP", addr(5)), ("TESSERA", addr(6))]).unwrap();
        assert_eq!(
            out,
            "\
# a comment naming 127.0.0.1:1 # APP
url: \"http://127.0.0.1:5\" # APP
address: \"http://127.0.0.1:6/auth/verify\" # TESSERA
other: 127.0.0.1:9000
"
        );
        assert_eq!(seen, [1, 1]);
    }

    #[test]
    fn unknown_markers_and_marked_lines_without_an_address_are_refused() {
        let unknown = rewrite_marked("x: 127.0.0.1:1 # OTHER\n", &[("APP", addr(5))]);
        assert_eq!(unknown.unwrap_err().kind(), io::ErrorKind::InvalidInput);
        let bare = rewrite_marked("url: localhost:9000 # APP\n", &[("APP", addr(5))]);
        assert!(bare.is_err());
        assert!(rewrite_marked("x: 1.2.3:4 # APP\n", &[("APP", addr(5))]).is_err());
    }
}
