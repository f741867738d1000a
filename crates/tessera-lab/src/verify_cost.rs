//! `verify-cost`: what checking a credential costs one node, per
//! mechanism: `/profile` under load from concurrent clients, as requests
//! per second and as the node's CPU time per request (from
//! `/proc/PID/stat`), against the same node's `/health`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;
use tokio::task::JoinSet;

use crate::Lab;
use crate::chart::{BarGroup, Event, Figure, Panel};
use crate::client::{Check, Credential, Gateway};
use crate::cluster::Cluster;
use crate::mechanism::{JwtAlgorithm, Mechanism};
use crate::probe::{log_in, user_id};

/// The mechanisms `verify-cost` compares.
pub const MECHANISMS: [Mechanism; 8] = [
    Mechanism::SessionSqlite,
    Mechanism::SessionRedis,
    Mechanism::SessionNearCache,
    Mechanism::SealedCookie,
    Mechanism::Jwt(JwtAlgorithm::Hs256),
    Mechanism::Jwt(JwtAlgorithm::EdDsa),
    Mechanism::Jwt(JwtAlgorithm::Es256),
    Mechanism::Jwt(JwtAlgorithm::Rs256),
];

/// Users whose credentials the clients share.
const USERS: usize = 8;

/// One mechanism's node.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// The mechanism.
    pub mechanism: &'static str,
    /// Successful `/profile` calls per second.
    pub profile_rps: f64,
    /// The node's CPU time per `/profile` call, µs.
    pub profile_cpu_us: f64,
    /// Successful `/health` calls per second (no credential).
    pub health_rps: f64,
    /// The node's CPU time per `/health` call, µs.
    pub health_cpu_us: f64,
    /// Requests that failed (not 200).
    pub errors: u64,
}

/// What `verify-cost` found.
#[derive(Debug, Clone, Serialize, Default)]
pub struct VerifyCost {
    /// Concurrent clients.
    pub clients: usize,
    /// Load per mechanism and endpoint, s.
    pub duration_s: f64,
    /// Clock ticks per second of `/proc/PID/stat`.
    pub clock_ticks: u64,
    /// One row per mechanism.
    pub rows: Vec<Row>,
}

/// How long one mechanism takes, setup included.
pub fn estimate(plan: &crate::plan::Plan) -> Duration {
    plan.cost_duration * 2 + Duration::from_secs(2)
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 on Linux).
pub async fn clock_ticks() -> u64 {
    let output = tokio::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .await;
    output
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

/// User plus system CPU time of process `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("cannot read /proc/{pid}/stat"))?;
    // The command name (field 2) is in parentheses and may hold spaces.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("unexpected /proc/PID/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 (utime, stime) are the 12th and 13th after the name.
    let utime: u64 = fields
        .get(11)
        .and_then(|f| f.parse().ok())
        .context("utime")?;
    let stime: u64 = fields
        .get(12)
        .and_then(|f| f.parse().ok())
        .context("stime")?;
    Ok(utime + stime)
}

/// Runs one mechanism's node.
///
/// # Errors
///
/// The node or the users could not be set up.
pub async fn run(lab: &Lab<'_>, mechanism: Mechanism, ticks: u64) -> anyhow::Result<Row> {
    let plan = lab.plan;
    let cluster = Cluster::start(lab.cluster(
        &format!("verify-cost-{}", mechanism.name()),
        USERS,
        mechanism.env(lab.redis_for(mechanism.needs_redis())?, false),
        1,
        None,
    ))
    .await?;
    let node = &cluster.nodes[0];
    let pid = node.pid().context("the node is not running")?;
    let gateway = Arc::new(Gateway::new(node.addr(), mechanism.credential())?);
    let mut credentials = Vec::with_capacity(USERS);
    for user in 0..USERS {
        let identity = log_in(&gateway, crate::accounts::email(user)).await?;
        user_id(&gateway, &identity.credential()).await?;
        credentials.push(identity.credential());
    }
    let credentials = Arc::new(credentials);
    // Warm up (connections, caches), unmeasured.
    load(
        &gateway,
        &credentials,
        plan.cost_clients,
        Duration::from_millis(300),
        true,
    )
    .await;

    let (profile_rps, profile_cpu_us, profile_errors) =
        measure(pid, ticks, plan.cost_duration, || {
            load(
                &gateway,
                &credentials,
                plan.cost_clients,
                plan.cost_duration,
                true,
            )
        })
        .await?;
    let (health_rps, health_cpu_us, health_errors) =
        measure(pid, ticks, plan.cost_duration, || {
            load(
                &gateway,
                &credentials,
                plan.cost_clients,
                plan.cost_duration,
                false,
            )
        })
        .await?;
    Ok(Row {
        mechanism: mechanism.name(),
        profile_rps,
        profile_cpu_us,
        health_rps,
        health_cpu_us,
        errors: profile_errors + health_errors,
    })
}

