//! Rate limits at the edge, through real Envoy (two worker threads) and the real .wasm.
//!
//! This binary's stack uses small limits (plugin overrides below, and a free daily quota of
//! [`FREE_DAILY_QUOTA`] billable calls at the backend) so the tests run in seconds.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use mcp_edge_tests::client::*;
use mcp_edge_tests::runner::Case;
use mcp_edge_tests::stack::{Stack, StackOptions};
use mcp_edge_tests::stats::worker_connections;
use reqwest::blocking::Client;
use serde_json::{Value, json};
use xtask::claims_for;

/// The free tier of this binary's stack.
const FREE_PER_MINUTE: usize = 60;
const FREE_BURST: usize = 10;
/// The free tier's daily quota of billable calls at this binary's backend.
const FREE_DAILY_QUOTA: u64 = 5;

fn overrides() -> Value {
    json!({
        "rate_limits": {
            "free": {"requests_per_minute": FREE_PER_MINUTE, "burst": FREE_BURST},
            "pro": {"requests_per_minute": 60000, "burst": 10000},
            "enterprise": {"requests_per_minute": 1200, "burst": 20}
        },
        "invalid_token_limit": {"requests_per_minute": 60, "burst": 5}
    })
}

fn token(s: &Stack, tenant: &str, tier: &str) -> Result<String> {
    let mut spec = s.spec(tenant);
    spec.tier = tier.to_string();
    s.sign("RS256", claims_for(&spec))
}

fn call(client: &Client, s: &Stack, token: &str) -> Result<reqwest::blocking::Response> {
    Ok(client
        .post(&s.recorded_mcp_url)
        .header("content-type", "application/json")
        .bearer_auth(token)
        .body(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "list_projects"}}).to_string())
        .send()?)
}

/// Status, `Retry-After`, `RateLimit-Policy` and body of one answer.
type Answer = (u16, Option<String>, Option<String>, String);

fn free_tenant_is_limited_while_pro_is_not(s: &Stack) -> Result<()> {
    let free = token(s, "tenant-free", "free")?;
    let pro = token(s, "tenant-pro", "pro")?;
    let run = |t: String| {
        let s_url = s.recorded_mcp_url.clone();
        std::thread::spawn(move || -> Result<Vec<Answer>> {
            let client = http();
            let mut out = Vec::new();
            for _ in 0..40 {
                let r = client
                    .post(&s_url)
                    .header("content-type", "application/json")
                    .bearer_auth(&t)
                    .body(json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}).to_string())
                    .send()?;
                let h = |n: &str| {
                    r.headers()
                        .get(n)
                        .and_then(|v| v.to_str().ok())
                        .map(String::from)
                };
                let (retry, policy) = (h("retry-after"), h("ratelimit-policy"));
                out.push((r.status().as_u16(), retry, policy, r.text()?));
            }
            Ok(out)
        })
    };
    let start = Instant::now();
    let (f, p) = (run(free), run(pro));
    let free_results = f
        .join()
        .map_err(|_| anyhow::anyhow!("free thread panicked"))??;
    // The free tenant's bucket is new (full) at its first request and refills at 1 a second:
    // nothing beyond the burst and what refilled while the loop ran may pass.
    let elapsed = start.elapsed().as_secs_f64();
    let pro_results = p
        .join()
        .map_err(|_| anyhow::anyhow!("pro thread panicked"))??;
    let pro_refused: Vec<_> = pro_results.iter().filter(|r| r.0 != 200).collect();
    ensure!(
        pro_refused.is_empty(),
        "the pro tenant was limited: {pro_refused:?}"
    );
    ensure!(
        pro_results[0].2.as_deref() == Some("\"pro\";q=60000;w=60"),
        "RateLimit-Policy: {:?}",
        pro_results[0].2
    );
    let limited: Vec<_> = free_results.iter().filter(|r| r.0 == 429).collect();
    let admitted = free_results.iter().filter(|r| r.0 == 200).count();
    let (burst, per_second) = (FREE_BURST, FREE_PER_MINUTE as f64 / 60.0);
    let most = burst + (elapsed * per_second).floor() as usize;
    ensure!(
        (burst..=most).contains(&admitted) && admitted + limited.len() == free_results.len(),
        "free: {admitted} admitted (expected {burst}..={most} in {elapsed:.2} s), {} limited of {}",
        limited.len(),
        free_results.len()
    );
    let first = limited[0];
    ensure!(
        first
            .1
            .as_deref()
            .is_some_and(|v| v.parse::<u64>().is_ok_and(|n| n >= 1)),
        "Retry-After: {:?}",
        first.1
    );
    let body: Value = serde_json::from_str(&first.3)?;
    let msg = body["error"]["message"].as_str().unwrap_or_default();
    ensure!(
        msg.contains("free tier") && msg.contains("60 requests a minute"),
        "{msg}"
    );
    Ok(())
}

