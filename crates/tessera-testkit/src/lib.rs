//! The process harness shared by tessera's test suites and `tessera lab`:
//! child processes in their own process groups, stopped with everything
//! they forked when their guard drops ([`ProcessGroup`]); free ports; real
//! Redis servers started on free ports, which a test may kill, freeze and
//! restart, a real three-primary Redis Cluster, TLS servers with a test CA
//! ([`TestCa`], made with the `openssl` command) and a primary with replicas
//! and three sentinels ([`RedisSentinels`]); nginx running the
//! configurations shipped in `deploy/nginx`, rewritten only at their marker
//! lines ([`Nginx`]); Caddy and Traefik running the configurations shipped
//! in `deploy/caddy` and `deploy/traefik`, only their addresses set
//! ([`CaddyConfig`], [`TraefikConfig`]); a certificate authority made for
//! one test ([`TestCa`]) and a throwaway PostgreSQL that speaks TLS only
//! ([`TlsPostgres`]).
#![forbid(unsafe_code)]

mod caddy;
mod nginx;
mod postgres;
mod process;
mod proxy;
mod redis;
mod sentinel;
mod test_ca;
mod traefik;

pub use caddy::{CaddyConfig, LISTEN_ADDR};
pub use nginx::{LISTEN, NODE, Nginx, NginxConfig};
pub use postgres::TlsPostgres;
pub use process::{GRACE, ProcessGroup, free_port, try_free_port};
pub use proxy::ProxyServer;
pub use redis::{RedisCluster, RedisServer, ServerTls, redis_cli, redis_cli_tls};
pub use sentinel::{RedisSentinels, SERVICE as SENTINEL_SERVICE};
pub use test_ca::{Issued, TestCa};
pub use traefik::TraefikConfig;
