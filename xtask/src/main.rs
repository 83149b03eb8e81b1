//! `cargo xtask`: developer tools for mcp-edge.
//!
//! - `dev-issuer`: serves the development issuer's JWKS (and minimal authorization server
//!   metadata) so Envoy can fetch keys through its `auth_server` cluster. It is a stand-in for a
//!   real OAuth authorization server: it has no login, no authorize and no token endpoint.
//! - `token`: mints a development access token for a demo tenant.
//! - `sync-config`: writes the tool scopes and scope lists of envoy.yaml, docker/envoy.yaml and
//!   authz/directory.json from the tools the backend serves with tool-sources.yaml (the demo
//!   catalogue and the OpenAPI sources' selected operations; `--check`: only report drift).
//! - `assertion-vectors`: writes docs/assertion-vectors.json, the identity assertion's test
//!   vectors, from the contract (`--check`: only report drift).
//! - `bench-setup`: keys, tokens and Envoy configurations for `scripts/bench.sh`.
//! - `scaled-envoy`: prints one replica's Envoy configuration for `scripts/run.sh --scaled`.
//! - `dev-certs`: a throwaway CA and the certificates `envoy.tls.yaml` reads (`.local/tls`).
//! - `deploy`: renders deploy/rendered/ from deploy/values.yaml and envoy.yaml (`--check`: only
//!   report drift).
//! - `oci`: writes the filter's `.wasm` as an OCI image layout for Istio and Envoy Gateway.
//! - `tool-scopes`: writes an Envoy configuration's `tool_scopes` from a third-party MCP server's
//!   `tools/list` (`--print`: only print them; `--check`: only report drift).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use axum::{Json, Router, extract::State, http::StatusCode, routing::get};
use clap::{Parser, Subcommand};
use reqwest::header::{HeaderName, HeaderValue};
use serde_json::{Value, json};
use xtask::bench_envoy::BenchPorts;
use xtask::bench_setup::BenchSetup;
use xtask::mcp_lister::ServerAccess;
use xtask::oci_image::{OciImage, Platform};
use xtask::sync_config::{Generated, render, repo_root, stale_files, write_files};
use xtask::tool_scopes::Mode;
use xtask::{DevKeys, TokenSpec, claims_for};

