//! Where rendered messages go: an SMTP relay (lettre, rustls, pooled) or a
//! directory of `.eml` files.

use std::path::PathBuf;
use std::time::Duration;

use lettre::message::{Mailbox, MultiPart, header};
use lettre::transport::smtp::PoolConfig;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use tessera_core::{MessageId, OutgoingMail};

use super::templates::Rendered;
use super::{MailTransport, SmtpConfig, SmtpSecurity};

/// A transport that could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// `mail_from` is not an address (`Name <user@host>` or `user@host`).
    #[error("mail_from is not a mail address: {0}")]
    From(String),
    /// The TLS settings (e.g. `smtp_tls_ca`) could not be used.
    #[error("smtp TLS: {0}")]
    Tls(String),
    /// The relay could not be reached, or refused the greeting, TLS or
    /// login ([`check_relay`]).
    #[error("smtp relay: {0}")]
    Relay(String),
}

/// Connects to the relay as the sender would (implicit TLS or STARTTLS,
/// the login, as `config` says), checks the connection with `NOOP` and
/// leaves, sending nothing: `tessera config check`. Within
/// `config.timeout` per step, and three times that in all.
///
/// # Errors
///
/// [`TransportError::Tls`] for unusable TLS settings,
/// [`TransportError::Relay`] when the relay cannot be reached or refuses.
pub async fn check_relay(config: &SmtpConfig) -> Result<(), TransportError> {
    let transport = smtp_transport(config)?;
    let deadline = config.timeout.saturating_mul(3);
    match tokio::time::timeout(deadline, transport.test_connection()).await {
        Ok(Ok(true)) => Ok(()),
        Ok(Ok(false)) => Err(TransportError::Relay(
            "the connection did not answer NOOP".into(),
        )),
        Ok(Err(error)) => Err(TransportError::Relay(error.to_string())),
        Err(_) => Err(TransportError::Relay(format!(
            "no answer within {deadline:?}"
        ))),
    }
}

/// Why one message was not sent.
#[derive(Debug)]
pub struct SendFailure {
    /// Trying again will not help (a 5xx answer, an unusable address).
    pub permanent: bool,
    /// What happened, for the outbox's `last_error` and the log (holds no
    /// secret: no link, no credential).
    pub reason: String,
}

impl SendFailure {
    fn transient(reason: impl Into<String>) -> Self {
        Self {
            permanent: false,
            reason: reason.into(),
        }
    }

    fn permanent(reason: impl Into<String>) -> Self {
        Self {
            permanent: true,
            reason: reason.into(),
        }
    }
}

/// A transport, ready to send.
pub(crate) enum Transport {
    /// `.eml` files in a directory.
    File(PathBuf),
    /// An SMTP relay, the longest one message may take, the pool's size.
    Smtp(AsyncSmtpTransport<Tokio1Executor>, Duration, usize),
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::File(dir) => f.debug_tuple("File").field(dir).finish(),
            Self::Smtp(..) => f.write_str("Smtp"),
        }
    }
}

impl Transport {
    /// The transport `config` names; `None` for `mail = none`.
    pub(crate) fn new(config: &MailTransport) -> Result<Option<Self>, TransportError> {
        Ok(match config {
            MailTransport::None => None,
            MailTransport::File { dir } => Some(Self::File(dir.clone())),
            // lettre's timeout bounds the connect and each command, but not
            // every read (a relay that accepts and never greets would hold
            // a send forever): the whole message gets a deadline too.
            MailTransport::Smtp(smtp) => Some(Self::Smtp(
                smtp_transport(smtp)?,
                smtp.timeout.saturating_mul(3),
                usize::try_from(smtp.pool_size.max(1)).unwrap_or(1),
            )),
        })
    }

    /// How many messages may be in flight at once: the SMTP pool's size (a
    /// relay is not flooded with connections), a few for files.
    pub(crate) fn concurrency(&self) -> usize {
        match self {
            Self::File(_) => 4,
            Self::Smtp(_, _, pool) => *pool,
        }
    }

    /// The longest one message may take (before the lease runs out).
    pub(crate) fn deadline(&self) -> Option<Duration> {
        match self {
            Self::File(_) => None,
            Self::Smtp(_, deadline, _) => Some(*deadline),
        }
    }

