//! From the flat [`Settings`] (the public names of the file, environment and
//! flag layers) to the library's typed [`ServiceConfig`], validated once.
//! Each value is checked by the library type that holds it
//! ([`SessionPolicy::new`], [`SessionCookie::new`], [`BucketRule::new`],
//! [`PerUserCap::new`]).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use tessera_axum::connections::ConnectionLimits;
use tessera_axum::cookies::{DEFAULT_COOKIE_NAME, DEFAULT_DOMAIN_COOKIE_NAME, SessionCookie};
use tessera_axum::csrf::HttpUrl;
use tessera_axum::hashing::fair_share;
use tessera_axum::mail::{MailConfig, MailTransport, RetryPolicy, SmtpConfig, SmtpUrl};
use tessera_axum::passwords::{BreachCheck, BreachFailure, NewPasswordRules};
use tessera_axum::self_service::{AccountLinks, SelfServiceConfig};
use tessera_axum::startup::{SessionBackend, UserBackend};
use tessera_axum::throttle::{ThrottleSettings, site_rule};
use tessera_axum::tokens::TokenConfig;
use tessera_axum::{AppConfig, Maintenance, ServiceConfig, SessionStorage};
use tessera_core::{BucketRule, PasswordPolicy, PerUserCap, SessionPolicy};
use tessera_store::{PostgresOptions, RedisOptions, RedisTls, SqliteOptions};

use crate::otlp::OtlpSettings;
use crate::settings::{BreachFailKind, MailKind, Settings, StorageKind, StoreKind, UsersKind};

/// The templates in `dir` (every regular file ending in `.txt` or `.html`),
/// by file name. Unknown names are refused later, by the library.
fn read_templates(
    dir: &std::path::Path,
) -> anyhow::Result<std::collections::BTreeMap<String, String>> {
    let context = || format!("mail_templates: cannot read {}", dir.display());
    let mut templates = std::collections::BTreeMap::new();
    for entry in std::fs::read_dir(dir).with_context(context)? {
        let entry = entry.with_context(context)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !(name.ends_with(".txt") || name.ends_with(".html")) || !entry.path().is_file() {
            continue;
        }
        let text = std::fs::read_to_string(entry.path())
            .with_context(|| format!("mail_templates: cannot read {name}"))?;
        templates.insert(name, text);
    }
    Ok(templates)
}

/// The HTTPS listener's certificate files (`tls_cert`, `tls_key`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The PEM certificate chain.
    pub cert: PathBuf,
    /// The PEM private key.
    pub key: PathBuf,
}

