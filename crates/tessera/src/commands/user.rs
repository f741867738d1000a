//! `tessera user ...`: account administration on the data directory.
//!
//! These commands work on the embedded database directly, so they work
//! whether or not a server is running on it. Role changes, verification,
//! disabling and password changes reach the user's sessions the same way the admin API
//! does (see `tessera_axum::accounts`).

use std::io::{BufRead, IsTerminal};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, anyhow, bail};
use serde::Deserialize;
use tessera_axum::accounts::AccountChange;
use tessera_axum::audit::{AuditContext, AuditTrail};
use tessera_axum::invites::{InviteError, IssuedLink, OperatorMail};
use tessera_axum::passwords::NewPasswordRules;
use tessera_axum::startup::{Purpose, open_stores};
use tessera_axum::{Backends, Mail, ServiceConfig};
use tessera_core::{
    AddressCollision, AuditKind, Email, NewUser, Password, PasswordHash, PasswordHasher, Role,
    StoreError, StoredAddress, Timestamp, UserStore, renormalise,
};

use crate::cli::UserCommand;
use crate::settings::Settings;

/// Creates the data directory (and its parents) with mode 0700.
pub fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .with_context(|| format!("cannot create data directory {}", dir.display()))
}

/// Runs one user command.
pub fn run(settings: &Settings, command: UserCommand) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    runtime.block_on(run_async(settings, command))
}

