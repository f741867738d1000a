//! `tessera lab`: the article's trade-offs, measured on one machine.
//!
//! Each experiment (`--experiment`, see [`Experiment`]) starts nodes of
//! this very binary — behind nginx (from the system) with the shipped
//! configurations when the experiment needs a balancer — and Redis when
//! needed, drives them with simulated users over HTTP, and reports a table
//! (or JSON), a chart (`--plot`, SVG or PNG) and, with `--report`, one
//! self-contained HTML page that puts each figure in the article's tables.
//! It leaves no process behind: see [`process`].

#![forbid(unsafe_code)]

mod accounts;
mod architecture;
mod args;
mod balancer;
mod chart;
mod client;
mod cluster;
mod cookie_jar;
mod duration;
mod experiment;
mod html;
mod logout;
mod mechanism;
mod metrics;
mod node;
mod node_loss;
mod permissions;
mod plan;
mod probe;
mod process;
mod progress;
mod redis;
mod report;
mod scale_out;
mod verify_cost;
mod workload;

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

pub use architecture::{Architecture, Routing};
pub use args::LabArgs;
pub use duration::parse_duration;
pub use experiment::Experiment;

use cluster::{ClusterSpec, Secrets};
use plan::{Plan, PlotFormat};
use progress::Progress;
use redis::Redis;
use report::{Failure, LabReport, Machine, Versions};

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

/// What every experiment needs besides the plan.
pub struct Lab<'a> {
    /// The parameters.
    pub plan: &'a Plan,
    binary: &'a Path,
    work: &'a Path,
    password_hash: &'a str,
    secrets: &'a Secrets,
    redis: Option<Result<String, String>>,
}

impl Lab<'_> {
    /// A cluster's specification, in its own directory `name`.
    fn cluster(
        &self,
        name: &str,
        users: usize,
        env: Vec<(String, String)>,
        nodes: usize,
        routing: Option<Routing>,
    ) -> ClusterSpec<'_> {
        ClusterSpec {
            binary: self.binary,
            work_dir: self.work.join(name),
            users,
            password_hash: self.password_hash,
            secrets: self.secrets,
            env,
            nodes,
            routing,
        }
    }

    /// The Redis URL, if `needed`.
    ///
    /// # Errors
    ///
    /// Needed, and Redis could not be started.
    fn redis_for(&self, needed: bool) -> anyhow::Result<Option<&str>> {
        if !needed {
            return Ok(None);
        }
        match &self.redis {
            Some(Ok(url)) => Ok(Some(url)),
            Some(Err(error)) => anyhow::bail!("Redis: {error}"),
            None => anyhow::bail!("Redis was not started"),
        }
    }
}

