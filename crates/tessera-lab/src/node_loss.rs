//! `node-loss`: per architecture, N nodes behind nginx and users calling
//! `/profile`; node 1 is SIGKILLed mid-run and started again later. Who
//! is still logged in?

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;

use super::architecture::Architecture;
use super::chart::{Event, Figure, Panel, Series};
use super::client::Gateway;
use super::cluster::Cluster;
use super::metrics::{Measurement, SLICE, slices};
use super::workload::{Running, SessionMap, log_everyone_in, start_users};
use crate::Lab;

/// The node the lab kills (node 1).
const VICTIM: usize = 0;

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
    /// The width of one point of the series below.
    pub slice_s: f64,
    /// Successful calls per second, slice by slice.
    pub successes_per_second: Vec<f64>,
    /// 401s per second, slice by slice.
    pub lost_per_second: Vec<f64>,
    /// Users never sent back to the login, at the end of each slice.
    pub users_logged_in: Vec<usize>,
}

/// What `node-loss` found.
#[derive(Debug, Clone, Serialize, Default)]
pub struct NodeLoss {
    /// Measured architectures.
    pub rows: Vec<Row>,
    /// Architectures left out with `--arch`.
    pub skipped: Vec<&'static str>,
}

/// How long one architecture takes, setup included (for the progress line).
pub fn estimate(lab: &crate::plan::Plan) -> Duration {
    lab.duration + Duration::from_secs(4)
}

/// Runs one architecture; every process it started is gone when it
/// returns (or when the returned future is dropped).
///
/// # Errors
///
/// A node, nginx or the users could not be set up.
pub async fn run(lab: &Lab<'_>, architecture: Architecture) -> anyhow::Result<Row> {
    let plan = lab.plan;
    let name = architecture.name();
    let mut cluster = Cluster::start(lab.cluster(
        &format!("node-loss-{name}"),
        plan.users,
        architecture.store_env(lab.redis_for(architecture.needs_redis())?),
        plan.nodes,
        Some(architecture.routing()),
    ))
    .await?;
    let addrs = cluster.addrs();
    eprintln!(
        "[{name:<15}] {} nodes up, nginx on {}; logging {} users in",
        addrs.len(),
        cluster.entrance(),
        plan.users
    );

    let gateway = Arc::new(Gateway::new(cluster.entrance(), architecture.credential())?);
    let sessions = Arc::new(SessionMap::new(&addrs, plan.users));
    let identities = log_everyone_in(plan.users, &gateway, &sessions).await?;

    // Dropped (and so aborted) with this future, whatever happens.
    let Running {
        schedule,
        mut users,
        // Held to the end of the run: dropping it stops the progress line.
        background: _background,
    } = start_users(
        name,
        &gateway,
        identities,
        &sessions,
        plan.duration,
        plan.think,
    );
    let start = schedule.start;

    tokio::time::sleep_until((start + plan.kill_at).into()).await;
    let victim = &mut cluster.nodes[VICTIM];
    let expected_lost = if architecture.sessions_live_on_nodes() {
        sessions.sessions_on(VICTIM)
    } else {
        0
    };
    let killed_at = start.elapsed();
    victim.kill()?;
    eprintln!(
        "[{name:<15}] {:>5.1}s  SIGKILL {} ({}), which held {expected_lost} sessions",
        killed_at.as_secs_f64(),
        victim.name(),
        victim.addr()
    );
    let restarted_at = match plan.restart_at() {
        Some(at) => {
            tokio::time::sleep_until((start + at).into()).await;
            let began = start.elapsed();
            victim.restart().await?;
            eprintln!(
                "[{name:<15}] {:>5.1}s  {} restarted (up after {} ms)",
                began.as_secs_f64(),
                victim.name(),
                (start.elapsed() - began).as_millis()
            );
            Some(began)
        }
        None => None,
    };

    let mut records = Vec::with_capacity(plan.users);
    while let Some(record) = users.join_next().await {
        records.push(record.context("a simulated user failed")?);
    }
    let measurement = Measurement::merge(records, slices(plan.duration));
    let end = plan.duration;
    let after_kill = restarted_at.unwrap_or(end);
    Ok(Row {
        architecture: name,
        nodes: plan.nodes,
        users: plan.users,
        requests: measurement.requests,
        logins: measurement.logins,
        errors: measurement.errors,
        sessions_lost: measurement.total_losses(),
        lost_before_kill: measurement.losses_in(Duration::ZERO..killed_at),
        lost_at_kill: measurement.losses_in(killed_at..after_kill),
        lost_after_restart: measurement.losses_in(after_kill..end),
        expected_lost,
        throughput: measurement.total_successes() as f64 / plan.duration.as_secs_f64(),
        p50_ms: measurement.latency(0.50).map(|d| d.as_secs_f64() * 1000.0),
        p99_ms: measurement.latency(0.99).map(|d| d.as_secs_f64() * 1000.0),
        node_addrs: addrs.clone(),
        balancer_addr: cluster.entrance(),
        killed_node: addrs[VICTIM],
        killed_at_s: killed_at.as_secs_f64(),
        restarted_at_s: restarted_at.map(|d| d.as_secs_f64()),
        slice_s: SLICE.as_secs_f64(),
        successes_per_second: measurement.rates(),
        lost_per_second: measurement.loss_rates(),
        users_logged_in: measurement.kept_sessions(plan.users),
    })
}

