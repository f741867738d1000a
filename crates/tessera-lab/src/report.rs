//! The results of a lab run: tables with footnotes (what people read),
//! JSON (`--json`, what tests and scripts read), the charts, and the
//! machine it ran on.

use std::fmt::Write;

use serde::Serialize;

use crate::chart::Figure;
use crate::logout::Logout;
use crate::node_loss::NodeLoss;
use crate::permissions::Permissions;
use crate::plan::Plan;
use crate::scale_out::ScaleOut;
use crate::verify_cost::VerifyCost;

/// Something selected that could not be measured.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    /// The experiment.
    pub experiment: &'static str,
    /// The architecture or mechanism.
    pub architecture: String,
    /// Why.
    pub reason: String,
}

/// The machine the lab ran on.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Machine {
    /// `model name` from /proc/cpuinfo.
    pub cpu: String,
    /// Cores available to the lab.
    pub cores: usize,
    /// The kernel release.
    pub kernel: String,
    /// /proc/loadavg when the lab started.
    pub load_at_start: String,
    /// ... and when it ended.
    pub load_at_end: String,
}

impl Machine {
    /// Reads /proc.
    pub fn now() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|line| {
                let (key, value) = line.split_once(':')?;
                (key.trim() == "model name").then(|| value.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".to_owned());
        Self {
            cpu,
            cores: std::thread::available_parallelism().map_or(1, usize::from),
            kernel: read_trimmed("/proc/sys/kernel/osrelease"),
            load_at_start: load(),
            load_at_end: String::new(),
        }
    }
}

/// The three load averages.
pub fn load() -> String {
    read_trimmed("/proc/loadavg")
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".to_owned())
}

/// What the lab ran.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Versions {
    /// This tessera.
    pub tessera: String,
    /// Whether the nodes were an unoptimised build.
    pub build: &'static str,
    /// `nginx -v`.
    pub nginx: String,
    /// `redis-server --version`.
    pub redis: String,
}

impl Versions {
    /// Asks the programs.
    pub async fn detect() -> Self {
        Self {
            tessera: env!("CARGO_PKG_VERSION").to_owned(),
            build: if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            },
            nginx: version_of("nginx", "-v").await,
            redis: version_of("redis-server", "--version").await,
        }
    }
}

async fn version_of(program: &str, flag: &str) -> String {
    match tokio::process::Command::new(program)
        .arg(flag)
        .output()
        .await
    {
        Ok(output) => {
            let text = if output.stdout.is_empty() {
                output.stderr
            } else {
                output.stdout
            };
            String::from_utf8_lossy(&text).trim().to_owned()
        }
        Err(_) => "not installed".to_owned(),
    }
}

/// Everything the lab found.
#[derive(Debug, Clone, Serialize)]
pub struct LabReport {
    /// The command line.
    pub command: String,
    /// The machine.
    pub machine: Machine,
    /// The programs.
    pub versions: Versions,
    /// The parameters.
    pub plan: Plan,
    /// The temporary directory the lab worked in (removed at the end).
    pub work_dir: String,
    /// The Redis the stateless clusters shared, if any ran.
    pub redis_url: Option<String>,
    /// Whether the nodes were an unoptimised build.
    pub debug_build: bool,
    /// The whole run, s.
    pub wall_s: f64,
    /// `node-loss`, if run.
    pub node_loss: Option<NodeLoss>,
    /// `scale-out`, if run.
    pub scale_out: Option<ScaleOut>,
    /// `logout`, if run.
    pub logout: Option<Logout>,
    /// `permissions`, if run.
    pub permissions: Option<Permissions>,
    /// `verify-cost`, if run.
    pub verify_cost: Option<VerifyCost>,
    /// What could not be measured.
    pub failed: Vec<Failure>,
}

impl LabReport {
    /// Every experiment's table, with footnotes.
    pub fn table(&self) -> String {
        let mut out = String::new();
        if self.debug_build {
            out.push_str("(debug build: slow; compare rows only)\n\n");
        }
        let tables = [
            self.node_loss.as_ref().map(|e| e.table(&self.plan)),
            self.scale_out.as_ref().map(ScaleOut::table),
            self.logout.as_ref().map(Logout::table),
            self.permissions.as_ref().map(Permissions::table),
            self.verify_cost.as_ref().map(VerifyCost::table),
        ];
        for table in tables.into_iter().flatten() {
            out.push_str(&table);
            out.push('\n');
        }
        for failure in &self.failed {
            let _ = writeln!(
                out,
                "{} / {} failed: {}",
                failure.experiment, failure.architecture, failure.reason
            );
        }
        let _ = writeln!(
            out,
            "lab: {:.0}s on {} ({} cores, load {} -> {})",
            self.wall_s,
            self.machine.cpu,
            self.machine.cores,
            self.machine.load_at_start,
            self.machine.load_at_end
        );
        out
    }

    /// The charts of the experiments run.
    pub fn figures(&self) -> Vec<Figure> {
        [
            self.node_loss.as_ref().map(|e| e.figure(&self.plan)),
            self.scale_out.as_ref().map(ScaleOut::figure),
            self.logout.as_ref().map(Logout::figure),
            self.permissions.as_ref().map(Permissions::figure),
            self.verify_cost.as_ref().map(VerifyCost::figure),
        ]
        .into_iter()
        .flatten()
        .collect()
    }
}

/// A latency for the tables.
pub fn millis(value: Option<f64>) -> String {
    match value {
        Some(ms) if ms < 10.0 => format!("{ms:.2} ms"),
        Some(ms) => format!("{ms:.1} ms"),
        None => "-".to_owned(),
    }
}
