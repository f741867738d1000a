//! The Debian package as an operator gets it: built with `cargo deb` around
//! the debug binary this test run already built, installed on this machine
//! with `dpkg -i`, its systemd unit checked with `systemd-analyze verify`
//! (and its exposure score), the installed `/usr/bin/tessera` run with the
//! shipped `/etc/tessera/tessera.toml` (systemd is not PID 1 here: the
//! binary is started directly, on a free port and a temporary data
//! directory), then removed with `dpkg -r`.
//!
//! Needs root (dpkg) and cargo-deb (`scripts/test` installs it). Without
//! them the test fails and says so; `TESSERA_SKIP_PACKAGE_TEST=1` skips it
//! explicitly.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::helpers::BIN;

const UNIT: &str = "/usr/lib/systemd/system/tessera.service";
const CONFIG: &str = "/etc/tessera/tessera.toml";
const INSTALLED: &str = "/usr/bin/tessera";
/// The highest `systemd-analyze security` exposure accepted ("OK" is < 2).
const MAX_EXPOSURE: f64 = 2.0;

fn run(command: &mut Command) -> String {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{command:?} failed:\n{text}");
    text
}

/// Whether to run: `false` only when skipping was asked for; a machine
/// that cannot run the test fails it, naming what is missing.
fn should_run() -> bool {
    if std::env::var("TESSERA_SKIP_PACKAGE_TEST").as_deref() == Ok("1") {
        eprintln!("package test skipped: TESSERA_SKIP_PACKAGE_TEST=1");
        return false;
    }
    let uid = run(Command::new("id").arg("-u"));
    assert_eq!(
        uid.trim(),
        "0",
        "the package test installs a .deb with dpkg -i and must run as root \
         (set TESSERA_SKIP_PACKAGE_TEST=1 to skip it)"
    );
    let cargo_deb = Command::new(cargo()).args(["deb", "--version"]).output();
    assert!(
        cargo_deb.is_ok_and(|out| out.status.success()),
        "cargo-deb is missing: cargo install cargo-deb --locked (scripts/test does)"
    );
    for tool in ["dpkg", "systemd-analyze"] {
        assert!(
            Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()
                .is_ok_and(|out| out.status.success()),
            "{tool} is missing (scripts/test installs it)"
        );
    }
    true
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `cargo deb --no-build` around the debug binary: linked as
/// `release/tessera` into a target directory of its own (cargo-deb packages
/// only `target/release` products).
fn build_deb(out: &Path) -> PathBuf {
    let debug = Path::new(BIN);
    let target = tempfile::tempdir_in(debug.parent().unwrap()).unwrap();
    std::fs::create_dir(target.path().join("release")).unwrap();
    let linked = target.path().join("release/tessera");
    if std::fs::hard_link(debug, &linked).is_err() {
        std::fs::copy(debug, &linked).unwrap();
    }
    run(Command::new(cargo())
        .current_dir(workspace())
        .env("CARGO_TARGET_DIR", target.path())
        .args([
            "deb",
            "-p",
            "tessera",
            "--no-build",
            "--no-strip",
            "--fast",
            "-o",
        ])
        .arg(out));
    let debs: Vec<_> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "deb"))
        .collect();
    assert_eq!(debs.len(), 1, "{debs:?}");
    debs[0].clone()
}

/// Removes the package however the test ends.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = Command::new("dpkg").args(["--purge", "tessera"]).output();
    }
}

/// The installed binary serving with the shipped config (on a free port
/// and `data`): the address it announced.
fn serve_installed(data: &Path) -> (tessera_testkit::ProcessGroup, SocketAddr) {
    let mut command = Command::new(INSTALLED);
    command
        .args([
            "serve",
            "--config",
            CONFIG,
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(data)
        .env_remove("TESSERA_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut process = tessera_testkit::ProcessGroup::spawn("installed tessera", &mut command)
        .expect("the installed binary starts");
    let stderr = process.take_stderr().unwrap();
    let (found, address) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(at) = line.split("listening on http://").nth(1) {
                let at = at.split_whitespace().next().unwrap_or_default();
                let _ = found.send(at.parse::<SocketAddr>().ok());
            }
        }
    });
    let address = address
        .recv_timeout(Duration::from_secs(30))
        .ok()
        .flatten()
        .expect("the installed binary says where it listens");
    (process, address)
}

#[tokio::test]
async fn the_deb_installs_a_verified_unit_and_a_binary_that_serves_with_the_shipped_config() {
    if !should_run() {
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let deb = build_deb(out.path());
    let contents = run(Command::new("dpkg-deb").arg("-c").arg(&deb));
    for path in [
        "./usr/bin/tessera",
        "./usr/lib/systemd/system/tessera.service",
    ] {
        assert!(contents.contains(path), "{path} missing:\n{contents}");
    }
    assert!(
        contents.contains("-rw------- 0/0") && contents.contains("./etc/tessera/tessera.toml"),
        "the config ships root-only:\n{contents}"
    );

    let _installed = Installed;
    run(Command::new("dpkg").arg("-i").arg(&deb));
    run(Command::new("systemd-analyze").args(["verify", UNIT]));
    let unit = std::fs::read_to_string(UNIT).unwrap();
    for directive in [
        "DynamicUser=yes",
        "StateDirectory=tessera",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "LoadCredential=tessera.toml:/etc/tessera/tessera.toml",
        "CapabilityBoundingSet=\n",
        "SystemCallFilter=@system-service",
    ] {
        assert!(
            unit.contains(directive),
            "{directive} missing from the unit"
        );
    }
    let security = run(Command::new("systemd-analyze").args([
        "security",
        "--offline=true",
        "--no-pager",
        UNIT,
    ]));
    let exposure: f64 = security
        .split("Overall exposure level for tessera.service:")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|score| score.parse().ok())
        .unwrap_or_else(|| panic!("no exposure score in:\n{security}"));
    assert!(exposure <= MAX_EXPOSURE, "exposure {exposure}:\n{security}");

    let version = run(Command::new(INSTALLED).arg("--version"));
    assert_eq!(
        version.trim(),
        format!("tessera {}", env!("CARGO_PKG_VERSION"))
    );
    let data = tempfile::tempdir().unwrap();
    let check = run(Command::new(INSTALLED)
        .args(["config", "check", "--config", CONFIG, "--data-dir"])
        .arg(data.path()));
    assert!(check.starts_with("tessera config check: ok"), "{check}");

    let (server, address) = serve_installed(data.path());
    let client = reqwest::Client::new();
    for path in ["/health", "/health/ready"] {
        let response = client
            .get(format!("http://{address}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::OK, "{path}");
        assert_eq!(
            response.json::<serde_json::Value>().await.unwrap(),
            serde_json::json!({"status": "ok"})
        );
    }
    assert!(
        data.path().join("tessera.db").exists(),
        "data in --data-dir"
    );
    drop(server);

    run(Command::new("dpkg").args(["-r", "tessera"]));
    assert!(!Path::new(INSTALLED).exists(), "dpkg -r removed the binary");
    assert!(!Path::new(UNIT).exists(), "and the unit");
}
