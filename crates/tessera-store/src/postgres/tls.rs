//! PostgreSQL over TLS with libpq's meaning of the URL's TLS parameters.
//!
//! tokio-postgres understands `sslmode=disable|prefer|require` only, and
//! verifies nothing itself: the connector decides. [`TlsUrl::parse`] takes
//! libpq's parameters out of the URL (`sslmode`, `sslrootcert`, `sslcert`,
//! `sslkey`), hands tokio-postgres the rest with the mode it knows, and
//! builds a rustls connector (`tokio-postgres-rustls`, ring) whose
//! certificate verifier does what libpq's mode promises:
//!
//! | `sslmode` | TLS | chain verified | host name verified |
//! | --- | --- | --- | --- |
//! | `disable` | never | | |
//! | `prefer` (libpq's default) | if the server offers it | no | no |
//! | `require` | always | only with `sslrootcert` (libpq: then as `verify-ca`) | no |
//! | `verify-ca` | always | yes | no |
//! | `verify-full` | always | yes | yes |
//!
//! The roots are `sslrootcert` (a PEM file), else the system's
//! (`rustls-native-certs`: the OS store, or `SSL_CERT_FILE`/`SSL_CERT_DIR`);
//! `sslrootcert=system` names the system's explicitly and, as in libpq 16,
//! needs `verify-full`. `sslcert` and `sslkey` (PEM) present a client
//! certificate. The handshake and the name checks are rustls's (webpki);
//! `verify-ca` runs webpki's chain check without the name check.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres::config::SslMode as WireMode;
use tokio_postgres_rustls::MakeRustlsConnect;

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Plain text only.
    Disable,
    /// TLS if the server offers it, unverified (libpq's default).
    Prefer,
    /// TLS always; unverified unless `sslrootcert` is given.
    Require,
    /// TLS always; the chain is verified, the host name is not.
    VerifyCa,
    /// TLS always; chain and host name verified.
    VerifyFull,
}

impl SslMode {
    fn parse(text: &str) -> Result<Self, String> {
        Ok(match text {
            "disable" => Self::Disable,
            "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            "allow" => {
                return Err(
                    "sslmode=allow is not supported (tokio-postgres cannot fall back from plain \
                     text to TLS): use prefer or stronger"
                        .into(),
                );
            }
            other => {
                return Err(format!(
                    "sslmode={other} is not one of disable, prefer, require, verify-ca, verify-full"
                ));
            }
        })
    }

    /// The name libpq gives it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }

    fn wire(self) -> WireMode {
        match self {
            Self::Disable => WireMode::Disable,
            Self::Prefer => WireMode::Prefer,
            Self::Require | Self::VerifyCa | Self::VerifyFull => WireMode::Require,
        }
    }
}

/// Where trusted roots come from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Roots {
    /// The OS store (`sslrootcert` unset, or `system`).
    System,
    /// A PEM file.
    File(PathBuf),
}

/// A PostgreSQL URL split into what tokio-postgres reads and libpq's TLS
/// parameters.
#[derive(Clone)]
pub struct TlsUrl {
    /// The URL without `sslrootcert`, `sslcert`, `sslkey`, and with an
    /// `sslmode` tokio-postgres knows.
    url: String,
    mode: SslMode,
    roots: Roots,
    root_cert_given: bool,
    client: Option<(PathBuf, PathBuf)>,
}

impl std::fmt::Debug for TlsUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password.
        f.debug_struct("TlsUrl")
            .field("mode", &self.mode)
            .field("roots", &self.roots)
            .field("client_certificate", &self.client.is_some())
            .finish_non_exhaustive()
    }
}

