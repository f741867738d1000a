//! `tessera serve`.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use tessera_axum::access_log::{AccessLog, AccessLogFormat};
use tessera_axum::self_service::Registration;
use tessera_axum::tls::ServerTls;
use tessera_axum::{Service, TokenKeys};
use tracing_subscriber::EnvFilter;

use crate::commands::user::create_private_dir;
use crate::keyfiles::{KeyFile, chain_key, load_or_create};
use crate::logwriter::LogWriter;
use crate::otlp::Exporter;
use crate::settings::{LogFormat, Settings};
use crate::tlsfiles::CertificateFiles;

/// Starts the server and runs until SIGTERM or Ctrl-C.
pub fn run(settings: Settings) -> anyhow::Result<ExitCode> {
    let filter =
        EnvFilter::try_from_default_env().or_else(|_| EnvFilter::try_new(&settings.log))?;
    // The span exporter's thread and HTTP client start before the runtime
    // (its client blocks) and stop after it.
    let exporter = settings
        .otlp()?
        .map(|otlp| Exporter::start(&otlp))
        .transpose()?;
    // Log lines (one per request with the access log) are gathered in a
    // buffer that a thread of its own writes to stderr in large writes (see
    // `logwriter`). The guard writes what is left when `run` returns.
    let (writer, _flush_at_exit) =
        LogWriter::start(std::io::stderr(), settings.log_format == LogFormat::Json)
            .context("cannot start the log writer")?;
    // The access log is written by the library into the same writer; on
    // unless `access_log = false` or the filter keeps INFO lines out.
    let info_lines = filter
        .max_level_hint()
        .is_none_or(|level| level >= tracing::level_filters::LevelFilter::INFO);
    let access_log = (settings.access_log && info_lines).then(|| {
        let format = match settings.log_format {
            LogFormat::Text => AccessLogFormat::Text,
            LogFormat::Json => AccessLogFormat::Json,
        };
        AccessLog::new(format, Arc::new(writer.clone()))
    });
    init_logs(settings.log_format, filter, writer, exporter.as_ref());
    let result = serve(&settings, exporter.as_ref(), access_log);
    if let Some(exporter) = exporter {
        exporter.shutdown();
    }
    result
}

/// Installs the log subscriber: lines in `format` through `writer`, and,
/// with an `exporter`, spans to it (each with a filter of its own, so the
/// store spans the exporter wants are never formatted as log lines).
fn init_logs(format: LogFormat, filter: EnvFilter, writer: LogWriter, exporter: Option<&Exporter>) {
    use tracing_subscriber::prelude::*;

    let Some(exporter) = exporter else {
        let logs = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(writer);
        match format {
            LogFormat::Text => logs
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .init(),
            // One object a line, the event's fields at the top level (and
            // the request's id: see `logwriter`).
            LogFormat::Json => logs
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .with_span_list(false)
                .init(),
        }
        return;
    };
    let lines = tracing_subscriber::fmt::layer().with_writer(writer);
    let lines = match format {
        LogFormat::Text => lines
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .boxed(),
        LogFormat::Json => lines
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .boxed(),
    };
    tracing_subscriber::registry()
        .with(lines.with_filter(filter))
        .with(exporter.layer())
        .init();
}

/// Opens the stores and serves until SIGTERM or Ctrl-C.
fn serve(
    settings: &Settings,
    exporter: Option<&Exporter>,
    access_log: Option<AccessLog>,
) -> anyhow::Result<ExitCode> {
    create_private_dir(&settings.data_dir)?;
    let mut config = settings.resolve()?;
    config.app.traces = exporter.map(Exporter::traces);
    config.app.access_log = access_log;
    let tls_files = settings.tls_files()?;
    let fd_limit = raise_fd_limit();
    config.connections.max_connections = fit_connection_cap(
        config.connections.max_connections,
        settings.max_connections.is_some(),
        fd_limit,
    );
    log_connection_limits(&config.connections);
    warn_about_account_mail(settings, &config);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    runtime.block_on(async {
        let keys = TokenKeys {
            signing: load_or_create(settings)?,
            chain: chain_key(settings)?,
        };
        tracing::info!(algorithm = %keys.signing.active().signing.algorithm(), kid = %keys.signing.active().kid, "access tokens ready");
        // A configured HS256 secret is never written anywhere: nothing to watch.
        let key_file = settings
            .jwt_secret
            .is_none()
            .then(|| Box::new(KeyFile::watch(settings)) as _);
        // The certificate is read (and SIGHUP handled) before the stores
        // open: a bad file fails start-up at once.
        let tls = match &tls_files {
            None => None,
            Some(files) => {
                let source = CertificateFiles::watch(files.clone())?;
                Some(ServerTls::new(Box::new(source)).context("tls_cert and tls_key")?)
            }
        };
        let service = Service::start_with(config, keys, key_file).await?;
        let shutdown = shutdown_signal()?;
        let listener = listen(settings.listen)
            .with_context(|| format!("cannot listen on {}", settings.listen))?;
        let address = listener.local_addr()?;
        let store = service.state().sessions().backend();
        // The lab and the tests read this line (target and text) to learn the
        // address: keep both stable.
        match tls {
            None => {
                tracing::info!(target: "tessera::serve", %address, store, "listening on http://{address}");
                service.serve(listener, shutdown).await?;
            }
            Some(tls) => {
                tracing::info!(target: "tessera::serve", %address, store, "listening on https://{address}");
                service.serve_tls(listener, tls, shutdown).await?;
            }
        }
        tracing::info!(target: "tessera::serve", "stopped");
        Ok(ExitCode::SUCCESS)
    })
}

