//! nginx in front of the nodes, with the configurations shipped in
//! `deploy/nginx` (embedded as they are; only the lines marked `# LISTEN`
//! and `# NODE` are rewritten for this run's addresses).

use std::io;
use std::net::SocketAddr;
use std::path::Path;

use anyhow::{Context, bail};
use tessera_testkit::{NODE, Nginx, NginxConfig, try_free_port};

use super::architecture::Routing;

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

/// A running nginx (the testkit's: stopped with its workers when dropped).
pub struct Balancer {
    nginx: Nginx,
}

impl Balancer {
    /// Starts nginx with `prefix` as its directory (configuration, pid file,
    /// error log, temporary files), in front of `nodes`.
    ///
    /// # Errors
    ///
    /// nginx is missing, refuses the configuration or does not listen; the
    /// message carries its error log.
    pub fn start(routing: Routing, prefix: &Path, nodes: &[SocketAddr]) -> anyhow::Result<Self> {
        let template = template(routing);
        check_node_header(template)?;
        let port = try_free_port()?;
        let nginx = NginxConfig::new(template, port)
            .upstream(NODE, nodes)
            .prefix(prefix)
            .start();
        let nginx = match nginx {
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                Err(error).context("nginx is needed in PATH (e.g. apt-get install nginx-light)")?
            }
            nginx => nginx?,
        };
        Ok(Self { nginx })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.nginx.addr()
    }

    /// Rewrites the configuration for `nodes` and has nginx reload it
    /// (`nginx -s reload`: new workers take new connections, the old ones
    /// finish the requests they have).
    ///
    /// # Errors
    ///
    /// The configuration cannot be written, or nginx refused it.
    pub async fn reload(
        &self,
        routing: Routing,
        prefix: &Path,
        nodes: &[SocketAddr],
    ) -> anyhow::Result<()> {
        let config = NginxConfig::new(template(routing), self.addr().port())
            .upstream(NODE, nodes)
            .render()?;
        let conf_path = prefix.join("nginx.conf");
        std::fs::write(&conf_path, config)
            .with_context(|| format!("cannot write {}", conf_path.display()))?;
        let output = tokio::process::Command::new("nginx")
            .arg("-p")
            .arg(prefix)
            .arg("-c")
            .arg(&conf_path)
            .args(["-s", "reload"])
            .output()
            .await
            .context("cannot run nginx -s reload")?;
        if !output.status.success() {
            bail!(
                "nginx -s reload failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(())
    }
}

fn template(routing: Routing) -> &'static str {
    match routing {
        Routing::Sticky => STICKY,
        Routing::RoundRobin => ROUND_ROBIN,
    }
}

fn check_node_header(template: &str) -> anyhow::Result<()> {
    if !template.to_ascii_lowercase().contains(NODE_HEADER) {
        bail!("the nginx configuration does not set {NODE_HEADER}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What [`Balancer::start`] has nginx read: the template with nginx
    /// listening on `listen` and one upstream `server` line per node.
    fn render(template: &str, listen: SocketAddr, nodes: &[SocketAddr]) -> anyhow::Result<String> {
        check_node_header(template)?;
        Ok(NginxConfig::new(template, listen.port())
            .upstream(NODE, nodes)
            .render()?)
    }

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
