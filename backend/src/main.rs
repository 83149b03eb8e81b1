//! Entry point of `mcp-edge-backend`: parse options, pick the store and metering, bind, serve until
//! a signal (then flush usage events); or run a `usage` subcommand.

use std::io::{IsTerminal as _, Write as _};
use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser as _;
use mcp_edge_backend::app::{AppConfig, router};
use mcp_edge_backend::batch::BatchLimits;
use mcp_edge_backend::config::Cli;
use mcp_edge_backend::gateway_auth::Trust;
use mcp_edge_backend::metering::{
    DeliveryTask, MemoryMeter, MeterStore, Metering, Outbox, RedisMeter,
};
use mcp_edge_backend::metrics;
use mcp_edge_backend::shed::{Shedder, shed};
use mcp_edge_backend::sources::{ToolRegistry, build_registry};
use mcp_edge_backend::store::{MemoryStore, ProjectStore, RedisStore};
use mcp_edge_backend::telemetry;
use mcp_edge_backend::tls::{self, TlsFiles, TlsListener};
use mcp_edge_backend::usage_cli::{self, Command};
use mcp_edge_contract::MIN_SECRET_LEN;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// jemalloc rather than glibc's malloc: a tool call allocates and frees a lot (the result as a
/// `Value`, its text copy, the response), and glibc's malloc/free were ~25% of a `list_projects`
/// call's instructions (issue 20, callgrind). Measured with `--example call_cost`.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if cli.print_tool_scopes {
        let printed = tool_registry(&cli, Arc::new(MemoryStore::new()), Metering::in_memory())
            .and_then(|tools| Ok(serde_json::to_string_pretty(&tools.tool_scopes())?));
        match printed {
            Ok(json) => {
                println!("{json}");
                return std::process::ExitCode::SUCCESS;
            }
            Err(e) => {
                eprintln!("mcp-edge-backend: {e}");
                return std::process::ExitCode::FAILURE;
            }
        }
    }
    let log_json = cli.log_json;
    let exporting = match init_tracing(log_json, cli.otlp_endpoint.as_deref()) {
        Ok(exporting) => exporting,
        Err(e) => {
            eprintln!("mcp-edge-backend: --otlp-endpoint: {e:#}");
            return std::process::ExitCode::FAILURE;
        }
    };
    if let Some(Command::Usage(command)) = cli.command {
        let mut stdout = std::io::stdout().lock();
        return match usage_cli::run(command, &mut stdout).await {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("mcp-edge-backend usage: {e:#}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    let code = match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            if log_json {
                tracing::error!(error = format!("{e:#}"), "mcp-edge-backend stopped");
            } else {
                eprintln!("mcp-edge-backend: {e:#}");
            }
            std::process::ExitCode::FAILURE
        }
    };
    if let Some(exporting) = exporting {
        // The exporter's thread blocks while it sends the last spans: not on a runtime worker.
        let _ = tokio::task::spawn_blocking(move || exporting.shutdown()).await;
    }
    code
}

/// Logs to stderr (compact text, or JSON lines); with an OTLP endpoint, spans are also exported
/// there ([`telemetry`]). Returns the exporter to flush at exit.
fn init_tracing(
    json: bool,
    otlp_endpoint: Option<&str>,
) -> anyhow::Result<Option<telemetry::Exporting>> {
    // rmcp logs every stateless request's service start and stop at info; keep those out by default.
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,rmcp=warn"));
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let fmt = if json {
        fmt.json()
            .with_current_span(true)
            .with_span_list(false)
            .boxed()
    } else {
        fmt.compact().boxed()
    };
    let (otlp, exporting) = match otlp_endpoint {
        Some(endpoint) => {
            let (layer, exporting) = telemetry::otlp_layer(endpoint)?;
            (Some(layer), Some(exporting))
        }
        None => (None, None),
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(otlp)
        .init();
    Ok(exporting)
}

/// Every tool this server serves ([`build_registry`] over `--tool-sources`); an operation left out
/// is logged as a warning.
fn tool_registry(
    cli: &Cli,
    store: Arc<dyn ProjectStore>,
    metering: Metering,
) -> anyhow::Result<ToolRegistry> {
    build_registry(
        cli.tool_sources.as_deref(),
        store,
        metering,
        &|source, warning| {
            tracing::warn!(
                source,
                operation = %warning.operation,
                reason = %warning.reason,
                "operation not served"
            );
        },
    )
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let secret = cli.gateway_secret.clone().unwrap_or_default();
    let trust = Trust::new(
        secret.as_bytes(),
        &cli.assertion_issuer,
        &cli.assertion_audience,
    )
    .map_err(|_| {
        anyhow::anyhow!(
            "the gateway secret (--gateway-secret / MCP_EDGE_GATEWAY_SECRET) must be at least {MIN_SECRET_LEN} bytes"
        )
    })?
    .with_max_body_bytes(usize::try_from(cli.max_body_bytes).unwrap_or(usize::MAX));

    let store = open_store(&cli).await?;
    tracing::info!(allowed_hosts = ?cli.allowed_hosts, "MCP endpoint Host allowlist");
    let (metering, metering_task) = start_metering(&cli)?;

    let shedder = Shedder::new(usize::try_from(cli.max_in_flight).unwrap_or(usize::MAX));
    if let Some(addr) = cli.metrics_addr {
        serve_metrics(addr, metering.clone(), shedder.clone()).await?;
    }
    let tools = Arc::new(tool_registry(&cli, store, metering.clone())?);
    tracing::info!(
        tools = tools.tools().len(),
        sources = ?tools.sources().iter().map(|s| s.label()).collect::<Vec<_>>(),
        "tools"
    );
    let app = router(AppConfig {
        trust,
        tools,
        metering,
        allowed_hosts: cli.allowed_hosts,
        batch_limits: BatchLimits {
            max_answer_bytes: usize::try_from(cli.max_batch_answer_bytes).unwrap_or(usize::MAX),
        },
    })
    .layer(axum::middleware::from_fn_with_state(shedder, shed));
    let tls = match (&cli.tls_cert, &cli.tls_key, &cli.tls_client_ca) {
        (Some(cert_chain), Some(key), Some(client_ca)) => Some(tls::server_config(&TlsFiles {
            cert_chain,
            key,
            client_ca,
        })?),
        _ => None,
    };
    let listener = tokio::net::TcpListener::bind(cli.listen)
        .await
        .with_context(|| format!("binding {}", cli.listen))?;
    let addr = listener.local_addr().context("reading the bound address")?;
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "mcp-edge-backend listening on {addr}")?;
        stdout.flush()?;
    }
    tracing::info!(%addr, tls = tls.is_some(), "listening");
    match tls {
        Some(config) => axum::serve(TlsListener::new(listener, config)?, app)
            .with_graceful_shutdown(shutdown_signal())
            .await
            .context("serving")?,
        None => axum::serve(listener, app)
            .with_graceful_shutdown(shutdown_signal())
            .await
            .context("serving")?,
    }
    metering_task
        .shutdown(std::time::Duration::from_secs(10))
        .await;
    tracing::info!("shut down");
    Ok(())
}

