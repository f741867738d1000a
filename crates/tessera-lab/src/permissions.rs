//! `permissions`: an admin changes a user's role (`PATCH
//! /admin/v1/users/{id}`, on another node than the user's); per mechanism,
//! the time until every node answers the user's `/profile` with the new
//! role, the user behaving as a client does (a refused session logs in
//! again; an access token is refreshed when its lifetime is up).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;
use serde_json::json;
use tokio::task::JoinSet;

use crate::Lab;
use crate::chart::{BarGroup, Event, Figure, Panel};
use crate::client::{Check, Identity};
use crate::mechanism::{JwtAlgorithm, Mechanism};
use crate::probe::{Nodes, ProbeCluster, log_in, summary};

/// Pause between two rounds of `/profile` on every node.
const POLL_EVERY: Duration = Duration::from_millis(25);
/// How long past the access-token lifetime the lab waits.
const PATIENCE: Duration = Duration::from_secs(3);
/// The role the admin grants.
const ROLE: &str = "editor";

/// The mechanisms `permissions` compares.
pub const MECHANISMS: [Mechanism; 5] = [
    Mechanism::SessionMemory,
    Mechanism::SessionRedis,
    Mechanism::SessionNearCache,
    Mechanism::SealedCookie,
    Mechanism::Jwt(JwtAlgorithm::EdDsa),
];

/// One mechanism's results.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// The mechanism.
    pub mechanism: &'static str,
    /// Users whose role was changed.
    pub users: usize,
    /// Median time until every node showed the new role, ms.
    pub median_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Maximum, ms.
    pub max_ms: f64,
    /// Users whose new role some node still did not show when the lab gave up.
    pub never_seen: usize,
    /// Logins the users needed (sealed cookies are ended by a role change).
    pub logins: usize,
    /// Token refreshes the users made.
    pub refreshes: usize,
    /// How the new role reaches the user.
    pub how: &'static str,
}

/// What `permissions` found.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Permissions {
    /// Nodes per mechanism.
    pub nodes: usize,
    /// The access tokens' lifetime, s.
    pub access_ttl_s: f64,
    /// How long the lab waited after each change, s.
    pub window_s: f64,
    /// One row per mechanism.
    pub rows: Vec<Row>,
}

/// How long one mechanism takes, setup included.
pub fn estimate(plan: &crate::plan::Plan, mechanism: Mechanism) -> Duration {
    let wait = match mechanism {
        Mechanism::Jwt(_) => plan.access_ttl,
        Mechanism::SessionMemory => plan.access_ttl + PATIENCE,
        _ => Duration::from_secs(1),
    };
    plan.spread + wait + Duration::from_secs(4)
}

fn how(mechanism: Mechanism) -> &'static str {
    match mechanism {
        Mechanism::SessionMemory => {
            "the session on its node's memory: only the node the admin used updates its own sessions"
        }
        Mechanism::SessionRedis | Mechanism::SessionNearCache | Mechanism::SessionSqlite => {
            "next request: the shared session carries the new roles"
        }
        Mechanism::SealedCookie => {
            "the sealed cookie is ended: the new role comes with the next login"
        }
        Mechanism::Jwt(_) | Mechanism::JwtJwksOnly => {
            "next refresh: the access token keeps its roles until it expires"
        }
    }
}

struct Outcome {
    seen: Option<Duration>,
    logins: usize,
    refreshes: usize,
}

/// Runs one mechanism's cluster.
///
/// # Errors
///
/// The cluster or the users could not be set up, or a change was refused.
pub async fn run(lab: &Lab<'_>, mechanism: Mechanism) -> anyhow::Result<Row> {
    let plan = lab.plan;
    let users = plan.probe_users;
    let ProbeCluster {
        cluster,
        nodes,
        admin_nodes,
        admin,
    } = ProbeCluster::start(lab, mechanism, "permissions").await?;

    let identities = nodes.log_in_everyone(users).await?;

    let start = Instant::now();
    let window = plan.access_ttl + PATIENCE;
    let mut probes = JoinSet::new();
    for (user, identity, id) in identities {
        let at = start + plan.spread.mul_f64(user as f64 / users as f64);
        let nodes = Arc::clone(&nodes);
        let admin_nodes = Arc::clone(&admin_nodes);
        let admin = Arc::clone(&admin);
        probes.spawn(async move {
            tokio::time::sleep_until(at.into()).await;
            follow(&nodes, user, identity, window, async {
                admin_nodes
                    .node(user + 1)
                    .admin_patch(&admin, &id, &json!({"roles": [ROLE]}))
                    .await
            })
            .await
        });
    }
    let mut outcomes = Vec::with_capacity(users);
    while let Some(joined) = probes.join_next().await {
        outcomes.push(joined.context("a probe failed")??);
    }
    drop(cluster);

    let never_seen = outcomes.iter().filter(|o| o.seen.is_none()).count();
    let times: Vec<f64> = outcomes
        .iter()
        .map(|o| o.seen.unwrap_or(window).as_secs_f64() * 1000.0)
        .collect();
    let (median_ms, p99_ms, max_ms) = summary(&times);
    Ok(Row {
        mechanism: mechanism.name(),
        users,
        median_ms,
        p99_ms,
        max_ms,
        never_seen,
        logins: outcomes.iter().map(|o| o.logins).sum(),
        refreshes: outcomes.iter().map(|o| o.refreshes).sum(),
        how: how(mechanism),
    })
}

