//! nginx in front of the nodes, with the configurations shipped in
//! `deploy/nginx` (embedded as they are; only the lines marked `# LISTEN`
//! and `# NODE` are rewritten for this run's addresses).

use std::fs::File;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::process::Command;

use super::architecture::Routing;
use super::process::{ChildProcess, free_port, wait_for_listener};

const STICKY: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../deploy/nginx/sticky.conf"
));
const ROUND_ROBIN: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../deploy/nginx/round-robin.conf"
));

/// The response header naming the node that answered (both shipped
/// configurations set it; the lab needs it to know where sessions live).
pub const NODE_HEADER: &str = "x-tessera-node";

/// A running nginx.
pub struct Balancer {
    addr: SocketAddr,
    _process: ChildProcess,
}

impl Balancer {
    /// Starts nginx with `prefix` as its directory (configuration, pid file,
    /// error log, temporary files), in front of `nodes`.
    ///
    /// # Errors
    ///
    /// nginx is missing, refuses the configuration or does not listen; the
    /// message carries its error log.
    pub async fn start(
        routing: Routing,
        prefix: &Path,
        nodes: &[SocketAddr],
    ) -> anyhow::Result<Self> {
        let template = match routing {
            Routing::Sticky => STICKY,
            Routing::RoundRobin => ROUND_ROBIN,
        };
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let config = render(template, addr, nodes)?;
        std::fs::create_dir_all(prefix.join("tmp"))
            .with_context(|| format!("cannot create {}", prefix.display()))?;
        let conf_path = prefix.join("nginx.conf");
        std::fs::write(&conf_path, config)?;
        let log = File::create(prefix.join("stderr.log"))?;
        let mut command = Command::new("nginx");
        command
            .arg("-p")
            .arg(prefix)
            .arg("-c")
            .arg(&conf_path)
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(log);
        let mut process = ChildProcess::spawn("nginx", command)
            .context("nginx is needed in PATH (e.g. apt-get install nginx-light)")?;
        if let Err(error) = wait_for_listener(&mut process, addr, Duration::from_secs(10)).await {
            let logs = ["stderr.log", "error.log"]
                .map(|name| std::fs::read_to_string(prefix.join(name)).unwrap_or_default());
            bail!("{error:#}\n{}{}", logs[0], logs[1]);
        }
        Ok(Self {
            addr,
            _process: process,
        })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// The configuration with nginx listening on `listen` and one upstream
/// `server` line per node (copied from the first `# NODE` line). Markers
/// in comments are text, not markers.
///
/// # Errors
///
/// The template lacks a `# LISTEN` or `# NODE` line, or the node header.
pub fn render(template: &str, listen: SocketAddr, nodes: &[SocketAddr]) -> anyhow::Result<String> {
    if !template.to_ascii_lowercase().contains(NODE_HEADER) {
        bail!("the nginx configuration does not set {NODE_HEADER}");
    }
    let mut out = String::with_capacity(template.len() + 64 * nodes.len());
    let (mut listens, mut node_lines) = (0, 0);
    for line in template.lines() {
        let comment = line.trim_start().starts_with('#');
        if !comment && line.contains("# LISTEN") {
            listens += 1;
            out.push_str(&replace_address(line, "listen", listen)?);
            out.push('\n');
        } else if !comment && line.contains("# NODE") {
            node_lines += 1;
            if node_lines == 1 {
                for node in nodes {
                    out.push_str(&replace_address(line, "server", *node)?);
                    out.push('\n');
                }
            }
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    if listens != 1 || node_lines == 0 {
        bail!("the nginx configuration needs one `# LISTEN` line and `# NODE` lines");
    }
    Ok(out)
}

/// `line` with the address after `directive` replaced by `addr`.
fn replace_address(line: &str, directive: &str, addr: SocketAddr) -> anyhow::Result<String> {
    let mut words = line.split_whitespace();
    while let Some(word) = words.next() {
        if word == directive {
            let old = words
                .next()
                .context("directive without an address")?
                .trim_end_matches(';');
            return Ok(line.replacen(old, &addr.to_string(), 1));
        }
    }
    bail!("no `{directive}` in {line:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn rewrites_the_listen_line_and_one_server_line_per_node() {
        for template in [STICKY, ROUND_ROBIN] {
            let config = render(template, addr(9000), &[addr(1), addr(2), addr(3)]).unwrap();
            assert!(config.contains("listen 127.0.0.1:9000;"), "{config}");
            for port in 1..=3 {
                let line = format!("server 127.0.0.1:{port} max_fails=1 fail_timeout=5s;");
                assert!(config.contains(&line), "{config}");
            }
            let directives: String = config
                .lines()
                .filter(|line| !line.trim_start().starts_with('#'))
                .collect();
            for default in [":8081", ":8082", ":8000"] {
                assert!(!directives.contains(default), "{config}");
            }
            assert_eq!(config.matches("# NODE").count(), 3);
        }
    }

    #[test]
    fn the_sticky_configuration_hashes_on_the_routing_cookie() {
        assert!(STICKY.contains("hash $tessera_route consistent;"));
        assert!(STICKY.contains("Set-Cookie \"tessera_route=$tessera_route;"));
    }

    #[test]
    fn refuses_a_template_without_markers() {
        let bare = "add_header X-Tessera-Node $upstream_addr;\nlisten 1.2.3.4:5;\n";
        assert!(render(bare, addr(1), &[addr(2)]).is_err());
    }
}
