//! A real Caddy running a shipped Caddyfile (`deploy/caddy/Caddyfile`)
//! exactly as shipped: its addresses are environment placeholders with
//! defaults (`{$AUTH_UPSTREAM:127.0.0.1:8080}`), which this sets.
//!
//! A Caddyfile that lacks a placeholder asked for, or uses one that is not
//! given (its default would point at a shipped address), is refused.

use std::io;
use std::net::SocketAddr;
use std::process::Command;

use crate::proxy::{self, ProxyServer, invalid};

/// The placeholder of the address Caddy listens on.
pub const LISTEN_ADDR: &str = "LISTEN_ADDR";

/// What Caddy is started with: a Caddyfile's text, its listen port and the
/// addresses for its other placeholders.
#[derive(Debug, Clone)]
pub struct CaddyConfig<'a> {
    template: &'a str,
    listen_port: u16,
    addresses: Vec<(&'a str, SocketAddr)>,
}

impl<'a> CaddyConfig<'a> {
    /// `template` listening on 127.0.0.1:`listen_port` (`{$LISTEN_ADDR}`).
    pub fn new(template: &'a str, listen_port: u16) -> Self {
        Self {
            template,
            listen_port,
            addresses: Vec::new(),
        }
    }

    /// Sets the placeholder `{$NAME}` (e.g. `AUTH_UPSTREAM`) to `addr`.
    #[must_use]
    pub fn address(mut self, name: &'a str, addr: SocketAddr) -> Self {
        self.addresses.push((name, addr));
        self
    }

    /// The environment Caddy gets: each placeholder and its address.
    ///
    /// # Errors
    ///
    /// The template lacks `{$LISTEN_ADDR}` or a placeholder given, or uses
    /// one that is not given.
    pub fn environment(&self) -> io::Result<Vec<(String, String)>> {
        let listen = SocketAddr::from(([127, 0, 0, 1], self.listen_port));
        let mut env = vec![(LISTEN_ADDR.to_owned(), listen.to_string())];
        env.extend(
            self.addresses
                .iter()
                .map(|(name, addr)| ((*name).to_owned(), addr.to_string())),
        );
        let used = placeholders(self.template);
        for (name, _) in &env {
            if !used.contains(&name.as_str()) {
                return Err(invalid(format!("the Caddyfile has no `{{${name}}}`")));
            }
        }
        if let Some(unset) = used
            .iter()
            .find(|name| !env.iter().any(|(n, _)| n == *name))
        {
            return Err(invalid(format!("no address given for `{{${unset}}}`")));
        }
        Ok(env)
    }

    /// Writes the Caddyfile to a fresh directory and starts `caddy run`
    /// there (admin endpoint off, data and config in that directory),
    /// waiting until it listens.
    ///
    /// # Errors
    ///
    /// The template is refused (see [`CaddyConfig::environment`]); Caddy
    /// cannot be started (kind `NotFound` when it is not installed); or it
    /// ended or did not listen in time, and then the message carries its
    /// standard error.
    pub fn start(self) -> io::Result<ProxyServer> {
        let env = self.environment()?;
        let temp = proxy::work_dir("caddy")?;
        let dir = temp.path().to_owned();
        std::fs::write(dir.join("Caddyfile"), self.template)?;
        let mut command = Command::new("caddy");
        command
            .args(["run", "--adapter", "caddyfile", "--config"])
            .arg(dir.join("Caddyfile"))
            .env("XDG_DATA_HOME", dir.join("data"))
            .env("XDG_CONFIG_HOME", dir.join("config"))
            .envs(env);
        let addr = SocketAddr::from(([127, 0, 0, 1], self.listen_port));
        // Caddy loads its whole configuration before it listens.
        proxy::start("caddy", &mut command, addr, temp, || true)
    }
}

/// The names of the `{$NAME}` and `{$NAME:default}` placeholders outside
/// comment lines.
fn placeholders(template: &str) -> Vec<&str> {
    let mut names = Vec::new();
    for line in template.lines() {
        if line.trim_start().starts_with('#') {
            continue;
        }
        let mut rest = line;
        while let Some(start) = rest.find("{$") {
            rest = &rest[start + 2..];
            let end = rest.find([':', '}']).unwrap_or(rest.len());
            let name = &rest[..end];
            if !name.is_empty() && !names.contains(&name) {
                names.push(name);
            }
            rest = &rest[end..];
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn shipped() -> String {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/caddy/Caddyfile");
        std::fs::read_to_string(path).unwrap()
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn the_shipped_caddyfile_takes_its_three_addresses_from_the_environment() {
        let template = shipped();
        assert_eq!(
            placeholders(&template),
            ["LISTEN_ADDR", "AUTH_UPSTREAM", "APP_UPSTREAM"]
        );
        let env = CaddyConfig::new(&template, 8001)
            .address("AUTH_UPSTREAM", addr(8))
            .address("APP_UPSTREAM", addr(9))
            .environment()
            .unwrap();
        assert_eq!(
            env,
            [
                ("LISTEN_ADDR", "127.0.0.1:8001"),
                ("AUTH_UPSTREAM", "127.0.0.1:8"),
                ("APP_UPSTREAM", "127.0.0.1:9"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
    }

    #[test]
    fn refuses_missing_and_unset_placeholders() {
        let template = shipped();
        let unset = CaddyConfig::new(&template, 1).address("AUTH_UPSTREAM", addr(8));
        assert_eq!(
            unset.environment().unwrap_err().to_string(),
            "no address given for `{$APP_UPSTREAM}`"
        );
        let missing = CaddyConfig::new(&template, 1)
            .address("AUTH_UPSTREAM", addr(8))
            .address("APP_UPSTREAM", addr(9))
            .address("OTHER", addr(10));
        assert!(missing.environment().is_err());
        let bare = CaddyConfig::new("http://127.0.0.1:8000 {\n}\n", 1);
        assert!(bare.environment().is_err(), "no {{$LISTEN_ADDR}}");
    }

    #[test]
    fn runs_the_shipped_configuration_and_stops_with_its_guard() {
        use crate::proxy::fake;
        let template = shipped();
        let port = crate::free_port();
        let proxy = CaddyConfig::new(&template, port)
            .address("AUTH_UPSTREAM", fake::server())
            .address("APP_UPSTREAM", fake::server())
            .start()
            .expect("caddy (see scripts/test)");
        fake::check_and_stop(proxy, port);
    }
}