    /// Sends one message.
    pub(crate) async fn send(&self, id: MessageId, message: Message) -> Result<(), SendFailure> {
        match self {
            Self::File(dir) => write_eml(dir, id, &message.formatted()).await,
            Self::Smtp(smtp, ..) => smtp.send(message).await.map(|_| ()).map_err(|e| {
                let reason = match e.status() {
                    Some(code) => format!("smtp {code}: {e}"),
                    None => format!("smtp: {e}"),
                };
                if e.is_permanent() {
                    SendFailure::permanent(reason)
                } else {
                    SendFailure::transient(reason)
                }
            }),
        }
    }
}

/// The TLS mode and parameters `config` asks for (no connection, no task:
/// usable outside a runtime, for the start-up check).
pub(crate) fn tls(config: &SmtpConfig) -> Result<Tls, TransportError> {
    let url = &config.url;
    let tls_parameters = || {
        let mut builder = TlsParameters::builder(url.host.clone());
        if let Some(pem) = &config.tls_ca {
            let ca = Certificate::from_pem(pem).map_err(|e| TransportError::Tls(e.to_string()))?;
            builder = builder.add_root_certificate(ca);
        }
        builder
            .build_rustls()
            .map_err(|e| TransportError::Tls(e.to_string()))
    };
    Ok(match url.security {
        SmtpSecurity::Implicit => Tls::Wrapper(tls_parameters()?),
        SmtpSecurity::StartTls if config.insecure => Tls::None,
        SmtpSecurity::StartTls => Tls::Required(tls_parameters()?),
    })
}

/// The pooled SMTP client (spawns the pool's task: needs a runtime).
fn smtp_transport(
    config: &SmtpConfig,
) -> Result<AsyncSmtpTransport<Tokio1Executor>, TransportError> {
    let url = &config.url;
    let tls = tls(config)?;
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(url.host.clone())
        .port(url.port)
        .tls(tls)
        .timeout(Some(config.timeout))
        .pool_config(
            PoolConfig::new()
                .max_size(config.pool_size.max(1))
                .idle_timeout(Duration::from_secs(60)),
        );
    if let Some((user, password)) = &config.url.credentials {
        builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
    }
    Ok(builder.build())
}

/// The `From:` mailbox of `mail_from`.
///
/// # Errors
///
/// [`TransportError::From`] when it does not parse.
pub(crate) fn parse_from(from: &str) -> Result<Mailbox, TransportError> {
    from.parse::<Mailbox>()
        .map_err(|e| TransportError::From(e.to_string()))
}

/// The message for `mail`, rendered: text and HTML alternatives.
pub(crate) fn build(
    from: &Mailbox,
    mail: &OutgoingMail,
    rendered: Rendered,
) -> Result<Message, SendFailure> {
    let to: Mailbox = mail
        .to
        .as_str()
        .parse()
        .map_err(|e| SendFailure::permanent(format!("recipient is not a mail address: {e}")))?;
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(rendered.subject)
        .message_id(None)
        .header(header::MIME_VERSION_1_0)
        .header(AutoSubmitted)
        .multipart(MultiPart::alternative_plain_html(
            rendered.text,
            rendered.html,
        ))
        .map_err(|e| SendFailure::permanent(format!("cannot build the message: {e}")))
}

/// `Auto-Submitted: auto-generated` (RFC 3834): no out-of-office replies.
#[derive(Debug, Clone)]
struct AutoSubmitted;

impl header::Header for AutoSubmitted {
    fn name() -> header::HeaderName {
        header::HeaderName::new_from_ascii_str("Auto-Submitted")
    }

    fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self)
    }

    fn display(&self) -> header::HeaderValue {
        header::HeaderValue::new(Self::name(), "auto-generated".to_owned())
    }
}

/// Writes `bytes` to `<dir>/<millis>-<id>.eml` (through a temporary file,
/// so that a reader never sees half a message).
async fn write_eml(dir: &std::path::Path, id: MessageId, bytes: &[u8]) -> Result<(), SendFailure> {
    let io = |e: std::io::Error| SendFailure::transient(format!("mail file: {e}"));
    tokio::fs::create_dir_all(dir).await.map_err(io)?;
    let name = format!("{}-{id}.eml", tessera_core::Timestamp::now().unix_millis());
    let partial = dir.join(format!(".{name}.tmp"));
    tokio::fs::write(&partial, bytes).await.map_err(io)?;
    tokio::fs::rename(&partial, dir.join(name))
        .await
        .map_err(io)
}