fn shared_bucket_holds_across_worker_threads(s: &Stack) -> Result<()> {
    // enterprise here: 1200 a minute (20 a second), bursts of 20.
    let t = Arc::new(token(s, "tenant-shared-bucket", "enterprise")?);
    let workers = [
        worker_connections(&s.recorded_mcp_url, 0)?,
        worker_connections(&s.recorded_mcp_url, 1)?,
    ];
    let before = s.stats("^(listener|wasmcustom)")?;
    let admitted = Arc::new(AtomicUsize::new(0));
    let sent = Arc::new(AtomicUsize::new(0));
    let window = Duration::from_secs(10);
    let start = Instant::now();
    let clients: Vec<_> = (0..6)
        .map(|_| {
            let (t, admitted, sent, url) = (
                t.clone(),
                admitted.clone(),
                sent.clone(),
                s.recorded_mcp_url.clone(),
            );
            std::thread::spawn(move || -> Result<()> {
                let client = http();
                while start.elapsed() < window {
                    let r = client
                        .post(&url)
                        .header("content-type", "application/json")
                        .bearer_auth(t.as_str())
                        .body(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#)
                        .send()?;
                    sent.fetch_add(1, Ordering::Relaxed);
                    if r.status() == 200 {
                        admitted.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Ok(())
            })
        })
        .collect();
    for c in clients {
        c.join().map_err(|_| anyhow::anyhow!("client panicked"))??;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let expected = 20.0 + 20.0 * elapsed;
    let got = admitted.load(Ordering::Relaxed) as f64;
    let total = sent.load(Ordering::Relaxed);
    ensure!(
        total as f64 > expected * 2.0,
        "only {total} requests sent: the load did not exceed the rate"
    );
    let error = (got - expected).abs() / expected;
    println!(
        "shared bucket: {got} admitted of {total} sent in {elapsed:.2} s; expected {expected:.0} (error {:.1} %)",
        error * 100.0
    );
    ensure!(
        error <= 0.05,
        "{got} admitted, expected {expected:.0} ± 5 %"
    );
    // This case runs alone: the counters moved for its clients only.
    let after = s.stats("^(listener|wasmcustom)")?;
    let per_worker: Vec<u64> = workers.iter().map(|w| after.since(&before, w)).collect();
    println!("shared bucket: connections per worker thread {per_worker:?}");
    ensure!(
        per_worker.iter().all(|&n| n > 0) && per_worker.iter().sum::<u64>() >= 6,
        "connections per worker thread {per_worker:?}: both workers must serve the tenant"
    );
    let counted = after.filter_since(&before, "ratelimit.enterprise.admitted");
    ensure!(
        counted as f64 == got,
        "{counted} counted as admitted, {got} answered 200"
    );
    Ok(())
}

fn bad_tokens_are_limited_per_address(s: &Stack) -> Result<()> {
    // From 127.0.0.2, so this flood does not touch the other tests' address.
    let client = Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)))
        .timeout(Duration::from_secs(20))
        .build()?;
    let good = token(s, "tenant-addr", "pro")?;
    ensure!(
        call(&client, s, &good)?.status() == 200,
        "valid token refused"
    );
    let mut statuses = Vec::new();
    for i in 0..8 {
        statuses.push(
            call(&client, s, &format!("eyJhbGciOiJSUzI1NiJ9.e30.bad{i}"))?
                .status()
                .as_u16(),
        );
    }
    ensure!(statuses[..5].iter().all(|&c| c == 401), "{statuses:?}");
    ensure!(statuses[5..].iter().all(|&c| c == 429), "{statuses:?}");
    // A valid token from that address is verified again once the address's bucket refills (one
    // verification a second at 60 a minute; the token cache is per worker thread, so it may have
    // to be verified again on the other one).
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let status = call(&client, s, &good)?.status();
        if status == 200 {
            break;
        }
        ensure!(
            status == 429 && Instant::now() < deadline,
            "valid token after the flood: {status}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Other addresses are not affected.
    ensure!(
        call(&http(), s, &format!("{good}x"))?.status() == 401,
        "127.0.0.1 affected by 127.0.0.2's flood"
    );
    Ok(())
}

fn rate_limit_counters_per_tier(s: &Stack) -> Result<()> {
    // This case runs alone: the free tier's counters move for these calls only.
    let t = token(s, "tenant-counted", "free")?;
    let client = http();
    let before = s.stats("mcp_edge.ratelimit")?;
    let mut statuses = Vec::new();
    for _ in 0..15 {
        statuses.push(call(&client, s, &t)?.status().as_u16());
    }
    let after = s.stats("mcp_edge.ratelimit")?;
    let count = |code| statuses.iter().filter(|&&c| c == code).count() as u64;
    let (admitted, limited) = (count(200), count(429));
    ensure!(
        admitted >= FREE_BURST as u64 && limited > 0 && admitted + limited == 15,
        "{statuses:?}"
    );
    for (name, answered) in [("admitted", admitted), ("limited", limited)] {
        let counted = after.filter_since(&before, &format!("ratelimit.free.{name}"));
        ensure!(
            counted == answered,
            "ratelimit.free.{name} grew by {counted}, {answered} calls were {name}"
        );
    }
    for tier in ["pro", "enterprise"] {
        for name in ["admitted", "limited"] {
            let counted = after.filter_since(&before, &format!("ratelimit.{tier}.{name}"));
            ensure!(counted == 0, "ratelimit.{tier}.{name} grew by {counted}");
        }
    }
    Ok(())
}

/// Issue 9, finding 3: bodies the edge refuses still cost the work of reading them, so they are
/// charged; once the bucket is empty a body is not even parsed (429, not 400).
fn refused_bodies_are_charged(s: &Stack) -> Result<()> {
    let t = token(s, "tenant-refused-bodies", "free")?;
    let client = http();
    let send = |body: &str| -> Result<u16> {
        Ok(client
            .post(&s.recorded_mcp_url)
            .header("content-type", "application/json")
            .bearer_auth(&t)
            .body(body.to_string())
            .send()?
            .status()
            .as_u16())
    };
    let mut statuses = Vec::new();
    for _ in 0..FREE_BURST + 3 {
        statuses.push(send("not json at all")?);
    }
    let bad = statuses.iter().filter(|&&c| c == 400).count();
    ensure!(
        (FREE_BURST..=FREE_BURST + 1).contains(&bad) && statuses.last() == Some(&429),
        "refused bodies must spend the bucket: {statuses:?}"
    );
    ensure!(
        call(&client, s, &t)?.status() == 429,
        "a valid call after the bucket was spent on refused bodies"
    );
    Ok(())
}

/// One `tools/call` of `tool` through Envoy, the filter and the real backend: status and answer.
fn tool_call(
    s: &Stack,
    token: &str,
    id: u64,
    tool: &str,
    arguments: Value,
) -> Result<(u16, Value)> {
    let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                      "params": {"name": tool, "arguments": arguments}});
    let response = post_mcp(&s.mcp_url, Some(token), &body.to_string())?;
    Ok((response.status().as_u16(), response.json()?))
}

