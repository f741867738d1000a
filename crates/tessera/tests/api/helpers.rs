//! A black-box harness: every test starts the real `tessera` binary on port 0
//! with its own data directory and talks HTTP to it.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, Response, StatusCode};
use serde_json::Value;
use tessera_testkit::Nginx;

pub const BIN: &str = env!("CARGO_BIN_EXE_tessera");
pub const COOKIE: &str = "__Host-tessera";
pub const PASSWORD: &str = "correct horse battery staple";

/// A data directory that outlives server restarts within one test.
pub struct DataDir(tempfile::TempDir);

impl DataDir {
    pub fn new() -> Self {
        Self(tempfile::tempdir().expect("temp dir"))
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }

    /// Runs `tessera <args> --data-dir DIR`, feeding `stdin`.
    pub fn cli(&self, args: &[&str], stdin: &str) -> Output {
        self.cli_with_env(args, stdin, &[])
    }

    /// As [`DataDir::cli`], with extra environment variables.
    pub fn cli_with_env(&self, args: &[&str], stdin: &str, env: &[(&str, &str)]) -> Output {
        let mut child = Command::new(BIN)
            .envs(env.iter().copied())
            .args(args)
            .arg("--data-dir")
            .arg(self.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tessera cli");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    /// Creates a user through the CLI, as an operator would.
    pub fn add_user(&self, email: &str, roles: &[&str]) {
        let mut args = vec!["user", "add", email, "--password-stdin"];
        for role in roles {
            args.extend(["--role", role]);
        }
        let out = self.cli(&args, &format!("{PASSWORD}\n"));
        assert!(
            out.status.success(),
            "user add failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Longer than the server's log writer holds a line (50 ms).
const LOG_FLUSH: Duration = Duration::from_millis(120);

/// How to start a server.
#[derive(Default, Clone)]
pub struct Options {
    pub env: Vec<(String, String)>,
    pub args: Vec<String>,
    /// `RLIMIT_NOFILE` (soft and hard) to start the server with.
    pub nofile: Option<u64>,
}

impl Options {
    pub fn env(mut self, key: &str, value: impl ToString) -> Self {
        self.env.push((key.to_owned(), value.to_string()));
        self
    }

    pub fn arg(mut self, arg: &str) -> Self {
        self.args.push(arg.to_owned());
        self
    }

    /// Starts the server under `prlimit --nofile=N:N`.
    pub fn nofile(mut self, limit: u64) -> Self {
        self.nofile = Some(limit);
        self
    }
}

/// A running `tessera serve`.
pub struct Server {
    child: Option<Child>,
    pub addr: SocketAddr,
    pub data: Arc<DataDir>,
    options: Options,
    logs: Arc<Mutex<Vec<String>>>,
    client: reqwest::Client,
}

impl Server {
    /// A server on a fresh data directory with one user, alice, an admin.
    pub fn start() -> Self {
        let data = Arc::new(DataDir::new());
        data.add_user("alice@example.com", &["admin"]);
        Self::start_on(data, Options::default())
    }

    pub fn start_with(options: Options) -> Self {
        let data = Arc::new(DataDir::new());
        data.add_user("alice@example.com", &["admin"]);
        Self::start_on(data, options)
    }

    pub fn start_on(data: Arc<DataDir>, options: Options) -> Self {
        let (child, addr, logs) = spawn(&data, &options);
        Self {
            child: Some(child),
            addr,
            data,
            options,
            logs,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        }
    }

    /// Stops the server with SIGKILL: no chance to flush anything.
    pub fn kill_9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// Stops with SIGTERM and waits for a clean exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("server running");
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
        child.wait().unwrap()
    }

    /// Sends SIGTERM and waits up to `within` for the exit; `None` (after a
    /// SIGKILL) if it did not come.
    pub fn terminate_within(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take().expect("server running");
        let sent = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .unwrap();
        assert!(sent.success());
        let deadline = std::time::Instant::now() + within;
        while std::time::Instant::now() < deadline {
            if let Some(status) = child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    /// Starts again on the same data directory (and a new port).
    pub fn restart(&mut self) {
        self.kill_9();
        let (child, addr, logs) = spawn(&self.data, &self.options);
        self.child = Some(child);
        self.addr = addr;
        self.logs = logs;
    }

    /// Sends `signal` (e.g. `HUP`) to the server.
    pub fn signal(&self, signal: &str) {
        let child = self.child.as_ref().expect("server running");
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits up to `within` for a log line containing `text`.
    pub fn wait_for_log(&self, text: &str, within: Duration) -> bool {
        let deadline = std::time::Instant::now() + within;
        while std::time::Instant::now() < deadline {
            if self.logs_now().contains(text) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// The settings this server was started with.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// The server's log so far. The server's log writer batches lines
    /// (they reach stderr up to 50 ms after they were written: see
    /// `logwriter.rs`), so this first waits that long and a little more:
    /// every line written before the call is in the answer.
    pub fn logs(&self) -> String {
        std::thread::sleep(LOG_FLUSH);
        self.logs_now()
    }

    /// The log lines read so far, without waiting.
    fn logs_now(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    /// `GET /admin/v1/health` (the details anonymous `/health` leaves
    /// out), with an admin API key `tessera apikey create` makes for it
    /// (no session, so nothing the caller counts changes).
    pub async fn admin_health(&self) -> Value {
        let env: Vec<(&str, &str)> = self
            .options
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let out = self.data.cli_with_env(
            &["apikey", "create", "--name", "health", "--role", "admin"],
            "",
            &env,
        );
        assert!(
            out.status.success(),
            "apikey create: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let key = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        let response = self
            .request(Method::GET, "/admin/v1/health")
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "admin health");
        response.json().await.unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method, self.url(path))
    }

    pub async fn get(&self, path: &str, cookie: Option<&str>) -> Response {
        with_cookie(self.request(Method::GET, path), cookie)
            .send()
            .await
            .unwrap()
    }

    pub async fn send_json(
        &self,
        method: Method,
        path: &str,
        cookie: Option<&str>,
        body: Value,
    ) -> Response {
        with_cookie(self.request(method, path), cookie)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn login_response(&self, email: &str, password: &str) -> Response {
        self.send_json(
            Method::POST,
            "/login",
            None,
            serde_json::json!({"email": email, "password": password}),
        )
        .await
    }

    /// Logs in and returns the session cookie value.
    pub async fn login(&self, email: &str, password: &str) -> String {
        let response = self.login_response(email, password).await;
        assert_eq!(response.status(), StatusCode::OK, "login failed");
        session_cookie(response.headers()).expect("login sets the session cookie")
    }

    pub async fn login_alice(&self) -> String {
        self.login("alice@example.com", PASSWORD).await
    }

    /// `POST /token` as alice; the JSON body.
    pub async fn token_alice(&self) -> serde_json::Value {
        let response = self
            .send_json(
                Method::POST,
                "/token",
                None,
                serde_json::json!({"email": "alice@example.com", "password": PASSWORD}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK, "token request failed");
        response.json().await.unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill_9();
    }
}

fn spawn(data: &DataDir, options: &Options) -> (Child, SocketAddr, Arc<Mutex<Vec<String>>>) {
    let mut command = match options.nofile {
        None => Command::new(BIN),
        Some(limit) => {
            let mut prlimit = Command::new("prlimit");
            prlimit.arg(format!("--nofile={limit}:{limit}")).arg(BIN);
            prlimit
        }
    };
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .args(&options.args)
        .env("TESSERA_LOG", "info")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in &options.env {
        command.env(k, v);
    }
    let mut child = command.spawn().expect("spawn tessera serve");
    let stderr = child.stderr.take().unwrap();
    let logs = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = mpsc::channel();
    let sink = Arc::clone(&logs);
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let listening = line
                .split("listening on http://")
                .nth(1)
                .or_else(|| line.split("listening on https://").nth(1));
            if let Some(rest) = listening {
                // Text or JSON (`log_format`): the address ends at a space
                // or a quote.
                let addr = rest
                    .split(|c: char| c.is_whitespace() || c == '"')
                    .next()
                    .unwrap_or("")
                    .to_owned();
                let _ = tx.send(addr);
            }
            sink.lock().unwrap().push(line);
        }
    });
    let addr = match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(addr) => addr.parse().expect("listen address"),
        Err(_) => {
            let _ = child.kill();
            panic!("server did not start:\n{}", logs.lock().unwrap().join("\n"));
        }
    };
    (child, addr, logs)
}

/// `GET path` with `Authorization: Bearer token`.
pub async fn bearer(server: &Server, path: &str, token: &str) -> Response {
    server
        .request(Method::GET, path)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

/// `POST /token/refresh` with this refresh token.
pub async fn refresh(server: &Server, refresh_token: &str) -> Response {
    server
        .send_json(
            Method::POST,
            "/token/refresh",
            None,
            serde_json::json!({"refresh_token": refresh_token}),
        )
        .await
}

pub fn with_cookie(
    builder: reqwest::RequestBuilder,
    cookie: Option<&str>,
) -> reqwest::RequestBuilder {
    match cookie {
        Some(value) => builder.header("cookie", format!("{COOKIE}={value}")),
        None => builder,
    }
}

/// The value our session cookie is set to in a response, if it is set.
pub fn session_cookie(headers: &HeaderMap) -> Option<String> {
    set_cookie_header(headers).and_then(|text| {
        let value = text
            .strip_prefix(&format!("{COOKIE}="))?
            .split(';')
            .next()?
            .to_owned();
        Some(value)
    })
}

/// The full `Set-Cookie` header for our cookie, if any.
pub fn set_cookie_header(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v: &HeaderValue| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{COOKIE}=")))
        .map(str::to_owned)
}

/// Asserts the status and the JSON error shape, returning the error code.
pub async fn expect_error(response: Response, status: StatusCode) -> String {
    assert_eq!(response.status(), status, "unexpected status");
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(
        content_type.as_deref(),
        Some("application/json"),
        "errors are JSON"
    );
    let body: Value = response.json().await.expect("JSON error body");
    let code = body["error"]["code"]
        .as_str()
        .expect("error.code")
        .to_owned();
    assert!(
        body["error"]["message"].is_string(),
        "error.message in {body}"
    );
    code
}

/// Every file below `dir`, for scanning what is on disk.
pub fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_below(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// A port nothing listens on right now.
pub use tessera_testkit::free_port;

/// Nodes behind a real nginx running one of the shipped configs.
pub struct Balanced {
    pub nodes: Vec<Server>,
    pub url: String,
    _nginx: Nginx,
}

/// Two nodes on one data directory (alice, an admin) behind nginx with the
/// shipped `config` (a path), only its `# LISTEN` and `# NODE` lines
/// rewritten for this test's ports.
pub async fn behind_nginx(config: &str, options: Options) -> Balanced {
    let data = Arc::new(DataDir::new());
    data.add_user("alice@example.com", &["admin"]);
    let nodes = vec![
        Server::start_on(Arc::clone(&data), options.clone()),
        Server::start_on(Arc::clone(&data), options),
    ];
    let template = std::fs::read_to_string(config).unwrap();
    let addrs: Vec<SocketAddr> = nodes.iter().map(|node| node.addr).collect();
    let nginx = Nginx::start(&template, free_port(), &addrs).expect("nginx (see scripts/test)");
    Balanced {
        nodes,
        url: nginx.url(),
        _nginx: nginx,
    }
}

/// Status, the headers that could tell two requests' subjects apart and
/// the body: not `date` nor `x-request-id`, which differ between any two
/// requests by design (and are asserted present, so they stay the same
/// kind of value whatever the request was about).
pub async fn observable(
    response: reqwest::Response,
) -> (StatusCode, Vec<(String, String)>, Vec<u8>) {
    let status = response.status();
    assert!(
        response.headers().contains_key("x-request-id"),
        "every answer names its request"
    );
    let mut headers: Vec<(String, String)> = response
        .headers()
        .iter()
        .filter(|(name, _)| !matches!(name.as_str(), "date" | "x-request-id"))
        .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
        .collect();
    headers.sort();
    (status, headers, response.bytes().await.unwrap().to_vec())
}
