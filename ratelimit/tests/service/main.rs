//! End-to-end tests of the service binary: real `redis-server`, real processes, a tonic client.

mod client;
mod procs;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use client::{admitted, ask, connect, header, request};
use procs::{Redis, Service, metrics, run_to_exit};

const LIMITS: &str = "domain: mcp-edge
tiers:
  free: { requests_per_minute: 5 }
  pro: { requests_per_minute: 8, tools: { search_tasks: { requests_per_minute: 3 } } }
  enterprise: { requests_per_minute: 12 }
";

fn limits_file(dir: &tempfile::TempDir, text: &str) -> PathBuf {
    let path = dir.path().join("limits.yaml");
    std::fs::write(&path, text).expect("write limits");
    path
}

/// Each tier's tenant, asked alternately through two instances on one Redis, gets exactly its
/// budget; the refusals carry the headers and statuses a 429 needs.
#[tokio::test(flavor = "multi_thread")]
async fn budgets_are_exact_per_tier_and_shared_by_instances() {
    let redis = Redis::start();
    let dir = tempfile::tempdir().expect("dir");
    let limits = limits_file(&dir, LIMITS);
    let args = ["--redis-url", &redis.url(), "--redis-timeout-ms", "500"];
    let (a, b) = (
        Service::start(&limits, &args),
        Service::start(&limits, &args),
    );
    let mut clients = [connect(&a.addr).await, connect(&b.addr).await];
    for (tier, budget) in [("free", 5), ("pro", 8), ("enterprise", 12)] {
        let tenant = format!("{tier}-tenant");
        let mut admitted_count = 0;
        let mut last = None;
        for i in 0..budget * 2 {
            let r = ask(&mut clients[i % 2], request(&tenant, tier, None, 1))
                .await
                .expect("answer");
            admitted_count += usize::from(admitted(&r));
            last = Some(r);
        }
        assert_eq!(
            admitted_count, budget,
            "{tier}: one budget across both instances"
        );
        let refused = last.expect("asked");
        assert!(!admitted(&refused));
        let policy = format!("\"{tier}\";q={budget};w=60");
        assert_eq!(header(&refused, "ratelimit-policy"), Some(policy.as_str()));
        let retry: u64 = header(&refused, "retry-after")
            .and_then(|v| v.parse().ok())
            .expect("retry-after");
        assert!((1..=60).contains(&retry), "retry-after {retry}");
        let status = &refused.statuses[0];
        assert_eq!(status.limit_remaining, 0);
        assert_eq!(
            status.current_limit.as_ref().map(|l| l.requests_per_unit),
            Some(budget as u32)
        );
        assert!(status.duration_until_reset.is_some());
    }
    // Another tenant of the same tier has its own budget.
    let r = ask(&mut clients[0], request("free-other", "free", None, 1))
        .await
        .expect("answer");
    assert!(admitted(&r));
    assert_eq!(header(&r, "ratelimit"), Some("\"free\";r=4;t=60"));
}

/// A batch of k costs k; a tool's own budget applies on top of the tier's.
#[tokio::test(flavor = "multi_thread")]
async fn hits_addend_k_consumes_k_and_tool_budgets_apply() {
    // The same algorithm in memory and in the Redis script.
    hits_and_tool_budgets(&["--memory"]).await;
    let redis = Redis::start();
    hits_and_tool_budgets(&["--redis-url", &redis.url()]).await;
}