async fn measure<F, Fut>(
    pid: u32,
    ticks: u64,
    duration: Duration,
    load: F,
) -> anyhow::Result<(f64, f64, u64)>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = (u64, u64)>,
{
    let before = cpu_ticks(pid)?;
    let started = Instant::now();
    let (ok, errors) = load().await;
    let elapsed = started.elapsed().max(duration / 2);
    let after = cpu_ticks(pid)?;
    let cpu_us = (after - before) as f64 * 1_000_000.0 / ticks as f64;
    let per_request = if ok > 0 { cpu_us / ok as f64 } else { 0.0 };
    Ok((ok as f64 / elapsed.as_secs_f64(), per_request, errors))
}

/// `clients` loops of `/profile` (with the credentials in turn) or
/// `/health` for `duration`: (successes, failures).
async fn load(
    gateway: &Arc<Gateway>,
    credentials: &Arc<Vec<Credential>>,
    clients: usize,
    duration: Duration,
    profile: bool,
) -> (u64, u64) {
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let end = Instant::now() + duration;
    let mut tasks = JoinSet::new();
    for client in 0..clients {
        let gateway = Arc::clone(gateway);
        let credentials = Arc::clone(credentials);
        let (ok, failed) = (Arc::clone(&ok), Arc::clone(&failed));
        tasks.spawn(async move {
            let credential = &credentials[client % credentials.len()];
            while Instant::now() < end {
                let success = if profile {
                    matches!(gateway.check(credential).await, Check::Accepted { .. })
                } else {
                    gateway.get_ok("/health").await
                };
                if success {
                    ok.fetch_add(1, Ordering::Relaxed);
                } else {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed))
}

impl VerifyCost {
    /// The table with its footnotes.
    pub fn table(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "verify-cost: one node per mechanism, {} concurrent clients, {}s per endpoint\n",
            self.clients, self.duration_s
        );
        let _ = writeln!(
            out,
            "{:<26} {:>14} {:>14} {:>14} {:>14} {:>7}",
            "mechanism", "/profile", "CPU/request", "/health", "CPU/request", "errors"
        );
        for row in &self.rows {
            let _ = writeln!(
                out,
                "{:<26} {:>14} {:>14} {:>14} {:>14} {:>7}",
                row.mechanism,
                format!("{:.0} req/s", row.profile_rps),
                format!("{:.0} µs", row.profile_cpu_us),
                format!("{:.0} req/s", row.health_rps),
                format!("{:.0} µs", row.health_cpu_us),
                row.errors
            );
        }
        let _ = writeln!(
            out,
            "\n  * CPU/request: the node's user + system CPU time (/proc/PID/stat, {} ticks/s) over \
             the load, divided by the successful requests; /health is the same node's floor (HTTP, \
             routing, no credential). The lab's clients share the machine.",
            self.clock_ticks
        );
        out
    }

    /// The chart: CPU per request and throughput per mechanism.
    pub fn figure(&self) -> Figure {
        Figure {
            title: format!(
                "verify-cost: what a request pays to prove who sent it (one node, {} clients)",
                self.clients
            ),
            panels: vec![
                self.panel(
                    "Node CPU time per /profile request",
                    "CPU time per request (µs)",
                    "µs",
                    |row| (row.profile_cpu_us, row.health_cpu_us),
                ),
                self.panel(
                    "Throughput of /profile",
                    "successful requests per second",
                    "req/s",
                    |row| (row.profile_rps, row.health_rps),
                ),
            ],
        }
    }

    /// One bar per mechanism of `value`'s `/profile` figure, with the mean
    /// of its `/health` figure as the reference line.
    fn panel(
        &self,
        title: &str,
        x_label: &str,
        unit: &str,
        value: impl Fn(&Row) -> (f64, f64),
    ) -> Panel {
        let health = mean(self.rows.iter().map(|row| value(row).1));
        Panel::Bars {
            title: title.to_owned(),
            x_label: x_label.to_owned(),
            unit: unit.to_owned(),
            groups: self
                .rows
                .iter()
                .map(|row| BarGroup {
                    name: row.mechanism.to_owned(),
                    bars: vec![("/profile".to_owned(), value(row).0)],
                })
                .collect(),
            references: vec![Event {
                label: format!("/health {health:.0} {unit}"),
                at: health,
            }],
        }
    }
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values.fold((0.0, 0), |(s, n), v| (s + v, n + 1));
    if n == 0 { 0.0 } else { sum / f64::from(n) }
}