impl TlsUrl {
    /// Takes libpq's TLS parameters out of a `postgres://` or
    /// `postgresql://` URL. A `key=value` connection string is passed on
    /// as it is (tokio-postgres reads its `sslmode`; nothing is verified).
    ///
    /// # Errors
    ///
    /// A parameter that is invalid or does not fit with the others.
    pub fn parse(url: &str) -> Result<Self, String> {
        let is_url = url.starts_with("postgres://") || url.starts_with("postgresql://");
        let (base, query) = match url.split_once('?') {
            Some((base, query)) if is_url => (base, query),
            _ => (url, ""),
        };
        let mut mode = None;
        let mut root_cert = None;
        let mut cert = None;
        let mut key = None;
        let mut kept = url::form_urlencoded::Serializer::new(String::new());
        let mut kept_any = false;
        for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
            match &*name {
                "sslmode" => mode = Some(SslMode::parse(&value)?),
                "sslrootcert" => root_cert = Some(value.into_owned()),
                "sslcert" => cert = Some(PathBuf::from(&*value)),
                "sslkey" => key = Some(PathBuf::from(&*value)),
                _ => {
                    kept.append_pair(&name, &value);
                    kept_any = true;
                }
            }
        }
        let mode = mode.unwrap_or(SslMode::Prefer);
        let root_cert_given = root_cert.is_some();
        let roots = match root_cert.as_deref() {
            None | Some("system") => Roots::System,
            Some(path) => Roots::File(PathBuf::from(path)),
        };
        if root_cert.as_deref() == Some("system") && mode != SslMode::VerifyFull {
            return Err(format!(
                "sslrootcert=system needs sslmode=verify-full (as in libpq), not {}",
                mode.name()
            ));
        }
        let client = match (cert, key) {
            (None, None) => None,
            (Some(cert), Some(key)) => Some((cert, key)),
            _ => return Err("sslcert and sslkey go together".into()),
        };
        let url = if is_url {
            if mode != SslMode::Prefer {
                kept.append_pair("sslmode", mode.wire_name());
                kept_any = true;
            }
            let query = kept.finish();
            if kept_any {
                format!("{base}?{query}")
            } else {
                base.to_owned()
            }
        } else {
            url.to_owned()
        };
        Ok(Self {
            url,
            mode,
            roots,
            root_cert_given,
            client,
        })
    }

    /// What tokio-postgres is to read.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The mode asked for.
    pub fn mode(&self) -> SslMode {
        self.mode
    }

    /// The connector that verifies what the mode promises.
    ///
    /// # Errors
    ///
    /// A root, certificate or key file that cannot be read or used (named).
    pub fn connector(&self) -> Result<MakeRustlsConnect, String> {
        let provider = Arc::new(ring_provider());
        let verifier: Arc<dyn ServerCertVerifier> = match self.mode {
            SslMode::Disable | SslMode::Prefer => Arc::new(LibpqVerifier {
                roots: None,
                provider: Arc::clone(&provider),
            }),
            SslMode::Require if !self.root_cert_given => Arc::new(LibpqVerifier {
                roots: None,
                provider: Arc::clone(&provider),
            }),
            SslMode::Require | SslMode::VerifyCa => Arc::new(LibpqVerifier {
                roots: Some(Arc::new(self.roots()?)),
                provider: Arc::clone(&provider),
            }),
            SslMode::VerifyFull => WebPkiServerVerifier::builder_with_provider(
                Arc::new(self.roots()?),
                Arc::clone(&provider),
            )
            .build()
            .map_err(|e| format!("sslrootcert: {e}"))?,
        };
        let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let config = match &self.client {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                let chain = CertificateDer::pem_file_iter(cert)
                    .and_then(Iterator::collect::<Result<Vec<_>, _>>)
                    .map_err(|e| format!("sslcert {}: {e}", cert.display()))?;
                let key = PrivateKeyDer::from_pem_file(key)
                    .map_err(|e| format!("sslkey {}: {e}", key.display()))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| format!("sslcert and sslkey: {e}"))?
            }
        };
        Ok(MakeRustlsConnect::new(config))
    }

    fn roots(&self) -> Result<RootCertStore, String> {
        let mut store = RootCertStore::empty();
        match &self.roots {
            Roots::File(path) => {
                let certs = read_certs(path)?;
                let (added, _) = store.add_parsable_certificates(certs);
                if added == 0 {
                    return Err(format!(
                        "sslrootcert {}: no usable certificate in it",
                        path.display()
                    ));
                }
            }
            Roots::System => {
                let found = rustls_native_certs::load_native_certs();
                store.add_parsable_certificates(found.certs);
                if store.is_empty() {
                    return Err(format!(
                        "sslmode={} needs trusted roots: the system has none ({}); set sslrootcert",
                        self.mode.name(),
                        found.errors.first().map_or_else(
                            || "no certificates found".to_owned(),
                            ToString::to_string
                        )
                    ));
                }
            }
        }
        Ok(store)
    }

    /// Adds what the mode means to a connection error, so that the
    /// operator learns which parameter to look at.
    pub fn explain(&self, error: &str) -> String {
        let lower = error.to_ascii_lowercase();
        let hint = if lower.contains("notvalidforname") || lower.contains("not valid for name") {
            Some(
                "the server's certificate does not name the host in the URL: sslmode=verify-full \
                 checks it (verify-ca does not)",
            )
        } else if lower.contains("unknownissuer") || lower.contains("unknown issuer") {
            Some(
                "the server's certificate is not signed by a trusted root: set sslrootcert to \
                 its CA (or fix the server's chain)",
            )
        } else if lower.contains("no encryption") || lower.contains("ssl off") {
            (self.mode == SslMode::Disable).then_some(
                "the server refuses plain-text connections: use sslmode=require or stronger",
            )
        } else if lower.contains("server does not support tls")
            || lower.contains("server does not support ssl")
        {
            Some("the server does not offer TLS but sslmode asks for it")
        } else {
            None
        };
        match hint {
            Some(hint) => format!("{error} ({hint}; sslmode={})", self.mode.name()),
            None => error.to_owned(),
        }
    }
}