async fn hits_and_tool_budgets(counters: &[&str]) {
    let dir = tempfile::tempdir().expect("dir");
    let limits = limits_file(&dir, LIMITS);
    let service = Service::start(&limits, counters);
    let mut c = connect(&service.addr).await;
    let r = ask(&mut c, request("acme", "free", None, 3))
        .await
        .expect("answer");
    assert!(admitted(&r));
    assert_eq!(r.statuses[0].limit_remaining, 2);
    let r = ask(&mut c, request("acme", "free", None, 3))
        .await
        .expect("answer");
    assert!(!admitted(&r), "3 more do not fit in the 2 left");
    let r = ask(&mut c, request("acme", "free", None, 2))
        .await
        .expect("answer");
    assert!(admitted(&r), "2 do");
    assert_eq!(r.statuses[0].limit_remaining, 0);

    for _ in 0..3 {
        let r = ask(&mut c, request("globex", "pro", Some("search_tasks"), 1))
            .await
            .expect("answer");
        assert!(admitted(&r));
    }
    let r = ask(&mut c, request("globex", "pro", Some("search_tasks"), 1))
        .await
        .expect("answer");
    assert!(!admitted(&r), "the tool's 3 a minute are used");
    assert_eq!(
        header(&r, "ratelimit-policy"),
        Some("\"pro/search_tasks\";q=3;w=60")
    );
    let r = ask(&mut c, request("globex", "pro", Some("other_tool"), 1))
        .await
        .expect("answer");
    assert!(admitted(&r), "other tools still have the tier's budget");
    assert_eq!(
        r.statuses[0].limit_remaining, 4,
        "8 - 3 - 1: the refused call took nothing from the tier either (all or nothing)"
    );

    let bad = ask(&mut c, request("globex", "gold", None, 1))
        .await
        .expect_err("refused");
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    assert!(bad.message().contains("gold"), "{}", bad.message());
}

/// A bad file stops the start with the field named; `--check-limits` says so too.
#[test]
fn a_bad_limits_file_is_refused_naming_the_field() {
    let dir = tempfile::tempdir().expect("dir");
    let limits = limits_file(
        &dir,
        &LIMITS.replace("requests_per_minute: 5", "requests_per_minute: 0"),
    );
    let (ok, stderr) = run_to_exit(&limits, &["--memory"]);
    assert!(!ok, "refused");
    assert!(
        stderr.contains("tiers.free.requests_per_minute"),
        "{stderr}"
    );
    let (ok, stderr) = run_to_exit(&limits, &["--check-limits"]);
    assert!(!ok);
    assert!(
        stderr.contains("tiers.free.requests_per_minute"),
        "{stderr}"
    );
    let good = limits_file(&dir, LIMITS);
    assert!(run_to_exit(&good, &["--check-limits"]).0);
}

