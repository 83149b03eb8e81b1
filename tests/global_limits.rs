//! The global rate limit, scaled out: three Envoy processes with the same `.wasm` and plugin
//! configuration (`global_rate_limit` on), one `mcp-edge-ratelimit` service, its own Redis, one
//! backend. Tenants of each tier send round-robin over the three Envoys.
//!
//! Budgets are small (the limits file below) and the local buckets big, so the global limit is
//! the one that decides. Every phase uses fresh tenants, and a phase that counts a budget starts
//! with at least 20 s left in the UTC minute (the service's windows turn on the clock). The cases
//! run one at a time, in order: some stop and restart the service or its Redis.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use libtest_mimic::{Arguments, Failed, Trial};
use mcp_edge_contract::codes;
use mcp_edge_tests::client::{http, marker};
use mcp_edge_tests::keyless::{Burst, issuer_jwks, keyless_burst};
use mcp_edge_tests::procs::{Proc, cargo_bin, free_port};
use mcp_edge_tests::stack::{ENVOY_WORKERS, RATELIMIT_SECRET, Stack, StackOptions};
use mcp_edge_tests::stats::read_stats;
use serde_json::{Value, json};
use xtask::claims_for;

/// The global budgets per minute of this binary's limits file.
const BUDGETS: [(&str, usize); 3] = [("free", 20), ("pro", 40), ("enterprise", 60)];
/// A tool with a global budget of its own (per minute, pro tier), which no other phase calls.
const BUDGETED_TOOL: (&str, usize) = ("get_usage", 3);
/// The filter's wait for the service (ms); generous, the service is a debug build on a busy machine.
/// 250 ms was not: with two test runs and a build sharing two cores, a call to a healthy service
/// took longer and the free tier failed closed (503 -32047 in `budget_holds_across_three_envoys`).
/// 1 s is the most the filter accepts. No case here waits for this timeout to pass: a stopped
/// service refuses connections at once.
const TIMEOUT_MS: u64 = 1_000;
/// The most any request may take when the service or its Redis is down.
const MAX_WAIT: Duration = Duration::from_millis(TIMEOUT_MS + 1_250);

fn limits_yaml() -> String {
    let mut yaml = String::from("domain: mcp-edge\ntiers:\n");
    for (tier, budget) in BUDGETS {
        yaml.push_str(&format!("  {tier}:\n    requests_per_minute: {budget}\n"));
        if tier == "pro" {
            let (tool, budget) = BUDGETED_TOOL;
            yaml.push_str(&format!(
                "    tools:\n      {tool}:\n        requests_per_minute: {budget}\n"
            ));
        }
    }
    yaml
}

/// Local buckets far above the global budgets, so only the global limit refuses.
fn big_local_buckets() -> Value {
    json!({
        "free": {"requests_per_minute": 60000, "burst": 10000},
        "pro": {"requests_per_minute": 60000, "burst": 10000},
        "enterprise": {"requests_per_minute": 60000, "burst": 10000}
    })
}

fn global_on() -> Value {
    json!({
        "rate_limits": big_local_buckets(),
        "global_rate_limit": {
            "cluster": "mcp_edge_ratelimit",
            "domain": "mcp-edge",
            "timeout_ms": TIMEOUT_MS,
            "failure_mode": {"free": "closed", "pro": "open", "enterprise": "open"},
            "secret_env": "MCP_EDGE_RATELIMIT_SECRET",
            "tool_descriptor": true
        }
    })
}

/// The control: no global limit, each Envoy's local bucket holds the whole budget.
fn global_off() -> Value {
    let mut limits = serde_json::Map::new();
    for (tier, budget) in BUDGETS {
        limits.insert(
            tier.into(),
            json!({"requests_per_minute": budget, "burst": budget}),
        );
    }
    json!({"rate_limits": limits, "global_rate_limit": null})
}

/// A process this binary restarts on the same port.
struct Restartable {
    name: &'static str,
    port: u16,
    proc: Option<Proc>,
}

struct Scaled {
    stack: Stack,
    /// The MCP URLs of the three Envoys with the global limit on.
    edges: Vec<String>,
    /// Their admin URLs, in the same order.
    admins: Vec<String>,
    redis: Mutex<Restartable>,
    service: Mutex<Restartable>,
    limits: std::path::PathBuf,
    /// Makes every phase's tenants new.
    phase: AtomicUsize,
}

