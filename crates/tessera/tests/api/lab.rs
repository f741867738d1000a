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
