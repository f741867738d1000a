//! `logout`: users log out (and an admin disables some) while their
//! credentials are replayed against every node; per mechanism, the time
//! from the acknowledged logout until every node refuses the credential.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;
use serde_json::json;
use tokio::task::JoinSet;

use crate::Lab;
use crate::chart::{BarGroup, Figure, Panel};
use crate::client::{Check, Credential};
use crate::mechanism::{JwtAlgorithm, Mechanism};
use crate::probe::{JwksVerifier, Nodes, ProbeCluster, summary};

/// Pause between two replays of a credential (against every node at once).
const REPLAY_EVERY: Duration = Duration::from_millis(25);
/// How long past the access-token lifetime the lab waits for a refusal.
const PATIENCE: Duration = Duration::from_secs(3);

/// The clusters `logout` starts, in order; the JWT one also measures
/// [`Mechanism::JwtJwksOnly`] (the same tokens, checked by a third party).
pub const CLUSTERS: [Mechanism; 5] = [
    Mechanism::SessionMemory,
    Mechanism::SessionRedis,
    Mechanism::SessionNearCache,
    Mechanism::SealedCookie,
    Mechanism::Jwt(JwtAlgorithm::EdDsa),
];

/// One mechanism and action's exposure windows.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// The mechanism (`jwt-revocation-list` for tessera's own check of a
    /// JWT, `jwt-jwks-only` for a third party's).
    pub mechanism: String,
    /// `logout` (`POST /logout` by the user) or `disable` (`PATCH
    /// /admin/v1/users/{id}` `{"disabled": true}` by an admin, on another
    /// node).
    pub action: &'static str,
    /// Users measured.
    pub users: usize,
    /// Median exposure window, ms.
    pub median_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Maximum, ms.
    pub max_ms: f64,
    /// Credentials some node still accepted when the lab gave up waiting.
    pub never_refused: usize,
    /// Every exposure window, ms.
    pub exposures_ms: Vec<f64>,
    /// When every node (or the JWKS-only verifier) first refused it, ms
    /// after the acknowledgement: the window ends between the exposure and
    /// this (the replays' spacing). Empty when never refused.
    pub refused_after_ms: Vec<f64>,
    /// For access tokens: what was left of each token's lifetime when the
    /// logout was acknowledged, ms (what a JWKS-only verifier must accept).
    pub lifetime_left_ms: Vec<f64>,
}

/// What `logout` found.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Logout {
    /// Nodes per mechanism.
    pub nodes: usize,
    /// The access tokens' lifetime, s.
    pub access_ttl_s: f64,
    /// How long the lab waited for a refusal after each logout, s.
    pub window_s: f64,
    /// One row per mechanism and action.
    pub rows: Vec<Row>,
}

/// How long one cluster takes, setup included.
pub fn estimate(plan: &crate::plan::Plan, mechanism: Mechanism) -> Duration {
    let wait = if matches!(mechanism, Mechanism::Jwt(_)) {
        plan.access_ttl + Duration::from_secs(1)
    } else {
        Duration::from_secs(1)
    };
    plan.spread + wait + Duration::from_secs(4)
}

/// When a credential was last accepted and first refused everywhere, after
/// the acknowledgement (`None`: still accepted when the lab gave up).
type Window = Option<(Duration, Duration)>;

/// One user's outcome.
struct Exposure {
    action: &'static str,
    /// Tessera's nodes.
    nodes: Window,
    /// The third-party verifier (JWT clusters only).
    jwks_only: Option<Window>,
    /// The token's lifetime left at the acknowledgement.
    lifetime_left: Option<Duration>,
}

