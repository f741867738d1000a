//! The results: one row per architecture, as a table with footnotes (what
//! people read) or JSON (`--json`, what tests and scripts read).

use std::fmt::Write;
use std::net::SocketAddr;
use std::time::Duration;

use serde::Serialize;

use super::plan::Plan;

/// One architecture's results.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// `stateful`, `stateless-redis` or `stateless-jwt`.
    pub architecture: &'static str,
    /// Nodes behind nginx.
    pub nodes: usize,
    /// Simulated users.
    pub users: usize,
    /// Requests sent during the run (`/profile` calls and logins).
    pub requests: u64,
    /// Logins during the run (after a lost session).
    pub logins: u64,
    /// Failed requests: 5xx, unexpected statuses, no answer.
    pub errors: u64,
    /// Users sent back to the login (401 on `/profile`).
    pub sessions_lost: usize,
    /// ... before the kill (should be none).
    pub lost_before_kill: usize,
    /// ... between the kill and the restart.
    pub lost_at_kill: usize,
    /// ... after the restart.
    pub lost_after_restart: usize,
    /// Sessions the killed node held when it died.
    pub expected_lost: usize,
    /// Successful `/profile` calls per second, over the run.
    pub throughput: f64,
    /// Median latency of successful calls, in ms.
    pub p50_ms: Option<f64>,
    /// 99th percentile latency of successful calls, in ms.
    pub p99_ms: Option<f64>,
    /// Where the nodes listened.
    pub node_addrs: Vec<SocketAddr>,
    /// Where nginx listened.
    pub balancer_addr: SocketAddr,
    /// The node that was killed.
    pub killed_node: SocketAddr,
    /// When it was killed, seconds into the run.
    pub killed_at_s: f64,
    /// When its restart began, if within the run.
    pub restarted_at_s: Option<f64>,
    /// The width of one point of `successes_per_second`.
    pub slice_s: f64,
    /// Successful calls per second, slice by slice.
    pub successes_per_second: Vec<f64>,
}

/// A selected architecture that could not be measured.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    /// Its name.
    pub architecture: &'static str,
    /// Why.
    pub reason: String,
}

/// Everything the lab found.
#[derive(Debug, Clone, Serialize)]
pub struct LabReport {
    /// The parameters.
    pub plan: Plan,
    /// The temporary directory the lab worked in (removed at the end).
    pub work_dir: String,
    /// The Redis the stateless rows shared, if any ran.
    pub redis_url: Option<String>,
    /// Whether the nodes were an unoptimised build.
    pub debug_build: bool,
    /// Measured architectures.
    pub rows: Vec<Row>,
    /// Architectures left out with `--arch`.
    pub skipped: Vec<&'static str>,
    /// Selected architectures that failed to run.
    pub failed: Vec<Failure>,
}

impl LabReport {
    /// The table with its footnotes.
    pub fn table(&self) -> String {
        let plan = &self.plan;
        let mut out = String::new();
        let restart = match plan.restart_at() {
            Some(at) => format!("restarted at {}", secs(at)),
            None => "not restarted within the run".to_owned(),
        };
        let _ = writeln!(
            out,
            "tessera lab: {} nodes, {} users, {} per architecture; node 1 SIGKILLed at {}, {restart}{}\n",
            plan.nodes,
            plan.users,
            secs(plan.duration),
            secs(plan.kill_at),
            if self.debug_build {
                " (debug build: slow, compare rows only)"
            } else {
                ""
            },
        );
        let _ = writeln!(
            out,
            "{:<16} {:>5} {:>9} {:>6} {:>13} {:>7} {:>13} {:>8} {:>12} {:>9} {:>9}",
            "architecture",
            "nodes",
            "requests",
            "errors",
            "sessions lost",
            "at kill",
            "after restart",
            "expected",
            "throughput",
            "p50",
            "p99"
        );
        for row in &self.rows {
            let _ = writeln!(
                out,
                "{:<16} {:>5} {:>9} {:>6} {:>13} {:>7} {:>13} {:>8} {:>12} {:>9} {:>9}",
                row.architecture,
                row.nodes,
                row.requests,
                row.errors,
                row.sessions_lost,
                row.lost_at_kill,
                row.lost_after_restart,
                row.expected_lost,
                format!("{:.0} req/s", row.throughput),
                millis(row.p50_ms),
                millis(row.p99_ms),
            );
        }
        for failure in &self.failed {
            let _ = writeln!(
                out,
                "{:<16} failed: {}",
                failure.architecture, failure.reason
            );
        }
        out.push('\n');
        out.push_str(&self.footnotes());
        out
    }

    fn footnotes(&self) -> String {
        let mut notes = vec![
            "sessions lost: users whose /profile answered 401 and who had to log in again; \
             \"at kill\" between the SIGKILL and the restart, \"after restart\" from then on."
                .to_owned(),
            "expected: sessions the killed node held when it died (stateless nodes hold none)."
                .to_owned(),
            "errors: 5xx answers and failed connections, logins included. nginx resends a GET \
             that a dying node never answered to another node, so in-flight calls rarely fail."
                .to_owned(),
        ];
        if self
            .rows
            .iter()
            .any(|r| r.architecture == "stateful" && r.lost_after_restart > 0)
        {
            notes.push(
                "stateful: the killed node's users lost their sessions twice: at the kill, when \
                 nginx moved them to another node, and after the restart, when consistent hashing \
                 moved them back to the node that came back empty."
                    .to_owned(),
            );
        }
        if self.rows.iter().any(|r| r.lost_before_kill > 0) {
            notes.push(
                "some sessions were lost before the kill: the nodes were overloaded or misconfigured."
                    .to_owned(),
            );
        }
        if !self.skipped.is_empty() {
            notes.push(format!(
                "not run (left out with --arch): {}.",
                self.skipped.join(", ")
            ));
        }
        let mut out = String::new();
        for note in notes {
            let _ = writeln!(out, "  * {note}");
        }
        out
    }
}

fn secs(duration: Duration) -> String {
    format!("{}s", duration.as_secs_f64())
}

fn millis(value: Option<f64>) -> String {
    match value {
        Some(ms) if ms < 10.0 => format!("{ms:.2} ms"),
        Some(ms) => format!("{ms:.1} ms"),
        None => "-".to_owned(),
    }
}
