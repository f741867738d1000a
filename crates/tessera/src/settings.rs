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
use tessera_axum::ServiceConfig;
use tessera_axum::connections::ConnectionLimits;
use tessera_axum::cookies::SameSitePolicy;
use tessera_axum::mail::{SmtpConfig, SmtpUrl};
use tessera_axum::passwords::BreachFailure;
use tessera_axum::self_service::Registration;
use tessera_axum::{AppConfig, Maintenance};
use tessera_store::{RedisOptions, SqliteOptions, Synchronous};

/// Where sessions are kept (`store`, `--store`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
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

/// Every setting, with its default.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// PEM certificate chain for HTTPS on `listen` (with `tls_key`); the
    /// listener then speaks HTTPS only. Reloaded on SIGHUP and when the
    /// files change.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Directory of the embedded database.
    pub data_dir: PathBuf,
    /// Session store: `sqlite`, `memory` or `redis`.
    pub store: StoreKind,
    /// Redis for `store = "redis"`: `redis://host:port[/db]`,
    /// `redis-cluster://host:port?node=host:port&node=...` for a cluster,
    /// `redis-sentinel://host:port,host:port/?service=NAME` through
    /// sentinels; `rediss…` for TLS.
    pub redis_url: String,
    /// PEM file of the CA that Redis's certificate must come from (a
    /// `rediss…` URL); without it, Mozilla's roots.
    pub redis_tls_ca: Option<PathBuf>,
    /// PEM file of a client certificate (chain) to present to Redis
    /// (mTLS); needs `redis_tls_key`.
    pub redis_tls_cert: Option<PathBuf>,
    /// PEM file of the key of `redis_tls_cert`.
    pub redis_tls_key: Option<PathBuf>,
    /// The name Redis's certificate carries, when not the URL's host.
    pub redis_tls_server_name: Option<String>,
    /// Replicas that must confirm (`WAIT`) a login, logout or revocation
    /// before it is acknowledged (0: the primary's word is enough).
    pub redis_wait_replicas: u32,
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
    /// Seconds a session started without "remember me" lives at most (its
    /// cookie ends with the browser); default half the absolute timeout.
    pub session_transient_timeout: Option<u64>,
    /// Seconds a session id replaced after a privilege change keeps working
    /// (and yields the same fresh id); 0 ends it at once.
    pub session_rotation_grace: u64,
    /// `lax` or `strict`.
    pub session_same_site: SameSitePolicy,
    /// Session cookie name; must start with `__Host-` (with `cookie_domain`:
    /// `__Secure-`, and the default becomes `__Secure-tessera`).
    pub cookie_name: String,
    /// Domain the session cookie is set for, so that one login holds across
    /// its subdomains (e.g. `example.com`). Every subdomain then receives
    /// the cookie and can overwrite it: trust them all.
    pub cookie_domain: Option<String>,
    /// Proxies whose `X-Forwarded-For` is trusted (CIDRs or addresses).
    #[serde(deserialize_with = "list_or_csv")]
    pub trusted_proxies: Vec<IpNet>,
    /// Extra origins allowed to make state-changing requests.
    #[serde(deserialize_with = "list_or_csv")]
    pub allowed_origins: Vec<String>,
    /// The URL people reach tessera at (e.g. `https://auth.example.com`).
    pub public_url: Option<String>,
    /// Where a forward-auth proxy sends people who are not logged in
    /// (`?rd=` the URL they asked for).
    pub login_url: Option<String>,
    /// `full` or `normal`.
    pub sqlite_synchronous: Synchronous,
    /// Sessions the server keeps in its read cache in front of SQLite (0: off).
    pub sqlite_session_cache: usize,
    /// Milliseconds a write waits for another process's lock before failing (503).
    pub sqlite_busy_timeout: u64,
    /// Concurrent password hashes (default: cores - 1, at least 1).
    pub hash_workers: Option<usize>,
    /// Password hashes allowed to wait before logins get 503.
    pub hash_queue: usize,
    /// Hashing places (running or waiting) one client (an IPv4 address or
    /// an IPv6 network of `login_ipv6_prefix`) may hold; default a quarter
    /// of `hash_workers + hash_queue`.
    pub hash_per_client: Option<usize>,
    /// Failed logins per client IP in a burst.
    pub login_ip_burst: u32,
    /// Failed logins per client IP per minute, sustained.
    pub login_ip_per_minute: u32,
    /// IPv6 prefix length counted as one client for login throttling (a
    /// household or a server holds a whole /64); its /48 gets four times
    /// the per-client budget.
    pub login_ipv6_prefix: u8,
    /// Failed logins per account in a burst.
    pub login_account_burst: u32,
    /// Failed logins per account per minute, sustained.
    pub login_account_per_minute: u32,
    /// Seconds a device cookie (`__Host-tessera-device`, issued at each
    /// successful login) keeps its own login budget for its account, so
    /// that an attacker emptying the account's budget cannot lock its
    /// owner out.
    pub login_device_lifetime: u64,
    /// Largest request body in bytes.
    pub max_body_bytes: usize,
    /// Largest session data object in bytes.
    pub session_data_max_bytes: usize,
    /// Live server-side sessions per user (at least 1); a login past it
    /// ends the user's oldest.
    pub max_sessions_per_user: u32,
    /// Seconds between purges of expired sessions.
    pub purge_interval: u64,
    /// Days audit events are kept (at least 1).
    pub audit_retention: u64,
    /// Log filter (`info`, `debug`, `tessera=debug,tower_http=info`, ...).
    pub log: String,
    /// Log lines as `text` (for people) or `json` (one object a line).
    pub log_format: LogFormat,
    /// A line per request (target `tessera::access`), while `log` lets
    /// INFO lines through.
    pub access_log: bool,
    /// Address of the Prometheus metrics listener (`GET /metrics`); none:
    /// no metrics. Never the public `listen` address.
    pub metrics_listen: Option<SocketAddr>,
    /// OpenTelemetry collector to send request and store spans to, over
    /// OTLP/HTTP (`http://127.0.0.1:4318`, or its `.../v1/traces` URL);
    /// none: no spans are exported (and none are made for store calls).
    pub otlp_endpoint: Option<String>,
    /// The share of new traces exported (0 to 1); a trusted proxy's
    /// `traceparent` decision is followed for the traces it continues.
    pub otlp_sample_ratio: f64,
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
    /// Live refresh families per user (at least 1); a `POST /token` past it
    /// ends the user's oldest.
    pub max_refresh_families_per_user: u32,
    /// Ended sealed cookie sessions kept per user (at least 1); past it the
    /// oldest collapse into a cutoff that ends the user's older sealed
    /// sessions.
    pub max_sealed_revocations_per_user: u32,
    /// Where users live: `sqlite` (the data directory) or `postgres`.
    pub users: UsersKind,
    /// PostgreSQL URL for `users = "postgres"` (e.g. `postgres://tessera@db/tessera`).
    pub database_url: Option<String>,
    /// `server` (sessions in the store) or `cookie` (sealed in the cookie).
    pub session_storage: StorageKind,
    /// Key for sealed cookie sessions: 32 bytes, base64url. Without it one is
    /// generated into the data directory.
    pub session_cookie_key: Option<String>,

    // Self-service flows (`tessera_axum::self_service::SelfServiceConfig`).
    /// Mails one address may be sent on request (sign-up, recovery,
    /// verification) at once, whoever asks.
    pub mail_address_burst: u32,
    /// ... and per minute after that.
    pub mail_address_per_minute: u32,
    /// Who may sign up: `closed` (operators and the admin API only),
    /// `invite` (holders of an invite) or `open`.
    pub registration: Registration,
    /// Refuse logins to accounts whose address is not verified.
    pub require_verified_email: bool,
    /// Seconds an address-verification link works.
    pub email_verification_ttl: u64,
    /// Seconds a password-reset link works.
    pub password_reset_ttl: u64,
    /// Seconds an invite works.
    pub invite_ttl: u64,
    /// Seconds the link confirming a new address works.
    pub email_change_ttl: u64,
    /// Base URL of the pages mailed links open (`verify-email`,
    /// `reset-password`, `accept-invite`, `confirm-email`); default
    /// `public_url`.
    pub account_pages_url: Option<String>,

    // Connections (`tessera_axum::connections::ConnectionLimits`).
    /// Seconds a connection may take to send a request head, counted from
    /// when the server waits for one: so also how long a silent connection
    /// or an idle kept-alive one stays open.
    pub header_read_timeout: u64,
    /// Seconds the whole request body may take to arrive after its head
    /// (then 408).
    pub body_read_timeout: u64,
    /// Seconds a response write may wait for a client that does not read.
    pub write_timeout: u64,
    /// Connections open at once; beyond that new ones wait in the kernel's
    /// backlog. Default 10000, lowered to fit the file-descriptor limit.
    pub max_connections: Option<usize>,
    /// Connections open at once from one client (an IPv4 address or an IPv6
    /// network of `login_ipv6_prefix`); more are closed at once. Trusted
    /// proxies are exempt.
    pub max_connections_per_client: usize,
    /// Seconds SIGTERM waits for open connections before dropping them.
    pub shutdown_timeout: u64,

    // New passwords (`tessera_axum::passwords::NewPasswordRules`).
    /// Shortest new password, in characters (at least 8).
    pub password_min_length: usize,
    /// A Have-I-Been-Pwned-style range API (`GET {url}/range/{prefix}`)
    /// that new passwords are checked against by k-anonymity; `http://`
    /// (a mirror or a local proxy).
    pub breached_password_url: Option<String>,
    /// What an unreachable `breached_password_url` means: `open` (accept
    /// the password) or `closed` (refuse it for now, 503).
    pub breached_password_fail: BreachFailKind,
    // Mail (`tessera_axum::mail::MailConfig`).
    /// Where mail goes: `none` (default), `smtp` (`smtp_url`) or `file`
    /// (one `.eml` per message under `<data_dir>/mail/`, for development).
    pub mail: MailKind,
    /// The SMTP relay: `smtp://[user:password@]host[:port]` (STARTTLS
    /// required, port 587) or `smtps://...` (TLS, port 465). Never printed.
    pub smtp_url: Option<SecretSetting>,
    /// Allow plain-text SMTP (`smtp://` without STARTTLS): only for a relay
    /// on the same host.
    pub smtp_insecure: bool,
    /// A PEM file of extra root certificates for the relay's TLS (a private
    /// CA).
    pub smtp_tls_ca: Option<PathBuf>,
    /// Seconds to connect to the relay or wait for one of its answers.
    pub smtp_timeout: u64,
    /// Connections kept open to the relay.
    pub smtp_pool_size: u32,
    /// The `From:` of every message, e.g. `Example <noreply@example.com>`.
    pub mail_from: String,
    /// The name messages give the service (`{{ site }}` in templates).
    pub mail_site_name: String,
    /// A directory of templates replacing the built-in ones, by file name
    /// (`verify_email.html`, `verify_email.txt`, `verify_email.subject.txt`,
    /// `layout.html`, ...).
    pub mail_templates: Option<PathBuf>,
    /// Attempts before a message is given up (undeliverable).
    pub mail_max_attempts: u32,
    /// Seconds after which a message that still fails is given up.
    pub mail_max_age: u64,
}