impl Settings {
    /// `tls_cert` and `tls_key`, which go together: `None` serves plain
    /// HTTP.
    ///
    /// # Errors
    ///
    /// One without the other.
    pub fn tls_files(&self) -> anyhow::Result<Option<TlsFiles>> {
        match (&self.tls_cert, &self.tls_key) {
            (None, None) => Ok(None),
            (Some(cert), Some(key)) => Ok(Some(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            })),
            (Some(_), None) => bail!("tls_cert is set without tls_key: HTTPS needs both"),
            (None, Some(_)) => bail!("tls_key is set without tls_cert: HTTPS needs both"),
        }
    }

    /// The service these settings describe. Reads (or, on first use,
    /// creates) the sealed-cookie key in the data directory when sealed
    /// cookies are on and no `session_cookie_key` is set.
    ///
    /// # Errors
    ///
    /// Every value the library refuses, and values that do not fit
    /// together, each with its setting named ([`Problems`]).
    pub fn resolve(&self) -> anyhow::Result<ServiceConfig> {
        self.resolve_all().map_err(anyhow::Error::new)
    }

    /// As [`Settings::resolve`], with every problem found rather than the
    /// first (`tessera config check`).
    ///
    /// # Errors
    ///
    /// [`Problems`], one per setting (or group of settings) refused.
    pub fn resolve_all(&self) -> Result<ServiceConfig, Problems> {
        let mut p = Problems::default();
        let defaults = AppConfig::default();
        let policy = p.take(self.session_policy());
        let cookie = p.take(self.session_cookie());
        let throttle = self.throttle(&mut p);
        let hash_workers = self.hash_workers.unwrap_or(defaults.hash_workers).max(1);
        let session_storage = p.take(match self.session_storage {
            StorageKind::Server => Ok(SessionStorage::Server),
            StorageKind::Cookie => crate::keyfiles::cookie_key(self).map(SessionStorage::Cookie),
        });
        let public_url = p.take(http_url("public_url", self.public_url.as_deref()));
        let account_pages_url = p.take(http_url(
            "account_pages_url",
            self.account_pages_url.as_deref(),
        ));
        let login_url = p.take(http_url("login_url", self.login_url.as_deref()));
        let mut ttl = |name: &str, seconds: u64| {
            if seconds == 0 {
                p.push(format!("{name} must be at least 1 second"));
            }
            Duration::from_secs(seconds)
        };
        let verification_ttl = ttl("email_verification_ttl", self.email_verification_ttl);
        let reset_ttl = ttl("password_reset_ttl", self.password_reset_ttl);
        let invite_ttl = ttl("invite_ttl", self.invite_ttl);
        let email_change_ttl = ttl("email_change_ttl", self.email_change_ttl);
        let max_sessions_per_user =
            p.take(PerUserCap::new(self.max_sessions_per_user).context("max_sessions_per_user"));
        let tokens = self.token_config(&mut p);
        let mail = self.mail_config(&mut p);
        let new_passwords = self.password_rules(&mut p);
        let sessions = p.take(self.session_backend());
        let users = p.take(match self.users {
            UsersKind::Sqlite => Ok(UserBackend::Sqlite),
            UsersKind::Postgres => self
                .database_url
                .clone()
                .context("users = \"postgres\" needs database_url (TESSERA_DATABASE_URL)")
                .map(|url| UserBackend::Postgres {
                    url,
                    options: PostgresOptions::default(),
                }),
        });
        let audit_retention = p.take(self.audit_retention());
        let connections = self.connection_limits(&mut p);
        let metrics_listen = p.take(self.metrics_listen());
        // Checked here so that `config check` names it; `serve` starts the
        // exporter before the rest.
        p.take(self.otlp());
        let (
            Some(policy),
            Some(cookie),
            Some(throttle),
            Some(session_storage),
            Some(public_url),
            Some(account_pages_url),
            Some(login_url),
            Some(max_sessions_per_user),
            Some(tokens),
            Some(mail),
            Some(new_passwords),
            Some(sessions),
            Some(users),
            Some(audit_retention),
            Some(connections),
            Some(metrics_listen),
        ) = (
            policy,
            cookie,
            throttle,
            session_storage,
            public_url,
            account_pages_url,
            login_url,
            max_sessions_per_user,
            tokens,
            mail,
            new_passwords,
            sessions,
            users,
            audit_retention,
            connections,
            metrics_listen,
        )
        else {
            return Err(p);
        };
        if !p.is_empty() {
            return Err(p);
        }
        let self_service = SelfServiceConfig {
            registration: self.registration,
            require_verified_email: self.require_verified_email,
            verification_ttl,
            reset_ttl,
            invite_ttl,
            email_change_ttl,
            links: AccountLinks::new(account_pages_url.or_else(|| public_url.clone())),
        };
        let app = AppConfig {
            policy,
            session_rotation_grace: Duration::from_secs(self.session_rotation_grace),
            cookie,
            session_storage,
            trusted_proxies: self.trusted_proxies.clone(),
            allowed_origins: self.allowed_origins.clone(),
            public_url,
            login_url,
            throttle,
            hash_workers,
            hash_queue: self.hash_queue,
            hash_per_client: self
                .hash_per_client
                .unwrap_or_else(|| fair_share(hash_workers, self.hash_queue))
                .max(1),
            max_body_bytes: self.max_body_bytes,
            session_data_max_bytes: self.session_data_max_bytes,
            max_sessions_per_user,
            tokens,
            access_token_cookie: self.jwt_access_token_cookie,
            mail,
            self_service,
            new_passwords,
            metrics: self.metrics_listen.is_some(),
            // Set by `serve`, which owns the exporter and the log writer.
            traces: None,
            access_log: None,
        };
        Ok(ServiceConfig {
            app,
            database: self.database_path(),
            sqlite: SqliteOptions {
                synchronous: self.sqlite_synchronous,
                session_cache: self.sqlite_session_cache,
                busy_timeout: Duration::from_millis(self.sqlite_busy_timeout),
                ..SqliteOptions::default()
            },
            sessions,
            users,
            maintenance: Maintenance {
                purge_interval: Duration::from_secs(self.purge_interval.max(1)),
                audit_retention,
                ..Maintenance::default()
            },
            connections,
            metrics_listen,
        })
    }

    /// The session store `store` and the `redis_*` settings name.
    ///
    /// # Errors
    ///
    /// `redis_tls_*` files that cannot be read or parsed.
    pub fn session_backend(&self) -> anyhow::Result<SessionBackend> {
        Ok(match self.store {
            StoreKind::Sqlite => SessionBackend::Sqlite,
            StoreKind::Memory => SessionBackend::Memory,
            StoreKind::Redis => SessionBackend::Redis(RedisOptions {
                url: self.redis_url.clone(),
                tls: self.redis_tls()?,
                wait_replicas: self.redis_wait_replicas,
                prefix: self.redis_prefix.clone(),
                timeout: Duration::from_millis(self.redis_timeout.max(1)),
                near_cache: self.redis_near_cache,
                ..RedisOptions::default()
            }),
        })
    }

    /// The SMTP relay's settings when `mail = "smtp"` and they are valid
    /// (their problems are [`Settings::resolve_all`]'s to report).
    pub fn smtp(&self) -> Option<SmtpConfig> {
        match self.mail {
            MailKind::Smtp => self.smtp_config(&mut Problems::default()),
            MailKind::None | MailKind::File => None,
        }
    }

    fn session_policy(&self) -> anyhow::Result<SessionPolicy> {
        let policy = SessionPolicy::new(
            Duration::from_secs(self.session_idle_timeout),
            Duration::from_secs(self.session_absolute_timeout),
        )
        .context("session_idle_timeout and session_absolute_timeout")?;
        Ok(match self.session_transient_timeout {
            None => policy,
            Some(seconds) => policy
                .with_transient_timeout(Duration::from_secs(seconds))
                .context(
                    "session_transient_timeout must be shorter than session_absolute_timeout",
                )?,
        })
    }

    fn session_cookie(&self) -> anyhow::Result<SessionCookie> {
        match &self.cookie_domain {
            None => SessionCookie::new(self.cookie_name.clone(), self.session_same_site)
                .context("cookie_name"),
            Some(domain) => {
                // The default name cannot carry a Domain: take its __Secure- twin.
                let name = if self.cookie_name == DEFAULT_COOKIE_NAME {
                    DEFAULT_DOMAIN_COOKIE_NAME
                } else {
                    &self.cookie_name
                };
                SessionCookie::for_domain(name, self.session_same_site, domain)
                    .context("cookie_name and cookie_domain")
            }
        }
    }

    fn throttle(&self, p: &mut Problems) -> Option<ThrottleSettings> {
        if !(32..=128).contains(&self.login_ipv6_prefix) {
            p.push("login_ipv6_prefix must be between 32 and 128".to_owned());
        }
        let per_ip = p.take(
            BucketRule::new(self.login_ip_burst, self.login_ip_per_minute)
                .context("login_ip_burst and login_ip_per_minute"),
        );
        let per_account = p.take(
            BucketRule::new(self.login_account_burst, self.login_account_per_minute)
                .context("login_account_burst and login_account_per_minute"),
        );
        let per_address_mail = p.take(
            BucketRule::new(self.mail_address_burst, self.mail_address_per_minute)
                .context("mail_address_burst and mail_address_per_minute"),
        );
        let (per_ip, per_account, per_address_mail) = (per_ip?, per_account?, per_address_mail?);
        Some(ThrottleSettings {
            per_ip,
            per_account,
            ipv6_prefix: self.login_ipv6_prefix,
            per_ipv6_site: site_rule(per_ip),
            device_lifetime: Duration::from_secs(self.login_device_lifetime.max(1)),
            per_address_mail,
        })
    }

    /// Where spans are exported (`otlp_endpoint`, `otlp_sample_ratio`);
    /// `None`: nowhere.
    ///
    /// # Errors
    ///
    /// Not an `http://` URL, or a ratio outside 0 to 1.
    pub fn otlp(&self) -> anyhow::Result<Option<OtlpSettings>> {
        self.otlp_endpoint
            .as_deref()
            .map(|endpoint| OtlpSettings::new(endpoint, self.otlp_sample_ratio))
            .transpose()
    }

    /// `metrics_listen`, refused on the public address: the metrics tell
    /// anyone who can read them about the service's traffic and health.
    fn metrics_listen(&self) -> anyhow::Result<Option<std::net::SocketAddr>> {
        match self.metrics_listen {
            Some(metrics) if metrics.port() == self.listen.port() && metrics.port() != 0 => {
                bail!(
                    "metrics_listen ({metrics}) must not share the public listen port ({}): \
                     give the metrics a port of their own",
                    self.listen
                )
            }
            other => Ok(other),
        }
    }

    /// Connection deadlines and caps. `max_connections` is the configured
    /// or default cap; `tessera serve` lowers it to fit the file-descriptor
    /// limit.
    fn audit_retention(&self) -> anyhow::Result<Duration> {
        if self.audit_retention == 0 {
            bail!("audit_retention must be at least 1 (days)");
        }
        Ok(Duration::from_secs(
            self.audit_retention.saturating_mul(86_400),
        ))
    }

    fn connection_limits(&self, p: &mut Problems) -> Option<ConnectionLimits> {
        let limits = ConnectionLimits {
            header_read_timeout: Duration::from_secs(self.header_read_timeout),
            body_read_timeout: Duration::from_secs(self.body_read_timeout),
            write_timeout: Duration::from_secs(self.write_timeout),
            max_connections: self
                .max_connections
                .unwrap_or(ConnectionLimits::default().max_connections),
            max_connections_per_client: self.max_connections_per_client,
            shutdown_timeout: Duration::from_secs(self.shutdown_timeout),
        };
        let refused = limits.refused();
        let fine = refused.is_empty();
        for error in refused {
            p.push(error.to_string());
        }
        fine.then_some(limits)
    }

    /// The mailer: transport, sender, templates (read from
    /// `mail_templates`), retries. Checked here (`mail_from`, templates,
    /// TLS), so that `tessera serve` refuses bad mail settings at start.
    /// `redis_tls_*`, files read here; `None` when none is set (a
    /// `rediss…` URL then trusts Mozilla's roots).
    fn redis_tls(&self) -> anyhow::Result<Option<RedisTls>> {
        let read = |name: &str, path: &std::path::Path| {
            std::fs::read(path).with_context(|| format!("{name}: cannot read {}", path.display()))
        };
        if self.redis_tls_ca.is_none()
            && self.redis_tls_cert.is_none()
            && self.redis_tls_key.is_none()
            && self.redis_tls_server_name.is_none()
        {
            return Ok(None);
        }
        let mut tls = RedisTls::new();
        if let Some(path) = &self.redis_tls_ca {
            tls = tls
                .with_ca_pem(&read("redis_tls_ca", path)?)
                .with_context(|| format!("redis_tls_ca ({})", path.display()))?;
        }
        match (&self.redis_tls_cert, &self.redis_tls_key) {
            (Some(cert), Some(key)) => {
                tls = tls
                    .with_client_pem(&read("redis_tls_cert", cert)?, &read("redis_tls_key", key)?)
                    .context("redis_tls_cert / redis_tls_key")?;
            }
            (None, None) => {}
            _ => bail!("redis_tls_cert and redis_tls_key go together"),
        }
        if let Some(name) = &self.redis_tls_server_name {
            tls = tls
                .with_server_name(name)
                .context("redis_tls_server_name")?;
        }
        Ok(Some(tls))
    }

    fn mail_config(&self, p: &mut Problems) -> Option<MailConfig> {
        let defaults = MailConfig::default();
        let transport = match self.mail {
            MailKind::None => Some(MailTransport::None),
            MailKind::File => Some(MailTransport::File {
                dir: self.data_dir.join("mail"),
            }),
            MailKind::Smtp => self.smtp_config(p).map(MailTransport::Smtp),
        };
        let templates = match &self.mail_templates {
            None => Some(Default::default()),
            Some(dir) => p.take(read_templates(dir)),
        };
        if self.mail_max_attempts == 0 {
            p.push("mail_max_attempts must be at least 1".to_owned());
        }
        let config = MailConfig {
            transport: transport?,
            from: self.mail_from.clone(),
            site_name: self.mail_site_name.clone(),
            templates: templates?,
            retry: RetryPolicy {
                max_attempts: self.mail_max_attempts,
                max_age: Duration::from_secs(self.mail_max_age),
                ..defaults.retry
            },
            ..defaults
        };
        if config.is_configured() {
            p.take(
                config
                    .check()
                    .context("mail settings (mail_from, mail_templates, smtp_tls_ca)"),
            )?;
        }
        Some(config)
    }

    /// `mail = "smtp"`: the relay's URL, CA, timeout and pool.
    fn smtp_config(&self, p: &mut Problems) -> Option<SmtpConfig> {
        let url = p.take(
            self.smtp_url
                .as_ref()
                .context("mail = \"smtp\" needs smtp_url (TESSERA_SMTP_URL)")
                .and_then(|raw| SmtpUrl::parse(&raw.0).context("smtp_url")),
        );
        let tls_ca = p.take(
            self.smtp_tls_ca
                .as_ref()
                .map(|path| {
                    std::fs::read(path)
                        .with_context(|| format!("smtp_tls_ca: cannot read {}", path.display()))
                })
                .transpose(),
        );
        if self.smtp_timeout == 0 {
            p.push("smtp_timeout must be at least 1".to_owned());
        }
        if self.smtp_pool_size == 0 {
            p.push("smtp_pool_size must be at least 1".to_owned());
        }
        Some(SmtpConfig {
            insecure: self.smtp_insecure,
            tls_ca: tls_ca?,
            timeout: Duration::from_secs(self.smtp_timeout),
            pool_size: self.smtp_pool_size,
            ..SmtpConfig::new(url?)
        })
    }

    /// The rules for new passwords: `password_min_length`,
    /// `breached_password_url`, `breached_password_fail`.
    fn password_rules(&self, p: &mut Problems) -> Option<NewPasswordRules> {
        let policy =
            p.take(PasswordPolicy::new(self.password_min_length).context("password_min_length"));
        let breached = match &self.breached_password_url {
            None => Some(None),
            Some(url) => p.take(crate::breached::RangeApi::new(url)).map(|source| {
                Some(BreachCheck {
                    source: Arc::new(source),
                    on_failure: match self.breached_password_fail {
                        BreachFailKind::Open => BreachFailure::Open,
                        BreachFailKind::Closed => BreachFailure::Closed,
                    },
                    timeout: crate::breached::TIMEOUT,
                })
            }),
        };
        Some(NewPasswordRules {
            policy: policy?,
            breached: breached?,
        })
    }

    /// Token lifetimes and names.
    fn token_config(&self, p: &mut Problems) -> Option<TokenConfig> {
        if self.jwt_access_ttl == 0 || self.jwt_refresh_ttl < self.jwt_access_ttl {
            p.push("jwt_access_ttl must be at least 1 and at most jwt_refresh_ttl".to_owned());
        }
        let families = p.take(
            PerUserCap::new(self.max_refresh_families_per_user)
                .context("max_refresh_families_per_user"),
        );
        let sealed = p.take(
            PerUserCap::new(self.max_sealed_revocations_per_user)
                .context("max_sealed_revocations_per_user"),
        );
        Some(TokenConfig {
            issuer: self.jwt_issuer.clone(),
            audience: self.jwt_audience.clone(),
            access_ttl: Duration::from_secs(self.jwt_access_ttl),
            refresh_ttl: Duration::from_secs(self.jwt_refresh_ttl),
            leeway: Duration::from_secs(self.jwt_leeway),
            grace: Duration::from_secs(self.jwt_refresh_grace),
            max_refresh_families_per_user: families?,
            max_sealed_revocations_per_user: sealed?,
        })
    }
}

