//! What to run, checked once from the flags.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use serde::{Serialize, Serializer};

use super::architecture::Architecture;
use crate::args::LabArgs;

/// The experiment's parameters, the same for every architecture.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// tessera nodes behind nginx.
    pub nodes: usize,
    /// Simulated users.
    pub users: usize,
    /// The measured run, per architecture.
    #[serde(rename = "duration_s", serialize_with = "seconds")]
    pub duration: Duration,
    /// When node 1 is SIGKILLed, from the start of the run.
    #[serde(rename = "kill_at_s", serialize_with = "seconds")]
    pub kill_at: Duration,
    /// How long it stays down before it is started again.
    #[serde(rename = "restart_after_s", serialize_with = "seconds")]
    pub restart_after: Duration,
    /// Pause between one user's requests.
    #[serde(rename = "think_s", serialize_with = "seconds")]
    pub think: Duration,
    /// The rows to run, in table order.
    #[serde(skip)]
    pub architectures: Vec<Architecture>,
    /// A Redis to use instead of starting one.
    #[serde(skip)]
    pub redis_url: Option<String>,
    /// Where to write the chart.
    #[serde(skip)]
    pub plot: Option<PathBuf>,
    /// JSON on stdout instead of the table.
    #[serde(skip)]
    pub json: bool,
}

impl Plan {
    /// Checks the flags.
    ///
    /// # Errors
    ///
    /// Values that cannot make an experiment (the message says which).
    pub fn from_args(args: &LabArgs) -> anyhow::Result<Self> {
        if args.nodes < 2 {
            bail!("--nodes must be at least 2: one is killed, the others carry on");
        }
        if args.users == 0 {
            bail!("--users must be at least 1");
        }
        if args.kill_at.is_zero() || args.kill_at >= args.duration {
            bail!("--kill-at must fall inside --duration");
        }
        if let Some(plot) = &args.plot
            && plot
                .extension()
                .is_some_and(|e| !e.eq_ignore_ascii_case("svg"))
        {
            bail!("--plot writes SVG: give the file an .svg name");
        }
        let mut architectures = args.arch.clone();
        architectures.sort_unstable();
        architectures.dedup();
        Ok(Self {
            nodes: args.nodes,
            users: args.users,
            duration: args.duration,
            kill_at: args.kill_at,
            restart_after: args.restart_after,
            think: args.think,
            architectures,
            redis_url: args.redis_url.clone(),
            plot: args.plot.clone(),
            json: args.json,
        })
    }

    /// When the killed node is started again, if within the run.
    pub fn restart_at(&self) -> Option<Duration> {
        let at = self.kill_at + self.restart_after;
        (at < self.duration).then_some(at)
    }
}

fn seconds<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(duration.as_secs_f64())
}