/// Changes the role (`change`), then behaves as the user's client until
/// every node that accepted the credential shows the new role.
async fn follow(
    nodes: &Nodes,
    user: usize,
    mut identity: Identity,
    window: Duration,
    change: impl Future<Output = bool>,
) -> anyhow::Result<Outcome> {
    let home = nodes.node(user);
    let accepting: Vec<usize> = nodes
        .check_all(&identity.credential())
        .await
        .iter()
        .enumerate()
        .filter(|(_, c)| matches!(c, Check::Accepted { .. }))
        .map(|(i, _)| i)
        .collect();
    anyhow::ensure!(
        !accepting.is_empty(),
        "user {user}'s credential was refused"
    );
    if !change.await {
        anyhow::bail!("the admin's role change for user {user} was not acknowledged");
    }
    let changed = Instant::now();
    let mut outcome = Outcome {
        seen: None,
        logins: 0,
        refreshes: 0,
    };
    while changed.elapsed() < window {
        if identity.bearer_expiring(Duration::ZERO) && home.refresh(&mut identity).await {
            outcome.refreshes += 1;
        }
        let sent = changed.elapsed();
        let checks = nodes.check_all(&identity.credential()).await;
        let everywhere = accepting.iter().all(|&i| {
            matches!(&checks[i], Check::Accepted { roles, .. } if roles.iter().any(|r| r == ROLE))
        });
        if everywhere {
            outcome.seen = Some(sent);
            break;
        }
        if checks.iter().all(|c| *c == Check::Refused) {
            // The session was ended: log in again, as a person would.
            identity = log_in(home, crate::accounts::email(user)).await?;
            outcome.logins += 1;
            continue;
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
    Ok(outcome)
}

impl Permissions {
    /// The table with its footnotes.
    pub fn table(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "permissions: {} nodes per mechanism; access tokens live {}s (tessera's default: 900s)\n",
            self.nodes, self.access_ttl_s
        );
        let _ = writeln!(
            out,
            "{:<26} {:>5} {:>10} {:>10} {:>10} {:>10} {:>7} {:>9}  how",
            "mechanism", "users", "median", "p99", "max", "never seen", "logins", "refreshes"
        );
        for row in &self.rows {
            let _ = writeln!(
                out,
                "{:<26} {:>5} {:>10} {:>10} {:>10} {:>10} {:>7} {:>9}  {}",
                row.mechanism,
                row.users,
                format!("{:.0} ms", row.median_ms),
                format!("{:.0} ms", row.p99_ms),
                format!("{:.0} ms", row.max_ms),
                row.never_seen,
                row.logins,
                row.refreshes,
                row.how
            );
        }
        let _ = writeln!(
            out,
            "\n  * time from the admin's acknowledged PATCH (on another node than the user's) until \
             every node that accepts the user's credential answers /profile with the new role.\n  \
             * never seen: not shown everywhere {}s after the change (counted as {}s).",
            self.window_s, self.window_s
        );
        out
    }

    /// The chart: time until the new role is seen, per mechanism.
    pub fn figure(&self) -> Figure {
        Figure {
            title: format!(
                "permissions: until every node applies a new role ({} nodes, tokens live {}s)",
                self.nodes, self.access_ttl_s
            ),
            panels: vec![Panel::Bars {
                title: "Time from the admin's change until every node shows the new role"
                    .to_owned(),
                x_label: "time from the acknowledged change (ms)".to_owned(),
                unit: "ms".to_owned(),
                groups: self
                    .rows
                    .iter()
                    .map(|row| BarGroup {
                        name: row.mechanism.to_owned(),
                        bars: vec![
                            ("median".to_owned(), row.median_ms),
                            ("p99".to_owned(), row.p99_ms),
                            (
                                if row.never_seen > 0 {
                                    format!("max ({} never done)", row.never_seen)
                                } else {
                                    "max".to_owned()
                                },
                                row.max_ms,
                            ),
                        ],
                    })
                    .collect(),
                references: vec![Event {
                    label: format!("access-token lifetime {}s", self.access_ttl_s),
                    at: self.access_ttl_s * 1000.0,
                }],
            }],
        }
    }
}
