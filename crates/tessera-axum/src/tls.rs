//! The HTTPS listener: rustls (ring; TLS 1.2 and 1.3, nothing older), with
//! a certificate that is replaced while the server runs.
//!
//! [`ServerTls::new`] takes a [`CertificateSource`] (the binary: the
//! `tls_cert` and `tls_key` files, SIGHUP and a watch on the files), loads
//! the first certificate from it (a bad one fails start-up) and then waits
//! for the source to say it changed. A new certificate is parsed and checked
//! (its key must match it) before it replaces the old one; one that fails
//! is refused with an error log and the old one kept. Each handshake takes
//! the certificate current at that moment: connections already open keep
//! theirs, new ones get the new one.
//!
//! The accept loop ([`connections::serve_tls`](crate::connections::serve_tls))
//! runs each handshake within `header_read_timeout`, so a client that
//! stalls in the handshake is dropped as one that stalls in its request
//! head is. A plain HTTP request to the HTTPS port gets a plain-text
//! `400` with a JSON body saying so (as nginx does), then the connection closes.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_io_timeout::TimeoutStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// A certificate chain and its private key, as PEM text (the key is never
/// shown by `Debug`).
#[derive(Clone)]
pub struct PemIdentity {
    /// The end-entity certificate first, then any intermediates.
    pub cert_chain: Vec<u8>,
    /// The private key: PKCS#8, PKCS#1 (RSA) or SEC1 (EC).
    pub private_key: Vec<u8>,
}

impl std::fmt::Debug for PemIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PemIdentity")
            .field(
                "cert_chain",
                &format_args!("{} bytes", self.cert_chain.len()),
            )
            .field("private_key", &"<redacted>")
            .finish()
    }
}

/// Where the HTTPS listener's certificate comes from, and when to look
/// again (the binary: two files, SIGHUP, a watch on the files).
#[async_trait::async_trait]
pub trait CertificateSource: Send + 'static {
    /// The certificate chain and key as they are now.
    ///
    /// # Errors
    ///
    /// What kept them from being read (it is logged; say which file).
    fn load(&mut self) -> Result<PemIdentity, String>;

    /// Completes when the certificate may have changed; [`load`] is
    /// called then.
    ///
    /// [`load`]: CertificateSource::load
    async fn changed(&mut self);
}

/// A certificate that cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsError {
    /// The source could not be read.
    #[error("{0}")]
    Source(String),
    /// The certificate text holds no PEM certificate.
    #[error("the certificate file holds no PEM certificate")]
    NoCertificate,
    /// The certificate text is not valid PEM.
    #[error("the certificate file is not valid PEM: {0}")]
    Certificate(String),
    /// The key text holds no PEM private key.
    #[error("the key file holds no PEM private key (PKCS#8, PKCS#1 or SEC1)")]
    NoKey,
    /// The key is not valid or not of a supported kind.
    #[error("the private key cannot be used: {0}")]
    Key(String),
    /// The key is not the certificate's.
    #[error("the private key does not belong to the certificate")]
    Mismatch,
}

/// The HTTPS listener's TLS: its configuration and the task that replaces
/// its certificate when the source changes (stopped when this is dropped).
pub struct ServerTls {
    acceptor: TlsAcceptor,
    current: Arc<Current>,
    reload: JoinHandle<()>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("certificate", &self.current.fingerprint())
            .finish_non_exhaustive()
    }
}

impl Drop for ServerTls {
    fn drop(&mut self) {
        self.reload.abort();
    }
}

impl ServerTls {
    /// Loads the first certificate from `source` and starts watching it.
    /// Call it within a Tokio runtime.
    ///
    /// # Errors
    ///
    /// A first certificate that cannot be read or served.
    pub fn new(mut source: Box<dyn CertificateSource>) -> Result<Self, TlsError> {
        let provider = Arc::new(ring_provider());
        let first = certified_key(&source.load().map_err(TlsError::Source)?, &provider)?;
        let current = Arc::new(Current(RwLock::new(Arc::new(first))));
        tracing::info!(
            certificate = %current.fingerprint(),
            "TLS certificate loaded (sha256 of the end-entity certificate)"
        );
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| TlsError::Key(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(&current) as Arc<dyn ResolvesServerCert>);
        // The server speaks HTTP/1.1 only (see connections.rs).
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let reload = tokio::spawn(reload(source, Arc::clone(&current), provider));
        Ok(Self {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            current,
            reload,
        })
    }

    /// The SHA-256 of the end-entity certificate served now (hex).
    pub fn fingerprint(&self) -> String {
        self.current.fingerprint()
    }

