//! `tessera apikey ...`: API keys for machines, on the data directory's
//! database (or the PostgreSQL user store), whether or not a server runs.
//! The same operations as `/admin/v1/apikeys` (`tessera_axum::apikeys`).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use tessera_axum::apikeys::ApiKeys;
use tessera_axum::audit::{AuditContext, AuditTrail};
use tessera_axum::routes::apikeys::ApiKeyView;
use tessera_axum::startup::{Purpose, open_stores};
use tessera_core::{ApiKeyId, Role, Timestamp};

use crate::cli::ApiKeyCommand;
use crate::commands::user::create_private_dir;
use crate::settings::Settings;

/// Runs one API key command.
pub fn run(settings: &Settings, command: ApiKeyCommand) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    runtime.block_on(run_async(settings, command))
}

async fn run_async(settings: &Settings, command: ApiKeyCommand) -> anyhow::Result<ExitCode> {
    create_private_dir(&settings.data_dir)?;
    let config = settings.resolve()?;
    let backends = open_stores(&config, Purpose::Command).await?.backends;
    let cli = AuditContext::cli();
    let keys = ApiKeys::new(backends.api_keys, AuditTrail::direct(backends.users));
    match command {
        ApiKeyCommand::Create {
            name,
            roles,
            expires,
        } => {
            let roles = roles
                .iter()
                .flat_map(|r| r.split(','))
                .map(str::trim)
                .filter(|r| !r.is_empty())
                .map(|r| Role::parse(r).map_err(|e| anyhow!("role {r:?}: {e}")))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let expires_at = expires
                .as_deref()
                .map(parse_lifetime)
                .transpose()?
                .map(|lifetime| Timestamp::now().plus(lifetime));
            let created = keys.create(&cli, &name, roles, expires_at).await?;
            eprintln!(
                "created API key {} ({}); it is shown once, store it now:",
                created.key.id, created.key.name
            );
            println!("{}", created.token.expose());
        }
        ApiKeyCommand::List { json } => {
            let all = keys.list().await?;
            if json {
                let rows: Vec<_> = all.iter().map(ApiKeyView::of).collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                println!(
                    "{:<16}  {:<20}  {:<24}  {:<24}  ROLES",
                    "ID", "NAME", "EXPIRES", "LAST USED"
                );
                for k in &all {
                    let roles: Vec<&str> = k.roles.iter().map(Role::as_str).collect();
                    println!(
                        "{:<16}  {:<20}  {:<24}  {:<24}  {}",
                        k.id,
                        k.name,
                        k.expires_at.map_or("never".into(), Timestamp::to_rfc3339),
                        k.last_used.map_or("-".into(), Timestamp::to_rfc3339),
                        if roles.is_empty() {
                            "-".into()
                        } else {
                            roles.join(",")
                        }
                    );
                }
            }
        }
        ApiKeyCommand::Revoke { id } => {
            let id = ApiKeyId::parse(&id).map_err(|_| anyhow!("{id:?} is not an API key id"))?;
            let key = keys
                .revoke(&cli, &id)
                .await?
                .ok_or_else(|| anyhow!("no API key with id {id}"))?;
            println!("revoked API key {} ({})", key.id, key.name);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A lifetime such as `90d`, `12h`, `30m` or `45s`.
pub(crate) fn parse_lifetime(raw: &str) -> anyhow::Result<Duration> {
    let raw = raw.trim();
    let split = raw.len().saturating_sub(1);
    let (number, unit) = raw.split_at(if raw.is_char_boundary(split) {
        split
    } else {
        0
    });
    let n: u64 = number
        .parse()
        .map_err(|_| anyhow!("{raw:?}: expected a number and a unit (s, m, h, d), e.g. 90d"))?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => bail!("{raw:?}: the unit is s, m, h or d, e.g. 90d"),
    };
    if n == 0 {
        bail!("{raw:?}: a key's lifetime must be positive");
    }
    Ok(Duration::from_secs(n.saturating_mul(seconds)))
}

#[cfg(test)]
mod tests {
    use super::parse_lifetime;
    use std::time::Duration;

    #[test]
    fn lifetimes_take_a_unit() {
        assert_eq!(
            parse_lifetime("90d").unwrap(),
            Duration::from_secs(90 * 86_400)
        );
        assert_eq!(parse_lifetime("2s").unwrap(), Duration::from_secs(2));
        for bad in ["", "90", "d", "0d", "1y", "-1d", "é"] {
            assert!(parse_lifetime(bad).is_err(), "{bad:?}");
        }
    }
}
