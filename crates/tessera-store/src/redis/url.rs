//! From tessera's Redis URL to fred's configuration.
//!
//! - `redis://[user:password@]host[:port][/db]`, one server;
//! - `redis-cluster://[user:password@]host:port?node=host:port&node=...`;
//! - `redis-sentinel://[user:password@]host:port,host:port[/db]?service=NAME`
//!   `[&sentinel_username=U&sentinel_password=P]`: the sentinels, and the
//!   service they watch; the URL's credentials are the Redis servers',
//!   the `sentinel_*` ones the sentinels' (none by default);
//!
//! each also as `rediss…` (TLS), and with `valkey` for `redis`. fred's own
//! TLS defaults are never used: a TLS URL gets [`RedisTls`]'s configuration.

use fred::bytes_utils::Str;
use fred::prelude::{Config, ServerConfig};
use fred::types::config::Server;

use super::tls::RedisTls;

/// Which deployment a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Server,
    Cluster,
    Sentinel,
}

/// The scheme's kind and whether it asks for TLS.
fn scheme(url: &str) -> Result<(Kind, bool, &str), String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(
            "not a URL (expected redis://, rediss://, redis-cluster:// or redis-sentinel://)"
                .into(),
        );
    };
    let scheme = scheme.to_ascii_lowercase();
    let base = scheme
        .strip_prefix("valkey")
        .or_else(|| scheme.strip_prefix("redis"))
        .ok_or_else(|| format!("unknown scheme {scheme}://"))?;
    let (tls, kind) = match base.strip_prefix('s') {
        Some(kind) => (true, kind),
        None => (false, base),
    };
    let kind = match kind {
        "" => Kind::Server,
        "-cluster" => Kind::Cluster,
        "-sentinel" => Kind::Sentinel,
        _ => return Err(format!("unknown scheme {scheme}://")),
    };
    Ok((kind, tls, rest))
}

/// fred's configuration for `url`, with `tls` when the URL asks for it.
/// A TLS URL without `tls` uses Mozilla's roots; `tls` with a plain-text
/// URL is refused (the operator meant TLS and would not get it).
pub(crate) fn config(url: &str, tls: Option<&RedisTls>) -> Result<Config, String> {
    let (kind, wants_tls, rest) = scheme(url)?;
    if tls.is_some() && !wants_tls {
        return Err(
            "TLS options (redis_tls_*) are set but the URL is plain text: use rediss://".into(),
        );
    }
    let mut config = match kind {
        Kind::Server => Config::from_url_centralized(&format!("redis://{rest}")),
        Kind::Cluster => Config::from_url_clustered(&format!("redis-cluster://{rest}")),
        Kind::Sentinel => Config::from_url_sentinel(&sentinel_url(rest)?),
    }
    .map_err(|e| e.details().to_owned())?;
    if wants_tls {
        let default = RedisTls::new();
        let tls = tls.unwrap_or(&default);
        config.tls = Some(tls.fred_config().map_err(|e| e.to_string())?);
        if let Some(name) = tls.server_name() {
            let name = Str::from(name);
            let set = |server: &mut Server| server.tls_server_name = Some(name.clone());
            match &mut config.server {
                ServerConfig::Centralized { server } => set(server),
                ServerConfig::Clustered { hosts, .. } | ServerConfig::Sentinel { hosts, .. } => {
                    hosts.iter_mut().for_each(set);
                }
            }
        }
    }
    Ok(config)
}

