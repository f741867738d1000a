//! `tessera migrate`: the user store's schema, alone.

use std::process::ExitCode;

use anyhow::Context;

use tessera_axum::startup::UserBackend;
use tessera_store::{PostgresUserStore, SqliteStore};

use crate::commands::user::{collisions, create_private_dir, print_collisions};
use crate::settings::Settings;

/// `tessera migrate`: migrations of the configured user store, alone.
pub fn run(settings: &Settings) -> anyhow::Result<ExitCode> {
    create_private_dir(&settings.data_dir)?;
    let config = settings.resolve()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        match &config.users {
            UserBackend::Sqlite => {
                // Opening migrates.
                let store = SqliteStore::open(&config.database, config.sqlite.clone())
                    .with_context(|| {
                        format!(
                            "cannot open the database in {}",
                            settings.data_dir.display()
                        )
                    })?;
                println!(
                    "embedded database {} is up to date",
                    config.database.display()
                );
                print_collisions(&collisions(&store).await?, false)?;
            }
            UserBackend::Postgres { url, options } => {
                let store = PostgresUserStore::connect(url, options.clone())
                    .await
                    .context("cannot migrate the PostgreSQL user store")?;
                // connect() migrated; report the state.
                println!(
                    "postgres user store is up to date ({} migrations pending)",
                    store.migrate().await?
                );
                print_collisions(&collisions(&store).await?, false)?;
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}
