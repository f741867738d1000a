//! The simulated users' accounts, made as an operator would: one
//! `tessera user import` into the data directory the nodes share.

use std::path::Path;
use std::process::Stdio;

use anyhow::{Context, bail};
use serde_json::json;
use tessera_core::{Password, PasswordHasher};
use tokio::process::Command;

use super::process::clear_settings;

/// Every lab user's password (the accounts live in a throwaway directory).
pub const PASSWORD: &str = "tessera lab password";

/// The lab's administrator (role `admin`), imported with the users: it
/// changes roles and disables accounts over the admin API.
pub const ADMIN_EMAIL: &str = "admin@lab.example";

/// The e-mail address of user `index`.
pub fn email(index: usize) -> String {
    format!("user{index}@lab.example")
}

/// An argon2id hash of [`PASSWORD`], computed once and imported for every
/// user (hashing per user would cost a second per hundred users).
///
/// # Errors
///
/// Hashing failed.
pub async fn password_hash() -> anyhow::Result<String> {
    let hash =
        tokio::task::spawn_blocking(|| PasswordHasher::owasp().hash(&Password::new(PASSWORD)))
            .await
            .context("hashing was cancelled")?
            .context("cannot hash the lab password")?;
    Ok(hash.as_str().to_owned())
}

/// Imports users `0..count` and the administrator into `data_dir` with `tessera user import`; the
/// import file is written to `work_dir`.
///
/// # Errors
///
/// The file cannot be written or the import fails (its output is included).
pub async fn import(
    binary: &Path,
    work_dir: &Path,
    data_dir: &Path,
    count: usize,
    hash: &str,
) -> anyhow::Result<()> {
    let mut rows: Vec<_> = (0..count)
        .map(|i| json!({"email": email(i), "hash": hash}))
        .collect();
    rows.push(json!({"email": ADMIN_EMAIL, "hash": hash, "roles": ["admin"]}));
    let file = work_dir.join("users.json");
    std::fs::write(&file, serde_json::to_vec(&rows)?)
        .with_context(|| format!("cannot write {}", file.display()))?;
    let mut command = Command::new(binary);
    clear_settings(command.as_std_mut());
    command
        .arg("--data-dir")
        .arg(data_dir)
        .args(["user", "import"])
        .arg(&file)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let output = command
        .output()
        .await
        .context("cannot run `tessera user import`")?;
    if !output.status.success() {
        bail!(
            "`tessera user import` failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}
