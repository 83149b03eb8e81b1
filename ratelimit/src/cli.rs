//! Command line and environment options of the `mcp-edge-ratelimit` binary.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgGroup, Parser};

use crate::caller_auth::{MIN_SECRET_BYTES, SharedSecret};
use crate::limiter::RedisOptions;

/// The mcp-edge global rate limit service. Answers Envoy's rate limit protocol
/// (envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit, gRPC) for the domain in the
/// limits file: each descriptor names a tenant (entries `tenant`, `tier`, optionally `tool`) and
/// costs `hits_addend` (1 when unset) against its tier's budgets, counted in fixed windows in Redis
/// (one atomic script per decision) so every instance and every Envoy share one budget per tenant.
///
/// Answers OK or OVER_LIMIT with a status per descriptor and the RateLimit-Policy, RateLimit and
/// (over the limit) Retry-After headers; INVALID_ARGUMENT for a request it cannot read;
/// UNAVAILABLE as soon as Redis misses --redis-timeout-ms, so the caller applies its fail mode.
#[derive(Debug, Clone, Parser)]
#[command(name = "mcp-edge-ratelimit", version)]
#[command(group(ArgGroup::new("counters").args(["redis_url", "memory"])))]
pub struct Cli {
    /// gRPC address to listen on; port 0 picks a free port. The address actually bound is printed
    /// on stdout as `mcp-edge-ratelimit listening on <addr>`.
    #[arg(long, env = "RATELIMIT_LISTEN", default_value = "127.0.0.1:8091")]
    pub listen: SocketAddr,

    /// The limits file (YAML: `domain`, and under `tiers` each tier's requests_per_second /
    /// _minute / _hour / _day and optional per-tool budgets). Reread when it changes; a bad file is
    /// refused at start (exit 1) and on reload (the limits in force stay; logged).
    #[arg(long, env = "RATELIMIT_LIMITS", value_name = "FILE")]
    pub limits: PathBuf,

    /// Check the limits file, print what it sets, and exit (0 when valid).
    #[arg(long)]
    pub check_limits: bool,

    /// Redis holding the counters (e.g. redis://127.0.0.1:6379/0), shared by every instance of the
    /// service. Must answer at start.
    #[arg(long, env = "RATELIMIT_REDIS_URL", value_name = "URL")]
    pub redis_url: Option<String>,

    /// Keep the counters in this process instead of Redis: for a single instance only (each
    /// instance would count on its own). One of --redis-url and --memory is required.
    #[arg(long)]
    pub memory: bool,