/// Every problem found in the settings, each naming its setting: one per
/// line when shown.
#[derive(Debug, Default)]
pub struct Problems(Vec<String>);

impl Problems {
    /// The value, or `None` with its error recorded.
    pub fn take<T>(&mut self, result: anyhow::Result<T>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(error) => {
                self.push(format!("{error:#}"));
                None
            }
        }
    }

    /// Records one problem.
    pub fn push(&mut self, problem: String) {
        self.0.push(problem);
    }

    /// Whether none was found.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The problems, in the order found.
    pub fn into_vec(self) -> Vec<String> {
        self.0
    }
}

impl std::fmt::Display for Problems {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.join("\n"))
    }
}

impl std::error::Error for Problems {}

/// An optional `http(s)://` URL setting.
fn http_url(name: &'static str, value: Option<&str>) -> anyhow::Result<Option<HttpUrl>> {
    value.map(HttpUrl::parse).transpose().context(name)
}

#[cfg(test)]
// figment's `Jail` returns its own (large) error type; these are tests.
#[allow(clippy::result_large_err)]
mod tests {
    use figment::Jail;

    use super::*;
    use crate::settings::FlagSettings;

    fn load() -> anyhow::Result<ServiceConfig> {
        Settings::load(None, FlagSettings::default())?.resolve()
    }

