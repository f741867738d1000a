//! The process harness shared by tessera's test suites and `tessera lab`:
//! child processes in their own process groups, stopped with everything
//! they forked when their guard drops ([`ProcessGroup`]); free ports; real
//! Redis servers started on free ports, which a test may kill, freeze and
//! restart, and a real three-primary Redis Cluster; nginx running the
//! configurations shipped in `deploy/nginx`, rewritten only at their marker
//! lines ([`Nginx`]).
#![forbid(unsafe_code)]

mod nginx;
mod process;
mod redis;

pub use nginx::{LISTEN, NODE, Nginx, NginxConfig};
pub use process::{GRACE, ProcessGroup, free_port, try_free_port};
pub use redis::{RedisCluster, RedisServer, redis_cli};
