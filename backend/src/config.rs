//! Command line and environment options of the `mcp-edge-backend` binary.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

use crate::app::DEFAULT_ALLOWED_HOSTS;
use crate::metering::{DailyQuota, DownPolicy, MeteringConfig, QuotaLimits};
use crate::store::StoreLimits;
use crate::store::redis_store::RedisConfig;
use crate::usage_cli::Command;

/// The mcp-edge tool server. Serves MCP (Streamable HTTP, stateless) at POST /mcp to requests that
/// carry a valid mcp-edge identity assertion (x-mcp-identity), and GET /healthz to anyone. Listen on an internal
/// address only: Envoy with the mcp-edge filter is its only intended client.
///
/// Billable tool calls count against a daily quota per tenant and tier and emit a usage event to
/// the Redis stream mcp-edge:usage-events; `mcp-edge-backend usage --help` reports and exports them.
#[derive(Debug, Clone, Parser)]
#[command(name = "mcp-edge-backend", version, subcommand_negates_reqs = true)]
pub struct Cli {
    /// Address to listen on; port 0 picks a free port. The address actually bound is printed on
    /// stdout as `mcp-edge-backend listening on <addr>`.
    #[arg(long, env = "BACKEND_LISTEN", default_value = "127.0.0.1:8081")]
    pub listen: SocketAddr,

