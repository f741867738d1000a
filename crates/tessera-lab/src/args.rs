//! The flags of `tessera lab`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::architecture::Architecture;
use crate::duration::parse_duration;
use crate::experiment::Experiment;

/// Flags of `tessera lab`.
#[derive(Debug, Args)]
pub struct LabArgs {
    /// Experiments to run (comma-separated), or `all`.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "node-loss")]
    pub experiment: Vec<Experiment>,
    /// node-loss: tessera nodes per architecture; node 1 is killed.
    #[arg(long, default_value_t = 3)]
    pub nodes: usize,
    /// node-loss and scale-out: simulated users, each calling /profile in a loop.
    #[arg(long, default_value_t = 60)]
    pub users: usize,
    /// node-loss: measured run per architecture (e.g. 16s, 1500ms, 1m).
    #[arg(long, default_value = "16s", value_parser = parse_duration)]
    pub duration: Duration,
    /// node-loss: when node 1 is SIGKILLed, from the start of the run.
    #[arg(long, default_value = "6s", value_parser = parse_duration)]
    pub kill_at: Duration,
    /// node-loss: how long node 1 stays down before it is started again.
    #[arg(long, default_value = "4s", value_parser = parse_duration)]
    pub restart_after: Duration,
    /// node-loss and scale-out: pause between one user's requests.
    #[arg(long, default_value = "0ms", value_parser = parse_duration)]
    pub think: Duration,
    /// node-loss and scale-out: architectures to run (comma-separated).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "stateful,redis,jwt"
    )]
    pub arch: Vec<Architecture>,
    /// scale-out: measured run per architecture; node 3 joins at a third,
    /// node 1 leaves at two thirds.
    #[arg(long, default_value = "12s", value_parser = parse_duration)]
    pub scale_duration: Duration,
    /// logout and permissions: users per mechanism (a quarter of the logout
    /// users are disabled by an admin instead).
    #[arg(long, default_value_t = 12)]
    pub probe_users: usize,
    /// logout and permissions: the access-token lifetime (`jwt_access_ttl`;
    /// tessera's default is 15m).
    #[arg(long, default_value = "8s", value_parser = parse_duration)]
    pub access_ttl: Duration,
    /// logout and permissions: the users' logouts (role changes) are spread
    /// over this time.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    pub spread: Duration,
    /// verify-cost: load per mechanism and per endpoint.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub cost_duration: Duration,
    /// verify-cost: concurrent clients.
    #[arg(long, default_value_t = 16)]
    pub cost_clients: usize,
    /// Write the charts: SVG (`lab.svg`) or PNG (`lab.png`).
    #[arg(long, value_name = "FILE")]
    pub plot: Option<PathBuf>,
    /// Write one self-contained HTML page: the article's tables with the
    /// figures measured, the charts, the machine.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Print the results as JSON instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Use this Redis instead of starting a throwaway redis-server.
    #[arg(long, value_name = "URL")]
    pub redis_url: Option<String>,
}
