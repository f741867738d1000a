//! The `tessera` binary: reads flags, environment and files, then runs the
//! server or an administrative command. All behaviour lives in the library.
#![forbid(unsafe_code)]

mod cli;
mod keys;
mod lab;
mod serve;
mod settings;
mod stores;
mod token;
mod users;

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
    let mut flags = FlagSettings {
        data_dir: cli.data_dir.clone(),
        ..FlagSettings::default()
    };
    if let Command::Serve(args) = &cli.command {
        flags.listen = args.listen;
        flags.store = args.store.map(Into::into);
    }
    let settings = Settings::load(cli.config.as_deref(), flags)?;
    match cli.command {
        Command::Serve(_) => serve::run(settings),
        Command::User(command) => users::run(&settings, command),
        Command::Keys(command) => keys::run(&settings, command),
        Command::Migrate => users::migrate(&settings),
        Command::Lab(args) => lab::run(&args),
        Command::Token(cli::TokenCommand::Decode { token, jwk }) => {
            token::decode(&token, jwk.as_deref())
        }
        Command::Config(ConfigCommand::Print) => {
            print!("{}", settings.to_redacted_toml()?);
            Ok(ExitCode::SUCCESS)
        }
    }
}
