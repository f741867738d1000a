//! `tessera keys ...`: the access-token signing keys in the data directory.

use std::process::ExitCode;

use anyhow::{Context, bail};
use tessera_core::Timestamp;
use tessera_token::KeySet;

use crate::cli::KeysCommand;
use crate::keyfiles::{keys_path, load_or_create, write_private};
use crate::settings::Settings;

/// Runs `tessera keys ...`.
pub fn run(settings: &Settings, command: &KeysCommand) -> anyhow::Result<ExitCode> {
    crate::commands::user::create_private_dir(&settings.data_dir)?;
    let mut set = match (
        &settings.jwt_secret,
        std::fs::read_to_string(keys_path(settings)),
    ) {
        (None, Ok(text)) => {
            KeySet::from_json(&text).context("the key file is not a valid key set")?
        }
        _ => load_or_create(settings)?,
    };
    match command {
        KeysCommand::List => {
            println!("{:<18}  {:<6}  {:<24}  STATUS", "KID", "ALG", "CREATED");
            let active = set.active().kid.clone();
            for key in set.entries() {
                let status = if key.kid == active {
                    "active (signing)".to_owned()
                } else {
                    match key.retired_at {
                        Some(at) => format!(
                            "retired {}, verifying",
                            Timestamp::from_unix_millis(at * 1000).to_rfc3339()
                        ),
                        None => "verifying".to_owned(),
                    }
                };
                let created = Timestamp::from_unix_millis(key.created_at * 1000).to_rfc3339();
                println!(
                    "{:<18}  {:<6}  {:<24}  {status}",
                    key.kid,
                    key.signing.algorithm(),
                    created
                );
            }
        }
        KeysCommand::Rotate => {
            if set.is_configured() {
                bail!(
                    "the key is the configured jwt_secret: rotate it by changing TESSERA_JWT_SECRET"
                );
            }
            let now = Timestamp::now().unix_seconds();
            let max_lifetime =
                i64::try_from(settings.jwt_access_ttl + settings.jwt_leeway).unwrap_or(i64::MAX);
            let dropped = set.prune(now, max_lifetime);
            let kid = set.rotate(settings.jwt_algorithm()?, now)?.kid.clone();
            write_private(&keys_path(settings), set.to_json()?.as_bytes())?;
            println!("new signing key {kid}; previous keys verify until their tokens expire");
            for old in dropped {
                println!("retired key {old} removed (all its tokens have expired)");
            }
        }
        KeysCommand::ExportJwks => {
            println!("{}", serde_json::to_string_pretty(&set.jwks())?);
        }
    }
    Ok(ExitCode::SUCCESS)
}