    /// The TLS handshake on an accepted connection, within `within`
    /// (counted from now, so it covers a client that sends nothing as well
    /// as one that stalls half way). `None` when the connection ended: the
    /// handshake failed or timed out, or it was plain HTTP (answered 400).
    pub(crate) async fn handshake(
        &self,
        stream: Pin<Box<TimeoutStream<TcpStream>>>,
        within: Duration,
        peer: SocketAddr,
    ) -> Option<TlsStream<Pin<Box<TimeoutStream<TcpStream>>>>> {
        let attempt = async {
            let mut first = [0u8; 1];
            if stream.get_ref().peek(&mut first).await? == 0 {
                return Ok(None);
            }
            if first[0] != TLS_HANDSHAKE_RECORD {
                if first[0].is_ascii_uppercase() {
                    answer_plain_http(stream).await?;
                }
                return Ok(None);
            }
            self.acceptor.accept(stream).await.map(Some)
        };
        match tokio::time::timeout(within, attempt).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => {
                tracing::debug!(%peer, %error, "TLS handshake failed");
                None
            }
            Err(_) => {
                tracing::debug!(%peer, "TLS handshake not done within header_read_timeout: dropped");
                None
            }
        }
    }
}

/// rustls's ring provider: the one lettre already brings (0.23.48 deprecates
/// it only because ring has no post-quantum key exchange).
#[allow(deprecated)]
pub fn ring_provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// The first byte of a TLS record carrying a handshake message (every
/// ClientHello starts with it).
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// What a plain HTTP request to the HTTPS port gets.
const PLAIN_HTTP_ANSWER: &[u8] = b"HTTP/1.1 400 Bad Request\r\n\
content-type: application/json\r\n\
content-length: 91\r\n\
connection: close\r\n\
\r\n\
{\"error\":{\"code\":\"https_required\",\"message\":\"this port speaks HTTPS: use an https:// URL\"}}";

/// Reads a plain HTTP request head (so that closing does not reset the
/// connection before the client reads the answer), answers 400, closes.
async fn answer_plain_http<S>(mut stream: S) -> std::io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut head = vec![0u8; 16 * 1024];
    let mut read = 0;
    while read < head.len() {
        let n = stream.read(&mut head[read..]).await?;
        if n == 0 {
            return Ok(());
        }
        read += n;
        if head[..read].windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    stream.write_all(PLAIN_HTTP_ANSWER).await?;
    stream.shutdown().await
}

/// A certificate chain and key checked to belong together.
fn certified_key(
    identity: &PemIdentity,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let chain = CertificateDer::pem_slice_iter(&identity.cert_chain)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Certificate(e.to_string()))?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate);
    }
    let key = PrivateKeyDer::from_pem_slice(&identity.private_key).map_err(|e| match e {
        pem::Error::NoItemsFound => TlsError::NoKey,
        other => TlsError::Key(other.to_string()),
    })?;
    CertifiedKey::from_der(chain, key, provider).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => TlsError::Mismatch,
        other => TlsError::Key(other.to_string()),
    })
}

/// The certificate handshakes take now.
#[derive(Debug)]
struct Current(RwLock<Arc<CertifiedKey>>);

impl Current {
    fn get(&self) -> Arc<CertifiedKey> {
        Arc::clone(&self.0.read().unwrap_or_else(PoisonError::into_inner))
    }

    fn replace(&self, key: CertifiedKey) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(key);
    }

    fn fingerprint(&self) -> String {
        let key = self.get();
        key.cert
            .first()
            .map(|cert| {
                Sha256::digest(cert.as_ref())
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl ResolvesServerCert for Current {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.get())
    }
}

async fn reload(
    mut source: Box<dyn CertificateSource>,
    current: Arc<Current>,
    provider: Arc<CryptoProvider>,
) {
    loop {
        source.changed().await;
        let loaded = source
            .load()
            .map_err(TlsError::Source)
            .and_then(|identity| certified_key(&identity, &provider));
        match loaded {
            Ok(key) => {
                current.replace(key);
                tracing::info!(
                    certificate = %current.fingerprint(),
                    "TLS certificate reloaded: new connections get it"
                );
            }
            Err(error) => tracing::error!(
                %error,
                certificate = %current.fingerprint(),
                "new TLS certificate refused: still serving the previous one"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plain_http_answer_declares_its_length() {
        let text = std::str::from_utf8(PLAIN_HTTP_ANSWER).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["error"]["code"], "https_required");
    }

    #[test]
    fn garbage_is_refused_before_it_is_served() {
        let provider = ring_provider();
        let identity = |cert: &str, key: &str| PemIdentity {
            cert_chain: cert.as_bytes().to_vec(),
            private_key: key.as_bytes().to_vec(),
        };
        assert_eq!(
            certified_key(&identity("", ""), &provider).unwrap_err(),
            TlsError::NoCertificate
        );
        let cert = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        assert_eq!(
            certified_key(&identity(cert, "no key here"), &provider).unwrap_err(),
            TlsError::NoKey
        );
    }
}