    #[test]
    fn the_defaults_are_the_librarys() {
        Jail::expect_with(|_| {
            let config = load().unwrap();
            let library = AppConfig::default();
            assert_eq!(config.app.policy, library.policy);
            assert_eq!(config.app.cookie.name(), library.cookie.name());
            assert_eq!(config.app.throttle, library.throttle);
            assert_eq!(config.app.tokens.access_ttl, library.tokens.access_ttl);
            assert_eq!(
                config.app.max_sessions_per_user,
                library.max_sessions_per_user
            );
            assert!(matches!(config.sessions, SessionBackend::Sqlite));
            assert!(matches!(config.users, UserBackend::Sqlite));
            assert!(matches!(config.app.session_storage, SessionStorage::Server));
            assert_eq!(config.connections, ConnectionLimits::default());
            Ok(())
        });
    }

    #[test]
    fn environment_values_reach_the_typed_config() {
        Jail::expect_with(|jail| {
            jail.set_env("TESSERA_STORE", "redis");
            jail.set_env("TESSERA_REDIS_PREFIX", "app1");
            jail.set_env("TESSERA_REDIS_TIMEOUT", "250");
            jail.set_env("TESSERA_JWT_ACCESS_TTL", "60");
            jail.set_env("TESSERA_SESSION_SAME_SITE", "strict");
            jail.set_env("TESSERA_MAX_SESSIONS_PER_USER", "3");
            let config = load().unwrap();
            assert_eq!(config.app.max_sessions_per_user.get(), 3);
            let SessionBackend::Redis(redis) = config.sessions else {
                panic!("redis expected");
            };
            assert_eq!(redis.prefix, "app1");
            assert_eq!(redis.timeout, Duration::from_millis(250));
            assert_eq!(config.app.tokens.access_ttl, Duration::from_secs(60));
            assert_eq!(
                config.app.cookie.same_site(),
                tessera_axum::cookies::SameSitePolicy::Strict
            );
            Ok(())
        });
    }