/// Today's `get_usage` of the token's tenant.
fn usage_today(s: &Stack, token: &str) -> Result<Value> {
    let (status, answer) = tool_call(s, token, 900, "get_usage", json!({}))?;
    ensure!(status == 200, "get_usage: {status} {answer}");
    Ok(answer["result"]["structuredContent"].clone())
}

/// Issue 10: the daily quota, end to end. A free tenant's billable calls run until the quota; the
/// next one is refused with -32050 (HTTP 200, as every JSON-RPC error of a tool call) and does not
/// run; `get_usage` agrees; another free tenant is unaffected.
fn free_tenant_stops_at_its_daily_quota(s: &Stack) -> Result<()> {
    mcp_edge_tests::client::utc_day_with_room(std::time::Duration::from_secs(120));
    let spent = token(s, "tenant-quota-spent", "free")?;
    let other = token(s, "tenant-quota-other", "free")?;
    for n in 1..=FREE_DAILY_QUOTA {
        let (status, answer) = tool_call(
            s,
            &spent,
            n,
            "create_project",
            json!({"name": format!("P{n}")}),
        )?;
        ensure!(
            status == 200 && answer["result"]["isError"] == false,
            "billable call {n} of {FREE_DAILY_QUOTA}: {status} {answer}"
        );
    }
    let (status, refused) = tool_call(s, &spent, 99, "create_project", json!({"name": "over"}))?;
    let error = &refused["error"];
    ensure!(
        status == 200 && error["code"] == -32050,
        "the call past the quota: {status} {refused}"
    );
    ensure!(
        error["data"]["tier"] == "free"
            && error["data"]["limit"] == FREE_DAILY_QUOTA
            && error["data"]["used"] == FREE_DAILY_QUOTA
            && error["data"]["retryAfterSeconds"]
                .as_u64()
                .is_some_and(|s| s <= 86_400),
        "{refused}"
    );
    ensure!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("Daily quota exhausted: the free plan allows 5 ")),
        "{refused}"
    );
    let usage = usage_today(s, &spent)?;
    ensure!(
        usage["used"] == FREE_DAILY_QUOTA
            && usage["limit"] == FREE_DAILY_QUOTA
            && usage["remaining"] == 0
            && usage["tier"] == "free",
        "get_usage after the quota: {usage}"
    );
    let (status, listed) = tool_call(s, &spent, 100, "list_projects", json!({}))?;
    let projects = listed["result"]["structuredContent"]["projects"]
        .as_array()
        .map_or(0, Vec::len) as u64;
    ensure!(
        status == 200 && projects == FREE_DAILY_QUOTA,
        "a tool that is not billable still works, and the refused call did not run: {listed}"
    );
    let (status, answer) = tool_call(s, &other, 1, "create_project", json!({"name": "mine"}))?;
    ensure!(
        status == 200 && answer["result"]["isError"] == false,
        "another free tenant: {status} {answer}"
    );
    let usage = usage_today(s, &other)?;
    ensure!(
        usage["used"] == 1 && usage["remaining"] == FREE_DAILY_QUOTA - 1,
        "{usage}"
    );
    Ok(())
}

const CASES: &[Case] = mcp_edge_tests::cases![
    free_tenant_is_limited_while_pro_is_not,
    free_tenant_stops_at_its_daily_quota,
    bad_tokens_are_limited_per_address,
    refused_bodies_are_charged;
    alone: shared_bucket_holds_across_worker_threads,
    rate_limit_counters_per_tier,
];

fn main() {
    mcp_edge_tests::runner::run_with_options(
        &StackOptions {
            plugin_overrides: overrides(),
            backend_args: vec!["--quota-free".into(), FREE_DAILY_QUOTA.to_string()],
            ..StackOptions::default()
        },
        CASES,
    );
}
