//! The benchmarks' load and measure (`benches/edge_cpu.rs`, `benches/host_calls.rs`): wrk sending
//! the same `tools/call` with tokens from a file, and an Envoy's CPU time from `/proc`.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};

/// The Lua script wrk runs: the same `tools/call` each time, tokens taken in turn from a file.
pub const SCRIPT: &str = r#"
local tokens = {}
for line in io.lines(os.getenv("MCP_EDGE_TOKENS")) do tokens[#tokens + 1] = line end
local body = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_projects","arguments":{"limit":20}}}'
local i = math.random(#tokens)
request = function()
  i = i % #tokens + 1
  return wrk.format("POST", nil, {
    ["Host"] = "127.0.0.1",
    ["content-type"] = "application/json",
    ["authorization"] = "Bearer " .. tokens[i],
  }, body)
end
"#;

/// Envoy's CPU time so far, in microseconds (utime + stime).
pub fn cpu_micros(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after_name = stat.rsplit_once(')').context("odd /proc stat")?.1;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: u64 = fields
        .get(11)
        .context("no utime")?
        .parse::<u64>()?
        .saturating_add(fields.get(12).context("no stime")?.parse::<u64>()?);
    // clock ticks of 10 ms (USER_HZ 100 on Linux)
    Ok(ticks as f64 * 10_000.0)
}

/// What one wrk run reports.
pub struct Run {
    pub requests: f64,
    pub rps: f64,
    pub latency_us: f64,
}

/// wrk `-t1` with `connections` for `secs` against `url`, the script taking tokens from the file
/// `tokens` in turn; an error if any answer was not 2xx.
pub fn wrk(url: &str, tokens: &Path, connections: u32, secs: u64, script: &Path) -> Result<Run> {
    let out = Command::new("wrk")
        .args(["-t1", &format!("-c{connections}"), &format!("-d{secs}s")])
        .arg("-s")
        .arg(script)
        .arg(url)
        .env("MCP_EDGE_TOKENS", tokens)
        .output()
        .context("wrk (apt-get install wrk)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    ensure!(out.status.success(), "wrk failed: {text}");
    if let Some(line) = text.lines().find(|l| l.contains("Non-2xx")) {
        bail!("{url}: {line}");
    }
    let requests = text
        .lines()
        .find(|l| l.contains(" requests in "))
        .and_then(|l| l.split_whitespace().next())
        .context("no request count")?
        .parse::<f64>()?;
    let rps = text
        .lines()
        .find(|l| l.starts_with("Requests/sec:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .context("no Requests/sec")?
        .parse::<f64>()?;
    let latency = text
        .lines()
        .find(|l| l.trim_start().starts_with("Latency"))
        .and_then(|l| l.split_whitespace().nth(1))
        .context("no latency")?;
    let latency_us = if let Some(v) = latency.strip_suffix("us") {
        v.parse::<f64>()?
    } else if let Some(v) = latency.strip_suffix("ms") {
        v.parse::<f64>()? * 1000.0
    } else if let Some(v) = latency.strip_suffix('s') {
        v.parse::<f64>()? * 1_000_000.0
    } else {
        bail!("odd latency {latency}")
    };
    Ok(Run {
        requests,
        rps,
        latency_us,
    })
}
