//! Fault test of usage events with the real binary: load of billable calls, Redis killed in the
//! middle, the backend restarted while Redis is down, Redis restarted on the same port and data
//! (append-only file, fsync always): every successful billable call ends up in the stream exactly
//! once. Then `usage report` and `usage export --stripe` read that stream.

mod common;

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::*;
use mcp_edge_backend::metering::USAGE_STREAM;
use mcp_edge_backend::metering::UsageEvent;
use mcp_edge_backend::metering::spool::SPOOL_FILE;
use mcp_edge_backend::redis_server::{RedisServer, free_port, temp_dir};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_mcp-edge-backend");
const TENANT: &str = "acme-fault";

struct Backend {
    child: Child,
}

impl Backend {
    fn start(port: u16, redis_url: &str, spool: &Path, log: &Path) -> Self {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("log file");
        let mut child = Command::new(BIN)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--metering-redis-url", redis_url])
            .arg("--spool-dir")
            .arg(spool)
            .env_remove("REDIS_URL")
            .env(
                "MCP_EDGE_GATEWAY_SECRET",
                String::from_utf8_lossy(SECRET).as_ref(),
            )
            .env("RUST_LOG", "info,rmcp=warn")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("start the backend");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).expect("read");
        assert!(line.contains("listening on"), "{line}");
        Self { child }
    }

    /// SIGTERM by pid (a graceful stop that flushes queued events), then wait.
    fn stop(mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.child.try_wait().expect("wait").is_none() {
            assert!(Instant::now() < deadline, "backend did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One billable call; true when it succeeded.
fn call(client: &reqwest::blocking::Client, port: u16, n: u64) -> bool {
    let body = tool_call("create_project", json!({"name": format!("P{n}")})).to_string();
    let request_id = format!("load-{n}");
    let caller = Caller {
        tenant: TENANT,
        tier: "pro",
        request_id: &request_id,
        ..Caller::default()
    };
    let mut request = client
        .post(format!("http://127.0.0.1:{port}/mcp"))
        .body(body.clone());
    for (name, value) in signed_headers(&caller, &body) {
        request = request.header(name, value);
    }
    let Ok(response) = request.send() else {
        return false;
    };
    let Ok(json) = response.json::<Value>() else {
        return false;
    };
    json["result"]["isError"] == false
}

fn stream_events(redis: &RedisServer) -> Vec<UsageEvent> {
    let mut conn = redis.connection();
    let entries: Vec<(String, Vec<String>)> = redis::cmd("XRANGE")
        .arg(USAGE_STREAM)
        .arg("-")
        .arg("+")
        .query(&mut conn)
        .expect("xrange");
    entries
        .iter()
        .map(|(_, fields)| UsageEvent::from_fields(fields).expect("event"))
        .collect()
}

fn usage_cli(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN)
        .arg("usage")
        .args(args)
        .env_remove("REDIS_URL")
        .output()
        .expect("run usage");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn no_usage_event_is_lost_or_doubled_across_redis_and_backend_restarts() {
    let mut redis = RedisServer::start();
    let work = temp_dir("fault");
    let spool: PathBuf = work.join("spool");
    let log = work.join("backend.log");
    let port = free_port();
    let mut backend = Some(Backend::start(port, &redis.url(), &spool, &log));

    let stop = Arc::new(AtomicBool::new(false));
    let succeeded = Arc::new(AtomicU64::new(0));
    let attempted = Arc::new(AtomicU64::new(0));
    let clients: Vec<_> = (0..8)
        .map(|_| {
            let (stop, succeeded, attempted) = (stop.clone(), succeeded.clone(), attempted.clone());
            std::thread::spawn(move || {
                let client = reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .build()
                    .expect("client");
                while !stop.load(Ordering::SeqCst) {
                    let n = attempted.fetch_add(1, Ordering::SeqCst);
                    if call(&client, port, n) {
                        succeeded.fetch_add(1, Ordering::SeqCst);
                    } else {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
            })
        })
        .collect();

    std::thread::sleep(Duration::from_millis(1500));
    let before_kill = succeeded.load(Ordering::SeqCst);
    redis.kill();
    std::thread::sleep(Duration::from_millis(1500));
    let during_outage = succeeded.load(Ordering::SeqCst) - before_kill;

    // Restart the backend while Redis is down: spooled events must survive it.
    if let Some(b) = backend.take() {
        b.stop();
    }
    let spooled_at_restart = std::fs::read_to_string(spool.join(SPOOL_FILE))
        .expect("spool")
        .lines()
        .count();
    backend = Some(Backend::start(port, &redis.url(), &spool, &log));
    std::thread::sleep(Duration::from_millis(1500));

    redis.restart();
    std::thread::sleep(Duration::from_millis(1500));
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.join().expect("client thread");
    }
    let succeeded = succeeded.load(Ordering::SeqCst);
    eprintln!(
        "calls: {} attempted, {succeeded} succeeded ({before_kill} before the kill, \
{during_outage} in the first outage second(s)); {spooled_at_restart} spooled at the backend restart",
        attempted.load(Ordering::SeqCst)
    );
    assert!(
        before_kill > 0 && during_outage > 0,
        "fail-open calls while Redis is down"
    );
    assert!(
        spooled_at_restart > 0,
        "events were spooled before the restart"
    );

    let deadline = Instant::now() + Duration::from_secs(20);
    let mut events = stream_events(&redis);
    while (events.len() as u64) < succeeded && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        events = stream_events(&redis);
    }
    let ids: std::collections::HashSet<&str> = events.iter().map(|e| e.event_id.as_str()).collect();
    assert_eq!(ids.len(), events.len(), "an event id appears twice");
    assert_eq!(
        events.len() as u64,
        succeeded,
        "stream events vs successful calls"
    );
    // Every successful call is in the day's counter exactly once (calls let through while Redis
    // was down are counted when their events are replayed; failed calls are refunded) — with one
    // known exception: a reservation in flight when Redis dies ("broken pipe") may have been
    // counted by Redis although the backend, never getting the answer, lets the call through
    // uncounted and counts it again on replay. Only those calls may be counted twice.
    let day = chrono::Utc::now().date_naive();
    let key = format!("mcp-edge:tenant:{}:{TENANT}:quota:{day}", TENANT.len());
    let counted: u64 = redis::cmd("GET")
        .arg(&key)
        .query(&mut redis.connection())
        .expect("counter");
    let unknown_outcome = std::fs::read_to_string(&log)
        .expect("backend log")
        .lines()
        .filter(|l| l.contains("allowing uncounted") && l.contains("broken pipe"))
        .count() as u64;
    eprintln!(
        "counter {counted}, {succeeded} successful calls, {unknown_outcome} reservation(s) lost in flight"
    );
    assert!(
        counted >= succeeded && counted - succeeded <= unknown_outcome,
        "the day's counter is {counted} for {succeeded} successful calls ({unknown_outcome} \
         reservation(s) of unknown outcome may count twice)"
    );
    if let Some(b) = backend.take() {
        b.stop();
    }
    assert_eq!(
        std::fs::read_to_string(spool.join(SPOOL_FILE)).expect("spool"),
        "",
        "the spool is empty once replayed"
    );

    // The report and the Stripe export read the same stream.
    let url = redis.url();
    let day = day.to_string();
    let (ok, table, err) = usage_cli(&["report", "--redis-url", &url, "--day", &day]);
    assert!(ok, "{err}");
    assert!(
        table.contains(&format!("{day}  {TENANT}  create_project  {succeeded:>5}"))
            && table.ends_with(&format!("total billable calls: {succeeded}\n")),
        "{table}"
    );
    let customers = work.join("tenants.json");
    std::fs::write(&customers, json!({TENANT: "cus_FAULT"}).to_string()).expect("write");
    let customers = customers.to_string_lossy().into_owned();
    let (ok, lines, err) = usage_cli(&[
        "export",
        "--stripe",
        "--customers",
        &customers,
        "--redis-url",
        &url,
        "--day",
        &day,
    ]);
    assert!(ok, "{err}");
    let exported: Vec<Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(exported.len() as u64, succeeded);
    assert_eq!(exported[0]["event_name"], "mcp_tool_call");
    assert_eq!(
        exported[0]["payload"],
        json!({"stripe_customer_id": "cus_FAULT", "value": "1"})
    );
    assert_eq!(exported[0]["identifier"], events[0].event_id.as_str());
    assert_eq!(exported[0]["timestamp"], events[0].timestamp_ms / 1000);
    std::fs::write(work.join("none.json"), "{}").expect("write");
    let none = work.join("none.json").to_string_lossy().into_owned();
    let (ok, out, err) = usage_cli(&[
        "export",
        "--stripe",
        "--customers",
        &none,
        "--redis-url",
        &url,
    ]);
    assert!(!ok && out.is_empty() && err.contains(TENANT), "{err}");
    let _ = std::fs::remove_dir_all(&work);
}