#[derive(Parser)]
#[command(name = "xtask", about = "mcp-edge developer tools")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the development issuer's JWKS at /jwks (keys are re-read from the key file on each request).
    DevIssuer {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:9100")]
        listen: SocketAddr,
        /// The issuer URL put in the metadata document.
        #[arg(long, default_value = "http://127.0.0.1:9100")]
        issuer: String,
        /// Key file; created with fresh keys when missing.
        #[arg(long, default_value = ".local/dev-issuer/keys.json")]
        key_file: PathBuf,
    },
    /// Print a development access token.
    Token {
        #[arg(long, default_value = ".local/dev-issuer/keys.json")]
        key_file: PathBuf,
        #[arg(long, default_value = "http://127.0.0.1:9100")]
        issuer: String,
        /// The resource the token is for (the filter's `resource`).
        #[arg(long, default_value = "http://127.0.0.1:8080/mcp")]
        audience: String,
        #[arg(long, default_value = "acme")]
        tenant: String,
        #[arg(long, default_value = "alice")]
        sub: String,
        /// Space separated scopes.
        #[arg(long, default_value = "mcp:read mcp:write")]
        scope: String,
        /// free, pro or enterprise.
        #[arg(long, default_value = "pro")]
        tier: String,
        /// e.g. team:engineering
        #[arg(long)]
        data_scope: Option<String>,
        /// Comma separated tool names (absent: every tool the scopes permit).
        #[arg(long, value_delimiter = ',')]
        allowed_tools: Option<Vec<String>>,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 3600)]
        ttl: u64,
        /// RS256, ES256 or EdDSA.
        #[arg(long, default_value = "RS256")]
        alg: String,
    },
    /// Write envoy.yaml's tool_scopes and scopes_supported, docker/envoy.yaml, envoy.tls.yaml and
    /// authz/directory.json's scopes_supported from the tools the backend serves with
    /// tool-sources.yaml (the demo catalogue and each OpenAPI source's selected operations).
    SyncConfig {
        /// Change nothing; fail when a file is not what the served tools make.
        #[arg(long)]
        check: bool,
    },
    /// Print the Envoy configuration of one replica of the scaled-out stack (scripts/run.sh
    /// --scaled): envoy.yaml with the filter's global_rate_limit on and this replica's ports.
    ScaledEnvoy {
        /// The replica's MCP listener port.
        #[arg(long)]
        port: u16,
        /// The replica's admin port.
        #[arg(long)]
        admin_port: u16,
        /// The port of the global rate limit service (mcp-edge-ratelimit).
        #[arg(long, default_value_t = 8091)]
        ratelimit_port: u16,
    },
    /// Make a throwaway CA and the certificates envoy.tls.yaml reads (the edge's listener and
    /// client certificates, the authorization server's and the backend's, all for localhost),
    /// with the SDS files pointing at them. Refuses to overwrite an existing directory.
    DevCerts {
        #[arg(long, default_value = xtask::tls_envoy::DEV_TLS_DIR)]
        out: PathBuf,
    },
    /// Write docs/assertion-vectors.json: identity assertion (x-mcp-identity) test vectors made
    /// by the contract.
    AssertionVectors {
        /// Change nothing; fail when the file is not what the contract makes.
        #[arg(long)]
        check: bool,
    },
    /// Render deploy/rendered/ (Kubernetes, Envoy Gateway, Istio, ECS) from deploy/values.yaml,
    /// envoy.yaml and ratelimit/limits.yaml.
    Deploy {
        /// Change nothing; fail when a rendered file is not what the sources make.
        #[arg(long)]
        check: bool,
    },
    /// Write the filter's .wasm as an OCI image layout (the Wasm image spec's compat variant, which
    /// Istio's WasmPlugin and Envoy Gateway's EnvoyExtensionPolicy pull) and print its manifest
    /// digest. Push it with `skopeo copy oci:<out>:<tag> docker://<registry>/<name>:<tag>`.
    Oci {
        #[arg(
            long,
            default_value = "target/wasm32-wasip1/release/mcp_edge_filter.wasm"
        )]
        wasm: PathBuf,
        /// The layout directory (replaced).
        #[arg(long, default_value = "target/oci/mcp-edge-filter")]
        out: PathBuf,
        #[arg(long, default_value = env!("CARGO_PKG_VERSION"))]
        tag: String,
        /// The image config's architecture (linux/<arch>): the nodes a Kubernetes image volume
        /// of it may be mounted on. Istio and Envoy Gateway ignore it.
        #[arg(long, default_value = "amd64")]
        arch: String,
    },
    /// Write the edge's tool_scopes for a third-party MCP server from the server's tools/list.
    ///
    /// Read-only tools need mcp:read, destructive ones mcp:admin, others mcp:write, with the MCP
    /// spec's defaults for absent hints (not read-only, destructive: no annotations → mcp:admin).
    /// Writes them, and any scope they need, into the Envoy configuration's mcp-edge plugin
    /// configuration (tool_scopes, prm.scopes_supported) and prints what changed.
    #[command(
        after_help = "Ask the server itself, not the edge: the edge lists only the tools it \
        has a policy for. The client declares every client capability, since a server may list \
        some tools only to clients that can sample, elicit or list roots. Exit status: 0 when \
        done (--check: no drift), 1 when --check found drift or on any error. See \
        docs/third-party-servers.md."
    )]
    ToolScopes {
        /// The server's Streamable HTTP endpoint (http:// only), e.g. http://127.0.0.1:3001/mcp.
        url: String,
        /// A bearer token for the server (sent as Authorization: Bearer <token>).
        #[arg(long, env = "MCP_TOOL_SCOPES_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// A header sent on every request, NAME:VALUE (repeatable).
        #[arg(long = "header", value_name = "NAME:VALUE")]
        headers: Vec<String>,
        /// Sign every request with the edge's identity assertion (x-mcp-identity), keyed with the
        /// gateway secret in this environment variable, for a server that accepts only requests
        /// the edge vouched for. Its iss and aud are the --envoy file's plugin `assertion`
        /// (default mcp-edge, mcp-edge-backend).
        #[arg(long, value_name = "VAR")]
        gateway_secret_env: Option<String>,
        /// The Envoy configuration whose mcp-edge plugin configuration is written or checked.
        #[arg(long, default_value = "envoy.yaml")]
        envoy: PathBuf,
        /// Print the tool_scopes as JSON instead of writing them.
        #[arg(long, conflicts_with = "check")]
        print: bool,
        /// Change nothing; exit 1 and name each tool that is missing from the configuration,
        /// extra in it, or has another scope there.
        #[arg(long)]
        check: bool,
    },
    /// Write what scripts/bench.sh runs from: keys, JWKS, token files (reused while fresh), the
    /// Envoy configuration of every edge setup derived from envoy.yaml, the upstream's, bench.env.
    BenchSetup {
        #[arg(long, default_value = ".local/bench")]
        out: PathBuf,
        #[arg(long, default_value_t = 18080)]
        edge_port: u16,
        #[arg(long, default_value_t = 18901)]
        edge_admin_port: u16,
        #[arg(long, default_value_t = 18081)]
        upstream_port: u16,
        #[arg(long, default_value_t = 18902)]
        upstream_admin_port: u16,
        /// Where the real backend listens (the end-to-end setup).
        #[arg(long, default_value_t = 18082)]
        backend_port: u16,
        /// Where the global rate limit service listens (the global setup).
        #[arg(long, default_value_t = 18092)]
        ratelimit_port: u16,
        #[arg(
            long,
            default_value = "target/wasm32-wasip1/release/mcp_edge_filter.wasm"
        )]
        filter_wasm: PathBuf,
        #[arg(
            long,
            default_value = "target/wasm32-wasip1/release/mcp_edge_bench_noop_filter.wasm"
        )]
        noop_wasm: PathBuf,
        /// Tokens per algorithm for the new-token-per-request setups.
        #[arg(long, default_value_t = 60_000)]
        tokens: usize,
        /// Distinct EdDSA tokens for the memory row (the EdDSA file holds at least this many).
        #[arg(long, default_value_t = 0)]
        rss_tokens: usize,
    },
}