    /// Tenant windows kept in memory with --memory; when full, expired windows go first, then
    /// those closest to their end.
    #[arg(
        long,
        default_value_t = 100_000,
        value_parser = clap::value_parser!(u64).range(1..=100_000_000),
        value_name = "COUNTERS"
    )]
    pub memory_max_counters: u64,

    /// The most one decision waits for Redis (milliseconds); past it the answer is UNAVAILABLE.
    /// Keep it below the caller's timeout (the Envoy rate limit filter's defaults to 20 ms).
    #[arg(
        long,
        env = "RATELIMIT_REDIS_TIMEOUT_MS",
        default_value_t = 15,
        value_parser = clap::value_parser!(u64).range(1..=60_000),
        value_name = "MS"
    )]
    pub redis_timeout_ms: u64,

    /// The most one connection attempt to Redis takes (milliseconds), at start and on reconnect.
    #[arg(
        long,
        env = "RATELIMIT_REDIS_CONNECT_TIMEOUT_MS",
        default_value_t = 1_000,
        value_parser = clap::value_parser!(u64).range(1..=60_000),
        value_name = "MS"
    )]
    pub redis_connect_timeout_ms: u64,

    /// How often the limits file is checked for changes (milliseconds).
    #[arg(
        long,
        default_value_t = 1_000,
        value_parser = clap::value_parser!(u64).range(10..=3_600_000),
        value_name = "MS"
    )]
    pub reload_interval_ms: u64,

    /// Serve Prometheus metrics at GET /metrics on this address (port 0 picks one, printed as
    /// `mcp-edge-ratelimit metrics on <addr>`). Off when not given.
    #[arg(long, env = "RATELIMIT_METRICS_ADDR", value_name = "ADDR")]
    pub metrics_addr: Option<SocketAddr>,

    /// A shared secret every caller must present as gRPC metadata `authorization: Bearer
    /// <secret>` (at least 32 bytes; the filter's `global_rate_limit.secret_env` names the Envoy
    /// environment variable that holds the same value). Without it, anyone who reaches the port
    /// can spend any tenant's budget: keep the service on loopback or a private network then.
    #[arg(
        long,
        env = "RATELIMIT_SHARED_SECRET",
        hide_env_values = true,
        value_name = "SECRET"
    )]
    pub shared_secret: Option<String>,

    /// The most calls one connection may have in flight; more wait (HTTP/2 streams beyond it
    /// are not read). Envoy multiplexes a worker's calls over one connection.
    #[arg(
        long,
        default_value_t = 256,
        value_parser = clap::value_parser!(u64).range(1..=100_000),
        value_name = "CALLS"
    )]
    pub max_in_flight_per_connection: u64,

    /// The most one call may take (milliseconds), Redis included; past it the answer is
    /// CANCELLED, so nothing waits for ever.
    #[arg(
        long,
        default_value_t = 1_000,
        value_parser = clap::value_parser!(u64).range(1..=60_000),
        value_name = "MS"
    )]
    pub request_timeout_ms: u64,

    /// Log JSON lines instead of text (stderr).
    #[arg(long)]
    pub log_json: bool,
}

impl Cli {
    /// Refuses a start without a choice of counters (a check of the limits file needs none).
    pub fn check_counters_chosen(&self) -> Result<(), &'static str> {
        if self.redis_url.is_none() && !self.memory && !self.check_limits {
            return Err(
                "choose where the counters live: --redis-url URL (shared) or --memory (one instance)",
            );
        }
        Ok(())
    }

    /// The shared secret, checked for length; an error names the option.
    pub fn shared_secret(&self) -> Result<Option<SharedSecret>, String> {
        match &self.shared_secret {
            None => Ok(None),
            Some(secret) => SharedSecret::new(secret).map(Some).ok_or_else(|| {
                format!(
                    "--shared-secret (RATELIMIT_SHARED_SECRET) must be at least {MIN_SECRET_BYTES} bytes"
                )
            }),
        }
    }

    pub fn redis_options(&self) -> Option<RedisOptions> {
        self.redis_url.as_ref().map(|url| RedisOptions {
            url: url.clone(),
            timeout: Duration::from_millis(self.redis_timeout_ms),
            connect_timeout: Duration::from_millis(self.redis_connect_timeout_ms),
        })
    }

    pub fn reload_interval(&self) -> Duration {
        Duration::from_millis(self.reload_interval_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_counters_must_be_chosen_explicitly() {
        let none = Cli::try_parse_from(["x", "--limits", "l.yaml"]).expect("parses");
        assert!(none.check_counters_chosen().is_err());
        let check =
            Cli::try_parse_from(["x", "--limits", "l.yaml", "--check-limits"]).expect("parses");
        assert!(check.check_counters_chosen().is_ok());
        assert!(Cli::try_parse_from(["x", "--limits", "l.yaml", "--memory"]).is_ok());
        assert!(
            Cli::try_parse_from([
                "x",
                "--limits",
                "l.yaml",
                "--memory",
                "--redis-url",
                "redis://a"
            ])
            .is_err()
        );
        let cli = Cli::try_parse_from(["x", "--limits", "l.yaml", "--redis-url", "redis://a"])
            .expect("valid");
        let redis = cli.redis_options().expect("redis");
        assert_eq!(redis.timeout, Duration::from_millis(15));
    }

    #[test]
    fn help_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
