//! Key material in the data directory: token signing keys, the refresh
//! chain key and the sealed-cookie key.
//!
//! - `jwt-keys.json`: the signing key set (private keys; mode 0600), unless
//!   an HS256 secret is configured, which is never written anywhere.
//! - `refresh-chain.key`: the secret that derives refresh-token successors.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use tessera_axum::caller::sealed::CookieKey;
use tessera_axum::startup::KeySource;
use tessera_core::{ChainKey, Timestamp};
use tessera_token::KeySet;

use crate::settings::Settings;

pub fn keys_path(settings: &Settings) -> PathBuf {
    settings.data_dir.join("jwt-keys.json")
}

/// Writes `contents` to `path` atomically with mode 0600.
pub fn write_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    file.write_all(contents)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// The key set the settings call for: the configured HS256 secret, or the
/// set in the data directory (created on first use; a new key is added when
/// the configured algorithm changed, old keys keep verifying).
pub fn load_or_create(settings: &Settings) -> anyhow::Result<KeySet> {
    let algorithm = settings.jwt_algorithm()?;
    if let Some(secret) = &settings.jwt_secret {
        if algorithm != tessera_token::Algorithm::HS256 {
            bail!(
                "jwt_secret is for HS256; with {algorithm} keys are generated into the data directory"
            );
        }
        if secret.len() < tessera_token::jws::MIN_HMAC_SECRET_BYTES {
            bail!(
                "jwt_secret is {} bytes; HS256 needs at least {} random bytes (e.g. `openssl rand -base64 48`)",
                secret.len(),
                tessera_token::jws::MIN_HMAC_SECRET_BYTES
            );
        }
        return KeySet::from_secret(secret.as_bytes()).context("invalid jwt_secret");
    }
    let path = keys_path(settings);
    let now = Timestamp::now().unix_seconds();
    let mut set = match std::fs::read_to_string(&path) {
        Ok(text) => KeySet::from_json(&text)
            .with_context(|| format!("{} is not a valid key set", path.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let set = KeySet::generate(algorithm, now).context("key generation failed")?;
            write_private(&path, set.to_json()?.as_bytes())?;
            tracing::info!(path = %path.display(), %algorithm, "generated a token signing key");
            return Ok(set);
        }
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    if set.active().signing.algorithm() != algorithm {
        set.rotate(algorithm, now)
            .context("key generation failed")?;
        write_private(&path, set.to_json()?.as_bytes())?;
        tracing::info!(%algorithm, "jwt_algorithm changed: added a signing key, older keys keep verifying");
    }
    Ok(set)
}

/// A 256-bit secret kept in `path` (mode 0600): read, or on first use
/// generated and written.
fn secret_file(path: &Path) -> anyhow::Result<[u8; 32]> {
    match std::fs::read(path) {
        Ok(bytes) => bytes
            .try_into()
            .map_err(|_| anyhow::anyhow!("{} must hold exactly 32 bytes", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut secret = [0u8; 32];
            tessera_core::secret::fill_random(&mut secret);
            write_private(path, &secret)?;
            Ok(secret)
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// The refresh chain key from the data directory (created on first use).
pub fn chain_key(settings: &Settings) -> anyhow::Result<ChainKey> {
    secret_file(&settings.data_dir.join("refresh-chain.key")).map(ChainKey::new)
}

/// The key file as a [`KeySource`]: a running server picks up what
/// `tessera keys rotate` wrote, without a restart.
pub struct KeyFile {
    path: PathBuf,
    seen: Option<std::time::SystemTime>,
}

impl KeyFile {
    /// Watches the key file of the data directory, from its current state.
    pub fn watch(settings: &Settings) -> Self {
        let path = keys_path(settings);
        let seen = modified(&path);
        Self { path, seen }
    }
}

fn modified(path: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl KeySource for KeyFile {
    fn changed(&mut self) -> Option<KeySet> {
        let now = modified(&self.path);
        if now == self.seen {
            return None;
        }
        self.seen = now;
        match std::fs::read_to_string(&self.path).map(|t| KeySet::from_json(&t)) {
            Ok(Ok(set)) => Some(set),
            Ok(Err(error)) => {
                tracing::warn!(%error, "ignoring an invalid key file");
                None
            }
            Err(error) => {
                tracing::warn!(%error, "cannot read the key file");
                None
            }
        }
    }
}

/// The key of sealed cookie sessions: from the settings, or generated into
/// the data directory (`cookie-session.key`, 0600) and reused.
pub fn cookie_key(settings: &Settings) -> anyhow::Result<CookieKey> {
    if let Some(text) = &settings.session_cookie_key {
        use base64::Engine;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text.trim())
            .context("session_cookie_key must be base64url")?;
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|_| anyhow::anyhow!("session_cookie_key must decode to exactly 32 bytes"))?;
        return Ok(CookieKey::from_bytes(bytes));
    }
    secret_file(&settings.data_dir.join("cookie-session.key")).map(CookieKey::from_bytes)
}

/// What `tessera config check` finds wrong with the signing-key settings
/// and the key files in the data directory, without creating any.
pub fn check(settings: &Settings) -> Vec<String> {
    let mut problems = Vec::new();
    let algorithm = match settings.jwt_algorithm() {
        Ok(algorithm) => Some(algorithm),
        Err(error) => {
            problems.push(format!("{error:#}"));
            None
        }
    };
    if let Some(secret) = &settings.jwt_secret {
        if algorithm.is_some_and(|a| a != tessera_token::Algorithm::HS256) {
            problems.push("jwt_secret is for HS256 only (jwt_algorithm)".to_owned());
        }
        if secret.len() < tessera_token::jws::MIN_HMAC_SECRET_BYTES {
            problems.push(format!(
                "jwt_secret is {} bytes; HS256 needs at least {}",
                secret.len(),
                tessera_token::jws::MIN_HMAC_SECRET_BYTES
            ));
        }
    } else {
        let path = keys_path(settings);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                if let Err(error) = KeySet::from_json(&text) {
                    problems.push(format!(
                        "data_dir: {} is not a valid key set: {error}",
                        path.display()
                    ));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => problems.push(format!("data_dir: cannot read {}: {e}", path.display())),
        }
    }
    let chain = settings.data_dir.join("refresh-chain.key");
    match std::fs::read(&chain) {
        Ok(bytes) if bytes.len() != 32 => problems.push(format!(
            "data_dir: {} must hold exactly 32 bytes",
            chain.display()
        )),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => problems.push(format!("data_dir: cannot read {}: {e}", chain.display())),
    }
    problems
}
