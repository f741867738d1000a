//! What to run, checked once from the flags.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use serde::{Serialize, Serializer};

use super::architecture::Architecture;
use crate::args::LabArgs;
use crate::experiment::Experiment;

/// Whether `--plot` writes SVG or PNG.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlotFormat {
    /// `.svg`
    Svg,
    /// `.png`
    Png,
}

/// The experiments' parameters.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// The experiments, in run order.
    pub experiments: Vec<Experiment>,
    /// tessera nodes behind nginx (node-loss; logout and permissions).
    pub nodes: usize,
    /// Simulated users (node-loss, scale-out).
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
    /// scale-out's run per architecture.
    #[serde(rename = "scale_duration_s", serialize_with = "seconds")]
    pub scale_duration: Duration,
    /// Users per mechanism in logout and permissions.
    pub probe_users: usize,
    /// The access-token lifetime in logout and permissions.
    #[serde(rename = "access_ttl_s", serialize_with = "seconds")]
    pub access_ttl: Duration,
    /// Logouts and role changes are spread over this.
    #[serde(rename = "spread_s", serialize_with = "seconds")]
    pub spread: Duration,
    /// verify-cost's load per mechanism and endpoint.
    #[serde(rename = "cost_duration_s", serialize_with = "seconds")]
    pub cost_duration: Duration,
    /// verify-cost's concurrent clients.
    pub cost_clients: usize,
    /// The rows to run, in table order.
    #[serde(skip)]
    pub architectures: Vec<Architecture>,
    /// A Redis to use instead of starting one.
    #[serde(skip)]
    pub redis_url: Option<String>,
    /// Where to write the chart.
    #[serde(skip)]
    pub plot: Option<(PathBuf, PlotFormat)>,
    /// Where to write the HTML report.
    #[serde(skip)]
    pub report: Option<PathBuf>,
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
        let experiments = Experiment::expand(&args.experiment);
        if args.nodes < 2 {
            bail!("--nodes must be at least 2: one is killed, the others carry on");
        }
        if args.users == 0 || args.probe_users == 0 || args.cost_clients == 0 {
            bail!("--users, --probe-users and --cost-clients must be at least 1");
        }
        if experiments.contains(&Experiment::NodeLoss)
            && (args.kill_at.is_zero() || args.kill_at >= args.duration)
        {
            bail!("--kill-at must fall inside --duration");
        }
        if args.access_ttl < Duration::from_secs(1) {
            bail!("--access-ttl must be at least 1s (tokens carry whole seconds)");
        }
        if args.scale_duration < Duration::from_secs(3) {
            bail!("--scale-duration must be at least 3s");
        }
        let plot = match &args.plot {
            None => None,
            Some(path) => {
                let extension = path
                    .extension()
                    .map(|e| e.to_string_lossy().to_ascii_lowercase());
                let format = match extension.as_deref() {
                    Some("svg") | None => PlotFormat::Svg,
                    Some("png") => PlotFormat::Png,
                    Some(_) => bail!("--plot writes SVG or PNG: name the file .svg or .png"),
                };
                Some((path.clone(), format))
            }
        };
        let mut architectures = args.arch.clone();
        architectures.sort_unstable();
        architectures.dedup();
        Ok(Self {
            experiments,
            nodes: args.nodes,
            users: args.users,
            duration: args.duration,
            kill_at: args.kill_at,
            restart_after: args.restart_after,
            think: args.think,
            scale_duration: args.scale_duration,
            probe_users: args.probe_users,
            access_ttl: args.access_ttl,
            spread: args.spread,
            cost_duration: args.cost_duration,
            cost_clients: args.cost_clients,
            architectures,
            redis_url: args.redis_url.clone(),
            plot,
            report: args.report.clone(),
            json: args.json,
        })
    }

    /// When the killed node is started again, if within the run.
    pub fn restart_at(&self) -> Option<Duration> {
        let at = self.kill_at + self.restart_after;
        (at < self.duration).then_some(at)
    }

    /// Whether `experiment` is to run.
    pub fn runs(&self, experiment: Experiment) -> bool {
        self.experiments.contains(&experiment)
    }
}

fn seconds<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(duration.as_secs_f64())
}