#[derive(Clone)]
struct IssuerState {
    issuer: String,
    key_file: PathBuf,
}

async fn jwks(State(s): State<IssuerState>) -> Result<Json<Value>, (StatusCode, String)> {
    let fail = |e: anyhow::Error| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
    let keys = DevKeys::load(&s.key_file).map_err(fail)?;
    Ok(Json(keys.jwks().map_err(fail)?))
}

async fn metadata(State(s): State<IssuerState>) -> Json<Value> {
    Json(json!({
        "issuer": s.issuer,
        "jwks_uri": format!("{}/jwks", s.issuer),
        "scopes_supported": mcp_edge_backend::tools::scopes_supported(),
        "response_types_supported": [],
        "x-note": "development issuer: tokens come from `cargo xtask token`",
    }))
}

#[tokio::main]
async fn main() -> Result<()> {
    match Cli::parse().command {
        Command::DevIssuer {
            listen,
            issuer,
            key_file,
        } => {
            DevKeys::load_or_create(&key_file)?;
            let app = Router::new()
                .route("/jwks", get(jwks))
                .route("/.well-known/oauth-authorization-server", get(metadata))
                .with_state(IssuerState { issuer, key_file });
            let listener = tokio::net::TcpListener::bind(listen).await?;
            println!("dev-issuer listening on {}", listener.local_addr()?);
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = tokio::signal::ctrl_c().await;
                })
                .await?;
        }
        Command::Token {
            key_file,
            issuer,
            audience,
            tenant,
            sub,
            scope,
            tier,
            data_scope,
            allowed_tools,
            ttl,
            alg,
        } => {
            let keys = DevKeys::load_or_create(&key_file)?;
            let spec = TokenSpec {
                issuer,
                audience,
                tenant_id: tenant,
                sub,
                scope,
                tier,
                data_scope,
                allowed_tools,
                ttl_seconds: ttl,
            };
            println!("{}", keys.sign(&alg, claims_for(&spec))?);
        }
        Command::SyncConfig { check } => sync_config(check)?,
        Command::ScaledEnvoy {
            port,
            admin_port,
            ratelimit_port,
        } => {
            let base = std::fs::read_to_string(repo_root().join("envoy.yaml"))?;
            print!(
                "{}",
                xtask::scaled_envoy::scaled_envoy_config(&base, port, admin_port, ratelimit_port)?
            );
        }
        Command::AssertionVectors { check } => assertion_vectors(check)?,
        Command::DevCerts { out } => {
            anyhow::ensure!(
                !out.exists(),
                "{} exists: remove it to make new certificates",
                out.display()
            );
            let (files, _) = xtask::dev_certs::DevTlsFiles::create(&out)?;
            println!(
                "wrote the dev CA {} and the certificates envoy.tls.yaml reads under {}",
                files.ca().display(),
                out.display()
            );
        }
        Command::Deploy { check } => {
            let root = repo_root();
            let files = xtask::deploy::render(&root)?;
            sync_generated(&root, &files, check, "deploy/values.yaml", "deploy")?;
        }
        Command::Oci {
            wasm,
            out,
            tag,
            arch,
        } => {
            let bytes = std::fs::read(&wasm)
                .with_context(|| format!("reading {} (build the filter first)", wasm.display()))?;
            let image = OciImage::build(&bytes, &tag, Platform::linux(&arch)?)?;
            image.write_layout(&out)?;
            println!("{}", image.manifest_digest);
            eprintln!(
                "plugin.wasm sha256: {}",
                xtask::oci_image::sha256_digest(&bytes).trim_start_matches("sha256:")
            );
            eprintln!(
                "wrote {} (tag {tag}); push: skopeo copy oci:{}:{tag} docker://<registry>/mcp-edge-filter:{tag}",
                out.display(),
                out.display()
            );
        }
        Command::ToolScopes {
            url,
            token,
            headers,
            gateway_secret_env,
            envoy,
            print,
            check,
        } => {
            let mode = match (print, check) {
                (true, _) => Mode::Print,
                (_, true) => Mode::Check,
                _ => Mode::Write,
            };
            let request = xtask::tool_scopes::Request {
                server: ServerAccess {
                    url,
                    token,
                    headers: parse_headers(&headers)?,
                    vouch: None,
                },
                gateway_secret_env,
                envoy,
                mode,
            };
            if !xtask::tool_scopes::run(request).await? {
                std::process::exit(1);
            }
        }
        Command::BenchSetup {
            out,
            edge_port,
            edge_admin_port,
            upstream_port,
            upstream_admin_port,
            backend_port,
            ratelimit_port,
            filter_wasm,
            noop_wasm,
            tokens,
            rss_tokens,
        } => BenchSetup {
            root: repo_root(),
            out,
            ports: BenchPorts {
                edge: edge_port,
                edge_admin: edge_admin_port,
                upstream: upstream_port,
                upstream_admin: upstream_admin_port,
                backend: backend_port,
                ratelimit: ratelimit_port,
            },
            filter_wasm,
            noop_wasm,
            tokens,
            rss_tokens,
        }
        .run()?,
    }
    Ok(())
}

