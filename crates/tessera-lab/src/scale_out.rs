//! `scale-out`: per architecture, two nodes behind nginx and users calling
//! `/profile`; a third node joins a third of the way in and node 1 leaves
//! gracefully (taken out of nginx, then SIGTERM) at two thirds. Who is
//! sent back to the login, and how the load spreads over the nodes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;

use crate::Lab;
use crate::architecture::Architecture;
use crate::chart::{Event, Figure, Panel, Series};
use crate::client::Gateway;
use crate::cluster::Cluster;
use crate::metrics::{Measurement, SLICE, slices};
use crate::workload::{Running, SessionMap, log_everyone_in, start_users};

/// One node's throughput in each phase.
#[derive(Debug, Clone, Serialize)]
pub struct NodeLoad {
    /// `node 1`, ...
    pub node: String,
    /// Its address.
    pub addr: SocketAddr,
    /// Successful calls per second with 2 nodes, after the join, after the
    /// removal.
    pub rps: [f64; 3],
}

/// One architecture's results.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// The architecture.
    pub architecture: &'static str,
    /// Simulated users.
    pub users: usize,
    /// Users sent back to the login when node 3 joined.
    pub lost_at_join: usize,
    /// ... when node 1 left.
    pub lost_at_leave: usize,
    /// ... in all (before the join too).
    pub sessions_lost: usize,
    /// Failed requests.
    pub errors: u64,
    /// Throughput with 2, 3, then 2 nodes (successful calls per second).
    pub rps: [f64; 3],
    /// Per node.
    pub nodes: Vec<NodeLoad>,
    /// When node 3 joined, s.
    pub joined_at_s: f64,
    /// When node 1 left, s.
    pub left_at_s: f64,
    /// Width of one point of the series, s.
    pub slice_s: f64,
    /// Users never sent back to the login, at the end of each slice.
    pub users_logged_in: Vec<usize>,
    /// Successful calls per second, slice by slice.
    pub successes_per_second: Vec<f64>,
}

/// What `scale-out` found.
#[derive(Debug, Clone, Serialize, Default)]
pub struct ScaleOut {
    /// The run per architecture, s.
    pub duration_s: f64,
    /// One row per architecture.
    pub rows: Vec<Row>,
}

/// How long one architecture takes, setup included.
pub fn estimate(plan: &crate::plan::Plan) -> Duration {
    plan.scale_duration + Duration::from_secs(4)
}

/// Runs one architecture.
///
/// # Errors
///
/// A node, nginx or the users could not be set up.
pub async fn run(lab: &Lab<'_>, architecture: Architecture) -> anyhow::Result<Row> {
    let plan = lab.plan;
    let name = architecture.name();
    let duration = plan.scale_duration;
    let mut cluster = Cluster::start(lab.cluster(
        &format!("scale-out-{name}"),
        plan.users,
        architecture.store_env(lab.redis_for(architecture.needs_redis())?),
        2,
        Some(architecture.routing()),
    ))
    .await?;
    // Node 3 is started now, outside nginx: joining is then nginx's reload
    // alone, at the moment planned.
    let third = cluster.add_node().await?;
    let gateway = Arc::new(Gateway::new(cluster.entrance(), architecture.credential())?);
    let mut addrs = cluster.addrs();
    addrs.pop();
    // Room for the third node in the session map.
    let sessions = Arc::new(SessionMap::new(&addrs, plan.users));
    let identities = log_everyone_in(plan.users, &gateway, &sessions).await?;

    // Dropped (and so aborted) with this future, whatever happens.
    let Running {
        schedule,
        mut users,
        // Held to the end of the run: dropping it stops the progress line.
        background: _background,
    } = start_users(name, &gateway, identities, &sessions, duration, plan.think);
    let start = schedule.start;

    tokio::time::sleep_until((start + duration / 3).into()).await;
    addrs.push(third);
    cluster.route_to(&addrs).await?;
    let joined_at = start.elapsed();
    eprintln!(
        "[{name:<15}] {:>5.1}s  node 3 ({third}) joined nginx",
        joined_at.as_secs_f64()
    );

    tokio::time::sleep_until((start + duration * 2 / 3).into()).await;
    cluster.route_to(&addrs[1..]).await?;
    let left_at = start.elapsed();
    // nginx's old workers finish the requests they hold, then node 1 gets
    // SIGTERM and finishes its own.
    tokio::time::sleep(Duration::from_secs(1)).await;
    cluster.nodes[0].terminate(Duration::from_secs(5)).await?;
    eprintln!(
        "[{name:<15}] {:>5.1}s  node 1 taken out of nginx and stopped (SIGTERM)",
        left_at.as_secs_f64()
    );

    let mut records = Vec::with_capacity(plan.users);
    while let Some(record) = users.join_next().await {
        records.push(record.context("a simulated user failed")?);
    }
    let measurement = Measurement::merge(records, slices(duration));
    let phases = [
        Duration::ZERO..joined_at,
        joined_at..left_at,
        left_at..duration,
    ];
    let nodes: Vec<NodeLoad> = addrs
        .iter()
        .enumerate()
        .map(|(i, addr)| NodeLoad {
            node: format!("node {}", i + 1),
            addr: *addr,
            rps: phases
                .clone()
                .map(|phase| measurement.node_rate(&addr.to_string(), phase)),
        })
        .collect();
    let rps = [0, 1, 2].map(|p| nodes.iter().map(|n| n.rps[p]).sum());
    Ok(Row {
        architecture: name,
        users: plan.users,
        lost_at_join: measurement.losses_in(joined_at..left_at),
        lost_at_leave: measurement.losses_in(left_at..duration),
        sessions_lost: measurement.total_losses(),
        errors: measurement.errors,
        rps,
        nodes,
        joined_at_s: joined_at.as_secs_f64(),
        left_at_s: left_at.as_secs_f64(),
        slice_s: SLICE.as_secs_f64(),
        users_logged_in: measurement.kept_sessions(plan.users),
        successes_per_second: measurement.rates(),
    })
}