impl Scaled {
    fn start() -> Result<Self> {
        let redis_port = free_port()?;
        let service_port = free_port()?;
        let stack = Stack::start_with(&StackOptions {
            plugin_overrides: global_on(),
            backend_args: ["--quota-free", "unlimited", "--quota-pro", "unlimited"]
                .map(String::from)
                .to_vec(),
            ratelimit_port: Some(service_port),
            ..StackOptions::default()
        })?;
        let limits = stack.dir().join("global-limits.yaml");
        std::fs::write(&limits, limits_yaml())?;
        let scaled = Self {
            edges: vec![stack.mcp_url.clone()],
            admins: vec![stack.admin_url.clone()],
            stack,
            redis: Mutex::new(Restartable {
                name: "ratelimit-redis",
                port: redis_port,
                proc: None,
            }),
            service: Mutex::new(Restartable {
                name: "ratelimit",
                port: service_port,
                proc: None,
            }),
            limits,
            phase: AtomicUsize::new(0),
        };
        scaled.start_redis()?;
        scaled.start_service()?;
        let mut scaled = scaled;
        for name in ["envoy-2", "envoy-3"] {
            let envoy = scaled.stack.start_envoy(name, &global_on())?;
            scaled.edges.push(envoy.url.clone());
            scaled.admins.push(envoy.admin_url.clone());
            envoy.keep();
        }
        Ok(scaled)
    }

    fn start_redis(&self) -> Result<()> {
        let mut r = self.redis.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
        let mut cmd = std::process::Command::new("redis-server");
        cmd.args(["--port", &r.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.stack.dir());
        let mut proc = Proc::spawn(r.name, cmd, self.stack.dir())?;
        proc.wait_for_port(([127, 0, 0, 1], r.port).into(), Duration::from_secs(20))?;
        r.proc = Some(proc);
        Ok(())
    }

    fn start_service(&self) -> Result<()> {
        let redis_port = self
            .redis
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?
            .port;
        let mut s = self
            .service
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?;
        let mut cmd = std::process::Command::new(cargo_bin("mcp-edge-ratelimit")?);
        cmd.arg("--listen")
            .arg(format!("127.0.0.1:{}", s.port))
            .arg("--limits")
            .arg(&self.limits)
            .arg("--redis-url")
            .arg(format!("redis://127.0.0.1:{redis_port}/0"))
            .args(["--redis-timeout-ms", "100"])
            .env("RATELIMIT_SHARED_SECRET", RATELIMIT_SECRET);
        let mut proc = Proc::spawn(s.name, cmd, self.stack.dir())?;
        proc.wait_for_log("listening on", Duration::from_secs(20))?;
        s.proc = Some(proc);
        Ok(())
    }

    fn stop(which: &Mutex<Restartable>) -> Result<()> {
        let mut r = which.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
        if let Some(mut p) = r.proc.take() {
            p.stop();
        }
        Ok(())
    }

    /// A token of a new tenant of `tier` for this phase.
    fn tenant(&self, label: &str, tier: &str) -> Result<(String, String)> {
        let phase = self.phase.load(Ordering::SeqCst);
        let id = format!("g{phase}-{label}-{tier}-{}", std::process::id());
        let mut spec = self.stack.spec(&id);
        spec.tier = tier.to_string();
        Ok((id, self.stack.sign("RS256", claims_for(&spec))?))
    }

    fn next_phase(&self) {
        self.phase.fetch_add(1, Ordering::SeqCst);
    }
}

/// One answer: status, headers of interest, body, how long it took.
#[derive(Debug, Clone)]
struct Answer {
    status: u16,
    retry_after: Option<String>,
    policy: Option<String>,
    ratelimit: Option<String>,
    body: String,
    took: Duration,
}

impl Answer {
    fn error_code(&self) -> Option<i64> {
        let v: Value = serde_json::from_str(&self.body).ok()?;
        v["error"]["code"].as_i64()
    }
}

fn send(
    client: &reqwest::blocking::Client,
    url: &str,
    token: &str,
    body: &Value,
) -> Result<Answer> {
    let started = Instant::now();
    let resp = client
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .bearer_auth(token)
        .body(body.to_string())
        .send()?;
    let header = |n: &str| {
        resp.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let (retry_after, policy, ratelimit) = (
        header("retry-after"),
        header("ratelimit-policy"),
        header("ratelimit"),
    );
    let status = resp.status().as_u16();
    let body = resp.text()?;
    Ok(Answer {
        status,
        retry_after,
        policy,
        ratelimit,
        body,
        took: started.elapsed(),
    })
}

fn tool_call(name: &str, arguments: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
           "params": {"name": name, "arguments": arguments}})
}