async fn lab(plan: &Plan) -> anyhow::Result<ExitCode> {
    check_nginx().await?;
    let mut machine = Machine::now();
    let versions = Versions::detect().await;
    let binary = std::env::current_exe().context("cannot find the tessera binary")?;
    // Declared first, so dropped last: after every process working in it.
    let work = tempfile::Builder::new()
        .prefix("tessera-lab-")
        .tempdir()
        .context("cannot create the lab's temporary directory")?;
    eprintln!("lab: working in {}", work.path().display());
    let experiments: Vec<&str> = plan.experiments.iter().map(|e| e.name()).collect();
    eprintln!("lab: experiments: {}", experiments.join(", "));

    let runs_clusters = plan
        .experiments
        .iter()
        .any(|e| !matches!(e, Experiment::NodeLoss | Experiment::ScaleOut))
        || plan.architectures.iter().any(|a| a.needs_redis());
    // Kept alive (and stopped) with the lab.
    let redis_server = runs_clusters.then(|| match &plan.redis_url {
        Some(url) => Ok(Redis::external(url.clone())),
        None => Redis::start(&work.path().join("redis")),
    });
    let redis = redis_server.as_ref().map(|r| match r {
        Ok(redis) => Ok(redis.url().to_owned()),
        Err(error) => Err(format!("{error:#}")),
    });
    let password_hash = accounts::password_hash().await?;
    let secrets = Secrets::generate();
    let lab = Lab {
        plan,
        binary: &binary,
        work: work.path(),
        password_hash: &password_hash,
        secrets: &secrets,
        redis: redis.clone(),
    };
    let progress = Progress::new(estimate(plan));
    let mut report = LabReport {
        command: std::env::args().collect::<Vec<_>>().join(" "),
        machine: machine.clone(),
        versions,
        plan: plan.clone(),
        work_dir: work.path().display().to_string(),
        redis_url: redis.and_then(Result::ok),
        debug_build: cfg!(debug_assertions),
        wall_s: 0.0,
        node_loss: None,
        scale_out: None,
        logout: None,
        permissions: None,
        verify_cost: None,
        failed: Vec::new(),
    };

    for &experiment in &plan.experiments {
        run_experiment(&lab, &progress, experiment, &mut report).await;
    }
    machine.load_at_end = report::load();
    report.machine.load_at_end = machine.load_at_end;
    report.wall_s = progress.elapsed().as_secs_f64();

    if plan.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.table());
    }
    let figures = report.figures();
    if let Some((path, format)) = &plan.plot {
        let svg = chart::stack(&figures);
        let bytes = match format {
            PlotFormat::Svg => svg.into_bytes(),
            PlotFormat::Png => chart::png(&svg)?,
        };
        std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("lab: chart written to {}", path.display());
    }
    if let Some(path) = &plan.report {
        std::fs::write(path, html::page(&report, &figures))
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("lab: report written to {}", path.display());
    }
    eprintln!(
        "lab: done in {}",
        progress::clock(Duration::from_secs_f64(report.wall_s))
    );
    Ok(if report.failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The whole run's estimated duration.
fn estimate(plan: &Plan) -> Duration {
    let mut total = Duration::ZERO;
    for experiment in &plan.experiments {
        total += match experiment {
            Experiment::NodeLoss => {
                node_loss::estimate(plan) * u32::try_from(plan.architectures.len()).unwrap_or(3)
            }
            Experiment::ScaleOut => {
                scale_out::estimate(plan) * u32::try_from(plan.architectures.len()).unwrap_or(3)
            }
            Experiment::Logout => logout::CLUSTERS
                .iter()
                .map(|m| logout::estimate(plan, *m))
                .sum(),
            Experiment::Permissions => permissions::MECHANISMS
                .iter()
                .map(|m| permissions::estimate(plan, *m))
                .sum(),
            Experiment::VerifyCost => verify_cost::estimate(plan) * 8,
            Experiment::All => Duration::ZERO,
        };
    }
    total
}

async fn run_experiment(
    lab: &Lab<'_>,
    progress: &Progress,
    experiment: Experiment,
    report: &mut LabReport,
) {
    let plan = lab.plan;
    let name = experiment.name();
    let mut fail = |what: &str, error: &anyhow::Error| {
        eprintln!("lab: [{name}] {what} failed: {error:#}");
        report.failed.push(Failure {
            experiment: name,
            architecture: what.to_owned(),
            reason: format!("{error:#}"),
        });
    };
    match experiment {
        Experiment::NodeLoss => {
            let mut result = node_loss::NodeLoss {
                rows: Vec::new(),
                skipped: <Architecture as clap::ValueEnum>::value_variants()
                    .iter()
                    .filter(|a| !plan.architectures.contains(a))
                    .map(|a| a.name())
                    .collect(),
            };
            for skipped in &result.skipped {
                eprintln!("lab: [{name}] skipping {skipped}: not selected with --arch");
            }
            for &architecture in &plan.architectures {
                progress.step(name, architecture.name(), node_loss::estimate(plan));
                match node_loss::run(lab, architecture).await {
                    Ok(row) => result.rows.push(row),
                    Err(error) => fail(architecture.name(), &error),
                }
            }
            report.node_loss = Some(result);
        }
        Experiment::ScaleOut => {
            let mut result = scale_out::ScaleOut {
                duration_s: plan.scale_duration.as_secs_f64(),
                rows: Vec::new(),
            };
            for &architecture in &plan.architectures {
                progress.step(name, architecture.name(), scale_out::estimate(plan));
                match scale_out::run(lab, architecture).await {
                    Ok(row) => result.rows.push(row),
                    Err(error) => fail(architecture.name(), &error),
                }
            }
            report.scale_out = Some(result);
        }
        Experiment::Logout => {
            let mut result = logout::Logout {
                nodes: plan.nodes,
                access_ttl_s: plan.access_ttl.as_secs_f64(),
                window_s: (plan.access_ttl + Duration::from_secs(3)).as_secs_f64(),
                rows: Vec::new(),
            };
            for mechanism in logout::CLUSTERS {
                let what = match mechanism {
                    mechanism::Mechanism::Jwt(_) => "jwt (revocation list and JWKS only)",
                    other => other.name(),
                };
                progress.step(name, what, logout::estimate(plan, mechanism));
                match logout::run(lab, mechanism).await {
                    Ok(rows) => result.rows.extend(rows),
                    Err(error) => fail(mechanism.name(), &error),
                }
            }
            result.rows.sort_by_key(|r| r.action != "logout");
            report.logout = Some(result);
        }
        Experiment::Permissions => {
            let mut result = permissions::Permissions {
                nodes: plan.nodes,
                access_ttl_s: plan.access_ttl.as_secs_f64(),
                window_s: (plan.access_ttl + Duration::from_secs(3)).as_secs_f64(),
                rows: Vec::new(),
            };
            for mechanism in permissions::MECHANISMS {
                progress.step(
                    name,
                    mechanism.name(),
                    permissions::estimate(plan, mechanism),
                );
                match permissions::run(lab, mechanism).await {
                    Ok(row) => result.rows.push(row),
                    Err(error) => fail(mechanism.name(), &error),
                }
            }
            report.permissions = Some(result);
        }
        Experiment::VerifyCost => {
            let ticks = verify_cost::clock_ticks().await;
            let mut result = verify_cost::VerifyCost {
                clients: plan.cost_clients,
                duration_s: plan.cost_duration.as_secs_f64(),
                clock_ticks: ticks,
                rows: Vec::new(),
            };
            for mechanism in verify_cost::MECHANISMS {
                progress.step(name, mechanism.name(), verify_cost::estimate(plan));
                match verify_cost::run(lab, mechanism, ticks).await {
                    Ok(row) => result.rows.push(row),
                    Err(error) => fail(mechanism.name(), &error),
                }
            }
            report.verify_cost = Some(result);
        }
        Experiment::All => {}
    }
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
