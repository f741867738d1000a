//! The simulated users: each logs in, then calls `/profile` until the run
//! ends, and logs in again whenever its session is lost.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::task::JoinSet;

use super::accounts;
use super::client::{Gateway, Identity, Outcome};
use super::metrics::{Live, UserRecord, slices};

/// Pause after a failed request when the server did not say how long.
const BACKOFF: Duration = Duration::from_millis(20);
/// How long a user may take to log in before the run starts.
const FIRST_LOGIN_PATIENCE: Duration = Duration::from_secs(60);

/// When the measured run starts and ends, and the users' pace.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    /// The start of the run: time zero of every measurement.
    pub start: Instant,
    /// The end of the run.
    pub end: Instant,
    /// Pause between one user's requests.
    pub think: Duration,
}

impl Schedule {
    /// Time since the start, if the run is not over.
    fn now(&self) -> Option<Duration> {
        let now = Instant::now();
        (now < self.end).then(|| now - self.start)
    }

    /// Sleeps for `pause`, or until the end if that comes first.
    async fn pause(&self, pause: Duration) {
        let until = (Instant::now() + pause).min(self.end);
        tokio::time::sleep_until(until.into()).await;
    }
}

/// Which node holds each user's session, as far as the users have seen
/// (the node that answered their login).
#[derive(Debug)]
pub struct SessionMap {
    nodes: Vec<String>,
    /// Per user: node index + 1, or 0 for none known.
    holders: Vec<AtomicUsize>,
}

impl SessionMap {
    /// No sessions yet, for `users` users of `nodes`.
    pub fn new(nodes: &[SocketAddr], users: usize) -> Self {
        Self {
            nodes: nodes.iter().map(ToString::to_string).collect(),
            holders: (0..users).map(|_| AtomicUsize::new(0)).collect(),
        }
    }

    fn settle(&self, user: usize, node: Option<&str>) {
        let holder = node
            .and_then(|node| self.nodes.iter().position(|n| n == node))
            .map_or(0, |index| index + 1);
        self.holders[user].store(holder, Ordering::Relaxed);
    }

    fn forget(&self, user: usize) {
        self.holders[user].store(0, Ordering::Relaxed);
    }

    /// How many users' sessions node `index` answered the login of.
    pub fn sessions_on(&self, index: usize) -> usize {
        self.holders
            .iter()
            .filter(|holder| holder.load(Ordering::Relaxed) == index + 1)
            .count()
    }
}

/// Logs `user` in before the run, retrying while the server is busy.
///
/// # Errors
///
/// The credentials are refused, or no login succeeds within a minute.
pub async fn first_login(
    gateway: &Gateway,
    identity: &mut Identity,
    sessions: &SessionMap,
    user: usize,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + FIRST_LOGIN_PATIENCE;
    loop {
        match gateway.log_in(identity).await {
            Outcome::Success { node } => {
                sessions.settle(user, node.as_deref());
                return Ok(());
            }
            Outcome::Unauthorized => bail!("the nodes refused the lab's credentials"),
            Outcome::Failure { retry_after } => {
                if Instant::now() > deadline {
                    bail!("a user could not log in within {FIRST_LOGIN_PATIENCE:?}");
                }
                tokio::time::sleep(retry_after.unwrap_or(BACKOFF)).await;
            }
        }
    }
}

/// Runs one logged-in user until the schedule ends.
pub async fn simulate(
    user: usize,
    gateway: Arc<Gateway>,
    mut identity: Identity,
    schedule: Schedule,
    live: Arc<Live>,
    sessions: Arc<SessionMap>,
) -> UserRecord {
    let mut record = UserRecord::new(slices(schedule.end - schedule.start));
    let mut logged_in = true;
    while schedule.now().is_some() {
        if !logged_in {
            let outcome = gateway.log_in(&mut identity).await;
            if schedule.now().is_none() {
                break;
            }
            let failed = match outcome {
                Outcome::Success { node } => {
                    record.login();
                    sessions.settle(user, node.as_deref());
                    logged_in = true;
                    None
                }
                Outcome::Unauthorized => Some(BACKOFF),
                Outcome::Failure { retry_after } => Some(retry_after.unwrap_or(BACKOFF)),
            };
            if let Some(wait) = failed {
                record.error(&live);
                schedule.pause(wait).await;
                continue;
            }
        }
        let sent = Instant::now();
        let outcome = gateway.profile(&mut identity).await;
        let latency = sent.elapsed();
        let Some(at) = schedule.now() else { break };
        match outcome {
            Outcome::Success { node } => record.success(&live, at, latency, node.as_deref()),
            Outcome::Unauthorized => {
                record.loss(&live, at);
                sessions.forget(user);
                logged_in = false;
            }
            Outcome::Failure { retry_after } => {
                record.error(&live);
                schedule.pause(retry_after.unwrap_or(BACKOFF)).await;
            }
        }
        if !schedule.think.is_zero() {
            schedule.pause(schedule.think).await;
        }
    }
    record
}

/// Logs every user in before the run starts (not measured).
///
/// # Errors
///
/// A user could not log in.
pub async fn log_everyone_in(
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

/// A workload under way: every user simulated from `schedule.start` to
/// `schedule.end`, and the progress line on stderr.
pub struct Running {
    /// When the run started and ends.
    pub schedule: Schedule,
    /// One task a user (aborted when dropped).
    pub users: JoinSet<UserRecord>,
    /// The progress line, and whatever else the experiment adds.
    pub background: JoinSet<()>,
}

/// Starts one simulated user per identity, from now for `duration`, and
/// the progress line named `name`.
pub fn start_users(
    name: &'static str,
    gateway: &Arc<Gateway>,
    identities: Vec<Identity>,
    sessions: &Arc<SessionMap>,
    duration: Duration,
    think: Duration,
) -> Running {
    let start = Instant::now();
    let schedule = Schedule {
        start,
        end: start + duration,
        think,
    };
    let live = Arc::new(Live::default());
    let mut users = JoinSet::new();
    for (user, identity) in identities.into_iter().enumerate() {
        users.spawn(simulate(
            user,
            Arc::clone(gateway),
            identity,
            schedule,
            Arc::clone(&live),
            Arc::clone(sessions),
        ));
    }
    let mut background = JoinSet::new();
    background.spawn(crate::progress::every_second(
        name,
        Arc::clone(&live),
        start,
        duration,
    ));
    Running {
        schedule,
        users,
        background,
    }
}