    #[test]
    fn tls_cert_and_tls_key_go_together() {
        Jail::expect_with(|jail| {
            let settings = || Settings::load(None, FlagSettings::default()).unwrap();
            assert_eq!(settings().tls_files().unwrap(), None);
            jail.set_env("TESSERA_TLS_CERT", "/etc/tessera/cert.pem");
            let error = settings().tls_files().unwrap_err().to_string();
            assert!(error.contains("tls_key"), "{error}");
            jail.set_env("TESSERA_TLS_KEY", "/etc/tessera/key.pem");
            assert_eq!(
                settings().tls_files().unwrap(),
                Some(TlsFiles {
                    cert: "/etc/tessera/cert.pem".into(),
                    key: "/etc/tessera/key.pem".into(),
                })
            );
            Ok(())
        });
    }

    #[test]
    fn values_the_library_refuses_name_their_setting() {
        for (key, value, named) in [
            ("TESSERA_COOKIE_NAME", "tessera", "cookie_name"),
            ("TESSERA_LOGIN_IP_BURST", "0", "login_ip_burst"),
            (
                "TESSERA_LOGIN_ACCOUNT_PER_MINUTE",
                "0",
                "login_account_per_minute",
            ),
            ("TESSERA_SESSION_IDLE_TIMEOUT", "0", "session_idle_timeout"),
            (
                "TESSERA_MAX_SESSIONS_PER_USER",
                "0",
                "max_sessions_per_user",
            ),
            ("TESSERA_USERS", "postgres", "database_url"),
            ("TESSERA_HEADER_READ_TIMEOUT", "0", "header_read_timeout"),
            (
                "TESSERA_MAX_CONNECTIONS_PER_CLIENT",
                "0",
                "max_connections_per_client",
            ),
            ("TESSERA_PASSWORD_MIN_LENGTH", "7", "password_min_length"),
            (
                "TESSERA_BREACHED_PASSWORD_URL",
                "https://api.pwnedpasswords.com",
                "breached_password_url",
            ),
        ] {
            Jail::expect_with(|jail| {
                jail.set_env(key, value);
                let error = format!("{:#}", load().unwrap_err());
                assert!(error.contains(named), "{key}={value}: {error}");
                Ok(())
            });
        }
    }

