//! The Grafana dashboard against a running stack: every metric name its PromQL queries use is
//! scraped from the endpoints docs/observability/prometheus.yml names (Envoy's
//! `/stats/prometheus`, the backend's and the rate limit service's `/metrics`), after requests
//! that move each counter the dashboard shows: an allowed call, a denial, a local 429 and a call
//! the global rate limit service decided.

use std::collections::BTreeSet;

use anyhow::{Context as _, Result, bail, ensure};
use mcp_edge_tests::client::*;
use mcp_edge_tests::stack::Stack;
use serde_json::{Value, json};
use xtask::claims_for;

use super::BACKEND_METRICS_PORT;

/// The free tier's local bucket of this binary's stack: small, so a 429 comes quickly.
const FREE_BURST: usize = 3;

/// This binary's plugin configuration: the global rate limit on (the stack starts the service),
/// a small free-tier bucket.
pub fn plugin_overrides() -> Value {
    json!({
        "rate_limits": {
            "free": {"requests_per_minute": 60, "burst": FREE_BURST},
            "pro": {"requests_per_minute": 60000, "burst": 10000},
            "enterprise": {"requests_per_minute": 60000, "burst": 10000}
        },
        "global_rate_limit": {
            "cluster": "mcp_edge_ratelimit",
            "domain": "mcp-edge",
            "timeout_ms": 1000,
            "failure_mode": {"free": "closed", "pro": "open", "enterprise": "open"},
            "secret_env": "MCP_EDGE_RATELIMIT_SECRET"
        }
    })
}

/// The metric names a PromQL expression selects: identifiers outside label matchers `{…}`,
/// strings, range selectors `[…]` and grouping clauses (`by (…)`, `without`, `on`, `ignoring`,
/// `group_left`, `group_right`), that are neither functions (followed by `(`), keywords nor
/// numbers.
pub fn metric_names(expr: &str) -> Result<BTreeSet<String>> {
    const KEYWORDS: [&str; 23] = [
        "by",
        "without",
        "on",
        "ignoring",
        "bool",
        "and",
        "or",
        "unless",
        "offset",
        // Aggregation operators, which may stand before their `by (…)` rather than a `(`.
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
        "limitk",
        "limit_ratio",
    ];
    const GROUPING: [&str; 6] = [
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    let chars: Vec<char> = expr.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '{' || c == '[' {
            let close = if c == '{' { '}' } else { ']' };
            i = skip_past(&chars, i, close).with_context(|| format!("unclosed {c} in {expr}"))?;
        } else if c == '"' || c == '\'' {
            i = skip_past(&chars, i, c).with_context(|| format!("unclosed string in {expr}"))?;
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || "_:".contains(chars[i])) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let mut next = i;
            while next < chars.len() && chars[next].is_whitespace() {
                next += 1;
            }
            let call = chars.get(next) == Some(&'(');
            if GROUPING.contains(&word.as_str()) && call {
                i = skip_past(&chars, next, ')')
                    .with_context(|| format!("unclosed {word}( in {expr}"))?;
            } else if !call && !KEYWORDS.contains(&word.as_str()) {
                names.insert(word);
            }
        } else if c.is_ascii_digit() || c == '.' {
            // A number, with a duration unit or exponent glued to it (5m, 1e3).
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
        } else {
            i += 1;
        }
    }
    Ok(names)
}

/// The index after the `close` that ends what opens at `open` (strings inside are skipped).
fn skip_past(chars: &[char], open: usize, close: char) -> Option<usize> {
    let mut i = open + 1;
    while i < chars.len() {
        let c = chars[i];
        if c == close {
            return Some(i + 1);
        }
        if (c == '"' || c == '\'') && c != close {
            i = skip_past(chars, i, c)?;
            continue;
        }
        if c == '\\' {
            i += 1;
        }
        i += 1;
    }
    None
}

/// Every PromQL expression of a Grafana dashboard (panels' and rows' targets, at any depth).
pub fn dashboard_exprs(dashboard: &Value) -> Vec<String> {
    let mut out = Vec::new();
    collect_exprs(dashboard, &mut out);
    out
}

fn collect_exprs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            if let (Some(Value::Array(targets)), true) =
                (map.get("targets"), map.contains_key("type"))
            {
                for t in targets {
                    if let Some(expr) = t.get("expr").and_then(Value::as_str) {
                        out.push(expr.to_string());
                    }
                }
            }
            for (k, child) in map {
                if k != "targets" {
                    collect_exprs(child, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| collect_exprs(i, out)),
        _ => {}
    }
}