impl ScaleOut {
    /// The table with its footnotes.
    pub fn table(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "scale-out: 2 nodes, node 3 joins at a third of {}s, node 1 leaves (out of nginx, then SIGTERM) at two thirds\n",
            self.duration_s
        );
        let _ = writeln!(
            out,
            "{:<16} {:>5} {:>9} {:>10} {:>6} {:>6}   {:<40}",
            "architecture",
            "users",
            "lost at join",
            "at leave",
            "errors",
            "",
            "req/s per node: 2 nodes | 3 nodes | 2 nodes"
        );
        for row in &self.rows {
            let per_node: Vec<String> = row
                .nodes
                .iter()
                .map(|n| {
                    format!(
                        "{} {:.0}|{:.0}|{:.0}",
                        n.node.replace("node ", "n"),
                        n.rps[0],
                        n.rps[1],
                        n.rps[2]
                    )
                })
                .collect();
            let _ = writeln!(
                out,
                "{:<16} {:>5} {:>12} {:>10} {:>6} {:>6}   {}",
                row.architecture,
                row.users,
                row.lost_at_join,
                row.lost_at_leave,
                row.errors,
                "",
                per_node.join("  ")
            );
        }
        let _ = writeln!(
            out,
            "\n  * lost: users whose /profile answered 401 (sent back to the login). Sticky routing \
             moves the clients whose hash now falls on the new node, and the removed node's clients: \
             their sessions stay behind.\n  * errors: requests cut when nginx reloaded (its old \
             workers close their kept-alive connections) or failed connections.\n  * req/s per node: successful calls each node answered, \
             before the join, between join and removal, after the removal."
        );
        out
    }

    /// The chart: users still logged in and throughput.
    pub fn figure(&self) -> Figure {
        let x_max = self.duration_s;
        let mut events = Vec::new();
        if let Some(row) = self.rows.first() {
            events.push(Event {
                label: "node 3 joins".to_owned(),
                at: row.joined_at_s,
            });
            events.push(Event {
                label: "node 1 leaves".to_owned(),
                at: row.left_at_s,
            });
        }
        let users = Panel::Lines {
            title: "Users still logged in (never sent back to the login page)".to_owned(),
            x_label: "time since start (s)".to_owned(),
            y_label: "users".to_owned(),
            x_max,
            series: self
                .rows
                .iter()
                .map(|row| {
                    let mut points = vec![(0.0, row.users as f64)];
                    for (i, v) in row.users_logged_in.iter().enumerate() {
                        points.push((i as f64 * row.slice_s, *v as f64));
                        points.push(((i + 1) as f64 * row.slice_s, *v as f64));
                    }
                    Series {
                        name: row.architecture.to_owned(),
                        points,
                    }
                })
                .collect(),
            events: events.clone(),
        };
        let throughput = Panel::Lines {
            title: "Throughput: successful /profile calls per second".to_owned(),
            x_label: "time since start (s)".to_owned(),
            y_label: "requests/s".to_owned(),
            x_max,
            series: self
                .rows
                .iter()
                .map(|row| Series {
                    name: row.architecture.to_owned(),
                    points: row
                        .successes_per_second
                        .iter()
                        .enumerate()
                        .map(|(i, v)| ((i as f64 + 0.5) * row.slice_s, *v))
                        .collect(),
                })
                .collect(),
            events,
        };
        Figure {
            title: "scale-out: 2 nodes, a third joins, then node 1 leaves gracefully".to_owned(),
            panels: vec![users, throughput],
        }
    }
}
