//! Envoy's counters, read from the admin `/stats` endpoint. A test reads them before and after
//! what it does and asserts the difference; counters are process-wide, so such a case runs alone
//! (see [`crate::runner::Case`]).

use std::collections::HashMap;

use anyhow::{Context as _, Result};

use crate::stack::Stack;

/// The filter's custom counters are published under this prefix.
pub const FILTER_PREFIX: &str = "wasmcustom.mcp_edge.";

/// Counter and gauge values at one moment (histograms are left out).
#[derive(Debug, Clone, Default)]
pub struct Stats(HashMap<String, u64>);

impl Stats {
    /// Parses the admin endpoint's text format, `name: value` a line.
    pub fn parse(text: &str) -> Self {
        Self(
            text.lines()
                .filter_map(|line| {
                    let (name, value) = line.rsplit_once(": ")?;
                    Some((name.to_string(), value.trim().parse().ok()?))
                })
                .collect(),
        )
    }

    /// A value; a counter Envoy does not know yet (the filter defines its own on first use) is 0.
    pub fn get(&self, name: &str) -> u64 {
        self.0.get(name).copied().unwrap_or(0)
    }

    /// How much `name` grew from `before` to these stats.
    pub fn since(&self, before: &Stats, name: &str) -> u64 {
        self.get(name).saturating_sub(before.get(name))
    }

    /// How much the filter's counter `name` (without [`FILTER_PREFIX`]) grew since `before`.
    pub fn filter_since(&self, before: &Stats, name: &str) -> u64 {
        self.since(before, &format!("{FILTER_PREFIX}{name}"))
    }
}

/// The stats whose names match `filter` (a regular expression, as the admin endpoint takes) of
/// the Envoy whose admin interface is at `admin_url` (`http://127.0.0.1:<port>`).
pub fn read_stats(admin_url: &str, filter: &str) -> Result<Stats> {
    let resp = crate::client::http()
        .get(format!(
            "{admin_url}/stats?{}",
            crate::client::form_encode(&[("filter", filter)])
        ))
        .send()
        .context("reading Envoy's stats")?;
    anyhow::ensure!(resp.status() == 200, "/stats answered {}", resp.status());
    Ok(Stats::parse(&resp.text()?))
}

impl Stack {
    /// The stack's Envoy's stats whose names match `filter` (see [`read_stats`]).
    pub fn stats(&self, filter: &str) -> Result<Stats> {
        read_stats(&self.admin_url, filter)
    }
}

/// The per-worker connection counter of the listener that serves `url` (`http://127.0.0.1:<port>/…`):
/// `listener.127.0.0.1_<port>.worker_<n>.downstream_cx_total`.
pub fn worker_connections(url: &str, worker: usize) -> Result<String> {
    let authority = url
        .split("://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .with_context(|| format!("no authority in {url}"))?;
    let (host, port) = authority
        .rsplit_once(':')
        .with_context(|| format!("no port in {url}"))?;
    Ok(format!(
        "listener.{host}_{port}.worker_{worker}.downstream_cx_total"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_counters_and_skips_histograms() {
        let s = Stats::parse(
            "wasmcustom.mcp_edge.outcome.allowed: 12\n\
             listener.127.0.0.1_8080.worker_1.downstream_cx_total: 3\n\
             listener.127.0.0.1_8080.downstream_cx_length_ms: No recorded values\n",
        );
        assert_eq!(s.get("wasmcustom.mcp_edge.outcome.allowed"), 12);
        assert_eq!(
            s.get("listener.127.0.0.1_8080.worker_1.downstream_cx_total"),
            3
        );
        assert_eq!(s.get("listener.127.0.0.1_8080.downstream_cx_length_ms"), 0);
        let before = Stats::parse("wasmcustom.mcp_edge.outcome.allowed: 10\n");
        assert_eq!(s.filter_since(&before, "outcome.allowed"), 2);
        assert_eq!(s.filter_since(&Stats::default(), "outcome.allowed"), 12);
    }

    #[test]
    fn names_the_worker_counter_of_a_listener() {
        assert_eq!(
            worker_connections("http://127.0.0.1:4711/mcp", 0)
                .ok()
                .as_deref(),
            Some("listener.127.0.0.1_4711.worker_0.downstream_cx_total")
        );
        assert!(worker_connections("no-url", 0).is_err());
    }
}
