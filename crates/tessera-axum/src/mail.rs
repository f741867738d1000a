//! Mail: the handle flows send through ([`Mail`]), and its settings
//! ([`MailConfig`]).
//!
//! Nothing is sent on the request path. [`Mail::send`] writes the message to
//! the durable outbox (the user store) and wakes the background sender,
//! which claims due messages with a lease (exactly one node sends each),
//! renders them with the templates and hands them to the transport (SMTP or
//! `.eml` files), retrying with exponential backoff. A slow or dead SMTP
//! server delays mail, never a request.

mod sender;
pub mod templates;
pub mod transport;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tessera_core::{Outbox, OutboxStats, OutgoingMail, StoreError, Timestamp};
use tokio::sync::Notify;

use crate::state::AppState;

/// Where mail goes (setting `mail`).
#[derive(Debug, Clone, Default)]
pub enum MailTransport {
    /// Nowhere: [`Mail::send`] records nothing (logged at debug level).
    #[default]
    None,
    /// One `.eml` file per message in this directory (for development).
    File {
        /// The directory (created if missing).
        dir: PathBuf,
    },
    /// An SMTP relay.
    Smtp(SmtpConfig),
}

/// How to reach the SMTP relay.
#[derive(Clone)]
pub struct SmtpConfig {
    /// `smtp://[user:password@]host[:port]` (STARTTLS required unless
    /// `insecure`) or `smtps://...` (implicit TLS). May carry a password:
    /// never printed.
    pub url: SmtpUrl,
    /// Allow a plain-text connection (`smtp://` without STARTTLS); only for
    /// a relay on the same host or in tests.
    pub insecure: bool,
    /// Extra trusted root certificate(s), PEM (for a private relay, tests).
    pub tls_ca: Option<Vec<u8>>,
    /// Connect, command and TLS handshake timeout.
    pub timeout: Duration,
    /// Connections kept open to the relay.
    pub pool_size: u32,
}

impl std::fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("url", &self.url)
            .field("insecure", &self.insecure)
            .field("tls_ca", &self.tls_ca.as_ref().map(|_| "<pem>"))
            .field("timeout", &self.timeout)
            .field("pool_size", &self.pool_size)
            .finish()
    }
}

impl SmtpConfig {
    /// The relay at `url`, with the default timeout (10 s) and pool (4).
    pub fn new(url: SmtpUrl) -> Self {
        Self {
            url,
            insecure: false,
            tls_ca: None,
            timeout: Duration::from_secs(10),
            pool_size: 4,
        }
    }
}

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// `smtps://`: TLS from the first byte (port 465 by default).
    Implicit,
    /// `smtp://`: STARTTLS (port 587 by default), required unless the
    /// configuration says `insecure`.
    StartTls,
}

/// A parsed `smtp://` or `smtps://` URL. Its `Debug` and `Display` hide the
/// credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpUrl {
    /// How the connection is secured.
    pub security: SmtpSecurity,
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// User name and password, if the relay wants them.
    pub credentials: Option<(String, String)>,
}

/// An SMTP URL that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum InvalidSmtpUrl {
    /// Not a URL (the text is not repeated: it may carry a password).
    #[error("smtp_url is not a URL")]
    Syntax,
    /// Neither `smtp` nor `smtps`.
    #[error("smtp_url must start with smtp:// (STARTTLS) or smtps:// (TLS), not {0}://")]
    Scheme(String),
    /// No host.
    #[error("smtp_url has no host")]
    NoHost,
    /// A path, query or fragment (what would they mean?).
    #[error("smtp_url must be scheme://[user:password@]host[:port] and nothing more")]
    Extra,
}