async fn run_async(settings: &Settings, command: UserCommand) -> anyhow::Result<ExitCode> {
    create_private_dir(&settings.data_dir)?;
    let config = settings.resolve()?;
    let backends = open_stores(&config, Purpose::Command).await?.backends;
    let users = Arc::clone(&backends.users);
    // The same account changes, with the same effects (and audit events,
    // written before the command exits), as the admin API.
    let audit = AuditTrail::direct(Arc::clone(&backends.users));
    let accounts = config
        .app
        .accounts(
            Arc::clone(&backends.users),
            Arc::clone(&backends.sessions),
            config.app.revocations(Arc::clone(&backends.tokens)),
            audit.clone(),
        )
        .with_tickets(Arc::clone(&backends.tickets))
        .with_mail(operator_mail(&config, &backends));
    let cli = AuditContext::cli();
    match command {
        UserCommand::Add {
            email,
            roles,
            password_stdin,
            unverified,
        } => {
            let email = parse_email(&email)?;
            warn_if_mixed_script(&email);
            let roles = parse_roles(&roles)?;
            let password = read_new_password(password_stdin)?;
            check_new_password(&config.app.new_passwords, &password, &email).await?;
            let hash = PasswordHasher::owasp().hash(&password)?;
            let new_user = NewUser {
                email: email.clone(),
                roles,
                password_hash: hash,
                email_verified: !unverified,
            };
            let Some(user) = accounts.create_user(&cli, new_user).await? else {
                bail!("a user with e-mail {email} already exists");
            };
            println!(
                "created {} ({}) roles: {}",
                user.email,
                user.id,
                role_list(&user.roles)
            );
        }
        UserCommand::List { json } => {
            let all = users.list().await?;
            if json {
                let rows: Vec<_> = all.iter().map(tessera_axum::routes::UserView::of).collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                println!("{:<36}  {:<32}  {:<8}  ROLES", "ID", "EMAIL", "STATUS");
                for u in &all {
                    let status = if u.disabled { "disabled" } else { "active" };
                    println!(
                        "{:<36}  {:<32}  {:<8}  {}",
                        u.id,
                        u.email,
                        status,
                        role_list(&u.roles)
                    );
                }
            }
        }
        UserCommand::SetRole { email, roles } => {
            let email = parse_email(&email)?;
            let roles = parse_roles(&roles)?;
            let change = found(accounts.set_roles(&cli, &email, &roles).await?, &email)?;
            println!(
                "{} now has roles: {} ({} live sessions updated)",
                change.user.email,
                role_list(&change.user.roles),
                change.sessions_affected
            );
        }
        UserCommand::Verify { email } => {
            let email = parse_email(&email)?;
            let change = found(
                accounts
                    .set_email_verified_by_email(&cli, &email, true)
                    .await?,
                &email,
            )?;
            println!(
                "{} address verified ({} live sessions updated)",
                change.user.email, change.sessions_affected
            );
        }
        UserCommand::Unverify { email } => {
            let email = parse_email(&email)?;
            let change = found(
                accounts
                    .set_email_verified_by_email(&cli, &email, false)
                    .await?,
                &email,
            )?;
            println!(
                "{} address no longer verified ({} live sessions updated, {} token families ended)",
                change.user.email, change.sessions_affected, change.families_ended
            );
        }
        UserCommand::Disable { email } => {
            let email = parse_email(&email)?;
            let change = found(accounts.set_disabled(&cli, &email, true).await?, &email)?;
            println!(
                "{} disabled ({} sessions ended, {} token families ended)",
                change.user.email, change.sessions_affected, change.families_ended
            );
        }
        UserCommand::Enable { email } => {
            let email = parse_email(&email)?;
            let change = found(accounts.set_disabled(&cli, &email, false).await?, &email)?;
            println!("{} enabled", change.user.email);
        }
        UserCommand::Passwd {
            email,
            password_stdin,
        } => {
            let email = parse_email(&email)?;
            if users.by_email(&email).await?.is_none() {
                bail!("no user with e-mail {email}");
            }
            let password = read_new_password(password_stdin)?;
            check_new_password(&config.app.new_passwords, &password, &email).await?;
            let hash = PasswordHasher::owasp().hash(&password)?;
            let change = found(accounts.set_password(&cli, &email, &hash).await?, &email)?;
            println!(
                "password changed for {} ({} sessions ended)",
                change.user.email, change.sessions_affected
            );
        }
        UserCommand::Invite {
            email,
            roles,
            expires,
        } => {
            let email = parse_email(&email)?;
            let roles = parse_roles(&roles)?;
            let lifetime = expires
                .as_deref()
                .map(crate::commands::apikey::parse_lifetime)
                .transpose()?;
            let mail = operator_mail(&config, &backends);
            let issued = match operators(&config, &backends, &mail, &audit)
                .invite(&cli, &email, roles, lifetime)
                .await
            {
                Err(InviteError::Taken) => bail!("a user with e-mail {email} already exists"),
                other => other?,
            };
            print_link(&email, "invite", &issued);
        }
        UserCommand::ResetLink { email } => {
            let email = parse_email(&email)?;
            let user = users
                .by_email(&email)
                .await?
                .ok_or_else(|| anyhow!("no user with e-mail {email}"))?;
            let mail = operator_mail(&config, &backends);
            let issued = operators(&config, &backends, &mail, &audit)
                .reset_link(&cli, &user)
                .await?;
            print_link(&email, "password reset link", &issued);
        }
        UserCommand::Delete { email } => {
            let email = parse_email(&email)?;
            let user = users
                .by_email(&email)
                .await?
                .ok_or_else(|| anyhow!("no user with e-mail {email}"))?;
            let change = found(accounts.delete_user(&cli, user.id).await?, &email)?;
            println!(
                "{} deleted ({} sessions ended, {} token families ended)",
                change.user.email, change.sessions_affected, change.families_ended
            );
        }
        UserCommand::Import { file } => return import(users.as_ref(), &audit, &file).await,
        UserCommand::Collisions { json } => {
            let collisions = collisions(users.as_ref()).await?;
            print_collisions(&collisions, json)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The mailer as the server would use it: messages go to the outbox, which
/// the running server's sender delivers.
fn operator_mail(config: &ServiceConfig, backends: &Backends) -> Mail {
    Mail::new(
        config
            .app
            .mail
            .is_configured()
            .then(|| Arc::clone(&backends.outbox)),
    )
}

fn operators<'a>(
    config: &'a ServiceConfig,
    backends: &'a Backends,
    mail: &'a Mail,
    audit: &'a AuditTrail,
) -> OperatorMail<'a> {
    OperatorMail {
        users: backends.users.as_ref(),
        tickets: backends.tickets.as_ref(),
        mail,
        config: &config.app.self_service,
        audit,
    }
}

fn print_link(email: &Email, what: &str, issued: &IssuedLink) {
    if issued.mailed {
        println!(
            "{what} for {email} queued for mailing (valid until {})",
            issued.expires_at.to_rfc3339()
        );
    } else {
        println!(
            "{what} for {email} (no mailer configured; pass it on, it is shown once; valid until {}):\n{}",
            issued.expires_at.to_rfc3339(),
            issued.link
        );
    }
}

fn found(change: Option<AccountChange>, email: &Email) -> anyhow::Result<AccountChange> {
    change.ok_or_else(|| anyhow!("no user with e-mail {email}"))
}

fn parse_email(raw: &str) -> anyhow::Result<Email> {
    Email::parse(raw).map_err(|e| anyhow!("{raw:?}: {e}"))
}

/// Warns on standard error about a new account's address that mixes
/// scripts (UTS #39), as look-alikes of other addresses do.
fn warn_if_mixed_script(email: &Email) {
    if email.mixed_script() {
        eprintln!(
            "warning: {email} mixes scripts (Unicode UTS #39), as look-alikes of other \
             addresses do"
        );
    }
}

/// The rules for a new password, the breached-password service included.
async fn check_new_password(
    rules: &NewPasswordRules,
    password: &Password,
    email: &Email,
) -> anyhow::Result<()> {
    rules
        .check(password, email)
        .await
        .map_err(|refused| anyhow!("{refused}"))
}

/// Accounts whose stored address is not canonical, as the migration left
/// them (see `tessera_core::renormalise`).
pub async fn collisions(users: &dyn UserStore) -> anyhow::Result<Vec<AddressCollision>> {
    let rows: Vec<StoredAddress> = users
        .list()
        .await?
        .into_iter()
        .map(|u| StoredAddress {
            id: u.id,
            email: u.email.into(),
            created_at: u.created_at,
        })
        .collect();
    Ok(renormalise(&rows).collisions)
}

/// Prints collisions as a table or JSON; nothing but a note when there are none.
pub fn print_collisions(collisions: &[AddressCollision], json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(collisions)?);
        return Ok(());
    }
    if collisions.is_empty() {
        println!("no address collisions");
        return Ok(());
    }
    println!(
        "{} accounts keep an address that is not in its canonical spelling:",
        collisions.len()
    );
    println!(
        "{:<36}  {:<36}  {:<32}  STORED",
        "ID", "HOLDER", "CANONICAL"
    );
    for c in collisions {
        println!(
            "{:<36}  {:<36}  {:<32}  {:?}",
            c.user,
            c.holder.map_or_else(|| "-".to_owned(), |h| h.to_string()),
            c.canonical.as_deref().unwrap_or("(not a valid address)"),
            c.stored
        );
    }
    Ok(())
}