impl NodeLoss {
    /// The table with its footnotes.
    pub fn table(&self, plan: &crate::plan::Plan) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let restart = match plan.restart_at() {
            Some(at) => format!("restarted at {}s", at.as_secs_f64()),
            None => "not restarted within the run".to_owned(),
        };
        let _ = writeln!(
            out,
            "node-loss: {} nodes, {} users, {}s per architecture; node 1 SIGKILLed at {}s, {restart}\n",
            plan.nodes,
            plan.users,
            plan.duration.as_secs_f64(),
            plan.kill_at.as_secs_f64(),
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
                crate::report::millis(row.p50_ms),
                crate::report::millis(row.p99_ms),
            );
        }
        out.push('\n');
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
        for note in notes {
            let _ = writeln!(out, "  * {note}");
        }
        out
    }

    /// The chart: users still logged in, 401s per second, throughput.
    pub fn figure(&self, plan: &crate::plan::Plan) -> Figure {
        let x_max = plan.duration.as_secs_f64();
        let mut events = vec![Event {
            label: "SIGKILL node 1".to_owned(),
            at: plan.kill_at.as_secs_f64(),
        }];
        if let Some(at) = plan.restart_at() {
            events.push(Event {
                label: "node 1 restarted".to_owned(),
                at: at.as_secs_f64(),
            });
        }
        let series = |values: &dyn Fn(&Row) -> Vec<f64>, step: bool| -> Vec<Series> {
            self.rows
                .iter()
                .map(|row| {
                    let values = values(row);
                    let mut points = Vec::with_capacity(values.len() * 2 + 1);
                    if step {
                        points.push((0.0, row.users as f64));
                    }
                    for (i, v) in values.iter().enumerate() {
                        if step {
                            points.push((i as f64 * row.slice_s, *v));
                            points.push(((i + 1) as f64 * row.slice_s, *v));
                        } else {
                            points.push(((i as f64 + 0.5) * row.slice_s, *v));
                        }
                    }
                    Series {
                        name: row.architecture.to_owned(),
                        points,
                    }
                })
                .collect()
        };
        Figure {
            title: format!(
                "node-loss: {} nodes, {} users; node 1 SIGKILLed, then restarted",
                plan.nodes, plan.users
            ),
            panels: vec![
                Panel::Lines {
                    title: "Users still logged in (never sent back to the login page)".to_owned(),
                    x_label: "time since start (s)".to_owned(),
                    y_label: "users".to_owned(),
                    x_max,
                    series: series(
                        &|r| r.users_logged_in.iter().map(|&u| u as f64).collect(),
                        true,
                    ),
                    events: events.clone(),
                },
                Panel::Lines {
                    title: "Sessions refused (401 on /profile) per second".to_owned(),
                    x_label: "time since start (s)".to_owned(),
                    y_label: "401 responses/s".to_owned(),
                    x_max,
                    series: series(&|r| r.lost_per_second.clone(), false),
                    events: events.clone(),
                },
                Panel::Lines {
                    title: "Throughput: successful /profile calls per second".to_owned(),
                    x_label: "time since start (s)".to_owned(),
                    y_label: "requests/s".to_owned(),
                    x_max,
                    series: series(&|r| r.successes_per_second.clone(), false),
                    events,
                },
            ],
        }
    }
}