/// `NAME:VALUE` arguments as headers (the value's surrounding spaces dropped).
fn parse_headers(args: &[String]) -> Result<Vec<(HeaderName, HeaderValue)>> {
    args.iter()
        .map(|arg| {
            let (name, value) = arg
                .split_once(':')
                .with_context(|| format!("--header {arg:?} is not NAME:VALUE"))?;
            Ok((
                HeaderName::from_bytes(name.trim().as_bytes())
                    .with_context(|| format!("--header {arg:?}: not a header name"))?,
                HeaderValue::from_str(value.trim())
                    .with_context(|| format!("--header {arg:?}: not a header value"))?,
            ))
        })
        .collect()
}

fn sync_config(check: bool) -> Result<()> {
    let root = repo_root();
    let files = render(&root)?;
    sync_generated(
        &root,
        &files,
        check,
        "the served tools (tool-sources.yaml)",
        "sync-config",
    )
}

fn assertion_vectors(check: bool) -> Result<()> {
    let files = [xtask::assertion_vectors::render()?];
    sync_generated(
        &repo_root(),
        &files,
        check,
        "the contract",
        "assertion-vectors",
    )
}

/// Writes the stale ones of `files` made from `source`, or with `check` only reports them and
/// exits 1 (naming `cargo xtask <command>`).
fn sync_generated(
    root: &Path,
    files: &[Generated],
    check: bool,
    source: &str,
    command: &str,
) -> Result<()> {
    if check {
        let stale = stale_files(root, files);
        if !stale.is_empty() {
            eprintln!(
                "not what {source} makes: {}; run `cargo xtask {command}`",
                stale.join(", ")
            );
            std::process::exit(1);
        }
        println!("generated files match {source}");
        return Ok(());
    }
    let written = write_files(root, files)?;
    if written.is_empty() {
        println!("generated files already match {source}");
    }
    for path in written {
        println!("wrote {path}");
    }
    Ok(())
}