/// One tenant's run: a project named with its marker, then `n - 1` project listings, round-robin
/// over `edges`. Returns every answer.
fn tenant_run(edges: &[String], token: &str, own_marker: &str, n: usize) -> Result<Vec<Answer>> {
    let client = http();
    let mut answers = Vec::with_capacity(n);
    for i in 0..n {
        let body = if i == 0 {
            tool_call("create_project", json!({"name": own_marker}))
        } else {
            tool_call("list_projects", json!({"limit": 100}))
        };
        answers.push(send(&client, &edges[i % edges.len()], token, &body)?);
    }
    Ok(answers)
}

/// One tenant's part of a mixed load: its tier, the tier's budget, its marker, its answers.
type TenantRun = (&'static str, usize, String, Vec<Answer>);

/// Every tier's tenant sends `factor` × its budget at once.
fn mixed_load(g: &Scaled, edges: &[String], factor: usize) -> Result<Vec<TenantRun>> {
    let mut runs = Vec::new();
    for (tier, budget) in BUDGETS {
        let (id, token) = g.tenant("load", tier)?;
        let own = marker(&id);
        let edges = edges.to_vec();
        let m = own.clone();
        let handle = std::thread::spawn(move || tenant_run(&edges, &token, &m, budget * factor));
        runs.push((tier, budget, own, handle));
    }
    let mut out = Vec::new();
    for (tier, budget, own, handle) in runs {
        let answers = handle
            .join()
            .map_err(|_| anyhow::anyhow!("a load thread panicked"))??;
        out.push((tier, budget, own, answers));
    }
    Ok(out)
}

/// No answer carries another tenant's marker; no 5xx but the free tier's fail-closed 503.
fn check_isolation(runs: &[TenantRun]) -> Result<()> {
    for (tier, _, own, answers) in runs {
        for a in answers {
            for (_, _, other, _) in runs.iter().filter(|(_, _, o, _)| o != own) {
                ensure!(
                    !a.body.contains(other.as_str()),
                    "{tier}: an answer carries another tenant's marker {other}: {}",
                    a.body
                );
            }
            let fail_closed = a.status == 503
                && *tier == "free"
                && a.error_code() == Some(i64::from(codes::UNAVAILABLE));
            ensure!(
                a.status < 500 || fail_closed,
                "{tier}: unexpected {}: {}",
                a.status,
                a.body
            );
        }
    }
    Ok(())
}

fn admitted(answers: &[Answer]) -> usize {
    answers.iter().filter(|a| a.status == 200).count()
}

/// Waits, if needed, until at least `room` is left in the current UTC minute: the service's
/// windows turn on the clock, so a phase that counts a minute budget must not straddle a minute's
/// end (the budget would come back half way through).
fn minute_with_room(room: Duration) {
    let ms = unix_ms();
    let left = Duration::from_millis(60_000 - ms % 60_000);
    if left < room {
        std::thread::sleep(left + Duration::from_millis(20));
    }
}

/// Milliseconds since the Unix epoch (the clock the service's windows turn on).
fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn budget_holds_across_three_envoys(g: &Scaled) -> Result<()> {
    g.next_phase();
    minute_with_room(Duration::from_secs(20));
    let runs = mixed_load(g, &g.edges, 3)?;
    check_isolation(&runs)?;
    let mut report = Vec::new();
    for (tier, budget, own, answers) in &runs {
        let ok = admitted(answers);
        report.push(format!(
            "{tier}: {ok} admitted of {} (budget {budget})",
            answers.len()
        ));
        let tolerance = budget.div_ceil(20);
        ensure!(
            ok.abs_diff(*budget) <= tolerance,
            "{tier}: {ok} admitted, budget {budget} ± {tolerance}"
        );
        // The tenant's own data came back to it.
        ensure!(
            answers
                .iter()
                .skip(1)
                .any(|a| a.status == 200 && a.body.contains(own.as_str())),
            "{tier}: its own project never came back"
        );
        for a in answers.iter().filter(|a| a.status != 200) {
            ensure!(a.status == 429, "{tier}: {} {}", a.status, a.body);
            ensure!(
                a.error_code() == Some(i64::from(codes::RATE_LIMITED)),
                "{tier}: 429 body {}",
                a.body
            );
            let retry: u64 = a
                .retry_after
                .as_deref()
                .context("a 429 without Retry-After")?
                .parse()?;
            ensure!((1..=60).contains(&retry), "Retry-After {retry}");
            let policy = format!("\"{tier}\";q={budget};w=60");
            ensure!(
                a.policy.as_deref() == Some(policy.as_str()),
                "{tier}: 429 policy {:?}",
                a.policy
            );
            ensure!(
                a.ratelimit
                    .as_deref()
                    .is_some_and(|r| r.starts_with(&format!("\"{tier}\";r=0;t="))),
                "{tier}: 429 RateLimit {:?}",
                a.ratelimit
            );
        }
        // Admitted answers carry the global limit's headers, not the local bucket's.
        let first = &answers[0];
        ensure!(
            first.policy.as_deref() == Some(format!("\"{tier}\";q={budget};w=60").as_str()),
            "{tier}: admitted policy {:?}",
            first.policy
        );
    }
    eprintln!("three Envoys, global limit on: {}", report.join("; "));
    Ok(())
}

fn control_without_the_global_limit_admits_about_three_times(g: &Scaled) -> Result<()> {
    g.next_phase();
    let mut envoys = Vec::new();
    for name in ["control-1", "control-2", "control-3"] {
        envoys.push(g.stack.start_envoy(name, &global_off())?);
    }
    let edges: Vec<String> = envoys.iter().map(|e| e.url.clone()).collect();
    let result = mixed_load(g, &edges, 4);
    drop(envoys);
    let runs = result?;
    check_isolation(&runs)?;
    let mut report = Vec::new();
    for (tier, budget, _, answers) in &runs {
        let ok = admitted(answers);
        report.push(format!("{tier}: {ok} admitted (budget {budget})"));
        // Each Envoy's bucket holds the budget: about three budgets in all (plus a little refill).
        ensure!(
            ok * 10 >= budget * 27 && ok * 10 <= budget * 33 + 30,
            "{tier}: {ok} admitted without the global limit, expected about {}",
            budget * 3
        );
    }
    eprintln!(
        "control, three Envoys, local buckets only: {}",
        report.join("; ")
    );
    Ok(())
}

/// `count` requests of each tier's new tenant while something is down: free refused 503 with
/// `Retry-After: 1`, paid admitted, none slower than the timeout and a margin.
fn fail_modes_hold(g: &Scaled, label: &str, count: usize) -> Result<()> {
    let client = http();
    for (tier, _) in BUDGETS {
        let (_, token) = g.tenant(label, tier)?;
        for i in 0..count {
            let url = &g.edges[i % g.edges.len()];
            let a = send(&client, url, &token, &tool_call("list_projects", json!({})))?;
            ensure!(a.took <= MAX_WAIT, "{tier}: a request took {:?}", a.took);
            if tier == "free" {
                ensure!(
                    a.status == 503
                        && a.retry_after.as_deref() == Some("1")
                        && a.error_code() == Some(i64::from(codes::UNAVAILABLE)),
                    "free must fail closed: {} {:?} {}",
                    a.status,
                    a.retry_after,
                    a.body
                );
            } else {
                ensure!(
                    a.status == 200,
                    "{tier} must fail open: {} {}",
                    a.status,
                    a.body
                );
            }
        }
    }
    Ok(())
}

/// Waits until the global limit answers again (a pro request carries its policy header).
fn wait_for_global(g: &Scaled) -> Result<Duration> {
    let started = Instant::now();
    let client = http();
    let (_, token) = g.tenant("probe", "pro")?;
    while started.elapsed() < Duration::from_secs(15) {
        for url in &g.edges {
            let a = send(&client, url, &token, &tool_call("list_projects", json!({})))?;
            if a.policy.as_deref() == Some("\"pro\";q=40;w=60") {
                return Ok(started.elapsed());
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("the global limit did not answer again within 15 s")
}

/// After a recovery: a new free tenant is admitted exactly its budget again, through all three.
fn budget_is_enforced_again(g: &Scaled) -> Result<()> {
    minute_with_room(Duration::from_secs(20));
    let (id, token) = g.tenant("after", "free")?;
    let answers = tenant_run(&g.edges, &token, &marker(&id), 30)?;
    let ok = admitted(&answers);
    ensure!(
        ok == 20,
        "free after recovery: {ok} admitted of 30, budget 20"
    );
    Ok(())
}

/// Every tier's fail-mode counters (`failed_closed`, `failed_open`), summed over the three Envoys.
fn fail_mode_counts(g: &Scaled) -> Result<Vec<(String, u64)>> {
    let mut counts = Vec::new();
    for tier in ["free", "pro", "enterprise"] {
        for verdict in ["failed_closed", "failed_open"] {
            let name = format!("wasmcustom.mcp_edge.global_ratelimit.{tier}.{verdict}");
            let mut sum = 0;
            for admin in &g.admins {
                sum += read_stats(admin, "global_ratelimit")?.get(&name);
            }
            counts.push((format!("{tier}.{verdict}"), sum));
        }
    }
    Ok(counts)
}

/// While the service (or its Redis) is down, [`fail_modes_hold`] sends `count` requests per tier:
/// the three Envoys count exactly that many `failed_closed` for free and `failed_open` for the
/// paid tiers, and nothing else.
fn fail_modes_are_counted(g: &Scaled, label: &str, count: u64) -> Result<()> {
    let before = fail_mode_counts(g)?;
    fail_modes_hold(g, label, count as usize)?;
    let after = fail_mode_counts(g)?;
    let deltas: Vec<(String, u64)> = before
        .iter()
        .zip(&after)
        .map(|((name, b), (_, a))| (name.clone(), a - b))
        .collect();
    let want: Vec<(String, u64)> = [
        ("free.failed_closed", count),
        ("free.failed_open", 0),
        ("pro.failed_closed", 0),
        ("pro.failed_open", count),
        ("enterprise.failed_closed", 0),
        ("enterprise.failed_open", count),
    ]
    .map(|(n, c)| (n.to_string(), c))
    .to_vec();
    ensure!(
        deltas == want,
        "fail modes counted {deltas:?}, expected {want:?}"
    );
    Ok(())
}

fn service_down_applies_fail_modes_and_recovers_without_restarting_envoy(g: &Scaled) -> Result<()> {
    g.next_phase();
    Scaled::stop(&g.service)?;
    fail_modes_are_counted(g, "no-service", 6)?;
    g.start_service()?;
    let took = wait_for_global(g)?;
    eprintln!("service restarted on its port: global answers again after {took:?}");
    budget_is_enforced_again(g)
}

fn redis_down_applies_fail_modes_and_counting_resumes(g: &Scaled) -> Result<()> {
    g.next_phase();
    Scaled::stop(&g.redis)?;
    fail_modes_are_counted(g, "no-redis", 6)?;
    g.start_redis()?;
    let took = wait_for_global(g)?;
    eprintln!("Redis restarted: global answers again after {took:?}");
    budget_is_enforced_again(g)
}

/// A worker's first call also makes its connection to the service: it gets
/// `first_call_timeout_ms`, so a cold connection neither opens nor closes the limit. Shown with a
/// timeout of 1 ms for every later call, which no cold connection meets: the first request on a
/// connection (one worker) is still decided by the service (its policy header), and nothing is
/// counted as a failure.
fn a_workers_first_call_waits_for_its_connection(g: &Scaled) -> Result<()> {
    g.next_phase();
    minute_with_room(Duration::from_secs(20));
    let mut config = global_on();
    config["global_rate_limit"]["timeout_ms"] = json!(1);
    config["global_rate_limit"]["first_call_timeout_ms"] = json!(5_000);
    let envoy = g.stack.start_envoy("envoy-cold", &config)?;
    let (_, token) = g.tenant("cold", "pro")?;
    let a = send(
        &http(),
        &envoy.url,
        &token,
        &tool_call("list_projects", json!({})),
    )?;
    ensure!(a.status == 200, "first call: {} {}", a.status, a.body);
    ensure!(
        a.policy.as_deref() == Some("\"pro\";q=40;w=60"),
        "the first call was not decided by the service: policy {:?}",
        a.policy
    );
    let failures: u64 = ["free", "pro", "enterprise"]
        .iter()
        .flat_map(|t| ["failed_open", "failed_closed"].map(|v| format!("{t}.{v}")))
        .map(|name| {
            read_stats(&envoy.admin_url, "global_ratelimit")
                .map(|s| s.get(&format!("wasmcustom.mcp_edge.global_ratelimit.{name}")))
        })
        .sum::<Result<u64>>()?;
    ensure!(failures == 0, "{failures} calls failed on the cold Envoy");
    Ok(())
}

/// An Envoy that does not send the service's shared secret spends nobody's budget: its calls are
/// refused (UNAUTHENTICATED), so its requests get their tier's fail mode, and the tenant's budget
/// is whole when it next asks through an Envoy that holds the secret.
fn an_envoy_without_the_secret_spends_nothing(g: &Scaled) -> Result<()> {
    g.next_phase();
    minute_with_room(Duration::from_secs(20));
    let mut config = global_on();
    if let Some(global) = config["global_rate_limit"].as_object_mut() {
        global.remove("secret_env");
    }
    let keyless = g.stack.start_envoy("envoy-keyless", &config)?;
    let client = http();
    let (_, token) = g.tenant("keyless", "pro")?;
    for i in 0..3 {
        let a = send(
            &client,
            &keyless.url,
            &token,
            &tool_call("list_projects", json!({})),
        )?;
        ensure!(
            a.status == 200,
            "{i}: pro fails open: {} {}",
            a.status,
            a.body
        );
        ensure!(
            a.policy.as_deref() != Some("\"pro\";q=40;w=60"),
            "{i}: the service decided a call without its secret"
        );
    }
    let (_, free) = g.tenant("keyless", "free")?;
    let a = send(
        &client,
        &keyless.url,
        &free,
        &tool_call("list_projects", json!({})),
    )?;
    ensure!(
        a.status == 503,
        "free fails closed: {} {}",
        a.status,
        a.body
    );
    let a = send(
        &client,
        &g.edges[0],
        &token,
        &tool_call("list_projects", json!({})),
    )?;
    ensure!(
        a.ratelimit
            .as_deref()
            .is_some_and(|r| r.starts_with("\"pro\";r=39;")),
        "after three keyless calls the budget shows {:?} (expected 39 of 40 left)",
        a.ratelimit
    );
    Ok(())
}

/// Requests sent at once to an Envoy that has no keys yet, with the global limit on.
const KEYLESS_BURST: usize = 8;

/// Requests that waited for the JWKS are carried on by the root context once the keys come; the
/// call to the rate limit service it dispatches for each is answered to the root, which relays it
/// to its request: every request of a burst sent before the first keys is decided by the service
/// (its policy header), none waits for an answer that went elsewhere.
fn a_keyless_burst_is_decided_by_the_service(g: &Scaled) -> Result<()> {
    g.next_phase();
    minute_with_room(Duration::from_secs(20));
    let (_, token) = g.tenant("keyless-burst", "pro")?;
    let burst = keyless_burst(
        &g.stack,
        &Burst {
            name: "envoy-keyless-global",
            jwks: issuer_jwks(&g.stack)?,
            overrides: global_on(),
            token: &token,
            hang_ups: 0,
            requests: KEYLESS_BURST,
        },
    )?;
    for a in &burst.answers {
        ensure!(
            a.status == 200 && a.ratelimit_policy == "\"pro\";q=40;w=60",
            "a request that waited for keys: {} policy {:?}: {}",
            a.status,
            a.ratelimit_policy,
            a.body
        );
    }
    burst.check_fetches(ENVOY_WORKERS, KEYLESS_BURST)
}

fn a_batch_of_k_calls_costs_k(g: &Scaled) -> Result<()> {
    g.next_phase();
    minute_with_room(Duration::from_secs(20));
    let (_, token) = g.tenant("batch", "pro")?;
    let client = http();
    let batch: Value = (1..=5)
        .map(|id| {
            json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                   "params": {"name": "list_projects", "arguments": {}}})
        })
        .collect();
    // 40 a minute: eight batches of five fit, through any Envoy.
    for i in 0..8 {
        let a = send(&client, &g.edges[i % 3], &token, &batch)?;
        ensure!(a.status == 200, "batch {i}: {} {}", a.status, a.body);
        let left = 40 - 5 * (i + 1);
        ensure!(
            a.ratelimit
                .as_deref()
                .is_some_and(|r| r.starts_with(&format!("\"pro\";r={left};"))),
            "batch {i}: RateLimit {:?}, expected r={left}",
            a.ratelimit
        );
    }
    let last = send(
        &client,
        &g.edges[2],
        &token,
        &tool_call("list_projects", json!({})),
    )?;
    ensure!(
        last.status == 429,
        "after 40 calls in batches: {}",
        last.status
    );
    Ok(())
}

/// With `tool_descriptor`, a tool's own global budget holds for calls in a batch too: a batch
/// with three calls of the budgeted tool (3 a minute) and another call is served and uses that
/// budget up, so the next call of the tool, single or in a batch, is refused (429) while other
/// tools are still served.
fn a_batch_costs_each_tools_budget(g: &Scaled) -> Result<()> {
    g.next_phase();
    let (_, token) = g.tenant("tool-batch", "pro")?;
    let client = http();
    let (tool, budget) = BUDGETED_TOOL;
    let call = |id: usize, name: &str| {
        json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
               "params": {"name": name, "arguments": {}}})
    };
    let mut batch: Vec<Value> = (1..=budget).map(|id| call(id, tool)).collect();
    batch.push(call(budget + 1, "list_projects"));
    let a = send(&client, &g.edges[0], &token, &Value::Array(batch))?;
    ensure!(a.status == 200, "the first batch: {} {}", a.status, a.body);
    let single = send(&client, &g.edges[1], &token, &tool_call(tool, json!({})))?;
    ensure!(
        single.status == 429,
        "{tool} after {budget} calls of it in a batch: {} {}",
        single.status,
        single.body
    );
    let batched = send(
        &client,
        &g.edges[2],
        &token,
        &json!([call(1, "list_projects"), call(2, tool)]),
    )?;
    ensure!(
        batched.status == 429,
        "a batch calling {tool} again: {} {}",
        batched.status,
        batched.body
    );
    let other = send(
        &client,
        &g.edges[0],
        &token,
        &tool_call("list_projects", json!({})),
    )?;
    ensure!(
        other.status == 200,
        "another tool: {} {}",
        other.status,
        other.body
    );
    Ok(())
}

