//! `tessera serve`.

use std::process::ExitCode;

use anyhow::Context;
use tessera_axum::{Service, TokenKeys};
use tracing_subscriber::EnvFilter;

use crate::commands::user::create_private_dir;
use crate::keyfiles::{KeyFile, chain_key, load_or_create};
use crate::settings::Settings;

/// Starts the server and runs until SIGTERM or Ctrl-C.
pub fn run(settings: Settings) -> anyhow::Result<ExitCode> {
    let filter =
        EnvFilter::try_from_default_env().or_else(|_| EnvFilter::try_new(&settings.log))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    create_private_dir(&settings.data_dir)?;
    let config = settings.resolve()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    runtime.block_on(async {
        let keys = TokenKeys {
            signing: load_or_create(&settings)?,
            chain: chain_key(&settings)?,
        };
        tracing::info!(algorithm = %keys.signing.active().signing.algorithm(), kid = %keys.signing.active().kid, "access tokens ready");
        // A configured HS256 secret is never written anywhere: nothing to watch.
        let key_file = settings
            .jwt_secret
            .is_none()
            .then(|| Box::new(KeyFile::watch(&settings)) as _);
        let service = Service::start_with(config, keys, key_file).await?;
        let shutdown = shutdown_signal()?;
        let listener = tokio::net::TcpListener::bind(settings.listen)
            .await
            .with_context(|| format!("cannot listen on {}", settings.listen))?;
        let address = listener.local_addr()?;
        let store = service.state().sessions().backend();
        // The lab and the tests read this line (target and text) to learn the
        // address: keep both stable.
        tracing::info!(target: "tessera::serve", %address, store, "listening on http://{address}");
        service.serve(listener, shutdown).await?;
        tracing::info!(target: "tessera::serve", "stopped");
        Ok(ExitCode::SUCCESS)
    })
}

/// Registers the SIGTERM and SIGINT handlers now (before the server says it
/// listens, so a signal sent right after cannot kill it uncleanly) and
/// returns the future that completes on either.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => {},
            _ = interrupt.recv() => {},
        }
        tracing::info!("shutting down: finishing in-flight requests");
    })
}
