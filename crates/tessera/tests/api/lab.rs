//! `tessera lab` end to end: the real binary starts nodes, nginx and
//! simulated users per architecture, SIGKILLs a node, and must report what
//! each architecture promises — and leave no process behind, whether it
//! finishes or is interrupted.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::*;

const USERS: u64 = 20;

#[test]
fn stateless_rows_keep_every_session_and_the_stateful_row_loses_the_killed_nodes() {
    let dir = tempfile::tempdir().unwrap();
    let plot = dir.path().join("chart.svg");
    let output = Command::new(BIN)
        .args(["lab", "--nodes", "3", "--users", &USERS.to_string()])
        .args([
            "--duration",
            "6s",
            "--kill-at",
            "2s",
            "--restart-after",
            "2s",
        ])
        .args(["--json", "--plot"])
        .arg(&plot)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let progress = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{progress}");
    let report: Value = serde_json::from_slice(&output.stdout).expect("JSON on stdout");
    let rows = report["node_loss"]["rows"].as_array().unwrap();
    let names: Vec<&str> = rows
        .iter()
        .map(|r| r["architecture"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["stateful", "stateless-redis", "stateless-jwt"]);
    assert_eq!(report["node_loss"]["skipped"], serde_json::json!([]));
    assert!(progress.contains("SIGKILL node 1"), "{progress}");

    for row in rows {
        let name = row["architecture"].as_str().unwrap();
        let count = |key: &str| {
            row[key]
                .as_u64()
                .unwrap_or_else(|| panic!("{key} in {row}"))
        };
        assert_eq!(count("nodes"), 3);
        assert!(count("requests") > 100, "{name}: {row}");
        assert!(row["throughput"].as_f64().unwrap() > 0.0);
        assert!(row["p99_ms"].as_f64().unwrap() >= row["p50_ms"].as_f64().unwrap());
        assert_eq!(row["successes_per_second"].as_array().unwrap().len(), 12);
        let logged_in = row["users_logged_in"].as_array().unwrap();
        assert_eq!(logged_in.len(), 12);
        // Before the kill (2s: four slices) nobody was sent back.
        assert!(
            logged_in[..4].iter().all(|u| u.as_u64() == Some(USERS)),
            "{row}"
        );
        let refused: f64 = row["lost_per_second"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_f64().unwrap() * row["slice_s"].as_f64().unwrap())
            .sum();
        assert_eq!(refused.round() as u64, count("sessions_lost"), "{row}");
        // Each user has at most one request in flight when the node dies.
        assert!(count("errors") <= USERS, "{name}: {row}");
        assert_eq!(count("lost_before_kill"), 0, "{name}: {row}");
    }
    let stateful = &rows[0];
    let expected = stateful["expected_lost"].as_u64().unwrap();
    assert!(expected > 0, "node 1 held no session: {stateful}");
    assert_eq!(
        stateful["lost_at_kill"].as_u64().unwrap(),
        expected,
        "exactly the killed node's sessions are lost: {stateful}"
    );
    // At most once more each, if they move back to the restarted node.
    assert!(stateful["sessions_lost"].as_u64().unwrap() <= 2 * expected);
    // The chart's claim: the stateful row ends with fewer users logged in.
    let last = |row: &Value| {
        row["users_logged_in"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()
            .as_u64()
    };
    assert_eq!(last(stateful), Some(USERS - expected), "{stateful}");
    for stateless in &rows[1..] {
        assert_eq!(stateless["sessions_lost"].as_u64(), Some(0), "{stateless}");
        assert_eq!(stateless["expected_lost"].as_u64(), Some(0));
        assert_eq!(last(stateless), Some(USERS), "{stateless}");
    }

    let chart = std::fs::read_to_string(&plot).unwrap();
    assert!(chart.starts_with("<svg"), "{chart}");
    // Three panels (users logged in, 401s per second, throughput), a line
    // per architecture in each, the kill and the restart marked on each.
    assert_eq!(chart.matches("<polyline class=\"series\"").count(), 9);
    for name in names {
        assert_eq!(
            chart
                .matches(&format!("data-architecture=\"{name}\""))
                .count(),
            3
        );
    }
    assert_eq!(chart.matches("data-event=\"SIGKILL node 1\"").count(), 3);
    assert_eq!(chart.matches("data-event=\"node 1 restarted\"").count(), 3);
    assert!(chart.contains("users") && chart.contains("401 responses/s"));

    let work_dir = report["work_dir"].as_str().unwrap();
    let mut addrs = addresses(rows);
    let redis = report["redis_url"].as_str().expect("the lab's Redis");
    addrs.push(redis.trim_start_matches("redis://").parse().unwrap());
    assert_nothing_left(work_dir, &addrs);
}

#[test]
fn an_interrupted_lab_stops_every_process_it_started() {
    let mut lab = Command::new(BIN)
        .args(["lab", "--nodes", "2", "--users", "4", "--duration", "60s"])
        .args(["--kill-at", "30s", "--arch", "stateful"])
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(lab.stderr.take().unwrap()).lines();
    let (mut work_dir, mut balancer) = (None, None);
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(dir) = line.strip_prefix("lab: working in ") {
            work_dir = Some(dir.to_owned());
        }
        if let Some(rest) = line.split("nginx on ").nth(1) {
            balancer = Some(
                rest.split(';')
                    .next()
                    .unwrap()
                    .parse::<SocketAddr>()
                    .unwrap(),
            );
        }
        if line.contains("ok/s") {
            break;
        }
    }
    let (work_dir, balancer) = (work_dir.expect("work dir"), balancer.expect("nginx"));
    assert!(
        processes_mentioning(&work_dir).len() >= 3,
        "two nodes and nginx run in {work_dir}"
    );

    let status = Command::new("kill")
        .args(["-TERM", &lab.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let exit = loop {
        if let Some(exit) = lab.try_wait().unwrap() {
            break exit;
        }
        if Instant::now() > deadline {
            let _ = lab.kill();
            panic!("the lab did not stop on SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(exit.code(), Some(130));
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(rest.iter().any(|l| l.contains("SIGTERM")), "{rest:?}");
    assert_nothing_left(&work_dir, &[balancer]);
}

/// Runs `tessera lab ARGS --json` to the end: the report, and the progress
/// it printed.
fn lab_json(args: &[&str]) -> (Value, String) {
    let output = Command::new(BIN)
        .arg("lab")
        .args(args)
        .arg("--json")
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let progress = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{progress}");
    let report = serde_json::from_slice(&output.stdout).expect("JSON on stdout");
    (report, progress)
}

#[test]
fn scale_out_moves_sticky_clients_off_their_sessions_and_no_stateless_one() {
    let (report, progress) = lab_json(&[
        "--experiment",
        "scale-out",
        "--users",
        "40",
        "--scale-duration",
        "6s",
    ]);
    assert!(
        progress.contains("node 3") && progress.contains("SIGTERM"),
        "{progress}"
    );
    let rows = report["scale_out"]["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    for row in rows {
        let name = row["architecture"].as_str().unwrap();
        let nodes = row["nodes"].as_array().unwrap();
        assert_eq!(nodes.len(), 3, "{row}");
        let rps = |node: usize, phase: usize| nodes[node]["rps"][phase].as_f64().unwrap();
        // Two nodes share the load, then three, then nodes 2 and 3.
        assert!(rps(0, 0) > 0.0 && rps(1, 0) > 0.0, "{name}: {row}");
        assert_eq!(rps(2, 0), 0.0, "{name}: {row}");
        // Sticky routing hashes each user to a node: node 3 gets load at the
        // join only if some user hashes to it (almost always with 40 users,
        // and certainly once node 1 is gone); round-robin gives it load at
        // once.
        if name == "stateful" {
            assert!(
                rps(2, 1) + rps(2, 2) > 0.0 && rps(2, 2) > 0.0,
                "{name}: node 3 took no load: {row}"
            );
        } else {
            assert!(
                rps(2, 1) > 0.0 && rps(2, 2) > 0.0,
                "{name}: node 3 took no load: {row}"
            );
        }
        if name == "stateful" {
            let moved =
                row["lost_at_join"].as_u64().unwrap() + row["lost_at_leave"].as_u64().unwrap();
            assert!(
                moved > 0,
                "sticky clients kept their sessions through a change: {row}"
            );
        } else {
            assert_eq!(row["sessions_lost"].as_u64(), Some(0), "{name}: {row}");
        }
    }
}

#[test]
fn a_logged_out_jwt_works_for_a_jwks_only_verifier_until_it_expires_and_nowhere_else() {
    let dir = tempfile::tempdir().unwrap();
    let (html, png) = (dir.path().join("lab.html"), dir.path().join("lab.png"));
    let (report, progress) = lab_json(&[
        "--experiment",
        "logout",
        "--nodes",
        "2",
        "--probe-users",
        "4",
        "--access-ttl",
        "5s",
        "--spread",
        "500ms",
        "--report",
        html.to_str().unwrap(),
        "--plot",
        png.to_str().unwrap(),
    ]);
    assert!(progress.contains("[logout] sealed-cookie"), "{progress}");
    let rows = report["logout"]["rows"].as_array().unwrap();
    let row = |mechanism: &str, action: &str| {
        rows.iter()
            .find(|r| r["mechanism"] == mechanism && r["action"] == action)
            .unwrap_or_else(|| panic!("no {mechanism} {action} row: {rows:?}"))
    };
    let ms = |row: &Value, key: &str| row[key].as_f64().unwrap();
    // Server-side state refuses a logged-out credential on every node at
    // once (within a replay or two).
    for mechanism in [
        "session-memory",
        "session-redis",
        "session-redis-near-cache",
        "sealed-cookie",
        "jwt-revocation-list",
    ] {
        let logout = row(mechanism, "logout");
        assert_eq!(logout["users"].as_u64(), Some(3), "{logout}");
        assert_eq!(logout["never_refused"].as_u64(), Some(0), "{logout}");
        assert!(ms(logout, "max_ms") < 1000.0, "{logout}");
    }
    for mechanism in ["session-redis", "sealed-cookie", "jwt-revocation-list"] {
        let disabled = row(mechanism, "disable");
        assert!(ms(disabled, "max_ms") < 1000.0, "{disabled}");
    }
    // A verifier with the JWKS alone accepts the token until its `exp`:
    // accepted up to the lifetime it had left, refused from then on (to
    // the clock's precision; the replays' spacing lies between the two).
    for action in ["logout", "disable"] {
        let jwks = row("jwt-jwks-only", action);
        let column = |key: &str| -> Vec<f64> {
            jwks[key]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect()
        };
        let (accepted, refused, left) = (
            column("exposures_ms"),
            column("refused_after_ms"),
            column("lifetime_left_ms"),
        );
        assert_eq!(accepted.len(), left.len(), "{jwks}");
        assert_eq!(refused.len(), left.len(), "{jwks}");
        for i in 0..left.len() {
            assert!(
                accepted[i] <= left[i] + 50.0 && refused[i] >= left[i] - 50.0,
                "accepted until {} ms, refused from {} ms, lifetime left {} ms: {jwks}",
                accepted[i],
                refused[i],
                left[i]
            );
        }
        assert!(ms(jwks, "max_ms") <= 5000.0, "{jwks}");
    }
    assert!(ms(row("jwt-jwks-only", "logout"), "median_ms") > 1000.0);

    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.starts_with("<!doctype html>"));
    for id in ["stateful-vs-stateless", "sessions-vs-jwt"] {
        assert!(page.contains(&format!("id=\"{id}\"")), "{id}");
    }
    assert!(page.contains("Instant logout") && page.contains("<svg"));
    // Self-contained: nothing to load.
    for external in ["<script", "<link", "src=", "@import", "url("] {
        assert!(!page.contains(external), "{external} in the report");
    }
    let png = std::fs::read(&png).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
}

#[test]
fn a_role_change_reaches_shared_sessions_at_once_and_tokens_at_their_refresh() {
    let (report, _) = lab_json(&[
        "--experiment",
        "permissions",
        "--nodes",
        "2",
        "--probe-users",
        "3",
        "--access-ttl",
        "4s",
        "--spread",
        "300ms",
    ]);
    let rows = report["permissions"]["rows"].as_array().unwrap();
    let row = |mechanism: &str| {
        rows.iter()
            .find(|r| r["mechanism"] == mechanism)
            .unwrap_or_else(|| panic!("no {mechanism} row: {rows:?}"))
    };
    let ms = |row: &Value, key: &str| row[key].as_f64().unwrap();
    for mechanism in ["session-redis", "session-redis-near-cache"] {
        let shared = row(mechanism);
        assert_eq!(shared["never_seen"].as_u64(), Some(0), "{shared}");
        assert!(ms(shared, "max_ms") < 1000.0, "{shared}");
    }
    // A sealed cookie is ended by the change: each user logs in again.
    let sealed = row("sealed-cookie");
    assert_eq!(sealed["never_seen"].as_u64(), Some(0), "{sealed}");
    assert!(sealed["logins"].as_u64().unwrap() >= 3, "{sealed}");
    // An access token keeps its roles until the client refreshes it.
    let jwt = row("jwt-eddsa");
    assert_eq!(jwt["never_seen"].as_u64(), Some(0), "{jwt}");
    assert!(jwt["refreshes"].as_u64().unwrap() >= 3, "{jwt}");
    assert!(ms(jwt, "max_ms") <= 4000.0 + 500.0, "{jwt}");
    assert!(
        ms(jwt, "median_ms") > ms(row("session-redis"), "median_ms"),
        "{jwt}"
    );
}

#[test]
fn verify_cost_measures_each_mechanism_and_the_health_floor() {
    let (report, _) = lab_json(&[
        "--experiment",
        "verify-cost",
        "--cost-duration",
        "300ms",
        "--cost-clients",
        "4",
    ]);
    let cost = &report["verify_cost"];
    let rows = cost["rows"].as_array().unwrap();
    let names: Vec<&str> = rows
        .iter()
        .map(|r| r["mechanism"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "session-sqlite",
            "session-redis",
            "session-redis-near-cache",
            "sealed-cookie",
            "jwt-hs256",
            "jwt-eddsa",
            "jwt-es256",
            "jwt-rs256"
        ]
    );
    for row in rows {
        for key in [
            "profile_rps",
            "profile_cpu_us",
            "health_rps",
            "health_cpu_us",
        ] {
            assert!(row[key].as_f64().unwrap() > 0.0, "{key}: {row}");
        }
        assert_eq!(row["errors"].as_u64(), Some(0), "{row}");
    }
}

/// Every address a row's processes listened on.
fn addresses(rows: &[Value]) -> Vec<SocketAddr> {
    rows.iter()
        .flat_map(|row| {
            let nodes = row["node_addrs"].as_array().unwrap().clone();
            nodes.into_iter().chain([row["balancer_addr"].clone()])
        })
        .map(|addr| addr.as_str().unwrap().parse().unwrap())
        .collect()
}

/// No process works in the lab's directory (nodes, nginx's master), nothing
/// listens where they did (nginx's workers keep the master's socket; Redis
/// renames itself), and the directory is gone.
fn assert_nothing_left(work_dir: &str, addrs: &[SocketAddr]) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = processes_mentioning(work_dir);
        let listening: Vec<_> = addrs
            .iter()
            .filter(|addr| TcpStream::connect_timeout(addr, Duration::from_millis(200)).is_ok())
            .collect();
        if left.is_empty() && listening.is_empty() {
            break;
        }
        // A SIGKILLed process can take a moment to disappear.
        assert!(
            Instant::now() < deadline,
            "left behind: {left:?}, still listening: {listening:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!Path::new(work_dir).exists(), "{work_dir} was not removed");
}

/// Command lines of live processes that contain `text`.
fn processes_mentioning(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let pid = entry.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(text) {
            found.push(format!("{pid}: {cmdline}"));
        }
    }
    found
}
