//! Command-line interface.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::lab::{Architecture, parse_duration};
use crate::settings::StoreKind;

/// tessera: authentication and sessions (cookies, server-side sessions, JWT).
#[derive(Debug, Parser)]
#[command(name = "tessera", version, about)]
pub struct Cli {
    /// TOML settings file (also TESSERA_CONFIG).
    #[arg(long, global = true, env = "TESSERA_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Data directory holding the embedded database (also TESSERA_DATA_DIR).
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server.
    Serve(ServeArgs),
    /// Manage users in the data directory.
    #[command(subcommand)]
    User(UserCommand),
    /// Inspect the effective settings.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Manage the access-token signing keys in the data directory.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Inspect tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Bring the user database's schema up to date, then exit.
    Migrate,
    /// Run the cluster experiment on this machine: N nodes behind nginx per
    /// architecture, one SIGKILLed mid-run; print what users went through.
    ///
    /// Needs nginx and, for the stateless rows, redis-server (or
    /// --redis-url). Works in a temporary directory it removes, and stops
    /// every process it started when it ends, fails or is interrupted.
    Lab(LabArgs),
}

/// `tessera token ...`.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Print a JWT's header and claims; with --jwk, verify its signature
    /// (exit 0 only when valid).
    Decode {
        /// The token.
        token: String,
        /// A JWK or JWK Set file to verify the signature with.
        #[arg(long, value_name = "FILE")]
        jwk: Option<PathBuf>,
    },
}

/// `tessera keys ...`.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// List the keys: which signs, which only verify.
    List,
    /// Add a new signing key; old keys verify until their tokens expire.
    Rotate,
    /// Print the public keys as a JWK Set.
    ExportJwks,
}

/// Flags of `tessera serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (also TESSERA_LISTEN); port 0 picks a free port.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Session store (also TESSERA_STORE).
    #[arg(long, value_enum)]
    pub store: Option<StoreArg>,
}

/// Flags of `tessera lab`.
#[derive(Debug, Args)]
pub struct LabArgs {
    /// tessera nodes per architecture; node 1 is killed.
    #[arg(long, default_value_t = 3)]
    pub nodes: usize,
    /// Simulated users, each calling /profile in a loop.
    #[arg(long, default_value_t = 60)]
    pub users: usize,
    /// Measured run per architecture (e.g. 20s, 1500ms, 1m).
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    pub duration: Duration,
    /// When node 1 is SIGKILLed, from the start of the run.
    #[arg(long, default_value = "8s", value_parser = parse_duration)]
    pub kill_at: Duration,
    /// How long node 1 stays down before it is started again.
    #[arg(long, default_value = "4s", value_parser = parse_duration)]
    pub restart_after: Duration,
    /// Pause between one user's requests.
    #[arg(long, default_value = "0ms", value_parser = parse_duration)]
    pub think: Duration,
    /// Architectures to run (comma-separated).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "stateful,redis,jwt"
    )]
    pub arch: Vec<Architecture>,
    /// Write a chart of successful requests per second over time (SVG).
    #[arg(long, value_name = "FILE")]
    pub plot: Option<PathBuf>,
    /// Print the results as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Use this Redis instead of starting a throwaway redis-server.
    #[arg(long, value_name = "URL")]
    pub redis_url: Option<String>,
}

/// `--store` values.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum StoreArg {
    /// Embedded SQLite in the data directory (durable).
    Sqlite,
    /// Process memory (sessions end with the process).
    Memory,
    /// Redis at `redis_url`, shared by a cluster.
    Redis,
}

impl From<StoreArg> for StoreKind {
    fn from(arg: StoreArg) -> Self {
        match arg {
            StoreArg::Sqlite => StoreKind::Sqlite,
            StoreArg::Memory => StoreKind::Memory,
            StoreArg::Redis => StoreKind::Redis,
        }
    }
}

/// `tessera user ...`.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user.
    Add {
        /// E-mail address.
        email: String,
        /// Role to grant (repeatable).
        #[arg(long = "role", value_name = "ROLE")]
        roles: Vec<String>,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Replace a user's roles (live sessions follow on their next request).
    SetRole {
        /// E-mail address.
        email: String,
        /// Role to hold (repeatable; none removes all roles).
        #[arg(long = "role", value_name = "ROLE")]
        roles: Vec<String>,
    },
    /// Disable a user and end all their sessions.
    Disable {
        /// E-mail address.
        email: String,
    },
    /// Re-enable a disabled user.
    Enable {
        /// E-mail address.
        email: String,
    },
    /// Set a new password (ends all the user's sessions).
    Passwd {
        /// E-mail address.
        email: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Import users with existing password hashes (argon2 or bcrypt) from a
    /// JSON array or a CSV file with the columns email,hash,roles.
    Import {
        /// The file (`.json` or `.csv`).
        file: PathBuf,
    },
}

/// `tessera config ...`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the effective settings as TOML, secrets redacted.
    Print,
}