/// `breached_password_fail`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BreachFailKind {
    /// Accept the password unchecked.
    Open,
    /// Refuse it until the service answers.
    Closed,
}

/// Where mail goes (`mail`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MailKind {
    /// Nowhere.
    None,
    /// An SMTP relay (`smtp_url`).
    Smtp,
    /// `.eml` files under `<data_dir>/mail/`.
    File,
}

/// A setting that may carry a credential: `Debug` never shows it (and
/// `tessera config print` redacts it by name).
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretSetting(pub String);

impl std::fmt::Debug for SecretSetting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// How log lines are written (`log_format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object a line (fields, the request's span and its id).
    Json,
}

/// Where users and the audit log live (`users`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UsersKind {
    /// The embedded database in the data directory.
    Sqlite,
    /// PostgreSQL, shared by the nodes of a cluster.
    Postgres,
}

/// Where session state lives (`session_storage`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageKind {
    /// In the session store; the cookie holds a random id.
    Server,
    /// In the cookie itself, encrypted and authenticated.
    Cookie,
}

impl Default for Settings {
    /// Every default comes from the library type that owns it.
    fn default() -> Self {
        let app = AppConfig::default();
        let redis = RedisOptions::default();
        let sqlite = SqliteOptions::default();
        let connections = ConnectionLimits::default();
        let smtp = SmtpConfig::new(SmtpUrl::parse("smtp://localhost").expect("a valid URL"));
        let tokens = &app.tokens;
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            tls_cert: None,
            tls_key: None,
            data_dir: PathBuf::from("./tessera-data"),
            store: StoreKind::Sqlite,
            session_idle_timeout: app.policy.idle_timeout().as_secs(),
            session_absolute_timeout: app.policy.absolute_timeout().as_secs(),
            session_transient_timeout: None,
            session_rotation_grace: app.session_rotation_grace.as_secs(),
            session_same_site: app.cookie.same_site(),
            cookie_name: app.cookie.name().to_owned(),
            cookie_domain: app.cookie.domain().map(str::to_owned),
            trusted_proxies: app.trusted_proxies.clone(),
            allowed_origins: app.allowed_origins.clone(),
            public_url: None,
            login_url: None,
            sqlite_synchronous: sqlite.synchronous,
            sqlite_session_cache: tessera_axum::startup::SQLITE_SESSION_CACHE,
            sqlite_busy_timeout: millis(sqlite.busy_timeout),
            hash_workers: None,
            hash_queue: app.hash_queue,
            hash_per_client: None,
            login_ip_burst: app.throttle.per_ip.burst(),
            login_ip_per_minute: app.throttle.per_ip.per_minute(),
            login_ipv6_prefix: app.throttle.ipv6_prefix,
            login_account_burst: app.throttle.per_account.burst(),
            login_account_per_minute: app.throttle.per_account.per_minute(),
            login_device_lifetime: app.throttle.device_lifetime.as_secs(),
            max_body_bytes: app.max_body_bytes,
            session_data_max_bytes: app.session_data_max_bytes,
            max_sessions_per_user: app.max_sessions_per_user.get(),
            purge_interval: Maintenance::default().purge_interval.as_secs(),
            audit_retention: Maintenance::default().audit_retention.as_secs() / 86_400,
            log: "info".into(),
            log_format: LogFormat::Text,
            access_log: true,
            metrics_listen: ServiceConfig::new("").metrics_listen,
            otlp_endpoint: None,
            otlp_sample_ratio: 1.0,
            jwt_algorithm: "HS256".into(),
            jwt_secret: None,
            jwt_issuer: tokens.issuer.clone(),
            jwt_audience: tokens.audience.clone(),
            jwt_access_ttl: tokens.access_ttl.as_secs(),
            jwt_refresh_ttl: tokens.refresh_ttl.as_secs(),
            jwt_leeway: tokens.leeway.as_secs(),
            jwt_refresh_grace: tokens.grace.as_secs(),
            jwt_access_token_cookie: app.access_token_cookie,
            max_refresh_families_per_user: tokens.max_refresh_families_per_user.get(),
            max_sealed_revocations_per_user: tokens.max_sealed_revocations_per_user.get(),
            users: UsersKind::Sqlite,
            database_url: None,
            redis_url: redis.url,
            redis_tls_ca: None,
            redis_tls_cert: None,
            redis_tls_key: None,
            redis_tls_server_name: None,
            redis_wait_replicas: redis.wait_replicas,
            redis_prefix: redis.prefix,
            redis_timeout: millis(redis.timeout),
            redis_near_cache: redis.near_cache,
            session_storage: StorageKind::Server,
            session_cookie_key: None,

            mail_address_burst: app.throttle.per_address_mail.burst(),
            mail_address_per_minute: app.throttle.per_address_mail.per_minute(),
            registration: app.self_service.registration,
            require_verified_email: app.self_service.require_verified_email,
            email_verification_ttl: app.self_service.verification_ttl.as_secs(),
            password_reset_ttl: app.self_service.reset_ttl.as_secs(),
            invite_ttl: app.self_service.invite_ttl.as_secs(),
            email_change_ttl: app.self_service.email_change_ttl.as_secs(),
            account_pages_url: None,

            header_read_timeout: connections.header_read_timeout.as_secs(),
            body_read_timeout: connections.body_read_timeout.as_secs(),
            write_timeout: connections.write_timeout.as_secs(),
            max_connections: None,
            max_connections_per_client: connections.max_connections_per_client,
            shutdown_timeout: connections.shutdown_timeout.as_secs(),

            password_min_length: app.new_passwords.policy.min_length(),
            breached_password_url: None,
            breached_password_fail: match BreachFailure::default() {
                BreachFailure::Open => BreachFailKind::Open,
                BreachFailure::Closed => BreachFailKind::Closed,
            },
            mail: MailKind::None,
            smtp_url: None,
            smtp_insecure: false,
            smtp_tls_ca: None,
            smtp_timeout: smtp.timeout.as_secs(),
            smtp_pool_size: smtp.pool_size,
            mail_from: app.mail.from.clone(),
            mail_site_name: app.mail.site_name.clone(),
            mail_templates: None,
            mail_max_attempts: app.mail.retry.max_attempts,
            mail_max_age: app.mail.retry.max_age.as_secs(),
        }
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
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
        Self::layers(config_file, flags)?
            .extract()
            .context("invalid settings")
    }

    /// As [`Settings::load`], finding every invalid value rather than the
    /// first: each is reported (`key: what is wrong (where it came
    /// from)`) and its setting left at its default, so that the rest can be
    /// checked. `None` when the layers cannot be read at all (a missing
    /// file, a TOML syntax error).
    pub fn load_checked(
        config_file: Option<&Path>,
        flags: FlagSettings,
    ) -> (Option<Self>, Vec<String>) {
        use figment::Provider;

        let figment = match Self::layers(config_file, flags) {
            Ok(figment) => figment,
            Err(error) => return (None, vec![format!("{error:#}")]),
        };
        let mut data = match figment.data() {
            Ok(mut profiles) => profiles
                .remove(&figment::Profile::Default)
                .unwrap_or_default(),
            Err(error) => return (None, vec![format!("config file: {error}")]),
        };
        let mut problems = Vec::new();
        loop {
            let attempt = Figment::from(Serialized::defaults(Settings::default()))
                .merge(Serialized::defaults(&data));
            let errors = match attempt.extract::<Settings>() {
                Ok(settings) => return (Some(settings), problems),
                Err(errors) => errors,
            };
            for error in errors {
                let key = error.path.first().cloned();
                let Some(key) = key.filter(|key| data.contains_key(key)) else {
                    problems.push(format!("invalid settings: {}", error.kind));
                    return (None, problems);
                };
                let from = figment
                    .find_metadata(&key)
                    .map(|meta| match &meta.source {
                        Some(source) => format!(" ({} {source})", meta.name),
                        None => format!(" ({})", meta.name),
                    })
                    .unwrap_or_default();
                problems.push(format!("{key}: {}{from}", error.kind));
                data.remove(&key);
            }
        }
    }

    /// Defaults, then the file, the environment and the flags.
    fn layers(config_file: Option<&Path>, flags: FlagSettings) -> anyhow::Result<Figment> {
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
        Ok(figment)
    }

    /// The settings as TOML, with anything secret replaced by `<redacted>`.
    pub fn to_redacted_toml(&self) -> anyhow::Result<String> {
        let mut value =
            toml::Value::try_from(self).context("settings are not representable as TOML")?;
        if let Some(table) = value.as_table_mut() {
            for (key, entry) in table.iter_mut() {
                // Settings about passwords are not secrets.
                let public = ["password_min_length", "breached_password_fail"];
                if ["secret", "password", "key", "url"]
                    .iter()
                    .any(|s| key.contains(s))
                    && !public.contains(&key.as_str())
                {
                    *entry = toml::Value::String("<redacted>".into());
                }
            }
        }
        Ok(toml::to_string(&value)?)
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