fn main() {
    let mut args = Arguments::from_args();
    // The cases stop and restart shared servers: one at a time, in order.
    args.test_threads = Some(1);
    let scaled = match Scaled::start() {
        Ok(s) => Arc::new(s),
        Err(e) => {
            eprintln!("could not start the scaled-out stack: {e:#}");
            std::process::exit(1);
        }
    };
    type CaseFn = fn(&Scaled) -> Result<()>;
    let cases: [(&str, CaseFn); 9] = [
        (
            "budget_holds_across_three_envoys",
            budget_holds_across_three_envoys,
        ),
        (
            "control_without_the_global_limit_admits_about_three_times",
            control_without_the_global_limit_admits_about_three_times,
        ),
        ("a_batch_of_k_calls_costs_k", a_batch_of_k_calls_costs_k),
        (
            "a_workers_first_call_waits_for_its_connection",
            a_workers_first_call_waits_for_its_connection,
        ),
        (
            "an_envoy_without_the_secret_spends_nothing",
            an_envoy_without_the_secret_spends_nothing,
        ),
        (
            "a_batch_costs_each_tools_budget",
            a_batch_costs_each_tools_budget,
        ),
        (
            "a_keyless_burst_is_decided_by_the_service",
            a_keyless_burst_is_decided_by_the_service,
        ),
        (
            "service_down_applies_fail_modes_and_recovers_without_restarting_envoy",
            service_down_applies_fail_modes_and_recovers_without_restarting_envoy,
        ),
        (
            "redis_down_applies_fail_modes_and_counting_resumes",
            redis_down_applies_fail_modes_and_counting_resumes,
        ),
    ];
    let trials = cases
        .into_iter()
        .map(|(name, run)| {
            let g = Arc::clone(&scaled);
            Trial::test(name, move || {
                run(&g).and_then(|()| g.stack.check_alive()).map_err(|e| {
                    Failed::from(format!(
                        "{e:#}\n--- envoy log (tail) ---\n{}\n--- ratelimit log (tail) ---\n{}",
                        g.stack.log_tail("envoy", 20),
                        std::fs::read_to_string(g.stack.dir().join("ratelimit.log"))
                            .unwrap_or_default()
                            .lines()
                            .rev()
                            .take(20)
                            .collect::<Vec<_>>()
                            .join("\n")
                    ))
                })
            })
        })
        .collect();
    let conclusion = libtest_mimic::run(&args, trials);
    let _ = Scaled::stop(&scaled.service);
    let _ = Scaled::stop(&scaled.redis);
    scaled.stack.stop();
    drop(scaled);
    conclusion.exit()
}
