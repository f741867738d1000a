//! One row of the table: an architecture's nodes, nginx and users, with
//! node 1 SIGKILLed mid-run and started again later.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::task::JoinSet;

use super::accounts;
use super::architecture::Architecture;
use super::balancer::Balancer;
use super::client::{Gateway, Identity};
use super::metrics::{Live, Measurement, SLICE, slices};
use super::node::{Node, NodeSpec};
use super::plan::Plan;
use super::progress;
use super::report::Row;
use super::workload::{Schedule, SessionMap, first_login, simulate};

/// The node the lab kills (node 1).
const VICTIM: usize = 0;

/// What one row needs besides the plan.
pub struct Trial<'a> {
    /// The architecture.
    pub architecture: Architecture,
    /// The `tessera` binary for the nodes and the user import.
    pub binary: &'a Path,
    /// A fresh directory for this row (data, nginx prefix).
    pub work_dir: PathBuf,
    /// The users' password hash.
    pub password_hash: &'a str,
    /// The HS256 secret every node shares.
    pub jwt_secret: &'a str,
    /// The Redis the nodes share, if the architecture uses one.
    pub redis_url: Option<&'a str>,
}

/// Runs the row; every process it started is gone when it returns (or when
/// the returned future is dropped).
///
/// # Errors
///
/// A node, nginx or the users could not be set up.
pub async fn run(plan: &Plan, trial: Trial<'_>) -> anyhow::Result<Row> {
    let name = trial.architecture.name();
    std::fs::create_dir_all(&trial.work_dir)
        .with_context(|| format!("cannot create {}", trial.work_dir.display()))?;
    let data_dir = trial.work_dir.join("data");
    accounts::import(
        trial.binary,
        &trial.work_dir,
        &data_dir,
        plan.users,
        trial.password_hash,
    )
    .await?;

    let spec = NodeSpec {
        binary: trial.binary.to_owned(),
        data_dir,
        env: node_env(plan, &trial),
    };
    let mut nodes = Vec::with_capacity(plan.nodes);
    for index in 0..plan.nodes {
        nodes.push(Node::start(index, spec.clone()).await?);
    }
    let addrs: Vec<SocketAddr> = nodes.iter().map(Node::addr).collect();
    let balancer = Balancer::start(
        trial.architecture.routing(),
        &trial.work_dir.join("nginx"),
        &addrs,
    )?;
    eprintln!(
        "[{name:<15}] {} nodes up, nginx on {}; logging {} users in",
        nodes.len(),
        balancer.addr(),
        plan.users
    );

    let gateway = Arc::new(Gateway::new(
        balancer.addr(),
        trial.architecture.credential(),
    )?);
    let sessions = Arc::new(SessionMap::new(&addrs, plan.users));
    let identities = log_everyone_in(plan.users, &gateway, &sessions).await?;

    let start = Instant::now();
    let schedule = Schedule {
        start,
        end: start + plan.duration,
        think: plan.think,
    };
    let live = Arc::new(Live::default());
    // Dropped (and so aborted) with this future, whatever happens.
    let mut users = JoinSet::new();
    for (user, identity) in identities.into_iter().enumerate() {
        users.spawn(simulate(
            user,
            Arc::clone(&gateway),
            identity,
            schedule,
            Arc::clone(&live),
            Arc::clone(&sessions),
        ));
    }
    let mut background = JoinSet::new();
    background.spawn(progress::every_second(
        name,
        Arc::clone(&live),
        start,
        plan.duration,
    ));

    tokio::time::sleep_until((start + plan.kill_at).into()).await;
    let victim = &mut nodes[VICTIM];
    let expected_lost = if trial.architecture.sessions_live_on_nodes() {
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
        balancer_addr: balancer.addr(),
        killed_node: addrs[VICTIM],
        killed_at_s: killed_at.as_secs_f64(),
        restarted_at_s: restarted_at.map(|d| d.as_secs_f64()),
        slice_s: SLICE.as_secs_f64(),
        successes_per_second: measurement.rates(),
    })
}

/// The settings of every node of the row.
fn node_env(plan: &Plan, trial: &Trial<'_>) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = trial
        .architecture
        .store_env(trial.redis_url)
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    let generous = (plan.users * 100).max(1000).to_string();
    env.extend(
        [
            // Any node verifies any node's access tokens.
            ("TESSERA_JWT_SECRET", trial.jwt_secret.to_owned()),
            ("TESSERA_TRUSTED_PROXIES", "127.0.0.1".to_owned()),
            // Every user comes from 127.0.0.1, and the per-IP bucket holds
            // a token for each login in progress: room for all of them.
            ("TESSERA_LOGIN_IP_BURST", generous.clone()),
            ("TESSERA_LOGIN_IP_PER_MINUTE", generous),
            // Every user may be logging in at once (after a kill).
            ("TESSERA_HASH_QUEUE", plan.users.max(32).to_string()),
        ]
        .map(|(k, v)| (k.to_owned(), v)),
    );
    env
}

/// Logs every user in before the run starts (not measured).
async fn log_everyone_in(
    users: usize,
    gateway: &Arc<Gateway>,
    sessions: &Arc<SessionMap>,
) -> anyhow::Result<Vec<Identity>> {
    let mut logins = JoinSet::new();
    for user in 0..users {
        let gateway = Arc::clone(gateway);
        let sessions = Arc::clone(sessions);
        logins.spawn(async move {
            let mut identity = Identity::new(accounts::email(user));
            first_login(&gateway, &mut identity, &sessions, user)
                .await
                .map(|()| (user, identity))
        });
    }
    let mut identities: Vec<Option<Identity>> = (0..users).map(|_| None).collect();
    while let Some(joined) = logins.join_next().await {
        let (user, identity) = joined.context("a login task failed")??;
        identities[user] = Some(identity);
    }
    Ok(identities.into_iter().flatten().collect())
}
