//! Command-line interface.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

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
    /// Read the audit log in the data directory's user store.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Manage API keys (credentials for machines) in the data directory.
    #[command(subcommand)]
    Apikey(ApiKeyCommand),
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
    /// Measure the trade-offs on this machine (--experiment node-loss,
    /// scale-out, logout, permissions, verify-cost or all): nodes of this
    /// binary behind nginx, simulated users; tables, charts, an HTML report.
    ///
    /// Needs nginx and, for the stateless rows, redis-server (or
    /// --redis-url). Works in a temporary directory it removes, and stops
    /// every process it started when it ends, fails or is interrupted.
    #[cfg(feature = "lab")]
    Lab(Box<tessera_lab::LabArgs>),
}

/// `tessera audit ...`.
#[derive(Debug, Clone, Subcommand)]
pub enum AuditCommand {
    /// Print the latest events, oldest first, one per line; with --follow,
    /// keep printing new ones until interrupted.
    Tail {
        /// Keep polling for new events.
        #[arg(long, short)]
        follow: bool,
        /// Only events about this user (an e-mail address or a user id).
        #[arg(long, value_name = "EMAIL_OR_ID")]
        user: Option<String>,
        /// Only events of this kind (login_failed, roles_changed, ...).
        #[arg(long)]
        kind: Option<String>,
        /// How many of the latest events to print first (1 to 500).
        #[arg(long, short = 'n', default_value_t = 20)]
        limit: usize,
        /// One JSON object per line (as `GET /admin/v1/audit` shows events).
        #[arg(long)]
        json: bool,
    },
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
    pub store: Option<StoreKind>,
}

/// `tessera user ...`.
#[derive(Debug, Clone, Subcommand)]
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
        /// Create the account with its address not yet verified (by
        /// default the operator vouches for it).
        #[arg(long)]
        unverified: bool,
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
    /// Mark a user's e-mail address verified (live sessions show it on
    /// their next request, access tokens from their next refresh).
    Verify {
        /// E-mail address.
        email: String,
    },
    /// Mark a user's e-mail address not verified.
    Unverify {
        /// E-mail address.
        email: String,
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
    /// Invite someone to sign up (`POST /signup` with the invite): mailed
    /// when a mailer is configured (the running server sends it), else the
    /// link is printed, once.
    Invite {
        /// E-mail address.
        email: String,
        /// Role the account gets (repeatable).
        #[arg(long = "role", value_name = "ROLE")]
        roles: Vec<String>,
        /// How long the invite works, e.g. `7d`, `12h` (default
        /// `invite_ttl`, at most 90 days).
        #[arg(long, value_name = "DURATION")]
        expires: Option<String>,
    },
    /// Issue a password-reset link for a user: mailed when a mailer is
    /// configured, else printed, once.
    ResetLink {
        /// E-mail address.
        email: String,
    },
    /// Delete a user: ends every session, refresh token, access token and
    /// sealed cookie of theirs, then removes the account.
    Delete {
        /// E-mail address.
        email: String,
    },
    /// Import users with existing password hashes (argon2 or bcrypt) from a
    /// JSON array or a CSV file with the columns email,hash,roles.
    Import {
        /// The file (`.json` or `.csv`).
        file: PathBuf,
    },
    /// List accounts whose stored address is not in its canonical spelling
    /// (left so by the address migration because another account holds
    /// that spelling, or because it is no longer a valid address).
    Collisions {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// `tessera apikey ...`.
#[derive(Debug, Clone, Subcommand)]
pub enum ApiKeyCommand {
    /// Create a key and print it (the only time it is shown).
    Create {
        /// What the key is for (shown in lists and logs).
        #[arg(long)]
        name: String,
        /// Role to grant (repeatable).
        #[arg(long = "role", value_name = "ROLE")]
        roles: Vec<String>,
        /// Lifetime, such as 90d, 12h, 30m (default: until revoked).
        #[arg(long, value_name = "DURATION")]
        expires: Option<String>,
    },
    /// List keys (never their secrets).
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key by its id: every node refuses it from its next request.
    Revoke {
        /// The key's id (the 16 characters after `tsk_`).
        id: String,
    },
}

/// `tessera config ...`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the effective settings as TOML, secrets redacted.
    Print,
    /// Check every setting and reach the configured stores and mail relay
    /// (nothing is written or sent); print every problem at once, each
    /// naming its setting. Exit 1 on any.
    Check,
}
