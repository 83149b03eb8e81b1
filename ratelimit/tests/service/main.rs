//! End-to-end tests of the service binary: real `redis-server`, real processes, a tonic client.

mod client;
mod procs;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use client::{admitted, ask, connect, header, request};
use procs::{Redis, Service, metrics, minute_with_room, run_to_exit, run_to_exit_with_env};

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
    minute_with_room(Duration::from_secs(20)).await;
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
    // Another tenant of the same tier has its own budget; t is the seconds left in this UTC
    // minute when the service decided (the window turns on the clock, not on the first hit).
    let left = |ms: u64| (60_000 - ms % 60_000).div_ceil(1_000);
    let asked = left(mcp_edge_ratelimit::clock_window::now_ms());
    let r = ask(&mut clients[0], request("free-other", "free", None, 1))
        .await
        .expect("answer");
    let answered = left(mcp_edge_ratelimit::clock_window::now_ms());
    assert!(admitted(&r));
    let ratelimit = header(&r, "ratelimit").unwrap_or_default().to_string();
    assert!(
        [asked, answered]
            .iter()
            .any(|t| ratelimit == format!("\"free\";r=4;t={t}")),
        "{ratelimit}: {asked} s were left in the minute when asked, {answered} when answered"
    );
}

/// A batch of k costs k; a tool's own budget applies on top of the tier's.
#[tokio::test(flavor = "multi_thread")]
async fn hits_addend_k_consumes_k_and_tool_budgets_apply() {
    // The same algorithm in memory and in the Redis script.
    hits_and_tool_budgets(&["--memory"]).await;
    let redis = Redis::start();
    // A generous Redis deadline: this test is about the arithmetic, and the 15 ms default is
    // missed on a loaded machine (answered UNAVAILABLE; seen in a run beside another).
    hits_and_tool_budgets(&["--redis-url", &redis.url(), "--redis-timeout-ms", "1000"]).await;
}

async fn hits_and_tool_budgets(counters: &[&str]) {
    minute_with_room(Duration::from_secs(20)).await;
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
    minute_with_room(Duration::from_secs(20)).await;
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
    minute_with_room(Duration::from_secs(20)).await;
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
    minute_with_room(Duration::from_secs(20)).await;
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

/// Windows turn on the UTC clock in Redis too: a budget spent in a minute's last millisecond is
/// whole again at the next minute (and says it resets in 1 ms), and a day budget spent at
/// 23:59:59.999 UTC is whole again at midnight, the day the backend's daily quotas use.
#[tokio::test(flavor = "multi_thread")]
async fn redis_windows_turn_on_the_utc_minute_and_day() {
    use mcp_edge_ratelimit::limiter::{Limiter, RedisOptions};
    use mcp_edge_ratelimit::policy::CounterCheck;
    let redis = Redis::start();
    let limiter = Limiter::redis(&RedisOptions {
        url: redis.url(),
        timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(2),
    })
    .await
    .expect("Redis answers");
    let budget = |key: &str, window_secs: u64| CounterCheck {
        key: key.into(),
        name: key.into(),
        max: 2,
        window: Duration::from_secs(window_secs),
        hits: 1,
    };
    // 2026-12-07T23:59:59.999Z: the last millisecond of a minute and of a UTC day.
    let last_ms: u64 = 1_796_687_999_999;
    for (key, window) in [("minute", 60), ("day", 86_400)] {
        let check = [budget(key, window)];
        for _ in 0..2 {
            let d = limiter
                .check_and_count(&check, last_ms)
                .await
                .expect("decision");
            assert!(!d.limited, "{key}: within the budget");
            assert_eq!(d.counters[key].reset_in, Duration::from_millis(1), "{key}");
        }
        let spent = limiter
            .check_and_count(&check, last_ms)
            .await
            .expect("decision");
        assert!(spent.limited, "{key}: the third hit is over the budget");
        let next = limiter
            .check_and_count(&check, last_ms + 1)
            .await
            .expect("decision");
        assert!(!next.limited, "{key}: the next window starts whole");
        assert_eq!(next.counters[key].count, 1, "{key}");
        assert_eq!(
            next.counters[key].reset_in,
            Duration::from_secs(window),
            "{key}"
        );
    }
}

/// With a shared secret, a call without it (or with another) is refused UNAUTHENTICATED and
/// spends nothing; the holder's calls count as before.
#[tokio::test(flavor = "multi_thread")]
async fn only_holders_of_the_shared_secret_spend_budgets() {
    const SECRET: &str = "ratelimit-test-secret-0123456789abcdef";
    minute_with_room(Duration::from_secs(20)).await;
    let dir = tempfile::tempdir().expect("dir");
    let limits = limits_file(&dir, LIMITS);
    let service = Service::start_with_env(
        &limits,
        &["--memory"],
        &[("RATELIMIT_SHARED_SECRET", SECRET)],
    );
    let mut c = connect(&service.addr).await;
    for presented in [None, Some("Bearer not-the-secret-0123456789abcdef0123")] {
        let mut req = tonic::Request::new(request("acme", "free", None, 5));
        if let Some(value) = presented {
            req.metadata_mut()
                .insert("authorization", value.parse().expect("ascii"));
        }
        let refused = c.should_rate_limit(req).await.expect_err("refused");
        assert_eq!(
            refused.code(),
            tonic::Code::Unauthenticated,
            "{presented:?}"
        );
    }
    // Nothing was spent by the refused calls: the holder still has the whole budget of 5.
    let mut req = tonic::Request::new(request("acme", "free", None, 5));
    req.metadata_mut().insert(
        "authorization",
        format!("Bearer {SECRET}").parse().expect("ascii"),
    );
    let r = c
        .should_rate_limit(req)
        .await
        .expect("admitted")
        .into_inner();
    assert!(admitted(&r));
    assert_eq!(r.statuses[0].limit_remaining, 0);
    // A secret too short to be a gate stops the start (checked before the limits file is).
    let (ok, stderr) = run_to_exit_with_env(
        &limits,
        &["--check-limits"],
        &[("RATELIMIT_SHARED_SECRET", "short")],
    );
    assert!(!ok);
    assert!(stderr.contains("at least 32 bytes"), "{stderr}");
}

/// No call waits for ever: with Redis frozen and a Redis timeout longer than the call deadline,
/// the call ends at `--request-timeout-ms`.
#[tokio::test(flavor = "multi_thread")]
async fn a_call_ends_at_its_deadline() {
    let redis = Redis::start();
    let dir = tempfile::tempdir().expect("dir");
    let limits = limits_file(&dir, LIMITS);
    let service = Service::start(
        &limits,
        &[
            "--redis-url",
            &redis.url(),
            "--redis-timeout-ms",
            "30000",
            "--request-timeout-ms",
            "300",
        ],
    );
    let mut c = connect(&service.addr).await;
    redis.signal("STOP");
    let started = Instant::now();
    let e = ask(&mut c, request("acme", "free", None, 1))
        .await
        .expect_err("deadline");
    let took = started.elapsed();
    redis.signal("CONT");
    assert!(took < Duration::from_secs(3), "answered after {took:?}");
    assert_ne!(e.code(), tonic::Code::Ok, "{e:?}");
}