/// Rewrites `[userinfo@]h1:p1,h2:p2[/db][?query]` as fred's sentinel URL
/// (`redis-sentinel://[userinfo@]h1:p1[/db]?node=h2:p2&sentinelServiceName=...`).
fn sentinel_url(rest: &str) -> Result<String, String> {
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let (userinfo, hosts) = match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => (Some(userinfo), hosts),
        None => (None, authority),
    };
    let hosts: Vec<&str> = hosts.split(',').map(str::trim).collect();
    if hosts.iter().any(|h| h.is_empty()) {
        return Err("redis-sentinel:// needs host:port[,host:port...]".into());
    }
    let (path, query) = match tail.split_once('?') {
        Some((path, query)) => (path, query),
        None => (tail, ""),
    };
    let mut params = Vec::new();
    let mut service = false;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = match name {
            "service" => {
                service = true;
                "sentinelServiceName"
            }
            "sentinel_username" => "sentinelUsername",
            "sentinel_password" => "sentinelPassword",
            other => return Err(format!("unknown redis-sentinel:// parameter {other:?}")),
        };
        params.push(format!("{name}={value}"));
    }
    if !service {
        return Err(
            "redis-sentinel:// needs ?service=NAME (the name the sentinels monitor)".into(),
        );
    }
    for host in &hosts[1..] {
        let host = if host.contains(':') {
            (*host).to_owned()
        } else {
            format!("{host}:26379")
        };
        params.push(format!("node={host}"));
    }
    let userinfo = userinfo.map(|u| format!("{u}@")).unwrap_or_default();
    let path = if path == "/" { "" } else { path };
    Ok(format!(
        "redis-sentinel://{userinfo}{}{path}?{}",
        hosts[0],
        params.join("&")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(config: &Config) -> Vec<(String, u16)> {
        match &config.server {
            ServerConfig::Centralized { server } => vec![(server.host.to_string(), server.port)],
            ServerConfig::Clustered { hosts, .. } | ServerConfig::Sentinel { hosts, .. } => {
                hosts.iter().map(|s| (s.host.to_string(), s.port)).collect()
            }
        }
    }

    #[test]
    fn sentinel_urls_name_every_sentinel_the_service_and_both_credentials() {
        let config = config(
            "redis-sentinel://app:s%40cret@10.0.0.1:26379,10.0.0.2:26380,10.0.0.3/2?service=mymaster&sentinel_password=sp",
            None,
        )
        .unwrap();
        let mut got = hosts(&config);
        got.sort();
        assert_eq!(
            got,
            vec![
                ("10.0.0.1".into(), 26379),
                ("10.0.0.2".into(), 26380),
                ("10.0.0.3".into(), 26379)
            ]
        );
        let ServerConfig::Sentinel {
            service_name,
            username,
            password,
            ..
        } = &config.server
        else {
            panic!("sentinel expected");
        };
        assert_eq!(service_name, "mymaster");
        assert_eq!(
            (username.as_deref(), password.as_deref()),
            (None, Some("sp"))
        );
        assert_eq!(config.username.as_deref(), Some("app"));
        assert_eq!(config.password.as_deref(), Some("s@cret"));
        assert_eq!(config.database, Some(2));
        assert!(config.tls.is_none());
    }

    #[test]
    fn a_sentinel_url_without_a_service_or_with_an_unknown_parameter_is_refused() {
        let err = config("redis-sentinel://127.0.0.1:26379", None).unwrap_err();
        assert!(err.contains("service="), "{err}");
        let err = config(
            "redis-sentinel://127.0.0.1:26379/?service=m&sevrice=x",
            None,
        )
        .unwrap_err();
        assert!(err.contains("sevrice"), "{err}");
    }

    #[test]
    fn tls_urls_get_tls_and_plain_urls_refuse_tls_options() {
        for url in [
            "rediss://localhost:6380",
            "rediss-cluster://localhost:7000?node=localhost:7001",
            "rediss-sentinel://localhost:26379/?service=m",
            "valkeys://localhost",
        ] {
            assert!(config(url, None).unwrap().tls.is_some(), "{url}");
        }
        assert!(config("redis://localhost", None).unwrap().tls.is_none());
        let err = config("redis://localhost", Some(&RedisTls::new())).unwrap_err();
        assert!(err.contains("rediss://"), "{err}");
        assert!(
            config("http://localhost", None)
                .unwrap_err()
                .contains("scheme")
        );
    }

    #[test]
    fn a_server_name_reaches_the_configured_hosts() {
        let tls = RedisTls::new().with_server_name("redis.internal").unwrap();
        let config = config("rediss://127.0.0.1:6380", Some(&tls)).unwrap();
        let ServerConfig::Centralized { server } = &config.server else {
            panic!("one server expected");
        };
        assert_eq!(server.tls_server_name.as_deref(), Some("redis.internal"));
    }
}