fn parse_roles(raw: &[String]) -> anyhow::Result<Vec<Role>> {
    raw.iter()
        .flat_map(|r| r.split(','))
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(|r| Role::parse(r).map_err(|e| anyhow!("role {r:?}: {e}")))
        .collect()
}

fn role_list(roles: &[Role]) -> String {
    if roles.is_empty() {
        "-".into()
    } else {
        roles.iter().map(Role::as_str).collect::<Vec<_>>().join(",")
    }
}

fn read_new_password(from_stdin: bool) -> anyhow::Result<Password> {
    let password = if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("cannot read the password from stdin")?;
        Password::new(line.trim_end_matches(['\r', '\n']))
    } else {
        if !std::io::stdin().is_terminal() {
            bail!(
                "standard input is not a terminal: pass --password-stdin to read the password from it"
            );
        }
        let first = rpassword::prompt_password("Password: ")?;
        let second = rpassword::prompt_password("Repeat password: ")?;
        if first != second {
            bail!("the passwords do not match");
        }
        Password::new(first)
    };
    Ok(password)
}

/// One user to import.
#[derive(Debug, Deserialize)]
struct ImportRow {
    email: String,
    #[serde(alias = "password_hash")]
    hash: String,
    #[serde(default, deserialize_with = "roles_field")]
    roles: Vec<String>,
}

fn roles_field<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        List(Vec<String>),
        Text(String),
    }
    Ok(match Raw::deserialize(deserializer)? {
        Raw::List(list) => list,
        Raw::Text(text) => text
            .split([' ', ';', ','])
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
    })
}

/// Imports every row or none: all rows are validated before anything is written.
async fn import(
    store: &dyn UserStore,
    audit: &AuditTrail,
    file: &Path,
) -> anyhow::Result<ExitCode> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let rows: Vec<ImportRow> = match file.extension().and_then(|e| e.to_str()) {
        Some("json") => {
            serde_json::from_str(&text).context("expected a JSON array of {email, hash, roles}")?
        }
        Some("csv") => csv::Reader::from_reader(text.as_bytes())
            .deserialize()
            .collect::<Result<_, _>>()
            .context("expected CSV with a header row email,hash,roles")?,
        _ => bail!(
            "cannot tell the format of {}: use a .json or .csv file",
            file.display()
        ),
    };
    let mut users = Vec::with_capacity(rows.len());
    let mut problems = Vec::new();
    for (index, row) in rows.into_iter().enumerate() {
        let line = index + 1;
        let parsed = (|| -> anyhow::Result<NewUser> {
            Ok(NewUser {
                email: parse_email(&row.email)?,
                roles: parse_roles(&row.roles)?,
                password_hash: PasswordHash::parse(&row.hash)?,
                email_verified: true,
            })
        })();
        match parsed {
            Ok(user) => {
                warn_if_mixed_script(&user.email);
                users.push(user)
            }
            Err(e) => problems.push(format!("record {line} ({}): {e:#}", row.email)),
        }
    }
    if !problems.is_empty() {
        for p in &problems {
            eprintln!("{p}");
        }
        bail!("{} invalid records; nothing imported", problems.len());
    }
    let (mut created, mut skipped) = (0, 0);
    for new_user in users {
        let user = new_user.into_user(Timestamp::now());
        match store.create(&user).await {
            Ok(()) => {
                created += 1;
                audit.record(
                    AuditContext::cli()
                        .event_about(AuditKind::UserCreated, user.id)
                        .detail(format!("imported; roles: {}", role_list(&user.roles))),
                );
            }
            Err(StoreError::Conflict) => {
                eprintln!("skipped {}: already exists", user.email);
                skipped += 1;
            }
            Err(e) => return Err(e.into()),
        }
    }
    audit.flush().await?;
    println!("imported {created} users, skipped {skipped} existing");
    Ok(ExitCode::SUCCESS)
}
