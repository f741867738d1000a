//! The native HTTPS listener (`tls_cert`, `tls_key`): a CA made by the
//! test, a client that trusts only it, certificates renewed under a running
//! server (SIGHUP, or only the file watch) while connections opened before
//! keep working.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::{HeaderMap, Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tessera_testkit::{Issued, TestCa};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};

use crate::helpers::*;

/// One HTTPS connection (HTTP/1.1, kept alive) and the certificate the
/// server showed on it.
struct Https {
    sender: SendRequest<Full<Bytes>>,
    certificate: Vec<u8>,
    /// What a browser sends as `Host`.
    host: String,
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

fn client_config(ca: &Path) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    #[allow(deprecated)]
    let provider = rustls::crypto::ring::default_provider();
    rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth()
}

impl Https {
    /// Connects to `addr` as `localhost`, trusting only `ca`.
    async fn connect(addr: SocketAddr, ca: &Path) -> std::io::Result<Self> {
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        let connector = TlsConnector::from(Arc::new(client_config(ca)));
        let tls = connector
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await?;
        let certificate = tls.get_ref().1.peer_certificates().unwrap()[0].to_vec();
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(std::io::Error::other)?;
        tokio::spawn(connection);
        Ok(Self {
            sender,
            certificate,
            host: format!("localhost:{}", addr.port()),
        })
    }

    async fn send(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> Answer {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", &self.host);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let body = match body {
            Some(json) => {
                request = request.header("content-type", "application/json");
                Full::new(Bytes::from(json.to_string()))
            }
            None => Full::new(Bytes::new()),
        };
        let response = self
            .sender
            .send_request(request.body(body).unwrap())
            .await
            .expect("the request is answered");
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes();
        Answer {
            status: parts.status,
            headers: parts.headers,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        }
    }

    async fn get(&mut self, path: &str) -> Answer {
        self.send(Method::GET, path, &[], None).await
    }
}

fn der(issued: &Issued) -> Vec<u8> {
    CertificateDer::from_pem_file(&issued.cert)
        .unwrap()
        .to_vec()
}

/// The files the server is configured with, in a directory of their own.
struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new(first: &Issued) -> Self {
        let files = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        files.install(&first.cert, &first.key);
        files
    }

    fn cert(&self) -> std::path::PathBuf {
        self.dir.path().join("cert.pem")
    }

    fn key(&self) -> std::path::PathBuf {
        self.dir.path().join("key.pem")
    }

    /// Replaces both files, each atomically (as certbot or cert-manager do).
    fn install(&self, cert: &Path, key: &Path) {
        for (from, to) in [(key, self.key()), (cert, self.cert())] {
            let tmp = to.with_extension("tmp");
            std::fs::copy(from, &tmp).unwrap();
            std::fs::rename(&tmp, &to).unwrap();
        }
    }
}

fn start(files: &Files, extra: &[(&str, &str)]) -> Server {
    let mut options = Options::default()
        .env("TESSERA_TLS_CERT", files.cert().display())
        .env("TESSERA_TLS_KEY", files.key().display());
    for (key, value) in extra {
        options = options.env(key, value);
    }
    let server = Server::start_with(options);
    assert!(server.wait_for_log("listening on https://", Duration::from_secs(5)));
    server
}

