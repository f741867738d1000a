//! A real Traefik running the configuration shipped in `deploy/traefik`
//! (static `traefik.yml`, dynamic `dynamic.yml` for the file provider),
//! used as shipped except for the addresses on its marker lines.
//!
//! A marker is a trailing comment of one upper-case word, e.g.
//! `address: "127.0.0.1:8000" # LISTEN` or
//! `- url: "http://127.0.0.1:9000" # APP`: the first `IPv4:port` of such a
//! line becomes the address given for its marker. The static file needs
//! exactly one `# LISTEN` line; each marker given must appear, and a marker
//! without an address is refused rather than left at its default.

use std::io;
use std::net::SocketAddr;
use std::process::Command;

use crate::proxy::{self, ProxyServer, invalid};

/// The marker of the entry point's address.
pub const LISTEN: &str = "LISTEN";

/// What Traefik's own 404 says: no router matched (yet).
const NO_ROUTE: &str = "404 page not found";

/// What Traefik is started with: the two files' text, its listen port, the
/// addresses for the other markers, and a path that some router serves.
#[derive(Debug, Clone)]
pub struct TraefikConfig<'a> {
    static_template: &'a str,
    dynamic_template: &'a str,
    listen_port: u16,
    addresses: Vec<(&'a str, SocketAddr)>,
    probe: &'a str,
}

impl<'a> TraefikConfig<'a> {
    /// The static and dynamic configuration, the entry point on
    /// 127.0.0.1:`listen_port`, no other address rewritten yet.
    pub fn new(static_template: &'a str, dynamic_template: &'a str, listen_port: u16) -> Self {
        Self {
            static_template,
            dynamic_template,
            listen_port,
            addresses: Vec::new(),
            probe: "/",
        }
    }

    /// Gives the lines marked `# MARKER` (e.g. `TESSERA`) the address `addr`.
    #[must_use]
    pub fn upstream(mut self, marker: &'a str, addr: SocketAddr) -> Self {
        self.addresses.push((marker, addr));
        self
    }

    /// The path asked for to learn that the dynamic configuration is loaded
    /// (any answer but Traefik's own 404 will do); `/` unless set.
    #[must_use]
    pub fn probe(mut self, path: &'a str) -> Self {
        self.probe = path;
        self
    }

    /// The static and the dynamic configuration Traefik will read.
    ///
    /// # Errors
    ///
    /// The static file has not exactly one `# LISTEN` line (or the dynamic
    /// file has one), a marker given appears nowhere, a marker appears that
    /// has no address, or a marked line has no `IPv4:port`.
    pub fn render(&self) -> io::Result<(String, String)> {
        let listen = SocketAddr::from(([127, 0, 0, 1], self.listen_port));
        let mut addresses = vec![(LISTEN, listen)];
        addresses.extend(self.addresses.iter().copied());
        let (static_config, in_static) = proxy::rewrite_marked(self.static_template, &addresses)?;
        let (dynamic_config, in_dynamic) =
            proxy::rewrite_marked(self.dynamic_template, &addresses)?;
        if in_static[0] != 1 || in_dynamic[0] != 0 {
            return Err(invalid(format!(
                "Traefik's static configuration needs exactly one `# {LISTEN}` line \
                 (it has {}, the dynamic one {})",
                in_static[0], in_dynamic[0]
            )));
        }
        for (index, (marker, _)) in addresses.iter().enumerate().skip(1) {
            if in_static[index] + in_dynamic[index] == 0 {
                return Err(invalid(format!(
                    "the Traefik configuration has no `# {marker}` line"
                )));
            }
        }
        Ok((static_config, dynamic_config))
    }