    #[test]
    fn every_problem_is_found_not_just_the_first() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "bad.toml",
                "login_ip_burst = \"lots\"\nhash_queue = -1\ncookie_name = \"plain\"\n",
            )?;
            jail.set_env("TESSERA_MAX_SESSIONS_PER_USER", "0");
            jail.set_env("TESSERA_JWT_ACCESS_TTL", "0");
            let (settings, loading) = Settings::load_checked(
                Some(std::path::Path::new("bad.toml")),
                FlagSettings::default(),
            );
            assert_eq!(loading.len(), 2, "{loading:?}");
            assert!(loading[0].starts_with("hash_queue: "), "{loading:?}");
            assert!(loading[1].starts_with("login_ip_burst: "), "{loading:?}");
            let problems = settings
                .expect("the rest loads")
                .resolve_all()
                .unwrap_err()
                .into_vec();
            assert_eq!(problems.len(), 3, "{problems:?}");
            for named in ["cookie_name", "max_sessions_per_user", "jwt_access_ttl"] {
                assert!(
                    problems.iter().any(|p| p.contains(named)),
                    "{named}: {problems:?}"
                );
            }
            Ok(())
        });
    }

    #[test]
    fn new_password_settings_reach_the_rules() {
        Jail::expect_with(|jail| {
            let rules = load().unwrap().app.new_passwords;
            assert_eq!(rules.policy, AppConfig::default().new_passwords.policy);
            assert!(rules.breached.is_none());
            jail.set_env("TESSERA_PASSWORD_MIN_LENGTH", "12");
            jail.set_env("TESSERA_BREACHED_PASSWORD_URL", "http://127.0.0.1:9/");
            jail.set_env("TESSERA_BREACHED_PASSWORD_FAIL", "closed");
            let rules = load().unwrap().app.new_passwords;
            assert_eq!(rules.policy.min_length(), 12);
            let breached = rules.breached.expect("configured");
            assert_eq!(
                breached.on_failure,
                tessera_axum::passwords::BreachFailure::Closed
            );
            Ok(())
        });
    }

    #[test]
    fn mail_settings_reach_the_typed_config_and_the_smtp_password_shows_nowhere() {
        Jail::expect_with(|jail| {
            assert!(!load().unwrap().app.mail.is_configured(), "default none");
            jail.set_env("TESSERA_MAIL", "smtp");
            let error = format!("{:#}", load().unwrap_err());
            assert!(error.contains("smtp_url"), "{error}");
            jail.set_env(
                "TESSERA_SMTP_URL",
                "smtps://robot:hunter2secret@relay.example:2465",
            );
            jail.set_env("TESSERA_MAIL_FROM", "Example <noreply@example.com>");
            jail.set_env("TESSERA_MAIL_MAX_ATTEMPTS", "3");
            let settings = Settings::load(None, FlagSettings::default()).unwrap();
            let config = settings.resolve().unwrap();
            let tessera_axum::mail::MailTransport::Smtp(smtp) = &config.app.mail.transport else {
                panic!("smtp expected");
            };
            assert_eq!(smtp.url.port, 2465);
            assert_eq!(config.app.mail.retry.max_attempts, 3);
            for shown in [
                format!("{settings:?}"),
                format!("{config:?}"),
                settings.to_redacted_toml().unwrap(),
            ] {
                assert!(!shown.contains("hunter2secret"), "{shown}");
            }
            jail.set_env("TESSERA_SMTP_URL", "http://relay.example");
            let error = format!("{:#}", load().unwrap_err());
            assert!(error.contains("smtp_url"), "{error}");
            jail.set_env("TESSERA_MAIL", "file");
            jail.set_env("TESSERA_MAIL_FROM", "not an address");
            let error = format!("{:#}", load().unwrap_err());
            assert!(error.contains("mail_from"), "{error}");
            Ok(())
        });
    }

    #[test]
    fn mail_templates_are_read_from_the_directory_and_checked() {
        Jail::expect_with(|jail| {
            jail.create_dir("templates")?;
            jail.create_file("templates/invite.subject.txt", "Join {{ site }} today")?;
            jail.set_env("TESSERA_MAIL", "file");
            jail.set_env("TESSERA_MAIL_TEMPLATES", "templates");
            let config = load().unwrap();
            assert_eq!(
                config
                    .app
                    .mail
                    .templates
                    .get("invite.subject.txt")
                    .map(String::as_str),
                Some("Join {{ site }} today")
            );
            jail.create_file("templates/invtie.html", "typo")?;
            let error = format!("{:#}", load().unwrap_err());
            assert!(error.contains("invtie.html"), "{error}");
            Ok(())
        });
    }

    #[test]
    fn per_user_token_caps_default_to_the_librarys_and_refuse_zero() {
        Jail::expect_with(|jail| {
            let library = TokenConfig::default();
            let tokens = load().unwrap().app.tokens;
            assert_eq!(
                tokens.max_refresh_families_per_user,
                library.max_refresh_families_per_user
            );
            assert_eq!(
                tokens.max_sealed_revocations_per_user,
                library.max_sealed_revocations_per_user
            );
            jail.set_env("TESSERA_MAX_REFRESH_FAMILIES_PER_USER", "2");
            jail.set_env("TESSERA_MAX_SEALED_REVOCATIONS_PER_USER", "3");
            let tokens = load().unwrap().app.tokens;
            assert_eq!(tokens.max_refresh_families_per_user.get(), 2);
            assert_eq!(tokens.max_sealed_revocations_per_user.get(), 3);
            for key in [
                "max_refresh_families_per_user",
                "max_sealed_revocations_per_user",
            ] {
                jail.set_env(format!("TESSERA_{}", key.to_ascii_uppercase()), "0");
                let error = format!("{:#}", load().unwrap_err());
                assert!(error.contains(key), "{error}");
                jail.set_env(format!("TESSERA_{}", key.to_ascii_uppercase()), "5");
            }
            Ok(())
        });
    }

    #[test]
    fn a_cookie_domain_makes_the_default_cookie_a_secure_prefixed_one() {
        Jail::expect_with(|jail| {
            jail.set_env("TESSERA_COOKIE_DOMAIN", "example.com");
            let config = load().unwrap();
            assert_eq!(config.app.cookie.name(), "__Secure-tessera");
            assert_eq!(config.app.cookie.domain(), Some("example.com"));
            jail.set_env("TESSERA_COOKIE_NAME", "__Host-mine");
            let error = format!("{:#}", load().unwrap_err());
            assert!(error.contains("__Secure-"), "{error}");
            Ok(())
        });
    }

    #[test]
    fn sealed_cookies_take_the_configured_key() {
        Jail::expect_with(|jail| {
            jail.set_env("TESSERA_SESSION_STORAGE", "cookie");
            jail.set_env(
                "TESSERA_SESSION_COOKIE_KEY",
                "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE",
            );
            let config = load().unwrap();
            let SessionStorage::Cookie(key) = config.app.session_storage else {
                panic!("sealed cookies expected");
            };
            assert_eq!(key.as_bytes(), &[1u8; 32]);
            Ok(())
        });
    }
}