/// Runs one mechanism's cluster.
///
/// # Errors
///
/// The cluster or the users could not be set up, or a logout was refused.
pub async fn run(lab: &Lab<'_>, mechanism: Mechanism) -> anyhow::Result<Vec<Row>> {
    let plan = lab.plan;
    let users = plan.probe_users;
    let ProbeCluster {
        cluster,
        nodes,
        admin_nodes,
        admin,
    } = ProbeCluster::start(lab, mechanism, "logout").await?;
    let verifier = match mechanism {
        Mechanism::Jwt(_) => Some(Arc::new(JwksVerifier::fetch(nodes.node(0)).await?)),
        _ => None,
    };

    let credentials = nodes
        .log_in_everyone(users)
        .await?
        .into_iter()
        .map(|(user, identity, id)| (user, identity.credential(), id));

    let start = Instant::now();
    let window = plan.access_ttl + PATIENCE;
    let mut probes = JoinSet::new();
    for (user, credential, id) in credentials {
        let at = start + plan.spread.mul_f64(user as f64 / users as f64);
        let nodes = Arc::clone(&nodes);
        let admin_nodes = Arc::clone(&admin_nodes);
        let admin = Arc::clone(&admin);
        let verifier = verifier.clone();
        probes.spawn(async move {
            tokio::time::sleep_until(at.into()).await;
            let disable = user % 4 == 3;
            probe(
                &nodes,
                user,
                &credential,
                verifier.as_deref(),
                window,
                async {
                    if disable {
                        // An admin, on another node than the user's.
                        admin_nodes
                            .node(user + 1)
                            .admin_patch(&admin, &id, &json!({"disabled": true}))
                            .await
                    } else {
                        nodes.node(user).log_out(&credential).await
                    }
                },
                if disable { "disable" } else { "logout" },
            )
            .await
        });
    }
    let mut exposures = Vec::with_capacity(users);
    while let Some(joined) = probes.join_next().await {
        exposures.push(joined.context("a probe failed")??);
    }
    drop(cluster);

    let name = match mechanism {
        Mechanism::Jwt(_) => "jwt-revocation-list",
        other => other.name(),
    };
    let mut rows = Vec::new();
    for action in ["logout", "disable"] {
        let of_action: Vec<&Exposure> = exposures.iter().filter(|e| e.action == action).collect();
        if of_action.is_empty() {
            continue;
        }
        let lifetimes: Vec<Duration> = of_action.iter().filter_map(|e| e.lifetime_left).collect();
        rows.push(row(
            name,
            action,
            of_action.iter().map(|e| e.nodes).collect(),
            window,
            &lifetimes,
        ));
        if verifier.is_some() {
            rows.push(row(
                Mechanism::JwtJwksOnly.name(),
                action,
                of_action.iter().filter_map(|e| e.jwks_only).collect(),
                window,
                &lifetimes,
            ));
        }
    }
    Ok(rows)
}

fn row(
    mechanism: &str,
    action: &'static str,
    windows: Vec<Window>,
    cap: Duration,
    lifetimes: &[Duration],
) -> Row {
    let never_refused = windows.iter().filter(|w| w.is_none()).count();
    let exposures_ms: Vec<f64> = windows
        .iter()
        .map(|w| w.map_or(cap, |(accepted, _)| accepted).as_secs_f64() * 1000.0)
        .collect();
    let refused_after_ms = windows
        .iter()
        .flatten()
        .map(|(_, refused)| refused.as_secs_f64() * 1000.0)
        .collect();
    let (median_ms, p99_ms, max_ms) = summary(&exposures_ms);
    Row {
        mechanism: mechanism.to_owned(),
        action,
        users: windows.len(),
        median_ms,
        p99_ms,
        max_ms,
        never_refused,
        exposures_ms,
        refused_after_ms,
        lifetime_left_ms: lifetimes.iter().map(|d| d.as_secs_f64() * 1000.0).collect(),
    }
}

/// What was left of an access token's lifetime `at` (its `exp`, read without
/// checking the signature: the lab issued it).
fn lifetime_left(token: &str, at: std::time::SystemTime) -> Option<Duration> {
    let unverified = tessera_token::jws::parse_compact(token).ok()?;
    let claims = tessera_token::AccessClaims::from_payload(unverified.payload_unverified()).ok()?;
    let now = at.duration_since(std::time::UNIX_EPOCH).ok()?;
    let exp = Duration::from_secs(u64::try_from(claims.exp).ok()?);
    Some(exp.saturating_sub(now))
}

