//! Effective settings: defaults, then a TOML file, then `TESSERA_*`
//! environment variables, then command-line flags (each layer wins over the
//! one before). One flat set of names serves all four layers: the file key
//! `session_idle_timeout` is the variable `TESSERA_SESSION_IDLE_TIMEOUT`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize};
use tessera_axum::AppConfig;
use tessera_axum::cookies::{SameSitePolicy, SessionCookie};
use tessera_axum::throttle::{BucketRule, ThrottleSettings};
use tessera_core::SessionPolicy;
use tessera_store::{SqliteOptions, Synchronous};

/// Where sessions are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// The embedded SQLite database in the data directory (durable).
    Sqlite,
    /// Process memory: sessions end when the process does.
    Memory,
    /// Redis (`redis_url`): shared by every node of a cluster, and also
    /// the home of refresh families, revocations and throttling counters.
    Redis,
}

/// `SameSite` attribute of the session cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SameSite {
    /// `SameSite=Lax`.
    Lax,
    /// `SameSite=Strict`.
    Strict,
}

/// SQLite commit durability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SqliteSync {
    /// fsync every commit.
    Full,
    /// Survive process crashes only.
    Normal,
}

/// Every setting, with its default.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Directory of the embedded database.
    pub data_dir: PathBuf,
    /// Session store: `sqlite`, `memory` or `redis`.
    pub store: StoreKind,
    /// Redis for `store = "redis"`: `redis://host:port[/db]`, or
    /// `redis-cluster://host:port?node=host:port&node=...` for a cluster.
    pub redis_url: String,
    /// Prefix of tessera's Redis keys and channels.
    pub redis_prefix: String,
    /// Milliseconds Redis may take to connect or answer before a request
    /// fails closed (503).
    pub redis_timeout: u64,
    /// Sessions each node keeps in its Redis near-cache (0: off). Changes
    /// made on any node reach every near-cache through Redis pub/sub within
    /// milliseconds; entries are re-read after 5 s regardless.
    pub redis_near_cache: usize,
    /// Seconds without activity before a session ends.
    pub session_idle_timeout: u64,
    /// Seconds after login when a session ends regardless.
    pub session_absolute_timeout: u64,
    /// `lax` or `strict`.
    pub session_same_site: SameSite,
    /// Session cookie name; must start with `__Host-`.
    pub cookie_name: String,
    /// Proxies whose `X-Forwarded-For` is trusted (CIDRs or addresses).
    #[serde(deserialize_with = "list_or_csv")]
    pub trusted_proxies: Vec<IpNet>,
    /// Extra origins allowed to make state-changing requests.
    #[serde(deserialize_with = "list_or_csv")]
    pub allowed_origins: Vec<String>,
    /// `full` or `normal`.
    pub sqlite_synchronous: SqliteSync,
    /// Sessions the server keeps in its read cache in front of SQLite (0: off).
    pub sqlite_session_cache: usize,
    /// Milliseconds a write waits for another process's lock before failing (503).
    pub sqlite_busy_timeout: u64,
    /// Concurrent password hashes (default: cores - 1, at least 1).
    pub hash_workers: Option<usize>,
    /// Password hashes allowed to wait before logins get 503.
    pub hash_queue: usize,
    /// Failed logins per client IP in a burst.
    pub login_ip_burst: u32,
    /// Failed logins per client IP per minute, sustained.
    pub login_ip_per_minute: u32,
    /// Failed logins per account in a burst.
    pub login_account_burst: u32,
    /// Failed logins per account per minute, sustained.
    pub login_account_per_minute: u32,
    /// Largest request body in bytes.
    pub max_body_bytes: usize,
    /// Largest session data object in bytes.
    pub session_data_max_bytes: usize,
    /// Seconds between purges of expired sessions.
    pub purge_interval: u64,
    /// Log filter (`info`, `debug`, `tessera=debug,tower_http=info`, ...).
    pub log: String,
    /// Access-token signature: `HS256`, `EdDSA`, `ES256` or `RS256`.
    pub jwt_algorithm: String,
    /// HS256 secret (at least 32 bytes). Without it, keys are generated into
    /// the data directory.
    pub jwt_secret: Option<String>,
    /// `iss` of access tokens.
    pub jwt_issuer: String,
    /// `aud` of access tokens.
    pub jwt_audience: String,
    /// Access-token lifetime in seconds.
    pub jwt_access_ttl: u64,
    /// Refresh-family absolute lifetime in seconds.
    pub jwt_refresh_ttl: u64,
    /// Clock skew allowed on token times, in seconds.
    pub jwt_leeway: u64,
    /// Seconds a rotated refresh token still yields the same successor.
    pub jwt_refresh_grace: u64,
    /// Send the access token in an `HttpOnly` cookie instead of the body.
    pub jwt_access_token_cookie: bool,
    /// Where users live: `sqlite` (the data directory) or `postgres`.
    pub users: UserBackend,
    /// PostgreSQL URL for `users = "postgres"` (e.g. `postgres://tessera@db/tessera`).
    pub database_url: Option<String>,
    /// `server` (sessions in the store) or `cookie` (sealed in the cookie).
    pub session_storage: SessionStorage,
    /// Key for sealed cookie sessions: 32 bytes, base64url. Without it one is
    /// generated into the data directory.
    pub session_cookie_key: Option<String>,
}