impl SmtpUrl {
    /// Parses `smtp://[user[:password]@]host[:port]` or `smtps://...`
    /// (user and password percent-decoded).
    ///
    /// # Errors
    ///
    /// [`InvalidSmtpUrl`]; its message never repeats the URL.
    pub fn parse(raw: &str) -> Result<Self, InvalidSmtpUrl> {
        let url = url::Url::parse(raw.trim()).map_err(|_| InvalidSmtpUrl::Syntax)?;
        let (security, default_port) = match url.scheme() {
            "smtp" => (SmtpSecurity::StartTls, 587),
            "smtps" => (SmtpSecurity::Implicit, 465),
            other => return Err(InvalidSmtpUrl::Scheme(other.to_owned())),
        };
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or(InvalidSmtpUrl::NoHost)?;
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host)
            .to_owned();
        if !matches!(url.path(), "" | "/") || url.query().is_some() || url.fragment().is_some() {
            return Err(InvalidSmtpUrl::Extra);
        }
        let credentials = (!url.username().is_empty()).then(|| {
            (
                percent_decode(url.username()),
                url.password().map(percent_decode).unwrap_or_default(),
            )
        });
        Ok(Self {
            security,
            host,
            port: url.port().unwrap_or(default_port),
            credentials,
        })
    }
}

/// Decodes `%XX` escapes (user names and passwords in a URL).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| s.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl std::fmt::Display for SmtpUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = match self.security {
            SmtpSecurity::Implicit => "smtps",
            SmtpSecurity::StartTls => "smtp",
        };
        let auth = if self.credentials.is_some() {
            "<redacted>@"
        } else {
            ""
        };
        if self.host.contains(':') {
            write!(f, "{scheme}://{auth}[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{scheme}://{auth}{}:{}", self.host, self.port)
        }
    }
}

impl std::fmt::Debug for SmtpUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SmtpUrl({self})")
    }
}

/// When the sender tries again, and when it stops.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Wait after the first failed attempt; doubled after each further one.
    pub first_delay: Duration,
    /// Longest wait between attempts.
    pub max_delay: Duration,
    /// Attempts before a message is given up.
    pub max_attempts: u32,
    /// Age after which a message that still fails is given up.
    pub max_age: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            first_delay: Duration::from_secs(30),
            max_delay: Duration::from_secs(3600),
            max_attempts: 10,
            max_age: Duration::from_secs(24 * 3600),
        }
    }
}

impl RetryPolicy {
    /// What to do after attempt number `attempts` (1-based) of a message
    /// enqueued at `enqueued_at` failed at `now`.
    pub fn after_failure(
        &self,
        attempts: u32,
        enqueued_at: Timestamp,
        now: Timestamp,
    ) -> tessera_core::Retry {
        if attempts >= self.max_attempts || now.since(enqueued_at) >= self.max_age {
            return tessera_core::Retry::GiveUp;
        }
        let doublings = attempts.saturating_sub(1).min(30);
        let delay = self
            .first_delay
            .saturating_mul(1u32 << doublings)
            .min(self.max_delay);
        tessera_core::Retry::At(now.plus(delay))
    }
}

/// Settings of the mailer: plain data, defaults in `Default`.
#[derive(Debug, Clone)]
pub struct MailConfig {
    /// Where mail goes.
    pub transport: MailTransport,
    /// The `From:` of every message, e.g. `Example <noreply@example.com>`.
    pub from: String,
    /// The name messages give the service (`{{ site }}` in the templates).
    pub site_name: String,
    /// Templates replacing the built-in ones, by file name
    /// (`verify_email.subject.txt`, `verify_email.txt`, `verify_email.html`,
    /// `layout.html`, ...): their contents, read by the binary.
    pub templates: BTreeMap<String, String>,
    /// Retries and giving up.
    pub retry: RetryPolicy,
    /// How long a claim on a message holds (longer than any send takes).
    pub lease: Duration,
    /// Messages claimed at a time (at most the SMTP pool's size: every
    /// claimed message is sent at once).
    pub batch: usize,
    /// How often the sender looks at the outbox when nothing woke it (for
    /// messages other nodes enqueued, and retries).
    pub poll_interval: Duration,
    /// How long the metadata of sent and undeliverable messages is kept.
    pub retention: Duration,
}