/// Binds the metrics listener and serves it in the background until the process ends.
async fn serve_metrics(
    addr: std::net::SocketAddr,
    metering: Metering,
    shedder: Shedder,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the metrics address {addr} (--metrics-addr)"))?;
    let bound = listener
        .local_addr()
        .context("reading the metrics address")?;
    tracing::info!(addr = %bound, path = metrics::METRICS_PATH, "serving metrics");
    let app = metrics::router(metrics::Sources { metering, shedder });
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "metrics endpoint stopped");
        }
    });
    Ok(())
}

/// The project store: Redis at `--redis-url`, or memory without one; with the configured caps.
async fn open_store(cli: &Cli) -> anyhow::Result<Arc<dyn ProjectStore>> {
    let limits = cli.store_limits();
    Ok(match cli.redis_url.as_deref() {
        Some(url) => {
            let config = cli.redis_config();
            let store = RedisStore::connect_with(url, config)
                .await
                .context("connecting to Redis (--redis-url / REDIS_URL)")?;
            tracing::info!(
                store = "redis",
                pool_size = config.pool_size,
                response_timeout_ms = cli.redis_response_timeout_ms,
                projects_per_tenant = limits.projects_per_tenant,
                tasks_per_project = limits.tasks_per_project,
                "using the Redis store"
            );
            Arc::new(store)
        }
        None => {
            tracing::info!(
                store = "memory",
                projects_per_tenant = limits.projects_per_tenant,
                tasks_per_project = limits.tasks_per_project,
                "no Redis URL given; using the in-memory store (data is lost on exit)"
            );
            Arc::new(MemoryStore::with_limits(limits))
        }
    })
}

/// Metering over Redis (or memory) with the configured quotas and outbox; its delivery task runs
/// until shut down.
fn start_metering(cli: &Cli) -> anyhow::Result<(Metering, DeliveryTask)> {
    let meter: Arc<dyn MeterStore> = match cli.metering_url() {
        Some(urls) if cli.metering_redis_cluster => {
            let nodes: Vec<String> = urls.split(',').map(|u| u.trim().to_owned()).collect();
            Arc::new(RedisMeter::lazy_cluster(&nodes).context(
                "parsing the metering Redis Cluster's node URLs (--metering-redis-url / --redis-url)",
            )?)
        }
        Some(url) => Arc::new(
            RedisMeter::lazy(url)
                .context("parsing the metering Redis URL (--metering-redis-url / --redis-url)")?,
        ),
        None => Arc::new(MemoryMeter::new()),
    };
    let outbox = match &cli.outbox_dir {
        Some(dir) => Outbox::open_dir(dir).with_context(|| {
            format!(
                "opening the usage outbox in {} (is another backend using it?)",
                dir.display()
            )
        })?,
        None => {
            if meter.kind() == "redis" {
                tracing::warn!(
                    "no --outbox-dir: usage events not yet in Redis wait in memory and are lost if the backend stops first"
                );
            }
            Outbox::memory()
        }
    };
    let metering_config = cli.metering_config();
    tracing::info!(
        store = meter.kind(),
        free = %metering_config.limits.free,
        pro = %metering_config.limits.pro,
        enterprise = %metering_config.limits.enterprise,
        when_redis_down = %metering_config.when_down,
        outbox_dir = ?cli.outbox_dir,
        "metering daily quotas"
    );
    Ok(Metering::start(meter, metering_config, outbox))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