/// Where users and the audit log live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UserBackend {
    /// The embedded database in the data directory.
    Sqlite,
    /// PostgreSQL, shared by the nodes of a cluster.
    Postgres,
}

/// Where session state lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionStorage {
    /// In the session store; the cookie holds a random id.
    Server,
    /// In the cookie itself, encrypted and authenticated.
    Cookie,
}

impl Default for Settings {
    fn default() -> Self {
        let app = AppConfig::default();
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./tessera-data"),
            store: StoreKind::Sqlite,
            session_idle_timeout: app.policy.idle_timeout().as_secs(),
            session_absolute_timeout: app.policy.absolute_timeout().as_secs(),
            session_same_site: SameSite::Lax,
            cookie_name: app.cookie.name().to_owned(),
            trusted_proxies: Vec::new(),
            allowed_origins: Vec::new(),
            sqlite_synchronous: SqliteSync::Full,
            sqlite_session_cache: 100_000,
            sqlite_busy_timeout: 5000,
            hash_workers: None,
            hash_queue: app.hash_queue,
            login_ip_burst: app.throttle.per_ip.burst,
            login_ip_per_minute: app.throttle.per_ip.per_minute,
            login_account_burst: app.throttle.per_account.burst,
            login_account_per_minute: app.throttle.per_account.per_minute,
            max_body_bytes: app.max_body_bytes,
            session_data_max_bytes: app.session_data_max_bytes,
            purge_interval: 60,
            log: "info".into(),
            jwt_algorithm: "HS256".into(),
            jwt_secret: None,
            jwt_issuer: "tessera".into(),
            jwt_audience: "tessera".into(),
            jwt_access_ttl: 900,
            jwt_refresh_ttl: 30 * 24 * 3600,
            jwt_leeway: 30,
            jwt_refresh_grace: 10,
            jwt_access_token_cookie: false,
            users: UserBackend::Sqlite,
            database_url: None,
            redis_url: "redis://127.0.0.1:6379".into(),
            redis_prefix: "tessera".into(),
            redis_timeout: 1000,
            redis_near_cache: 0,
            session_storage: SessionStorage::Server,
            session_cookie_key: None,
        }
    }
}

/// Settings given as flags; `None` leaves the lower layers' value.
#[derive(Debug, Default, Serialize)]
pub struct FlagSettings {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store: Option<StoreKind>,
}

/// Keys that may come from `TESSERA_*` variables (others, such as
/// `TESSERA_CONFIG`, are not settings).
fn is_setting(key: &str) -> bool {
    let defaults = figment::value::Value::serialize(Settings::default()).ok();
    defaults
        .as_ref()
        .and_then(|v| v.as_dict())
        .is_some_and(|dict| dict.contains_key(key))
}