impl Default for MailConfig {
    fn default() -> Self {
        Self {
            transport: MailTransport::None,
            from: "tessera <noreply@localhost>".to_owned(),
            site_name: "tessera".to_owned(),
            templates: BTreeMap::new(),
            retry: RetryPolicy::default(),
            lease: Duration::from_secs(120),
            batch: 16,
            poll_interval: Duration::from_secs(10),
            retention: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

impl MailConfig {
    /// Whether mail goes anywhere (`mail` is not `none`).
    pub fn is_configured(&self) -> bool {
        !matches!(self.transport, MailTransport::None)
    }

    /// The transport's name, for logs and `/health`.
    pub fn transport_name(&self) -> &'static str {
        match self.transport {
            MailTransport::None => "none",
            MailTransport::File { .. } => "file",
            MailTransport::Smtp(_) => "smtp",
        }
    }

    /// Checks what can be checked without sending: `from` parses, the
    /// templates (with their overrides) load and render, the TLS settings
    /// are usable.
    ///
    /// # Errors
    ///
    /// [`MailSetupError`] naming the setting.
    pub fn check(&self) -> Result<(), MailSetupError> {
        transport::parse_from(&self.from)?;
        templates::Templates::new(&self.templates, &self.site_name)?;
        if let MailTransport::Smtp(smtp) = &self.transport {
            transport::tls(smtp)?;
        }
        Ok(())
    }
}

/// The link a message carries: `path` below `public_url` (its own path
/// kept, for a tessera mounted under a prefix) with the single-use token
/// as the `token` query parameter, e.g.
/// `link(public_url, "/password/reset", token)` →
/// `https://auth.example.com/password/reset?token=...`.
pub fn link(public_url: &crate::csrf::HttpUrl, path: &str, token: &str) -> String {
    let mut url = public_url.url().clone();
    let joined = format!(
        "{}/{}",
        url.path().trim_end_matches('/'),
        path.trim_start_matches('/')
    );
    url.set_path(&joined);
    url.set_query(None);
    url.set_fragment(None);
    url.query_pairs_mut().append_pair("token", token);
    url.to_string()
}

/// Mail settings that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum MailSetupError {
    /// The transport or `mail_from`.
    #[error(transparent)]
    Transport(#[from] transport::TransportError),
    /// A template.
    #[error(transparent)]
    Template(#[from] templates::TemplateError),
}

/// Starts the background sender for `state` (when mail is configured):
/// the task [`Service::start`](crate::Service::start) spawns.
///
/// # Errors
///
/// [`MailSetupError`] when the transport, `mail_from` or a template cannot
/// be used.
pub fn spawn_sender(
    state: &Arc<AppState>,
) -> Result<Option<tokio::task::JoinHandle<()>>, MailSetupError> {
    let config = state.config().mail.clone();
    let (Some(outbox), Some(transport)) = (
        state.mail().outbox().cloned(),
        transport::Transport::new(&config.transport)?,
    ) else {
        return Ok(None);
    };
    let sender = sender::Sender {
        state: Arc::clone(state),
        outbox,
        transport: Arc::new(transport),
        templates: Arc::new(templates::Templates::new(
            &config.templates,
            &config.site_name,
        )?),
        from: transport::parse_from(&config.from)?,
        config,
    };
    Ok(Some(tokio::spawn(Arc::new(sender).run())))
}

/// The outbox statistics `/health` shows, refreshed by the sender (so
/// `/health` costs no store call).
#[derive(Debug, Default)]
pub struct CachedStats {
    pending: AtomicU64,
    undeliverable: AtomicU64,
}

impl CachedStats {
    /// The last figures.
    pub fn get(&self) -> OutboxStats {
        OutboxStats {
            pending: self.pending.load(Ordering::Relaxed),
            undeliverable: self.undeliverable.load(Ordering::Relaxed),
        }
    }

    /// Records new figures.
    pub fn set(&self, stats: OutboxStats) {
        self.pending.store(stats.pending, Ordering::Relaxed);
        self.undeliverable
            .store(stats.undeliverable, Ordering::Relaxed);
    }
}

/// Sends mail: durably enqueues it and wakes the background sender. Cheap
/// to clone (the clones share the sender's wake-up and stats).
#[derive(Clone)]
pub struct Mail {
    outbox: Option<Arc<dyn Outbox>>,
    wake: Arc<Notify>,
    stats: Arc<CachedStats>,
}

impl std::fmt::Debug for Mail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mail")
            .field("configured", &self.is_configured())
            .field("stats", &self.stats.get())
            .finish()
    }
}

impl Mail {
    /// Mail into `outbox`, or (with `None`, i.e. `mail = none`) nowhere.
    pub fn new(outbox: Option<Arc<dyn Outbox>>) -> Self {
        Self {
            outbox,
            wake: Arc::new(Notify::new()),
            stats: Arc::new(CachedStats::default()),
        }
    }