/// Connections the kernel holds for us while every connection slot is
/// taken (the kernel caps it at `net.core.somaxconn`); std's default is 128.
const LISTEN_BACKLOG: u32 = 4096;

/// A listener on `address` with [`LISTEN_BACKLOG`] (and `SO_REUSEADDR`, as
/// std sets it, so a restart can bind while old connections linger).
fn listen(address: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = match address {
        std::net::SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        std::net::SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(LISTEN_BACKLOG)
}

/// File descriptors kept for everything that is not a client connection:
/// store connections, database files, the listener, logs. At most a quarter
/// of a small limit.
const RESERVED_FDS: u64 = 256;

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (systemd leaves the
/// soft one at 1024) and reports it. Returns the soft limit in force.
fn raise_fd_limit() -> Option<u64> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let before = getrlimit(Resource::Nofile);
    let Some(soft) = before.current else {
        tracing::info!("file descriptors: no limit");
        return None;
    };
    // An unlimited hard limit still has the kernel's ceiling (nr_open,
    // 2^20 by default).
    let hard = before.maximum.unwrap_or(1 << 20);
    if soft >= hard {
        tracing::info!(
            limit = soft,
            "file descriptors: soft limit is the hard limit"
        );
        return Some(soft);
    }
    let raised = Rlimit {
        current: Some(hard),
        maximum: before.maximum,
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => {
            tracing::info!(
                from = soft,
                to = hard,
                "file descriptors: soft limit raised to the hard limit"
            );
            Some(hard)
        }
        Err(error) => {
            tracing::warn!(limit = soft, hard, %error, "file descriptors: cannot raise the soft limit");
            Some(soft)
        }
    }
}

/// The connection cap that fits `fd_limit` with [`RESERVED_FDS`] to spare:
/// `cap` if it fits, else the most that does (with a warning when `cap` was
/// configured rather than the default).
fn fit_connection_cap(cap: usize, configured: bool, fd_limit: Option<u64>) -> usize {
    let Some(limit) = fd_limit else {
        return cap;
    };
    let reserve = RESERVED_FDS.min(limit / 4);
    let fits = usize::try_from(limit - reserve)
        .unwrap_or(usize::MAX)
        .max(1);
    if cap <= fits {
        return cap;
    }
    if configured {
        tracing::warn!(
            configured = cap,
            lowered_to = fits,
            fd_limit = limit,
            "max_connections is above what the file-descriptor limit allows: lowered"
        );
    }
    fits
}

fn log_connection_limits(limits: &tessera_axum::connections::ConnectionLimits) {
    tracing::info!(
        max_connections = limits.max_connections,
        per_client = limits.max_connections_per_client,
        header_read_timeout_s = limits.header_read_timeout.as_secs(),
        body_read_timeout_s = limits.body_read_timeout.as_secs(),
        write_timeout_s = limits.write_timeout.as_secs(),
        shutdown_timeout_s = limits.shutdown_timeout.as_secs(),
        "connection limits"
    );
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

/// Settings that make the account flows half-work: sign-up without a
/// mailer (nobody can verify or recover), mailed links without a URL to
/// point at (they come out as bare paths).
fn warn_about_account_mail(settings: &Settings, config: &tessera_axum::ServiceConfig) {
    let self_service = &config.app.self_service;
    if self_service.registration != Registration::Closed && !config.app.mail.is_configured() {
        tracing::warn!(
            registration = ?self_service.registration,
            "registration is open but mail = none: new accounts get no verification link and \
             nobody can recover a password (set mail and smtp_url)"
        );
    }
    if config.app.mail.is_configured()
        && settings.public_url.is_none()
        && settings.account_pages_url.is_none()
    {
        tracing::warn!(
            "mail is on but neither public_url nor account_pages_url is set: links in mails \
             are bare paths (/reset-password?token=...)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_cap_leaves_file_descriptors_to_spare() {
        // systemd's default soft limit: a quarter is kept back.
        assert_eq!(fit_connection_cap(10_000, false, Some(1024)), 768);
        assert_eq!(fit_connection_cap(10_000, true, Some(4096)), 3840);
        assert_eq!(fit_connection_cap(10_000, false, Some(524_288)), 10_000);
        assert_eq!(fit_connection_cap(500, true, Some(1024)), 500);
        assert_eq!(fit_connection_cap(10_000, false, None), 10_000);
    }
}
