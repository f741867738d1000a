//! `tessera migrate`: the user store's schema, alone.

use std::process::ExitCode;

use anyhow::Context;

use crate::commands::user::open_database;
use crate::settings::Settings;

/// `tessera migrate`: migrations of the configured user store, alone.
pub fn run(settings: &Settings) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let db = open_database(settings, false)?;
        match settings.users {
            crate::settings::UserBackend::Sqlite => {
                println!("embedded database {} is up to date", db.path().display())
            }
            crate::settings::UserBackend::Postgres => {
                let url = settings
                    .database_url
                    .as_deref()
                    .context("users = \"postgres\" needs database_url")?;
                let store = tessera_store::PostgresUserStore::connect(
                    url,
                    tessera_store::PostgresOptions::default(),
                )
                .await
                .context("cannot migrate the PostgreSQL user store")?;
                // connect() migrated; report the state.
                println!(
                    "postgres user store is up to date ({} migrations pending)",
                    store.migrate().await?
                );
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}
