//! Settings precedence: flags over env over file over defaults.

use std::process::Command;

use crate::helpers::*;

fn print_config(data: &DataDir, args: &[&str], env: &[(&str, &str)]) -> String {
    let mut command = Command::new(BIN);
    command.args(["config", "print"]).args(args);
    command.env_remove("TESSERA_CONFIG");
    for (k, v) in env {
        command.env(k, v);
    }
    let _ = data;
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn defaults_listen_on_localhost_8080_with_a_local_data_dir() {
    let data = DataDir::new();
    let text = print_config(&data, &[], &[]);
    assert!(text.contains("listen = \"127.0.0.1:8080\""), "{text}");
    assert!(text.contains("data_dir = \"./tessera-data\""), "{text}");
    assert!(text.contains("store = \"sqlite\""), "{text}");
    assert!(text.contains("session_idle_timeout = 1800"), "{text}");
    assert!(text.contains("session_absolute_timeout = 86400"), "{text}");
}

#[test]
fn flags_win_over_env_which_wins_over_the_file() {
    let data = DataDir::new();
    let file = data.path().join("tessera.toml");
    std::fs::write(
        &file,
        "data_dir = \"/from/file\"\nsession_idle_timeout = 111\nsession_absolute_timeout = 999\n",
    )
    .unwrap();
    let file = file.to_str().unwrap();
    let only_file = print_config(&data, &["--config", file], &[]);
    assert!(
        only_file.contains("data_dir = \"/from/file\""),
        "{only_file}"
    );
    assert!(only_file.contains("session_idle_timeout = 111"));

    let env = [
        ("TESSERA_DATA_DIR", "/from/env"),
        ("TESSERA_SESSION_IDLE_TIMEOUT", "222"),
    ];
    let file_and_env = print_config(&data, &["--config", file], &env);
    assert!(
        file_and_env.contains("data_dir = \"/from/env\""),
        "{file_and_env}"
    );
    assert!(file_and_env.contains("session_idle_timeout = 222"));
    assert!(
        file_and_env.contains("session_absolute_timeout = 999"),
        "file still applies"
    );

    let all = print_config(&data, &["--config", file, "--data-dir", "/from/flag"], &env);
    assert!(all.contains("data_dir = \"/from/flag\""), "{all}");
}

#[test]
fn the_config_file_can_come_from_the_environment() {
    let data = DataDir::new();
    let file = data.path().join("t.toml");
    std::fs::write(&file, "store = \"memory\"\n").unwrap();
    let text = print_config(&data, &[], &[("TESSERA_CONFIG", file.to_str().unwrap())]);
    assert!(text.contains("store = \"memory\""), "{text}");
}

#[test]
fn unknown_keys_and_bad_values_are_refused_with_the_key_named() {
    let data = DataDir::new();
    let file = data.path().join("bad.toml");
    std::fs::write(&file, "sesion_idle_timeout = 5\n").unwrap();
    let out = Command::new(BIN)
        .args(["config", "print", "--config", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("sesion_idle_timeout"));

    let out = Command::new(BIN)
        .args(["config", "print"])
        .env("TESSERA_LISTEN", "not an address")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(
        stderr.contains("listen") && stderr.contains("tessera_"),
        "{stderr}"
    );
}

#[test]
fn a_missing_config_file_is_an_error_not_a_silent_default() {
    let out = Command::new(BIN)
        .args(["config", "print", "--config", "/nonexistent/tessera.toml"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
}

#[tokio::test]
async fn listen_and_data_dir_from_the_environment_are_used_by_serve() {
    let data = std::sync::Arc::new(DataDir::new());
    data.add_user("alice@example.com", &["admin"]);
    // The harness passes --listen 127.0.0.1:0 as a flag; the env value must lose.
    let server = Server::start_on(
        data,
        Options::default().env("TESSERA_LISTEN", "127.0.0.1:1"),
    );
    assert_ne!(server.addr.port(), 1);
    server.login_alice().await;
}

#[test]
fn commands_that_need_no_settings_ignore_broken_ones() {
    // A token of another issuer: `token decode` only prints it.
    let token = "eyJhbGciOiJIUzI1NiIsInR5cCI6ImF0K2p3dCJ9.\
                 eyJzdWIiOiJ4IiwiZXhwIjo0MTAyNDQ0ODAwfQ.\
                 c2lnbmF0dXJl";
    let decode = Command::new(BIN)
        .args(["token", "decode", token])
        .env("TESSERA_SESSION_IDLE_TIMEOUT", "banana")
        .env("TESSERA_CONFIG", "/nonexistent/tessera.toml")
        .output()
        .unwrap();
    assert!(
        decode.status.success(),
        "{}",
        String::from_utf8_lossy(&decode.stderr)
    );
    assert!(String::from_utf8_lossy(&decode.stdout).contains("\"sub\": \"x\""));
    // A command that does use settings still refuses them, naming the key.
    let print = Command::new(BIN)
        .args(["config", "print"])
        .env("TESSERA_SESSION_IDLE_TIMEOUT", "banana")
        .output()
        .unwrap();
    assert!(!print.status.success());
    let stderr = String::from_utf8_lossy(&print.stderr).to_lowercase();
    assert!(stderr.contains("session_idle_timeout"), "{stderr}");
}