    /// Serve the MCP listener over TLS with this certificate chain (PEM; the leaf first) and
    /// require a client certificate (mutual TLS, the edge's): with --tls-key and --tls-client-ca.
    /// The identity assertion is still verified on every request.
    #[arg(
        long,
        env = "MCP_EDGE_TLS_CERT",
        value_name = "PEM",
        requires_all = ["tls_key", "tls_client_ca"]
    )]
    pub tls_cert: Option<PathBuf>,

    /// The private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(
        long,
        env = "MCP_EDGE_TLS_KEY",
        value_name = "PEM",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,

    /// The CA certificate(s) (PEM) that signed the client certificates accepted on the TLS
    /// listener: the edge's. A connection without one is refused during the handshake.
    #[arg(
        long,
        env = "MCP_EDGE_TLS_CLIENT_CA",
        value_name = "PEM",
        requires = "tls_cert"
    )]
    pub tls_client_ca: Option<PathBuf>,

    /// Address of the Prometheus metrics endpoint (`GET /metrics`, OpenMetrics text): fail-open
    /// time and calls, outbox backlog, refusals, sheds, deliveries. Off without it. A listener of
    /// its own, unauthenticated: bind it where only the metrics scraper reaches.
    #[arg(long, env = "MCP_EDGE_METRICS_ADDR", value_name = "ADDR")]
    pub metrics_addr: Option<SocketAddr>,

    /// Export traces over OTLP/HTTP (protobuf) to this base URL, e.g. `http://127.0.0.1:4318`
    /// (spans go to `<url>/v1/traces`): one server span per request, its parent the edge's span
    /// from `traceparent`, with tenant, tool and outcome. Off without it.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT", value_name = "URL")]
    pub otlp_endpoint: Option<String>,

    /// The largest request body accepted (bytes, 1 to 16777216); keep it equal to the filter's
    /// `max_body_bytes` so the backend never refuses what the edge judged.
    #[arg(
        long,
        env = "MCP_EDGE_MAX_BODY_BYTES",
        default_value_t = 1_048_576,
        value_parser = clap::value_parser!(u32).range(1..=16_777_216),
        value_name = "BYTES"
    )]
    pub max_body_bytes: u32,

    /// The most bytes of results one JSON-RPC batch's answer carries (1 KiB to 256 MiB). The
    /// element whose answer would pass it is answered with JSON-RPC error -32058 instead (it ran),
    /// and the batch's later calls are not run.
    #[arg(
        long,
        env = "MCP_EDGE_MAX_BATCH_ANSWER_BYTES",
        default_value_t = mcp_edge_contract::limits::DEFAULT_MAX_BATCH_ANSWER_BYTES as u64,
        value_parser = clap::value_parser!(u64).range(1024..=268_435_456),
        value_name = "BYTES"
    )]
    pub max_batch_answer_bytes: u64,

    /// Requests served at once; one more is shed at once with 503, `Retry-After: 1` and JSON-RPC
    /// error -32054 rather than queued.
    #[arg(
        long,
        env = "MCP_EDGE_MAX_IN_FLIGHT",
        default_value_t = 1024,
        value_parser = clap::value_parser!(u32).range(1..=65_536),
        value_name = "REQUESTS"
    )]
    pub max_in_flight: u32,

    /// Redis URL for tenant data (e.g. redis://127.0.0.1:6379/0), and for quota counters and usage
    /// events unless --metering-redis-url is given. Without it data is kept in memory and lost on
    /// exit.
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: Option<String>,

    /// Projects an organisation (tenant) may have at once; one more is refused with JSON-RPC error
    /// -32055 (deleting one frees its place, archiving does not).
    #[arg(
        long,
        env = "MCP_EDGE_MAX_PROJECTS_PER_TENANT",
        default_value_t = crate::store::limits::DEFAULT_PROJECTS_PER_TENANT,
        value_parser = clap::value_parser!(u64).range(1..=100_000),
        value_name = "PROJECTS"
    )]
    pub max_projects_per_tenant: u64,

    /// Tasks a project may have; one more is refused with JSON-RPC error -32055.
    #[arg(
        long,
        env = "MCP_EDGE_MAX_TASKS_PER_PROJECT",
        default_value_t = crate::store::limits::DEFAULT_TASKS_PER_PROJECT,
        value_parser = clap::value_parser!(u64).range(1..=100_000),
        value_name = "TASKS"
    )]
    pub max_tasks_per_project: u64,

    /// Connections to the --redis-url Redis for tenant data (multiplexed, used in turn).
    #[arg(
        long,
        env = "MCP_EDGE_REDIS_POOL_SIZE",
        default_value_t = 4,
        value_parser = clap::value_parser!(u16).range(1..=64),
        value_name = "CONNECTIONS"
    )]
    pub redis_pool_size: u16,

    /// Deadline of one connection attempt to the --redis-url Redis (milliseconds).
    #[arg(
        long,
        env = "MCP_EDGE_REDIS_CONNECT_TIMEOUT_MS",
        default_value_t = 1000,
        value_parser = clap::value_parser!(u64).range(1..=60_000),
        value_name = "MS"
    )]
    pub redis_connect_timeout_ms: u64,

    /// Deadline of each tenant-data Redis command or script, from sending it to its reply
    /// (milliseconds). Every step is bounded by the caps (none took more than about 100 ms on a
    /// loaded test machine); a call whose step misses it gets JSON-RPC error -32056 and is not
    /// billed, unless it was a write that is then found to have taken effect.
    #[arg(
        long,
        env = "MCP_EDGE_REDIS_RESPONSE_TIMEOUT_MS",
        default_value_t = 1000,
        value_parser = clap::value_parser!(u64).range(1..=60_000),
        value_name = "MS"
    )]
    pub redis_response_timeout_ms: u64,

    /// Redis URL for quota counters and the usage event stream, if not the --redis-url one. Without
    /// either, quotas are counted in memory and usage events only logged. Run it with
    /// `appendonly yes` and `appendfsync always` to lose no event it acknowledged.
    #[arg(long, env = "MCP_EDGE_METERING_REDIS_URL")]
    pub metering_redis_url: Option<String>,

    /// The metering Redis is a Redis Cluster (managed Redis often is): --metering-redis-url (or
    /// --redis-url) names one or more of its nodes, comma-separated. Every metering script keeps to
    /// one hash slot. The tenant-data store (--redis-url) and `usage` commands need a single Redis.
    #[arg(long, env = "MCP_EDGE_METERING_REDIS_CLUSTER")]
    pub metering_redis_cluster: bool,

    /// Directory of the usage outbox: every successful billable call's usage event is committed
    /// there (an embedded redb file, group commit) before the call is answered, and moved to Redis
    /// from there, also after a restart. One directory per backend process (locked). Without it
    /// undelivered events wait in memory and are lost on exit. `--spool-dir` is an old name.
    #[arg(
        long,
        alias = "spool-dir",
        env = "MCP_EDGE_OUTBOX_DIR",
        value_name = "DIR"
    )]
    pub outbox_dir: Option<PathBuf>,

    /// Billable calls per UTC day for the free tier; 0 or `unlimited` for no limit.
    #[arg(
        long,
        env = "MCP_EDGE_QUOTA_FREE",
        default_value = "100",
        value_name = "CALLS"
    )]
    pub quota_free: DailyQuota,

    /// Billable calls per UTC day for the pro tier; 0 or `unlimited` for no limit.
    #[arg(
        long,
        env = "MCP_EDGE_QUOTA_PRO",
        default_value = "10000",
        value_name = "CALLS"
    )]
    pub quota_pro: DailyQuota,

    /// Billable calls per UTC day for the enterprise tier; 0 or `unlimited` for no limit.
    #[arg(
        long,
        env = "MCP_EDGE_QUOTA_ENTERPRISE",
        default_value = "unlimited",
        value_name = "CALLS"
    )]
    pub quota_enterprise: DailyQuota,

    /// What a billable call does per tier while the quota's Redis is unreachable: `closed` refuses
    /// it (JSON-RPC error -32051), `open` runs it, counted in this process up to the tenant's quota
    /// (then -32050), and in Redis when its usage event is delivered. Comma-separated
    /// tier=open|closed; unnamed tiers keep the default.
    #[arg(
        long,
        env = "MCP_EDGE_QUOTA_WHEN_REDIS_DOWN",
        default_value = "free=closed,pro=open,enterprise=open",
        value_name = "POLICY"
    )]
    pub quota_when_redis_down: DownPolicy,

    /// Shared secret for the identity assertion (HS256), the same as the filter's
    /// `gateway_secret`; at least 32 bytes.
    #[arg(
        long,
        env = "MCP_EDGE_GATEWAY_SECRET",
        hide_env_values = true,
        required_unless_present = "print_tool_scopes"
    )]
    pub gateway_secret: Option<String>,

    /// The edge's name: the `iss` the identity assertion must carry (the filter's
    /// `assertion.issuer`).
    #[arg(long, env = "MCP_EDGE_ASSERTION_ISSUER", default_value = mcp_edge_trust::DEFAULT_ISSUER)]
    pub assertion_issuer: String,

    /// This service's name: the `aud` the identity assertion must carry (the filter's
    /// `assertion.audience`).
    #[arg(long, env = "MCP_EDGE_ASSERTION_AUDIENCE", default_value = mcp_edge_trust::DEFAULT_AUDIENCE)]
    pub assertion_audience: String,

    /// Host header value the MCP endpoint accepts (DNS-rebinding protection). `name` allows any
    /// port, `name:port` only that port. Repeat the option, or give a comma-separated list in the
    /// environment variable. Defaults to 127.0.0.1, localhost and ::1 on any port.
    #[arg(
        long = "allowed-host",
        env = "BACKEND_ALLOWED_HOSTS",
        value_name = "HOST",
        value_delimiter = ',',
        default_values_t = DEFAULT_ALLOWED_HOSTS.map(String::from)
    )]
    pub allowed_hosts: Vec<String>,

    /// Log as JSON lines instead of compact text (logs go to stderr; filter with RUST_LOG).
    #[arg(long, env = "BACKEND_LOG_JSON")]
    pub log_json: bool,

    /// Print the tool → required scope map of every tool this server would serve (the demo's
    /// and --tool-sources') as JSON and exit: the filter's `tool_scopes`.
    #[arg(long)]
    pub print_tool_scopes: bool,

    /// The tool sources file (YAML): whether to serve the demo project tracker, and OpenAPI
    /// documents whose selected operations become tools, called as the verified tenant (see
    /// docs/openapi-tools.md). Without it, the demo alone. An invalid file or document, or two
    /// tools with one name, stops the start with a message naming the file.
    #[arg(long, env = "MCP_EDGE_TOOL_SOURCES", value_name = "FILE")]
    pub tool_sources: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

