//! `tessera config check` against good and bad configurations: every
//! problem at once, each naming its setting; the stores and the relay
//! reached, nothing written or sent.

use std::path::Path;
use std::process::Command;

use crate::helpers::*;
use crate::postgres_users::Database;
use crate::signup::SmtpSink;

/// `tessera config check --config FILE --data-dir DIR` with `toml` as the
/// file: (exit code, stdout).
fn check(data: &DataDir, toml: &str) -> (i32, String) {
    let file = data.path().join("check.toml");
    std::fs::write(&file, toml).unwrap();
    check_file(data.path(), &file)
}

fn check_file(data_dir: &Path, file: &Path) -> (i32, String) {
    let out = Command::new(BIN)
        .args(["config", "check", "--config"])
        .arg(file)
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("TESSERA_CONFIG")
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    (out.status.code().unwrap(), stdout)
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    tessera_testkit::free_port()
}

#[test]
fn a_good_configuration_passes_with_a_summary() {
    let data = DataDir::new();
    data.add_user("alice@example.com", &["admin"]);
    let (code, out) = check(&data, "store = \"sqlite\"\n");
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("tessera config check: ok"), "{out}");
    assert!(out.contains("settings: valid"), "{out}");
    assert!(out.contains("schema up to date"), "{out}");
}

#[test]
fn reachable_redis_postgres_and_relay_pass_and_nothing_is_written_or_sent() {
    let data = DataDir::new();
    let database = Database::create();
    let sink = SmtpSink::start();
    let (code, out) = check(
        &data,
        &format!(
            "store = \"redis\"\nredis_url = \"redis://127.0.0.1:6379\"\n\
             users = \"postgres\"\ndatabase_url = \"{}\"\n\
             mail = \"smtp\"\nsmtp_url = \"smtp://127.0.0.1:{}\"\nsmtp_insecure = true\n",
            database.url(),
            sink.port
        ),
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("session store: redis, reachable"), "{out}");
    assert!(out.contains("user store: postgres, reachable"), "{out}");
    assert!(
        out.contains("migration(s) to apply"),
        "a fresh database: {out}"
    );
    assert!(out.contains("answers"), "{out}");
    // Still a fresh database: the check migrated nothing.
    let (_, again) = check(
        &data,
        &format!(
            "users = \"postgres\"\ndatabase_url = \"{}\"\n",
            database.url()
        ),
    );
    assert!(again.contains("migration(s) to apply"), "{again}");
    assert_eq!(
        std::fs::read_dir(sink.out.path()).unwrap().count(),
        0,
        "nothing was sent"
    );
    assert!(
        !data.path().join("tessera.db").exists(),
        "no embedded database was created"
    );
}

#[test]
fn an_unreachable_redis_is_named() {
    let data = DataDir::new();
    let (code, out) = check(
        &data,
        &format!(
            "store = \"redis\"\nredis_url = \"redis://127.0.0.1:{}\"\nredis_timeout = 500\n",
            closed_port()
        ),
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("1 problem\n"), "{out}");
    assert!(out.contains("- redis_url: "), "{out}");
}

#[test]
fn a_bad_toml_value_names_its_setting_and_file() {
    let data = DataDir::new();
    let (code, out) = check(&data, "session_idle_timeout = \"half an hour\"\n");
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("- session_idle_timeout: invalid type"),
        "{out}"
    );
    assert!(out.contains("check.toml"), "where it came from: {out}");
}

#[test]
fn a_bad_smtp_url_and_an_unreachable_relay_are_named() {
    let data = DataDir::new();
    let (code, out) = check(
        &data,
        "mail = \"smtp\"\nsmtp_url = \"http://relay.example\"\n",
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("- smtp_url: "), "{out}");

    let (code, out) = check(
        &data,
        &format!(
            "mail = \"smtp\"\nsmtp_url = \"smtp://robot:s3cret-pa55@127.0.0.1:{}\"\nsmtp_timeout = 2\n",
            closed_port()
        ),
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("- smtp_url: smtp relay: "), "{out}");
    assert!(
        !out.contains("s3cret-pa55"),
        "the password shows nowhere: {out}"
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let data = DataDir::new();
    let (code, out) = check(
        &data,
        &format!(
            "login_ip_burst = \"lots\"\ncookie_name = \"plain\"\nmax_sessions_per_user = 0\n\
             store = \"redis\"\nredis_url = \"redis://127.0.0.1:{}\"\nredis_timeout = 500\n",
            closed_port()
        ),
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("4 problems"), "{out}");
    for named in [
        "- login_ip_burst: ",
        "- cookie_name: ",
        "max_sessions_per_user",
        "- redis_url: ",
    ] {
        assert!(out.contains(named), "{named} missing: {out}");
    }
}

#[test]
fn an_unreadable_file_is_one_problem() {
    let data = DataDir::new();
    let (code, out) = check(&data, "store = \n");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("1 problem"), "{out}");
    let (code, out) = check_file(data.path(), &data.path().join("missing.toml"));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("does not exist"), "{out}");
}