    /// Whether mail goes anywhere. With `mail = none` flows that would mail
    /// a link must offer another way (the admin API returns the link).
    pub fn is_configured(&self) -> bool {
        self.outbox.is_some()
    }

    /// Queues `mail` for sending and wakes the sender. Returns once the
    /// message is committed to the outbox; sending happens in the
    /// background (never on the request path). With `mail = none` records
    /// nothing.
    ///
    /// # Errors
    ///
    /// The outbox (the user store) could not store it: callers fail closed
    /// (503).
    pub async fn send(&self, mail: OutgoingMail) -> Result<(), StoreError> {
        let Some(outbox) = &self.outbox else {
            tracing::debug!(kind = mail.notice.kind(), "mail = none: message not sent");
            return Ok(());
        };
        outbox.enqueue(&mail, Timestamp::now()).await?;
        self.wake.notify_one();
        Ok(())
    }

    /// The outbox, when mail is configured.
    pub fn outbox(&self) -> Option<&Arc<dyn Outbox>> {
        self.outbox.as_ref()
    }

    /// What wakes the sender.
    pub fn waker(&self) -> Arc<Notify> {
        Arc::clone(&self.wake)
    }

    /// Pending and undeliverable counts as the sender last saw them.
    pub fn stats(&self) -> OutboxStats {
        self.stats.get()
    }

    /// The cache the sender refreshes.
    pub fn cached_stats(&self) -> Arc<CachedStats> {
        Arc::clone(&self.stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_urls_parse_and_hide_credentials() {
        let url = SmtpUrl::parse("smtp://user%40x:p%3Ass@mail.example:2525").unwrap();
        assert_eq!(url.security, SmtpSecurity::StartTls);
        assert_eq!(url.host, "mail.example");
        assert_eq!(url.port, 2525);
        assert_eq!(
            url.credentials,
            Some(("user@x".to_owned(), "p:ss".to_owned()))
        );
        let shown = format!("{url} {url:?}");
        assert!(
            !shown.contains("p:ss") && !shown.contains("p%3Ass"),
            "{shown}"
        );
        assert!(!shown.contains("user"), "{shown}");
        let tls = SmtpUrl::parse("smtps://relay.example").unwrap();
        assert_eq!((tls.security, tls.port), (SmtpSecurity::Implicit, 465));
        assert_eq!(SmtpUrl::parse("smtp://h").unwrap().port, 587);
        assert!(SmtpUrl::parse("http://h").is_err());
        assert!(SmtpUrl::parse("smtp://h/path").is_err());
        let err = SmtpUrl::parse("smtp://u:secret@").unwrap_err().to_string();
        assert!(!err.contains("secret"));
    }

    #[test]
    fn links_sit_below_the_public_url_and_carry_the_token() {
        use crate::csrf::HttpUrl;
        let root = HttpUrl::parse("https://auth.example.com").unwrap();
        assert_eq!(
            link(&root, "/password/reset", "abc-_123"),
            "https://auth.example.com/password/reset?token=abc-_123"
        );
        let prefixed = HttpUrl::parse("https://example.com/auth/").unwrap();
        assert_eq!(
            link(&prefixed, "email/verify", "t+/="),
            "https://example.com/auth/email/verify?token=t%2B%2F%3D"
        );
    }

    #[test]
    fn retries_back_off_and_give_up() {
        use tessera_core::Retry;
        let policy = RetryPolicy::default();
        let t0 = Timestamp::from_unix_millis(1_000_000);
        assert_eq!(
            policy.after_failure(1, t0, t0),
            Retry::At(t0.plus(Duration::from_secs(30)))
        );
        assert_eq!(
            policy.after_failure(3, t0, t0),
            Retry::At(t0.plus(Duration::from_secs(120)))
        );
        assert_eq!(
            policy.after_failure(9, t0, t0),
            Retry::At(t0.plus(Duration::from_secs(3600)))
        );
        assert_eq!(policy.after_failure(10, t0, t0), Retry::GiveUp);
        let late = t0.plus(Duration::from_secs(24 * 3600));
        assert_eq!(policy.after_failure(2, t0, late), Retry::GiveUp);
    }
}