/// Checks the credential is accepted, runs `end` (the logout or the
/// disabling), and replays the credential against every node until each
/// refuses it: the window is from the acknowledgement to the last replay
/// sent after it that was still accepted (`None`: still accepted after
/// `window`).
#[allow(clippy::too_many_arguments)]
async fn probe(
    nodes: &Nodes,
    user: usize,
    credential: &Credential,
    verifier: Option<&JwksVerifier>,
    window: Duration,
    end: impl Future<Output = bool>,
    action: &'static str,
) -> anyhow::Result<Exposure> {
    // The nodes that accept it now: every node, but for memory sessions
    // only the one holding it.
    let before = nodes.check_all(credential).await;
    let accepting: Vec<usize> = before
        .iter()
        .enumerate()
        .filter(|(_, c)| matches!(c, Check::Accepted { .. }))
        .map(|(i, _)| i)
        .collect();
    anyhow::ensure!(
        !accepting.is_empty(),
        "user {user}'s fresh credential was refused everywhere"
    );
    let token = credential.bearer.clone();
    if !end.await {
        anyhow::bail!("user {user}'s {action} was not acknowledged");
    }
    // The acknowledgement on both clocks, read together (retried should the
    // task be paused in between): the monotonic one times the replays, the
    // wall clock is what `exp` is compared with.
    let (acknowledged, wall) = loop {
        let before = Instant::now();
        let wall = std::time::SystemTime::now();
        if before.elapsed() < Duration::from_millis(2) {
            break (before, wall);
        }
    };
    let lifetime_left = token.as_deref().and_then(|t| lifetime_left(t, wall));
    let give_up = acknowledged + window;
    let mut nodes_window: Option<Window> = None;
    let mut jwks_window: Option<Window> = match (&token, verifier) {
        (Some(_), Some(_)) => None,
        _ => Some(None),
    };
    let mut last_nodes = Duration::ZERO;
    let mut last_jwks = Duration::ZERO;
    loop {
        let sent = Instant::now();
        let since = sent - acknowledged;
        if nodes_window.is_none() {
            let checks = nodes.check_all(credential).await;
            let accepted = accepting
                .iter()
                .any(|&i| matches!(checks[i], Check::Accepted { .. } | Check::Failed));
            if accepted {
                last_nodes = since;
            } else {
                nodes_window = Some(Some((last_nodes, since)));
            }
        }
        if jwks_window.is_none()
            && let (Some(token), Some(verifier)) = (&token, verifier)
        {
            // Its own clock, read on both sides of the check (a busy machine
            // may pause the task in between): accepted proves the token was
            // valid at `before`, refused that it was not by `after`.
            let before = acknowledged.elapsed();
            let accepted = verifier.accepts(token);
            let after = acknowledged.elapsed();
            if accepted {
                last_jwks = before;
            } else {
                jwks_window = Some(Some((last_jwks, after)));
            }
        }
        if nodes_window.is_some() && jwks_window.is_some() {
            break;
        }
        if Instant::now() >= give_up {
            nodes_window.get_or_insert(None);
            jwks_window.get_or_insert(None);
            break;
        }
        tokio::time::sleep(REPLAY_EVERY).await;
    }
    Ok(Exposure {
        action,
        nodes: nodes_window.flatten(),
        jwks_only: (token.is_some() && verifier.is_some()).then(|| jwks_window.flatten()),
        lifetime_left,
    })
}

impl Logout {
    /// The table with its footnotes.
    pub fn table(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "logout: {} nodes per mechanism; access tokens live {}s; credentials replayed against every node every {} ms\n",
            self.nodes,
            self.access_ttl_s,
            REPLAY_EVERY.as_millis()
        );
        let _ = writeln!(
            out,
            "{:<26} {:<8} {:>5} {:>12} {:>12} {:>12} {:>14}",
            "mechanism", "action", "users", "median", "p99", "max", "never refused"
        );
        for row in &self.rows {
            let _ = writeln!(
                out,
                "{:<26} {:<8} {:>5} {:>12} {:>12} {:>12} {:>14}",
                row.mechanism,
                row.action,
                row.users,
                format!("{:.0} ms", row.median_ms),
                format!("{:.0} ms", row.p99_ms),
                format!("{:.0} ms", row.max_ms),
                row.never_refused
            );
        }
        let _ = writeln!(
            out,
            "\n  * exposure: from the acknowledged logout (or the admin's acknowledged PATCH) to the \
             last replay, sent after it, that some node still accepted; 0 when the first replay \
             was refused everywhere.\n  * jwt-jwks-only: the same access tokens checked as a third \
             party would, with the JWKS alone (no leeway): they stay valid until they expire, up \
             to the access-token lifetime ({}s here, 900s by default).\n  * never refused: still \
             accepted {}s after the acknowledgement (counted as {}s).",
            self.access_ttl_s, self.window_s, self.window_s
        );
        out
    }

    /// The chart: exposure windows per mechanism.
    pub fn figure(&self) -> Figure {
        let mut groups: Vec<BarGroup> = Vec::new();
        for row in &self.rows {
            let name = format!("{} ({})", row.mechanism, row.action);
            groups.push(BarGroup {
                name,
                bars: vec![
                    ("median".to_owned(), row.median_ms),
                    ("p99".to_owned(), row.p99_ms),
                    (
                        if row.never_refused > 0 {
                            format!("max ({} never done)", row.never_refused)
                        } else {
                            "max".to_owned()
                        },
                        row.max_ms,
                    ),
                ],
            });
        }
        Figure {
            title: format!(
                "logout: how long a credential works after the logout ({} nodes, tokens live {}s)",
                self.nodes, self.access_ttl_s
            ),
            panels: vec![Panel::Bars {
                title: "Exposure window until every node refuses the credential".to_owned(),
                x_label: "time from the acknowledged logout (ms)".to_owned(),
                unit: "ms".to_owned(),
                groups,
                references: vec![crate::chart::Event {
                    label: format!("access-token lifetime {}s", self.access_ttl_s),
                    at: self.access_ttl_s * 1000.0,
                }],
            }],
        }
    }
}
