//! A certificate authority made for one test, with the `openssl` command
//! (no crate: the lab links this crate into the binary): a root, and leaf
//! certificates it signs for the names a test asks for.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// A throwaway CA: an EC P-256 root in a temporary directory.
#[derive(Debug)]
pub struct TestCa {
    dir: tempfile::TempDir,
    name: String,
    issued: AtomicU32,
}

/// A leaf certificate and its key, as PEM files.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The certificate (the leaf only).
    pub cert: PathBuf,
    /// Its private key (PKCS#8).
    pub key: PathBuf,
}

/// Runs `openssl ARGS` in `dir`.
fn openssl(dir: &Path, args: &[&str]) -> io::Result<()> {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .map_err(|e| io::Error::new(e.kind(), format!("openssl: {e} (is it installed?)")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "openssl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        )))
    }
}

impl TestCa {
    /// A new root named `name` (its common name).
    ///
    /// # Panics
    ///
    /// `openssl` is missing or fails.
    pub fn new(name: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let subject = format!("/CN={name}");
        openssl(
            dir.path(),
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                &subject,
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        Self {
            dir,
            name: name.to_owned(),
            issued: AtomicU32::new(0),
        }
    }

    /// The root certificate (PEM), for a client's trust store.
    pub fn cert(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The CA's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A leaf certificate for `names`, valid for two days, with the next
    /// serial number (for tests that care about neither).
    ///
    /// # Panics
    ///
    /// `openssl` fails.
    pub fn leaf(&self, names: &[&str]) -> Issued {
        let serial = 1000 + u64::from(self.issued.load(Ordering::Relaxed));
        self.issue(names, serial, 2)
    }

    /// A leaf certificate for `names` (`localhost`, or IP addresses such as
    /// `127.0.0.1`), valid for `days`, with serial number `serial`, for
    /// servers and clients. Its files are new each time.
    ///
    /// # Panics
    ///
    /// `openssl` fails.
    pub fn issue(&self, names: &[&str], serial: u64, days: u32) -> Issued {
        let n = self.issued.fetch_add(1, Ordering::Relaxed) + 1;
        let stem = format!("leaf{n}");
        let dir = self.dir.path();
        let alt_names = names
            .iter()
            .map(|name| match name.parse::<std::net::IpAddr>() {
                Ok(_) => format!("IP:{name}"),
                Err(_) => format!("DNS:{name}"),
            })
            .collect::<Vec<_>>()
            .join(",");
        let extensions = format!(
            "basicConstraints=critical,CA:FALSE\n\
             keyUsage=critical,digitalSignature\n\
             extendedKeyUsage=serverAuth,clientAuth\n\
             subjectAltName={alt_names}\n"
        );
        let ext_file = format!("{stem}.ext");
        std::fs::write(dir.join(&ext_file), extensions).expect("write extensions");
        let (key, csr, cert) = (
            format!("{stem}.key"),
            format!("{stem}.csr"),
            format!("{stem}.pem"),
        );
        let subject = format!("/CN={}", names.first().copied().unwrap_or("leaf"));
        let run = || -> io::Result<()> {
            openssl(
                dir,
                &[
                    "req",
                    "-new",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:prime256v1",
                    "-nodes",
                    "-keyout",
                    &key,
                    "-out",
                    &csr,
                    "-subj",
                    &subject,
                ],
            )?;
            openssl(
                dir,
                &[
                    "x509",
                    "-req",
                    "-in",
                    &csr,
                    "-CA",
                    "ca.pem",
                    "-CAkey",
                    "ca.key",
                    "-set_serial",
                    &serial.to_string(),
                    "-days",
                    &days.to_string(),
                    "-extfile",
                    &ext_file,
                    "-out",
                    &cert,
                ],
            )
        };
        run().unwrap_or_else(|e| panic!("{e}"));
        Issued {
            cert: dir.join(cert),
            key: dir.join(key),
        }
    }
}