/// Connects anew until the server shows `expected` (or `within` passes).
async fn wait_for_certificate(server: &Server, ca: &Path, expected: &[u8], within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let fresh = Https::connect(server.addr, ca).await.unwrap();
        if fresh.certificate == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the new certificate was not served within {within:?}:\n{}",
            server.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn https_serves_logins_with_secure_cookies_and_answers_plain_http_with_400() {
    let ca = TestCa::new("tessera https test CA");
    let first = ca.issue(&["localhost"], 1, 2);
    let files = Files::new(&first);
    let server = start(&files, &[]);

    let mut https = Https::connect(server.addr, &ca.cert()).await.unwrap();
    assert_eq!(https.certificate, der(&first));
    assert_eq!(https.get("/health").await.status, StatusCode::OK);

    // A browser's login: Origin is the https origin it used.
    let origin = format!("https://localhost:{}", server.addr.port());
    let login = https
        .send(
            Method::POST,
            "/login",
            &[("origin", &origin), ("sec-fetch-site", "same-origin")],
            Some(serde_json::json!({"email": "alice@example.com", "password": PASSWORD})),
        )
        .await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.body);
    let set_cookie = set_cookie_header(&login.headers).expect("a session cookie");
    assert!(set_cookie.contains("; Secure"), "{set_cookie}");
    let cookie = session_cookie(&login.headers).unwrap();
    let profile = https
        .send(
            Method::GET,
            "/profile",
            &[("cookie", &format!("{COOKIE}={cookie}"))],
            None,
        )
        .await;
    assert_eq!(profile.status, StatusCode::OK);
    assert_eq!(profile.body["user"]["email"], "alice@example.com");

    // Plain HTTP to the HTTPS port: a JSON 400, then the connection closes.
    let mut plain = TcpStream::connect(server.addr).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    plain
        .write_all(b"GET /health HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    plain
        .read_to_string(&mut answer)
        .expect("answered and closed");
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
    let body: Value = serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(body["error"]["code"], "https_required");

    // A client that does not trust the CA gets no connection.
    let other = TestCa::new("another CA");
    assert!(Https::connect(server.addr, &other.cert()).await.is_err());
    // And the server still serves.
    let mut again = Https::connect(server.addr, &ca.cert()).await.unwrap();
    assert_eq!(again.get("/health").await.status, StatusCode::OK);
}

#[tokio::test]
async fn sighup_serves_a_renewed_certificate_and_connections_opened_before_keep_working() {
    let ca = TestCa::new("tessera https test CA");
    let first = ca.issue(&["localhost"], 1, 2);
    let renewed = ca.issue(&["localhost"], 2, 90);
    let files = Files::new(&first);
    let server = start(&files, &[]);

    let mut before = Https::connect(server.addr, &ca.cert()).await.unwrap();
    assert_eq!(before.certificate, der(&first));
    assert_eq!(before.get("/health").await.status, StatusCode::OK);

    files.install(&renewed.cert, &renewed.key);
    server.signal("HUP");
    assert!(
        server.wait_for_log("TLS certificate reloaded", Duration::from_secs(5)),
        "{}",
        server.logs()
    );
    let after = Https::connect(server.addr, &ca.cert()).await.unwrap();
    assert_eq!(after.certificate, der(&renewed), "serial 2, 90 days");
    // The connection opened before: same TLS session, next request fine.
    assert_eq!(before.get("/health").await.status, StatusCode::OK);
    assert_eq!(before.certificate, der(&first));

    // A certificate with another certificate's key is refused; the
    // renewed one stays.
    let mismatched = ca.issue(&["localhost"], 3, 30);
    files.install(&mismatched.cert, &renewed.key);
    server.signal("HUP");
    assert!(
        server.wait_for_log(
            "new TLS certificate refused: still serving the previous one",
            Duration::from_secs(5)
        ),
        "{}",
        server.logs()
    );
    assert!(server.logs().contains("does not belong to the certificate"));
    let still = Https::connect(server.addr, &ca.cert()).await.unwrap();
    assert_eq!(still.certificate, der(&renewed));
}

#[tokio::test]
async fn the_file_watch_alone_serves_a_renewed_certificate() {
    let ca = TestCa::new("tessera https test CA");
    let first = ca.issue(&["localhost"], 1, 2);
    let renewed = ca.issue(&["localhost"], 2, 90);
    let files = Files::new(&first);
    let server = start(&files, &[]);

    let mut before = Https::connect(server.addr, &ca.cert()).await.unwrap();
    assert_eq!(before.get("/health").await.status, StatusCode::OK);
    files.install(&renewed.cert, &renewed.key);
    // Two polls of 2 s (the change, then the files holding still).
    wait_for_certificate(&server, &ca.cert(), &der(&renewed), Duration::from_secs(10)).await;
    assert_eq!(before.get("/health").await.status, StatusCode::OK);
    assert_eq!(before.certificate, der(&first));
    assert!(!server.logs().contains("refused"), "{}", server.logs());
}

/// `openssl s_client` against the server with extra `args`; its output.
fn s_client(addr: SocketAddr, ca: &Path, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &addr.to_string(),
            "-servername",
            "localhost",
        ])
        .arg("-CAfile")
        .arg(ca)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("openssl is installed");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test]
async fn tls_1_1_is_refused_and_a_stalled_handshake_is_dropped() {
    let ca = TestCa::new("tessera https test CA");
    let first = ca.issue(&["localhost"], 1, 2);
    let files = Files::new(&first);
    let server = start(&files, &[("TESSERA_HEADER_READ_TIMEOUT", "1")]);

    let (ok, text) = s_client(server.addr, &ca.cert(), &["-tls1_2"]);
    assert!(ok && text.contains("Verify return code: 0 (ok)"), "{text}");
    // OpenSSL itself only offers TLS 1.1 at security level 0.
    let (ok, text) = s_client(
        server.addr,
        &ca.cert(),
        &["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"],
    );
    assert!(!ok, "{text}");
    // The server's alert (rustls answers a ClientHello offering nothing
    // newer than TLS 1.1 with handshake_failure), not a client-side refusal.
    assert!(
        text.contains("SSL alert number") && !text.contains("no protocols available"),
        "the server refuses TLS 1.1 with an alert: {text}"
    );

    // A client that starts a handshake and stalls, and one that says
    // nothing: both dropped after header_read_timeout (1 s).
    for opening in [&[0x16u8, 0x03, 0x01, 0x00, 0xc8][..], &[][..]] {
        let started = Instant::now();
        let mut stalled = TcpStream::connect(server.addr).unwrap();
        stalled
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stalled.write_all(opening).unwrap();
        let mut buffer = [0u8; 64];
        let read = stalled.read(&mut buffer);
        assert!(
            matches!(read, Ok(0))
                || read.is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
            "closed by the server"
        );
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_secs(5),
            "dropped after {took:?}"
        );
    }
}

#[test]
fn a_missing_or_unusable_certificate_stops_start_up_naming_the_setting() {
    let ca = TestCa::new("tessera https test CA");
    let first = ca.issue(&["localhost"], 1, 2);
    let other = ca.issue(&["localhost"], 2, 2);
    let data = DataDir::new();
    for (cert, key, says) in [
        (Path::new("/nonexistent/cert.pem"), &first.key, "tls_cert"),
        (first.cert.as_path(), &other.key, "does not belong"),
    ] {
        let out = data.cli_with_env(
            &["serve", "--listen", "127.0.0.1:0"],
            "",
            &[
                ("TESSERA_TLS_CERT", cert.to_str().unwrap()),
                ("TESSERA_TLS_KEY", key.to_str().unwrap()),
            ],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(stderr.contains(says), "{stderr}");
    }
    let out = data.cli_with_env(
        &["serve", "--listen", "127.0.0.1:0"],
        "",
        &[("TESSERA_TLS_CERT", first.cert.to_str().unwrap())],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("tls_key"));
}
