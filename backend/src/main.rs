//! Entry point of `mcp-edge-backend`: parse options, pick the store, bind, serve until a signal.

use std::io::{IsTerminal as _, Write as _};
use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser as _;
use mcp_edge_backend::app::{AppConfig, router};
use mcp_edge_backend::config::Cli;
use mcp_edge_backend::gateway_auth::GatewayAuth;
use mcp_edge_backend::store::{MemoryStore, ProjectStore, RedisStore};
use mcp_edge_backend::tools::tool_scopes;
use mcp_edge_contract::MIN_SECRET_LEN;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if cli.print_tool_scopes {
        match serde_json::to_string_pretty(&tool_scopes()) {
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
    init_tracing(log_json);
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            if log_json {
                tracing::error!(error = format!("{e:#}"), "mcp-edge-backend stopped");
            } else {
                eprintln!("mcp-edge-backend: {e:#}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}

fn init_tracing(json: bool) {
    // rmcp logs every stateless request's service start and stop at info; keep those out by default.
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,rmcp=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    if json {
        builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init();
    } else {
        builder.compact().init();
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let secret = cli.gateway_secret.unwrap_or_default();
    let gateway_auth = GatewayAuth::new(secret.into_bytes()).map_err(|_| {
        anyhow::anyhow!(
            "the gateway secret (--gateway-secret / MCP_EDGE_GATEWAY_SECRET) must be at least {MIN_SECRET_LEN} bytes"
        )
    })?;

    let store: Arc<dyn ProjectStore> = match &cli.redis_url {
        Some(url) => {
            let store = RedisStore::connect(url)
                .await
                .context("connecting to Redis (--redis-url / REDIS_URL)")?;
            tracing::info!(store = "redis", "using the Redis store");
            Arc::new(store)
        }
        None => {
            tracing::info!(
                store = "memory",
                "no Redis URL given; using the in-memory store (data is lost on exit)"
            );
            Arc::new(MemoryStore::new())
        }
    };
    tracing::info!(allowed_hosts = ?cli.allowed_hosts, "MCP endpoint Host allowlist");

    let app = router(AppConfig {
        gateway_auth,
        store,
        allowed_hosts: cli.allowed_hosts,
    });
    let listener = tokio::net::TcpListener::bind(cli.listen)
        .await
        .with_context(|| format!("binding {}", cli.listen))?;
    let addr = listener.local_addr().context("reading the bound address")?;
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "mcp-edge-backend listening on {addr}")?;
        stdout.flush()?;
    }
    tracing::info!(%addr, "listening");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("serving")?;
    tracing::info!("shut down");
    Ok(())
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
