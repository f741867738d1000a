//! The flags of `tessera lab`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::architecture::Architecture;
use crate::duration::parse_duration;

/// Flags of `tessera lab`.
#[derive(Debug, Args)]
pub struct LabArgs {
    /// tessera nodes per architecture; node 1 is killed.
    #[arg(long, default_value_t = 3)]
    pub nodes: usize,
    /// Simulated users, each calling /profile in a loop.
    #[arg(long, default_value_t = 60)]
    pub users: usize,
    /// Measured run per architecture (e.g. 20s, 1500ms, 1m).
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    pub duration: Duration,
    /// When node 1 is SIGKILLed, from the start of the run.
    #[arg(long, default_value = "8s", value_parser = parse_duration)]
    pub kill_at: Duration,
    /// How long node 1 stays down before it is started again.
    #[arg(long, default_value = "4s", value_parser = parse_duration)]
    pub restart_after: Duration,
    /// Pause between one user's requests.
    #[arg(long, default_value = "0ms", value_parser = parse_duration)]
    pub think: Duration,
    /// Architectures to run (comma-separated).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "stateful,redis,jwt"
    )]
    pub arch: Vec<Architecture>,
    /// Write a chart of successful requests per second over time (SVG).
    #[arg(long, value_name = "FILE")]
    pub plot: Option<PathBuf>,
    /// Print the results as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Use this Redis instead of starting a throwaway redis-server.
    #[arg(long, value_name = "URL")]
    pub redis_url: Option<String>,
}
