//! `tessera audit tail`: the audit log from the user store, like `tail`.
//!
//! Reads the store directly (as `tessera user` does), so it works whether
//! or not a server runs on it; `--follow` polls for events past the last
//! one printed (ids only grow, so nothing is printed twice or skipped).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, anyhow};
use tessera_axum::routes::audit::{AuditEventView, parse_user};
use tessera_axum::startup::{Purpose, open_stores};
use tessera_core::{AuditId, AuditKind, AuditOrder, AuditQuery, AuditRecord, UserStore};

use crate::cli::AuditCommand;
use crate::settings::Settings;

/// Between polls with `--follow`.
const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// Runs one audit command.
pub fn run(settings: &Settings, command: AuditCommand) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    runtime.block_on(run_async(settings, command))
}

async fn run_async(settings: &Settings, command: AuditCommand) -> anyhow::Result<ExitCode> {
    let AuditCommand::Tail {
        follow,
        user,
        kind,
        limit,
        json,
    } = command;
    if !(1..=AuditQuery::MAX_LIMIT).contains(&limit) {
        anyhow::bail!("--limit must be 1 to {}", AuditQuery::MAX_LIMIT);
    }
    let kind = kind
        .map(|k| {
            k.parse::<AuditKind>().map_err(|_| {
                let known: Vec<&str> = AuditKind::ALL.iter().map(|k| k.as_str()).collect();
                anyhow!("unknown kind {k:?}; one of: {}", known.join(", "))
            })
        })
        .transpose()?;
    let config = settings.resolve()?;
    let users = open_stores(&config, Purpose::Command).await?.backends.users;
    let subject = match user {
        Some(text) => {
            let found = parse_user(&text, users.as_ref())
                .await
                .map_err(|e| anyhow!("--user {text:?}: {e}"))?;
            Some(found.ok_or_else(|| anyhow!("no user with e-mail {text}"))?)
        }
        None => None,
    };
    let filter = AuditQuery {
        user: subject,
        kind,
        ..AuditQuery::latest(limit)
    };
    let mut latest = users.audit_events(&filter).await?.events;
    latest.reverse();
    for record in &latest {
        print_record(record, json)?;
    }
    if !follow {
        return Ok(ExitCode::SUCCESS);
    }
    // Follow from the newest event of the whole log, so that events that
    // match no filter are not read again.
    let mut last = newest(users.as_ref()).await?;
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    loop {
        let page = users
            .audit_events(&AuditQuery {
                after: last,
                order: AuditOrder::OldestFirst,
                limit: AuditQuery::MAX_LIMIT,
                ..filter.clone()
            })
            .await;
        match page {
            Ok(page) => {
                for record in &page.events {
                    print_record(record, json)?;
                }
                if let Some(record) = page.events.last() {
                    last = Some(record.id);
                }
                if page.next.is_some() {
                    continue;
                }
            }
            Err(error) => eprintln!("audit log unavailable: {error}; retrying"),
        }
        tokio::select! {
            _ = &mut interrupted => return Ok(ExitCode::SUCCESS),
            () = tokio::time::sleep(POLL_INTERVAL) => {}
        }
    }
}

async fn newest(users: &dyn UserStore) -> anyhow::Result<Option<AuditId>> {
    Ok(users
        .audit_events(&AuditQuery::latest(1))
        .await?
        .events
        .first()
        .map(|r| r.id))
}

fn print_record(record: &AuditRecord, json: bool) -> anyhow::Result<()> {
    let view = AuditEventView::of(record);
    if json {
        println!("{}", serde_json::to_string(&view)?);
        return Ok(());
    }
    let event = &record.event;
    let or_dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    println!(
        "{id:>8}  {at}  {kind:<22}  actor={actor}  subject={subject}  ip={ip}  session={session}  request={request}  ua={ua:?}  {detail}",
        id = record.id,
        at = view.at,
        kind = event.kind.as_str(),
        actor = event.actor,
        subject = or_dash(event.subject.map(|s| s.to_string())),
        ip = or_dash(event.ip.map(|ip| ip.to_string())),
        session = event.session.as_deref().unwrap_or("-"),
        request = event.request_id.as_deref().unwrap_or("-"),
        ua = event.user_agent.as_deref().unwrap_or(""),
        detail = event.detail,
    );
    Ok(())
}
