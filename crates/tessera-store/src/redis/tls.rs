//! TLS to Redis (`rediss://`, `rediss-cluster://`, `rediss-sentinel://`):
//! rustls on ring, the server's certificate always verified, against
//! Mozilla's roots or the CA an operator gives; optionally a client
//! certificate (mTLS) and a server name other than the URL's host.

use std::sync::Arc;

use fred::types::config::{HostMapping, TlsConfig, TlsConnector, TlsHostMapping};
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// What can be wrong with the TLS options.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The CA file holds no certificate, or one rustls refuses.
    #[error("no usable CA certificate in the PEM: {0}")]
    Ca(String),
    /// The client certificate chain is missing or unreadable.
    #[error("no usable client certificate in the PEM: {0}")]
    ClientCertificate(String),
    /// The client key is missing or unreadable.
    #[error("no usable private key in the PEM: {0}")]
    ClientKey(String),
    /// The key does not fit the certificate, or rustls refused the set-up.
    #[error("TLS set-up: {0}")]
    Config(String),
    /// The server name is neither a DNS name nor an IP address.
    #[error("not a valid TLS server name: {0:?}")]
    ServerName(String),
}

/// How tessera talks TLS to Redis. Certificates are always verified: there
/// is no switch to turn that off.
#[derive(Clone, Default)]
pub struct RedisTls {
    /// Trusted roots; `None`: Mozilla's (`webpki-roots`).
    roots: Option<Vec<CertificateDer<'static>>>,
    /// A client certificate chain and its key, for servers that require
    /// one (`tls-auth-clients yes`).
    client: Option<(Vec<CertificateDer<'static>>, Arc<PrivateKeyDer<'static>>)>,
    /// The name the server's certificate must carry, when it is not the
    /// host the URL (or the cluster) names.
    server_name: Option<String>,
}

impl std::fmt::Debug for RedisTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisTls")
            .field(
                "roots",
                &match &self.roots {
                    Some(roots) => format!("{} from a CA file", roots.len()),
                    None => "Mozilla's".to_owned(),
                },
            )
            .field("client_certificate", &self.client.is_some())
            .field("server_name", &self.server_name)
            .finish()
    }
}

impl PartialEq for RedisTls {
    fn eq(&self, other: &Self) -> bool {
        self.roots == other.roots
            && self.server_name == other.server_name
            && match (&self.client, &other.client) {
                (None, None) => true,
                (Some((a, ka)), Some((b, kb))) => a == b && ka.secret_der() == kb.secret_der(),
                _ => false,
            }
    }
}

impl Eq for RedisTls {}

impl RedisTls {
    /// Mozilla's roots, no client certificate, the URL's host as the name.
    pub fn new() -> Self {
        Self::default()
    }

    /// Trusts only the CA certificates of this PEM (a private CA) instead
    /// of Mozilla's roots.
    ///
    /// # Errors
    ///
    /// [`TlsError::Ca`] when it holds no certificate.
    pub fn with_ca_pem(mut self, pem: &[u8]) -> Result<Self, TlsError> {
        let roots = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TlsError::Ca(e.to_string()))?;
        if roots.is_empty() {
            return Err(TlsError::Ca("no CERTIFICATE block".into()));
        }
        let mut store = RootCertStore::empty();
        for root in &roots {
            store
                .add(root.clone())
                .map_err(|e| TlsError::Ca(e.to_string()))?;
        }
        self.roots = Some(roots);
        Ok(self)
    }

    /// Presents this certificate chain and key to servers that ask for a
    /// client certificate (mTLS).
    ///
    /// # Errors
    ///
    /// [`TlsError::ClientCertificate`] or [`TlsError::ClientKey`] when a
    /// PEM holds none.
    pub fn with_client_pem(mut self, cert_pem: &[u8], key_pem: &[u8]) -> Result<Self, TlsError> {
        let chain = CertificateDer::pem_slice_iter(cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TlsError::ClientCertificate(e.to_string()))?;
        if chain.is_empty() {
            return Err(TlsError::ClientCertificate("no CERTIFICATE block".into()));
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem)
            .map_err(|e| TlsError::ClientKey(e.to_string()))?;
        self.client = Some((chain, Arc::new(key)));
        Ok(self)
    }

    /// Expects the servers' certificates to name `name` rather than the
    /// host they are reached at (an IP address, or a cluster node's
    /// announced address).
    ///
    /// # Errors
    ///
    /// [`TlsError::ServerName`] when `name` is not a DNS name or IP address.
    pub fn with_server_name(mut self, name: &str) -> Result<Self, TlsError> {
        ServerName::try_from(name.to_owned()).map_err(|_| TlsError::ServerName(name.into()))?;
        self.server_name = Some(name.to_owned());
        Ok(self)
    }

    /// The name certificates must carry, if not the host's.
    pub(crate) fn server_name(&self) -> Option<&str> {
        self.server_name.as_deref()
    }

    /// fred's TLS configuration.
    pub(crate) fn fred_config(&self) -> Result<TlsConfig, TlsError> {
        let mut roots = RootCertStore::empty();
        match &self.roots {
            Some(certs) => {
                for cert in certs {
                    roots
                        .add(cert.clone())
                        .map_err(|e| TlsError::Ca(e.to_string()))?;
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        // ring, as lettre's SMTP already uses (one crypto library in the
        // binary, no C toolchain for aws-lc). rustls 0.23.48 deprecated it
        // for lacking post-quantum key exchange; classical ECDHE stays.
        #[allow(deprecated)]
        let provider = rustls::crypto::ring::default_provider();
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_root_certificates(roots);
        let config = match &self.client {
            Some((chain, key)) => builder
                .with_client_auth_cert(chain.clone(), key.clone_key())
                .map_err(|e| TlsError::Config(e.to_string()))?,
            None => builder.with_no_client_auth(),
        };
        let hostnames = match &self.server_name {
            Some(name) => TlsHostMapping::Custom(Arc::new(FixedName(name.clone()))),
            None => TlsHostMapping::None,
        };
        Ok(TlsConfig {
            connector: TlsConnector::from(config),
            hostnames,
        })
    }
}

/// Every cluster node's certificate names the same host.
#[derive(Debug)]
struct FixedName(String);

impl HostMapping for FixedName {
    fn map(&self, _ip: &std::net::IpAddr, _default_host: &str) -> Option<String> {
        Some(self.0.clone())
    }
}