impl Settings {
    /// Loads the layers. `config_file` is `--config` or `TESSERA_CONFIG`.
    ///
    /// # Errors
    ///
    /// Unreadable or invalid file, invalid values (with the key named).
    pub fn load(config_file: Option<&Path>, flags: FlagSettings) -> anyhow::Result<Self> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(path) = config_file {
            if !path.exists() {
                bail!("config file {} does not exist", path.display());
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        figment = figment
            .merge(
                Env::prefixed("TESSERA_")
                    .filter(|key| is_setting(&key.as_str().to_ascii_lowercase())),
            )
            .merge(Serialized::defaults(flags));
        figment.extract().context("invalid settings")
    }

    /// The settings as TOML, with anything secret replaced by `<redacted>`.
    pub fn to_redacted_toml(&self) -> anyhow::Result<String> {
        let mut value =
            toml::Value::try_from(self).context("settings are not representable as TOML")?;
        if let Some(table) = value.as_table_mut() {
            for (key, entry) in table.iter_mut() {
                if ["secret", "password", "key", "url"]
                    .iter()
                    .any(|s| key.contains(s))
                {
                    *entry = toml::Value::String("<redacted>".into());
                }
            }
        }
        Ok(toml::to_string(&value)?)
    }

    /// The library configuration these settings describe.
    ///
    /// # Errors
    ///
    /// Values that are individually valid but do not fit together.
    pub fn app_config(&self) -> anyhow::Result<AppConfig> {
        let policy = SessionPolicy::new(
            Duration::from_secs(self.session_idle_timeout),
            Duration::from_secs(self.session_absolute_timeout),
        )
        .context("session_idle_timeout and session_absolute_timeout")?;
        if !self.cookie_name.starts_with("__Host-") || self.cookie_name.len() <= "__Host-".len() {
            bail!(
                "cookie_name must start with __Host- (it keeps the cookie Secure, Path=/ and host-only)"
            );
        }
        if !self
            .cookie_name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
        {
            bail!("cookie_name may contain only letters, digits, '_', '-' and '.'");
        }
        for rule in [
            self.login_ip_per_minute,
            self.login_account_per_minute,
            self.login_ip_burst,
            self.login_account_burst,
        ] {
            if rule == 0 {
                bail!("login throttle bursts and rates must be at least 1");
            }
        }
        let same_site = match self.session_same_site {
            SameSite::Lax => SameSitePolicy::Lax,
            SameSite::Strict => SameSitePolicy::Strict,
        };
        let defaults = AppConfig::default();
        Ok(AppConfig {
            policy,
            cookie: SessionCookie::new(self.cookie_name.clone(), same_site),
            trusted_proxies: self.trusted_proxies.clone(),
            allowed_origins: self.allowed_origins.clone(),
            throttle: ThrottleSettings {
                per_ip: BucketRule {
                    burst: self.login_ip_burst,
                    per_minute: self.login_ip_per_minute,
                },
                per_account: BucketRule {
                    burst: self.login_account_burst,
                    per_minute: self.login_account_per_minute,
                },
                ..defaults.throttle
            },
            hash_workers: self.hash_workers.unwrap_or(defaults.hash_workers).max(1),
            hash_queue: self.hash_queue,
            max_body_bytes: self.max_body_bytes,
            session_data_max_bytes: self.session_data_max_bytes,
            // Filled in by `serve` once the key is loaded from the data dir.
            cookie_sessions: None,
            // Filled in by `serve` once Redis is connected.
            shared_throttle: None,
            access_token_cookie: self.jwt_access_token_cookie,
        })
    }

    /// SQLite options. Only a server caches sessions; short-lived commands
    /// read and write the file directly.
    pub fn sqlite_options(&self, server: bool) -> SqliteOptions {
        SqliteOptions {
            synchronous: match self.sqlite_synchronous {
                SqliteSync::Full => Synchronous::Full,
                SqliteSync::Normal => Synchronous::Normal,
            },
            session_cache: if server { self.sqlite_session_cache } else { 0 },
            busy_timeout: Duration::from_millis(self.sqlite_busy_timeout),
            ..SqliteOptions::default()
        }
    }

    /// Token lifetimes and names.
    pub fn token_config(&self) -> anyhow::Result<tessera_axum::tokens::TokenConfig> {
        if self.jwt_access_ttl == 0 || self.jwt_refresh_ttl < self.jwt_access_ttl {
            bail!("jwt_access_ttl must be at least 1 and at most jwt_refresh_ttl");
        }
        Ok(tessera_axum::tokens::TokenConfig {
            issuer: self.jwt_issuer.clone(),
            audience: self.jwt_audience.clone(),
            access_ttl: Duration::from_secs(self.jwt_access_ttl),
            refresh_ttl: Duration::from_secs(self.jwt_refresh_ttl),
            leeway: Duration::from_secs(self.jwt_leeway),
            grace: Duration::from_secs(self.jwt_refresh_grace),
            cutoff_lifetime: Duration::from_secs(self.session_absolute_timeout),
        })
    }

    /// The signature algorithm.
    pub fn jwt_algorithm(&self) -> anyhow::Result<tessera_token::Algorithm> {
        tessera_token::Algorithm::parse(&self.jwt_algorithm).ok_or_else(|| {
            anyhow::anyhow!(
                "jwt_algorithm must be HS256, EdDSA, ES256 or RS256, not {:?}",
                self.jwt_algorithm
            )
        })
    }

    /// The database file in the data directory.
    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("tessera.db")
    }
}

/// Accepts a list, or one comma-separated string (as environment variables give).
fn list_or_csv<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        List(Vec<String>),
        Text(String),
    }
    let items = match Raw::deserialize(deserializer)? {
        Raw::List(items) => items,
        Raw::Text(text) => text.split(',').map(str::to_owned).collect(),
    };
    items
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .map(|s| parse_item(s).map_err(serde::de::Error::custom))
        .collect()
}

fn parse_item<T: std::str::FromStr>(text: &str) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    // A bare address is accepted where a network is expected.
    text.parse::<T>()
        .or_else(|e| {
            let widened = if text.contains(':') {
                format!("{text}/128")
            } else {
                format!("{text}/32")
            };
            widened.parse::<T>().map_err(|_| e)
        })
        .map_err(|e| format!("{text:?}: {e}"))
}
