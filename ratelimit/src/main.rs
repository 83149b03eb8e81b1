//! Entry point of `mcp-edge-ratelimit`: parse options, load the limits file (refusing a bad one),
//! reach the counters, then serve gRPC (and metrics) until a signal while watching the file.

use std::io::{IsTerminal as _, Write as _};
use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser as _;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_server::RateLimitServiceServer;
use mcp_edge_ratelimit::caller_auth;
use mcp_edge_ratelimit::cli::Cli;
use mcp_edge_ratelimit::in_force::InForce;
use mcp_edge_ratelimit::limiter::Limiter;
use mcp_edge_ratelimit::metrics::{self, Metrics};
use mcp_edge_ratelimit::service::RateLimitServer;
use mcp_edge_ratelimit::{limits_file, reload};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::server::TcpIncoming;
use tracing_subscriber::EnvFilter;

/// The largest request decoded (bytes): the edge sends a few short descriptors.
const MAX_REQUEST_BYTES: usize = 64 * 1024;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_json);
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mcp-edge-ratelimit: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn init_tracing(json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    if json {
        builder.json().init();
    } else {
        builder.compact().init();
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    cli.check_counters_chosen().map_err(anyhow::Error::msg)?;
    let secret = cli.shared_secret().map_err(anyhow::Error::msg)?;
    let path = &cli.limits;
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the limits file {}", path.display()))?;
    let config = limits_file::parse(&text)
        .with_context(|| format!("the limits file {} is refused", path.display()))?;
    if cli.check_limits {
        println!("{}", limits_file::summary(&config));
        return Ok(());
    }
    let limiter = match cli.redis_options() {
        Some(options) => Limiter::redis(&options)
            .await
            .context("connecting to Redis (--redis-url)")?,
        None => Limiter::memory(cli.memory_max_counters),
    };
    tracing::info!(counters = limiter.kind(), limits = %limits_file::summary(&config), "limits in force");
    let in_force = Arc::new(InForce::new(config, limiter));
    let metrics = Arc::new(Metrics::new());
    tokio::spawn(reload::watch(
        path.clone(),
        cli.reload_interval(),
        text,
        Arc::clone(&in_force),
        Arc::clone(&metrics),
    ));

    let incoming = TcpIncoming::bind(cli.listen)
        .with_context(|| format!("binding {}", cli.listen))?
        .with_nodelay(Some(true));
    let addr = incoming.local_addr().context("reading the bound address")?;
    if let Some(metrics_addr) = cli.metrics_addr {
        let listener = tokio::net::TcpListener::bind(metrics_addr)
            .await
            .with_context(|| format!("binding {metrics_addr} (--metrics-addr)"))?;
        let bound = listener
            .local_addr()
            .context("reading the metrics address")?;
        announce(&format!("mcp-edge-ratelimit metrics on {bound}"))?;
        let app = metrics::router(Arc::clone(&metrics));
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "metrics endpoint stopped");
            }
        });
    }
    announce(&format!("mcp-edge-ratelimit listening on {addr}"))?;
    tracing::info!(%addr, callers = if secret.is_some() { "shared secret" } else { "any" }, "listening");
    let service = RateLimitServiceServer::new(RateLimitServer::new(in_force, metrics))
        // A request is a few descriptors: refuse anything larger before decoding it.
        .max_decoding_message_size(MAX_REQUEST_BYTES);
    tonic::transport::Server::builder()
        .concurrency_limit_per_connection(
            usize::try_from(cli.max_in_flight_per_connection).unwrap_or(usize::MAX),
        )
        .max_concurrent_streams(u32::try_from(cli.max_in_flight_per_connection).ok())
        .timeout(std::time::Duration::from_millis(cli.request_timeout_ms))
        .add_service(InterceptedService::new(
            service,
            caller_auth::interceptor(secret),
        ))
        .serve_with_incoming_shutdown(incoming, stop_requested())
        .await
        .context("serving")?;
    tracing::info!("shut down");
    Ok(())
}

/// One line on stdout, flushed: how scripts and tests learn the bound addresses.
fn announce(line: &str) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}")?;
    stdout.flush()
}

/// SIGINT or SIGTERM.
async fn stop_requested() {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
