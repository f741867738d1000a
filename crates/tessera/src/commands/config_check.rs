//! `tessera config check`: every setting validated, every configured store
//! and the mail relay reached, every problem printed at once.
//!
//! Nothing is written or sent (but a sealed-cookie key created on first use,
//! as any command does): the embedded database is opened only if it
//! exists (read as `tessera serve` would, migrations counted, not run),
//! PostgreSQL's schema version is read, Redis is connected to and its
//! eviction policy checked, the SMTP relay greeted (TLS and login as
//! configured) and left with `QUIT`.

use std::path::Path;
use std::process::ExitCode;

use tessera_axum::startup::SessionBackend;
use tessera_core::SessionStore;
use tessera_store::{PostgresOptions, RedisOptions, RedisStore, SqliteOptions, SqliteStore};

use crate::settings::{FlagSettings, Settings, StoreKind, UsersKind};

/// Runs the check; prints the problems (exit 1) or a short summary (exit 0).
///
/// # Errors
///
/// Only when no async runtime can be started; problems are the output.
pub fn run(config_file: Option<&Path>, flags: FlagSettings) -> anyhow::Result<ExitCode> {
    let (settings, mut problems) = Settings::load_checked(config_file, flags);
    let mut summary = Vec::new();
    if let Some(settings) = settings {
        problems.extend(crate::keyfiles::check(&settings));
        if let Err(found) = settings.resolve_all() {
            problems.extend(found.into_vec());
        } else {
            summary.push("settings: valid".to_owned());
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(reach(&settings, &mut problems, &mut summary));
    }
    if problems.is_empty() {
        println!("tessera config check: ok");
        for line in summary {
            println!("  {line}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let count = problems.len();
    println!(
        "tessera config check: {count} problem{}",
        if count == 1 { "" } else { "s" }
    );
    for problem in problems {
        println!("  - {problem}");
    }
    Ok(ExitCode::FAILURE)
}

/// Reaches every store and the relay the settings name.
async fn reach(settings: &Settings, problems: &mut Vec<String>, summary: &mut Vec<String>) {
    let uses_sqlite = settings.store == StoreKind::Sqlite || settings.users == UsersKind::Sqlite;
    if uses_sqlite {
        match embedded_database(settings) {
            Ok(line) => summary.push(line),
            Err(problem) => problems.push(problem),
        }
    }
    match settings.session_backend() {
        // Settings refused are among the problems reported above.
        Err(_) => {}
        Ok(SessionBackend::Redis(options)) => match redis(options).await {
            Ok(()) => summary.push(format!(
                "session store: redis, reachable (prefix {})",
                settings.redis_prefix
            )),
            Err(problem) => problems.push(format!("redis_url: {problem}")),
        },
        Ok(SessionBackend::Memory) => summary.push("session store: memory".to_owned()),
        Ok(SessionBackend::Sqlite) => {}
    }
    if let (UsersKind::Postgres, Some(url)) = (settings.users, &settings.database_url) {
        match tessera_store::PostgresUserStore::pending_migrations(url, PostgresOptions::default())
            .await
        {
            Ok(0) => summary.push("user store: postgres, reachable, schema up to date".to_owned()),
            Ok(pending) => summary.push(format!(
                "user store: postgres, reachable, {pending} migration(s) to apply (tessera migrate)"
            )),
            Err(error) => problems.push(format!("database_url: {error}")),
        }
    }
    if let Some(smtp) = settings.smtp() {
        match tessera_axum::mail::transport::check_relay(&smtp).await {
            Ok(()) => summary.push(format!(
                "mail: smtp relay {}:{} answers",
                smtp.url.host, smtp.url.port
            )),
            Err(error) => problems.push(format!("smtp_url: {error}")),
        }
    }
}

/// The embedded database: opened if it exists (a missing one is created by
/// `tessera serve`).
fn embedded_database(settings: &Settings) -> Result<String, String> {
    let dir = &settings.data_dir;
    if dir.exists() && !dir.is_dir() {
        return Err(format!("data_dir: {} is not a directory", dir.display()));
    }
    let path = settings.database_path();
    if !path.exists() {
        return Ok(format!(
            "embedded database: {} does not exist yet (tessera serve creates it)",
            path.display()
        ));
    }
    let options = SqliteOptions {
        session_cache: 0,
        ..SqliteOptions::default()
    };
    let pending = SqliteStore::pending_migrations(&path, &options)
        .map_err(|e| format!("data_dir: the embedded database {}: {e}", path.display()))?;
    Ok(match pending {
        0 => format!("embedded database: {}, schema up to date", path.display()),
        n => format!(
            "embedded database: {}, {n} migration(s) to apply at start",
            path.display()
        ),
    })
}

async fn redis(options: RedisOptions) -> Result<(), String> {
    let store = RedisStore::connect(RedisOptions {
        near_cache: 0,
        ..options
    })
    .await
    .map_err(|e| e.to_string())?;
    store.ping().await.map_err(|e| e.to_string())
}