impl Cli {
    /// The quota configuration from the options.
    pub fn metering_config(&self) -> MeteringConfig {
        MeteringConfig {
            limits: QuotaLimits {
                free: self.quota_free,
                pro: self.quota_pro,
                enterprise: self.quota_enterprise,
            },
            when_down: self.quota_when_redis_down,
        }
    }

    /// The caps of the project store.
    pub fn store_limits(&self) -> StoreLimits {
        StoreLimits {
            projects_per_tenant: self.max_projects_per_tenant,
            tasks_per_project: self.max_tasks_per_project,
        }
    }

    /// How the Redis project store connects, and its caps.
    pub fn redis_config(&self) -> RedisConfig {
        RedisConfig {
            pool_size: usize::from(self.redis_pool_size),
            connect_timeout: std::time::Duration::from_millis(self.redis_connect_timeout_ms),
            response_timeout: std::time::Duration::from_millis(self.redis_response_timeout_ms),
            limits: self.store_limits(),
        }
    }

    /// The Redis URL of metering, if any.
    pub fn metering_url(&self) -> Option<&str> {
        self.metering_redis_url
            .as_deref()
            .or(self.redis_url.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metering::WhenDown;

    #[test]
    fn defaults_and_overrides() {
        let cli = Cli::try_parse_from(["mcp-edge-backend", "--gateway-secret", "x"]).expect("cli");
        assert_eq!(cli.metering_config(), MeteringConfig::default());
        assert_eq!(cli.redis_config(), RedisConfig::default());
        let cli_caps = Cli::try_parse_from([
            "mcp-edge-backend",
            "--gateway-secret",
            "x",
            "--max-projects-per-tenant",
            "7",
            "--max-tasks-per-project",
            "9",
            "--redis-response-timeout-ms",
            "250",
        ])
        .expect("cli");
        let redis = cli_caps.redis_config();
        assert_eq!(redis.limits.projects_per_tenant, 7);
        assert_eq!(redis.limits.tasks_per_project, 9);
        assert_eq!(
            redis.response_timeout,
            std::time::Duration::from_millis(250)
        );
        assert!(
            Cli::try_parse_from([
                "mcp-edge-backend",
                "--gateway-secret",
                "x",
                "--max-tasks-per-project",
                "0"
            ])
            .is_err()
        );
        assert!(cli.command.is_none());
        assert_eq!(
            cli.max_body_bytes as usize,
            mcp_edge_contract::limits::DEFAULT_MAX_BODY_BYTES,
            "the backend's body cap defaults to the filter's"
        );
        for bad in ["0", "16777217"] {
            assert!(
                Cli::try_parse_from([
                    "mcp-edge-backend",
                    "--gateway-secret",
                    "x",
                    "--max-body-bytes",
                    bad
                ])
                .is_err(),
                "{bad}"
            );
        }
        let cli = Cli::try_parse_from([
            "mcp-edge-backend",
            "--gateway-secret",
            "x",
            "--quota-free",
            "5",
            "--quota-pro",
            "unlimited",
            "--quota-enterprise",
            "0",
            "--quota-when-redis-down",
            "free=open",
        ])
        .expect("cli");
        let config = cli.metering_config();
        assert_eq!(config.limits.free, DailyQuota(Some(5)));
        assert_eq!(config.limits.pro, DailyQuota::UNLIMITED);
        assert_eq!(config.limits.enterprise, DailyQuota::UNLIMITED);
        assert_eq!(config.when_down.free, WhenDown::Open);
        assert!(
            Cli::try_parse_from([
                "mcp-edge-backend",
                "--gateway-secret",
                "x",
                "--quota-pro",
                "x"
            ])
            .is_err()
        );
    }

    #[test]
    fn usage_subcommands_need_no_gateway_secret() {
        let cli = Cli::try_parse_from([
            "mcp-edge-backend",
            "usage",
            "export",
            "--stripe",
            "--customers",
            "tenants.json",
            "--redis-url",
            "redis://127.0.0.1:1",
            "--day",
            "2026-11-27",
            "--output",
            "day.jsonl",
        ])
        .expect("cli");
        assert!(matches!(cli.command, Some(Command::Usage(_))));
        assert!(
            Cli::try_parse_from([
                "mcp-edge-backend",
                "usage",
                "report",
                "--redis-url",
                "redis://x",
                "--day",
                "27.11.2026"
            ])
            .is_err()
        );
    }
}
