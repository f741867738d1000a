//! `tessera lab`: the cluster experiment on one machine.
//!
//! For each architecture — stateful (memory store, nginx sticky), stateless
//! with a shared Redis, stateless with JWTs — the lab starts N nodes of this
//! very binary, nginx (from the system) in front of them with the shipped
//! configuration, and Redis when needed; simulated users log in and keep
//! calling `/profile`; node 1 is SIGKILLed mid-run and started again. It
//! prints one table row per architecture (or JSON), optionally an SVG chart,
//! and leaves no process behind: see [`process`].

#![forbid(unsafe_code)]

mod accounts;
mod architecture;
mod args;
mod balancer;
mod chart;
mod client;
mod cookie_jar;
mod duration;
mod metrics;
mod node;
mod plan;
mod process;
mod progress;
mod redis;
mod report;
mod trial;
mod workload;

use std::process::ExitCode;

use anyhow::Context;

pub use architecture::Architecture;
pub use args::LabArgs;
pub use duration::parse_duration;

use plan::Plan;
use redis::Redis;
use report::{Failure, LabReport};
use trial::Trial;

/// Exit status after SIGINT/SIGTERM (128 + SIGINT, as shells report).
const INTERRUPTED: u8 = 130;

/// Runs the lab.
///
/// # Errors
///
/// Invalid flags, or nothing could be set up (no nginx, no temporary
/// directory). A row that fails is reported in the output instead, and the
/// exit status is then 1.
pub fn run(args: &LabArgs) -> anyhow::Result<ExitCode> {
    let plan = Plan::from_args(args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    runtime.block_on(async {
        let stop = stop_signal()?;
        tokio::select! {
            result = lab(&plan) => result,
            signal = stop => {
                // The lab's future, with every process guard in it, has been
                // dropped by now: the children are already killed.
                eprintln!("lab: {signal}: stopped every process it started");
                Ok(ExitCode::from(INTERRUPTED))
            }
        }
    })
}

async fn lab(plan: &Plan) -> anyhow::Result<ExitCode> {
    check_nginx().await?;
    let binary = std::env::current_exe().context("cannot find the tessera binary")?;
    // Declared first, so dropped last: after every process working in it.
    let work = tempfile::Builder::new()
        .prefix("tessera-lab-")
        .tempdir()
        .context("cannot create the lab's temporary directory")?;
    eprintln!("lab: working in {}", work.path().display());
    let skipped: Vec<&'static str> = <Architecture as clap::ValueEnum>::value_variants()
        .iter()
        .filter(|a| !plan.architectures.contains(a))
        .map(|a| a.name())
        .collect();
    for name in &skipped {
        eprintln!("lab: skipping {name}: not selected with --arch");
    }
    let mut report = LabReport {
        plan: plan.clone(),
        work_dir: work.path().display().to_string(),
        redis_url: None,
        debug_build: cfg!(debug_assertions),
        rows: Vec::new(),
        skipped,
        failed: Vec::new(),
    };

    let redis = if plan.architectures.iter().any(|a| a.needs_redis()) {
        Some(match &plan.redis_url {
            Some(url) => Ok(Redis::external(url.clone())),
            None => Redis::start(&work.path().join("redis")),
        })
    } else {
        None
    };
    if let Some(Ok(redis)) = &redis {
        report.redis_url = Some(redis.url().to_owned());
    }
    let password_hash = accounts::password_hash().await?;
    let jwt_secret = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );

    for &architecture in &plan.architectures {
        let redis_url = match (&redis, architecture.needs_redis()) {
            (Some(Ok(redis)), true) => Some(redis.url()),
            (Some(Err(error)), true) => {
                fail(&mut report, architecture, &format!("Redis: {error:#}"));
                continue;
            }
            _ => None,
        };
        let trial = Trial {
            architecture,
            binary: &binary,
            work_dir: work.path().join(architecture.name()),
            password_hash: &password_hash,
            jwt_secret: &jwt_secret,
            redis_url,
        };
        match trial::run(plan, trial).await {
            Ok(row) => report.rows.push(row),
            Err(error) => fail(&mut report, architecture, &format!("{error:#}")),
        }
    }

    if plan.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.table());
    }
    if let Some(path) = &plan.plot {
        std::fs::write(path, chart::svg(&report))
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("lab: chart written to {}", path.display());
    }
    Ok(if report.failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn fail(report: &mut LabReport, architecture: Architecture, reason: &str) {
    eprintln!("lab: {} failed: {reason}", architecture.name());
    report.failed.push(Failure {
        architecture: architecture.name(),
        reason: reason.to_owned(),
    });
}

/// Fails early, with a hint, when nginx is not installed.
async fn check_nginx() -> anyhow::Result<()> {
    tokio::process::Command::new("nginx")
        .arg("-v")
        .stderr(std::process::Stdio::null())
        .status()
        .await
        .map(drop)
        .context("nginx is needed in PATH (e.g. apt-get install nginx-light)")
}

/// Registers SIGINT and SIGTERM now; the future completes with the name of
/// the first that arrives.
fn stop_signal() -> anyhow::Result<impl Future<Output = &'static str>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => "SIGTERM",
            _ = interrupt.recv() => "SIGINT",
        }
    })
}
