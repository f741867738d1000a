//! The `tessera` binary: reads flags, environment and files, then runs the
//! server or an administrative command. All behaviour lives in the library.
#![forbid(unsafe_code)]

mod breached;
mod cli;
mod commands;
mod config;
mod keyfiles;
mod logwriter;
mod otlp;
mod settings;
mod tlsfiles;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command, ConfigCommand};
use crate::settings::{FlagSettings, Settings};

// The request path allocates small, short-lived objects on several threads;
// mimalloc's thread-local free lists serve that far better than glibc malloc
// (measured with bench/profile.sh, see the notes in ARCHITECTURE.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // One TLS provider for the whole process (HTTPS listener, PostgreSQL,
    // SMTP): ring. Installed before anything could pick another.
    #[allow(deprecated)] // only for its lack of post-quantum key exchange
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    // Only the commands that use settings load them: a bad TESSERA_*
    // variable or config file does not break `token decode` or `lab`.
    let settings = || {
        let mut flags = FlagSettings {
            data_dir: cli.data_dir.clone(),
            ..FlagSettings::default()
        };
        if let Command::Serve(args) = &cli.command {
            flags.listen = args.listen;
            flags.store = args.store;
        }
        Settings::load(cli.config.as_deref(), flags)
    };
    match &cli.command {
        Command::Serve(_) => commands::serve::run(settings()?),
        Command::User(command) => commands::user::run(&settings()?, command.clone()),
        Command::Audit(command) => commands::audit::run(&settings()?, command.clone()),
        Command::Apikey(command) => commands::apikey::run(&settings()?, command.clone()),
        Command::Keys(command) => commands::keys::run(&settings()?, command),
        Command::Migrate => commands::migrate::run(&settings()?),
        #[cfg(feature = "lab")]
        Command::Lab(args) => tessera_lab::run(args),
        Command::Token(cli::TokenCommand::Decode { token, jwk }) => {
            commands::token_decode::decode(token, jwk.as_deref())
        }
        Command::Config(ConfigCommand::Check) => commands::config_check::run(
            cli.config.as_deref(),
            FlagSettings {
                data_dir: cli.data_dir.clone(),
                ..FlagSettings::default()
            },
        ),
        Command::Config(ConfigCommand::Print) => {
            print!("{}", settings()?.to_redacted_toml()?);
            Ok(ExitCode::SUCCESS)
        }
    }
}