    /// Writes `traefik.yml` and `dynamic.yml` to a fresh directory and
    /// starts `traefik --configFile=traefik.yml` there, waiting until it
    /// listens and routes the probe path.
    ///
    /// # Errors
    ///
    /// The templates are refused (see [`TraefikConfig::render`]); Traefik
    /// cannot be started (kind `NotFound` when it is not installed); or it
    /// ended, did not listen or had no route in time, and then the message
    /// carries its standard error.
    pub fn start(self) -> io::Result<ProxyServer> {
        let (static_config, dynamic_config) = self.render()?;
        let temp = proxy::work_dir("traefik")?;
        let dir = temp.path().to_owned();
        std::fs::write(dir.join("traefik.yml"), static_config)?;
        std::fs::write(dir.join("dynamic.yml"), dynamic_config)?;
        let mut command = Command::new("traefik");
        command.arg("--configFile=traefik.yml");
        let addr = SocketAddr::from(([127, 0, 0, 1], self.listen_port));
        // The entry point listens before the file provider's routers are
        // in: until then every path is Traefik's own 404.
        let probe = self.probe;
        let routed = move || {
            proxy::http_get(addr, probe)
                .is_some_and(|(status, body)| !(status == 404 && body.trim() == NO_ROUTE))
        };
        proxy::start("traefik", &mut command, addr, temp, routed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn shipped(name: &str) -> String {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../deploy/traefik")
            .join(name);
        std::fs::read_to_string(path).unwrap()
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn only_the_marked_addresses_of_the_shipped_files_change() {
        let (static_template, dynamic_template) = (shipped("traefik.yml"), shipped("dynamic.yml"));
        let (static_config, dynamic_config) =
            TraefikConfig::new(&static_template, &dynamic_template, 8001)
                .upstream("TESSERA", addr(8))
                .upstream("APP", addr(9))
                .render()
                .unwrap();
        let unmarked = |text: &str| -> Vec<String> {
            text.lines()
                .filter(|line| proxy::marker(line).is_none())
                .map(str::to_owned)
                .collect()
        };
        assert_eq!(unmarked(&static_config), unmarked(&static_template));
        assert_eq!(unmarked(&dynamic_config), unmarked(&dynamic_template));
        assert!(static_config.contains("address: \"127.0.0.1:8001\" # LISTEN"));
        for line in [
            "address: \"http://127.0.0.1:8/auth/verify\" # TESSERA",
            "- url: \"http://127.0.0.1:8\" # TESSERA",
            "- url: \"http://127.0.0.1:9\" # APP",
        ] {
            assert!(dynamic_config.contains(line), "{line} in {dynamic_config}");
        }
        for default in [":8000", ":8080", ":9000"] {
            let directives = |text: &str| {
                text.lines()
                    .filter(|line| !line.trim_start().starts_with('#'))
                    .any(|line| line.contains(default))
            };
            assert!(!directives(&static_config) && !directives(&dynamic_config));
        }
    }

    #[test]
    fn refuses_templates_whose_markers_do_not_match() {
        let (static_template, dynamic_template) = (shipped("traefik.yml"), shipped("dynamic.yml"));
        let unset = TraefikConfig::new(&static_template, &dynamic_template, 1)
            .upstream("TESSERA", addr(8))
            .render();
        assert_eq!(
            unset.unwrap_err().to_string(),
            "no address given for `# APP`"
        );
        let absent = TraefikConfig::new(&static_template, &dynamic_template, 1)
            .upstream("TESSERA", addr(8))
            .upstream("APP", addr(9))
            .upstream("OTHER", addr(10))
            .render();
        assert!(absent.is_err());
        let swapped = TraefikConfig::new(&dynamic_template, &static_template, 1)
            .upstream("TESSERA", addr(8))
            .upstream("APP", addr(9))
            .render();
        assert!(swapped.is_err(), "LISTEN belongs in the static file");
    }

    #[test]
    fn runs_the_shipped_configuration_and_stops_with_its_guard() {
        use crate::proxy::fake;
        let port = crate::free_port();
        let proxy = TraefikConfig::new(&shipped("traefik.yml"), &shipped("dynamic.yml"), port)
            .upstream("TESSERA", fake::server())
            .upstream("APP", fake::server())
            .start()
            .expect("traefik (see scripts/test)");
        fake::check_and_stop(proxy, port);
    }
}