/// The sample names of a Prometheus text exposition (`name{labels} value` or `name value`).
fn exposed_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_string)
        .collect()
}

/// The filter's samples of Envoy's exposition, for a failure message.
fn filter_lines(envoy: &str) -> String {
    envoy
        .lines()
        .filter(|l| !l.starts_with("envoy_") && !l.starts_with("# "))
        .collect::<Vec<_>>()
        .join("\n")
}

fn scrape(url: &str) -> Result<String> {
    let resp = http().get(url).send()?;
    ensure!(resp.status() == 200, "{url}: {}", resp.status());
    Ok(resp.text()?)
}

fn free_token(s: &Stack, tenant: &str) -> Result<String> {
    let mut spec = s.spec(tenant);
    spec.tier = "free".into();
    s.sign("RS256", claims_for(&spec))
}

pub fn every_metric_the_dashboard_queries_exists_on_the_stack(s: &Stack) -> Result<()> {
    // The parser itself, on the shapes the dashboard uses.
    let parsed = metric_names(
        r#"histogram_quantile(0.99, sum by (le, envoy_http_conn_manager_prefix) (rate(envoy_http_downstream_rq_time_bucket{envoy_http_conn_manager_prefix="mcp_edge", x=~"a{b}"}[5m]))) / on (job) group_left (tier) increase(mcp_edge_x_total[1h] offset 5m) > bool 0"#,
    )?;
    ensure!(
        parsed
            == BTreeSet::from([
                "envoy_http_downstream_rq_time_bucket".to_string(),
                "mcp_edge_x_total".to_string(),
            ]),
        "{parsed:?}"
    );

    // Requests that move the counters the dashboard reads.
    let tenant = format!("tenant-dashboard-{}", std::process::id());
    let token = free_token(s, &tenant)?;
    let allowed = post_mcp(&s.mcp_url, Some(&token), &call_body(&marker("dashboard")))?;
    ensure!(
        allowed.status() == 200,
        "allowed call: {}",
        allowed.status()
    );
    let denied = post_mcp(
        &s.mcp_url,
        Some("not-a-token"),
        &call_body(&marker("denied")),
    )?;
    ensure!(denied.status() == 401, "denied call: {}", denied.status());
    let mut limited = false;
    for _ in 0..=FREE_BURST * 2 {
        let resp = post_mcp(&s.mcp_url, Some(&token), &call_body(&marker("burst")))?;
        if resp.status() == 429 {
            limited = true;
            break;
        }
    }
    ensure!(
        limited,
        "no 429 after {} calls of a free tenant",
        FREE_BURST * 2 + 1
    );

    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(
        mcp_edge_tests::repo_root().join("docs/observability/grafana-dashboard.json"),
    )?)?;
    let exprs = dashboard_exprs(&dashboard);
    ensure!(
        exprs.len() >= 6,
        "the dashboard has {} queries",
        exprs.len()
    );

    let backend_port = BACKEND_METRICS_PORT
        .get()
        .context("no backend metrics port")?;
    let envoy = scrape(&format!("{}/stats/prometheus", s.admin_url))?;
    let mut exposed = exposed_names(&envoy);
    exposed.extend(exposed_names(&scrape(&format!(
        "http://127.0.0.1:{backend_port}/metrics"
    ))?));
    exposed.extend(exposed_names(&scrape(
        s.ratelimit_metrics_url
            .as_deref()
            .context("the stack runs no rate limit service")?,
    )?));

    let mut missing = Vec::new();
    for expr in &exprs {
        let names = metric_names(expr)?;
        ensure!(!names.is_empty(), "no metric in {expr}");
        missing.extend(
            names
                .into_iter()
                .filter(|n| !exposed.contains(n))
                .map(|n| format!("{n} (in {expr})")),
        );
    }
    if !missing.is_empty() {
        bail!(
            "metrics the dashboard queries that no endpoint exposes:\n{}\nthe filter's, as Envoy exposes them:\n{}",
            missing.join("\n"),
            filter_lines(&envoy)
        );
    }

    // The filter's outcome and tier are labels (envoy.yaml's stats_tags), as the queries group by.
    for sample in [
        "mcp_edge_outcome{outcome=\"allowed\"}",
        "mcp_edge_outcome{outcome=\"denied.invalid_token.malformed\"}",
        "mcp_edge_ratelimit_limited{tier=\"free\"}",
    ] {
        ensure!(
            envoy.lines().any(|l| l.starts_with(sample)),
            "Envoy exposes no {sample}: {}",
            filter_lines(&envoy)
        );
    }
    Ok(())
}