/// Changing the file changes the limit without a restart; a bad edit keeps the limits in force.
#[tokio::test(flavor = "multi_thread")]
async fn a_reload_changes_the_limit_without_restart() {
    let dir = tempfile::tempdir().expect("dir");
    let limits = limits_file(&dir, LIMITS);
    let service = Service::start(&limits, &["--memory", "--metrics-addr", "127.0.0.1:0"]);
    let mut c = connect(&service.addr).await;
    for _ in 0..5 {
        assert!(admitted(
            &ask(&mut c, request("acme", "free", None, 1))
                .await
                .expect("answer")
        ));
    }
    assert!(!admitted(
        &ask(&mut c, request("acme", "free", None, 1))
            .await
            .expect("answer")
    ));

    limits_file(
        &dir,
        &LIMITS.replace("requests_per_minute: 5", "requests_per_minute: 0"),
    );
    // The watcher has read the bad file once it counts a refused reload; only then does the
    // next answer show that nothing changed.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !metrics(&service).contains("mcp_edge_ratelimit_limits_reloads_total{result=\"error\"} 1")
    {
        assert!(
            Instant::now() < deadline,
            "the bad limits file was not refused within 5 s: {}",
            metrics(&service)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = ask(&mut c, request("acme", "free", None, 1))
        .await
        .expect("answer");
    assert!(!admitted(&r), "a bad file changes nothing");
    assert_eq!(header(&r, "ratelimit-policy"), Some("\"free\";q=5;w=60"));

    limits_file(
        &dir,
        &LIMITS.replace("requests_per_minute: 5", "requests_per_minute: 7"),
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    let r = loop {
        let r = ask(&mut c, request("acme", "free", None, 1))
            .await
            .expect("answer");
        if admitted(&r) || Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        admitted(&r),
        "the raised limit is in force; counted hits stay"
    );
    assert_eq!(header(&r, "ratelimit-policy"), Some("\"free\";q=7;w=60"));
    assert_eq!(r.statuses[0].limit_remaining, 1, "7 - 5 - 1");
}

/// Redis stopped or killed: UNAVAILABLE within the timeout, never a hang; counting resumes when
/// it is back, without restarting the service.
#[tokio::test(flavor = "multi_thread")]
async fn redis_down_is_a_bounded_unavailable_and_recovers() {
    let mut redis = Redis::start();
    let dir = tempfile::tempdir().expect("dir");
    let limits = limits_file(&dir, LIMITS);
    let service = Service::start(
        &limits,
        &[
            "--redis-url",
            &redis.url(),
            "--redis-timeout-ms",
            "100",
            "--metrics-addr",
            "127.0.0.1:0",
        ],
    );
    let mut c = connect(&service.addr).await;
    assert!(admitted(
        &ask(&mut c, request("acme", "free", None, 1))
            .await
            .expect("answer")
    ));

    redis.signal("STOP");
    for _ in 0..3 {
        let started = Instant::now();
        let e = ask(&mut c, request("acme", "free", None, 1))
            .await
            .expect_err("unavailable");
        let took = started.elapsed();
        assert_eq!(e.code(), tonic::Code::Unavailable, "{e:?}");
        assert!(took < Duration::from_millis(1000), "answered in {took:?}");
    }
    let text = metrics(&service);
    assert!(
        text.contains("mcp_edge_ratelimit_storage_errors_total{kind=\"timeout\"} 3"),
        "{text}"
    );
    assert!(text.contains("mcp_edge_ratelimit_storage_up 0"), "{text}");
    redis.signal("CONT");
    let r = ask(&mut c, request("acme", "free", None, 1))
        .await
        .expect("answer after SIGCONT");
    assert!(admitted(&r));

    redis.kill();
    let started = Instant::now();
    let e = ask(&mut c, request("acme", "free", None, 1))
        .await
        .expect_err("unavailable");
    assert_eq!(e.code(), tonic::Code::Unavailable, "{e:?}");
    assert!(
        started.elapsed() < Duration::from_millis(1000),
        "{:?}",
        started.elapsed()
    );

    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    let r = loop {
        let started = Instant::now();
        match ask(&mut c, request("acme", "free", None, 1)).await {
            Ok(r) => break r,
            Err(e) => {
                assert!(started.elapsed() < Duration::from_millis(1000));
                assert!(Instant::now() < deadline, "no recovery: {e:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    assert!(admitted(&r), "a fresh Redis counts from zero again");
    assert_eq!(r.statuses[0].limit_remaining, 4);
    assert!(metrics(&service).contains("mcp_edge_ratelimit_storage_up 1"));
}

/// Concurrent callers through two instances on one Redis: each decision is one atomic script, so
/// callers racing at the budget's edge cannot slip past it: exactly the budget is admitted.
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_callers_over_two_instances_get_exactly_the_budget() {
    let redis = Redis::start();
    let dir = tempfile::tempdir().expect("dir");
    let limits = limits_file(
        &dir,
        &LIMITS.replace(
            "enterprise: { requests_per_minute: 12 }",
            "enterprise: { requests_per_minute: 200 }",
        ),
    );
    let args = ["--redis-url", &redis.url(), "--redis-timeout-ms", "1000"];
    let services = [
        Service::start(&limits, &args),
        Service::start(&limits, &args),
    ];
    let mut tasks = Vec::new();
    for i in 0..16 {
        let mut c = connect(&services[i % 2].addr).await;
        tasks.push(tokio::spawn(async move {
            let mut admitted_here = 0u32;
            for _ in 0..40 {
                let r = ask(&mut c, request("busy", "enterprise", None, 1))
                    .await
                    .expect("answer");
                admitted_here += u32::from(admitted(&r));
            }
            admitted_here
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.expect("task");
    }
    eprintln!("640 asked by 16 callers over 2 instances, budget 200: {total} admitted");
    assert_eq!(total, 200, "admitted for a budget of 200");
}