impl SslMode {
    fn wire_name(self) -> &'static str {
        match self.wire() {
            WireMode::Disable => "disable",
            WireMode::Prefer => "prefer",
            _ => "require",
        }
    }
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|e| format!("sslrootcert {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "sslrootcert {}: no PEM certificate in it",
            path.display()
        ));
    }
    Ok(certs)
}

/// rustls's ring provider, the one the rest of tessera uses (0.23.48
/// deprecates it only for its lack of post-quantum key exchange).
#[allow(deprecated)]
fn ring_provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// The certificate check of `prefer`, `require` and `verify-ca` (libpq's
/// meanings): with `roots`, the chain must lead to a trusted root
/// (webpki's check, validity dates included) and the name is not looked at
/// (`verify-ca`, and `require` with `sslrootcert`); without, the
/// certificate is not checked (`prefer`, and `require` without
/// `sslrootcert`). Either way the handshake signature is verified, so the
/// connection is bound to the key the server showed.
#[derive(Debug)]
struct LibpqVerifier {
    roots: Option<Arc<RootCertStore>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for LibpqVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(roots) = &self.roots {
            let cert = ParsedCertificate::try_from(end_entity)?;
            rustls::client::verify_server_cert_signed_by_trust_anchor(
                &cert,
                roots,
                intermediates,
                now,
                self.provider.signature_verification_algorithms.all,
            )?;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libpq_parameters_are_taken_out_and_the_mode_translated() {
        let parsed = TlsUrl::parse(
            "postgres://u:p@db.example.com:5432/app?sslmode=verify-full&sslrootcert=/etc/ca.pem&application_name=x",
        )
        .unwrap();
        assert_eq!(parsed.mode(), SslMode::VerifyFull);
        assert_eq!(parsed.roots, Roots::File(PathBuf::from("/etc/ca.pem")));
        assert_eq!(
            parsed.url(),
            "postgres://u:p@db.example.com:5432/app?application_name=x&sslmode=require"
        );
        let plain = TlsUrl::parse("postgres://u@h/db").unwrap();
        assert_eq!(plain.mode(), SslMode::Prefer, "libpq's default");
        assert_eq!(plain.url(), "postgres://u@h/db");
        let ca = TlsUrl::parse("postgresql://h/db?sslmode=verify-ca").unwrap();
        assert_eq!(ca.roots, Roots::System);
        assert_eq!(ca.url(), "postgresql://h/db?sslmode=require");
        assert_eq!(
            TlsUrl::parse("postgres://h/db?sslmode=disable")
                .unwrap()
                .url(),
            "postgres://h/db?sslmode=disable"
        );
    }

    #[test]
    fn what_libpq_refuses_is_refused() {
        for (url, says) in [
            ("postgres://h/db?sslmode=verify", "not one of"),
            ("postgres://h/db?sslmode=allow", "allow"),
            (
                "postgres://h/db?sslmode=require&sslrootcert=system",
                "verify-full",
            ),
            ("postgres://h/db?sslcert=/c.pem", "sslkey"),
        ] {
            let error = TlsUrl::parse(url).unwrap_err();
            assert!(error.contains(says), "{url}: {error}");
        }
    }

    #[test]
    fn a_missing_root_file_is_named() {
        let url =
            TlsUrl::parse("postgres://h/db?sslmode=verify-ca&sslrootcert=/nonexistent/ca.pem")
                .unwrap();
        let error = url.connector().err().unwrap();
        assert!(error.contains("sslrootcert /nonexistent/ca.pem"), "{error}");
    }

    #[test]
    fn the_debug_form_shows_no_url() {
        let url = TlsUrl::parse("postgres://u:secret@h/db?sslmode=require").unwrap();
        assert!(!format!("{url:?}").contains("secret"));
    }
}
