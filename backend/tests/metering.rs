//! Daily quota and usage events through the real router: exact refusals under concurrency against
//! a real Redis, refunds of failed calls, fail-closed/fail-open while Redis is down, and the
//! startup delivery of the outbox, a full outbox disk (refused, then recovered), a signed request
//! replayed (run once) and a reservation whose answer was lost (counted once). Tests that need
//! Redis start their own `redis-server`.

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use common::*;
use mcp_edge_backend::metering::USAGE_STREAM;
use mcp_edge_backend::metering::outbox::pending_in;
use mcp_edge_backend::metering::{
    DailyQuota, DeliveryTask, MemoryMeter, MeterStore, Metering, MeteringConfig, Outbox,
    QuotaLimits, RedisMeter,
};
use mcp_edge_backend::redis_server::{RedisCluster, RedisServer, temp_dir};
use serde_json::{Value, json};

fn app_with(
    meter: Arc<dyn MeterStore>,
    config: MeteringConfig,
    outbox: Outbox,
    now: DateTime<Utc>,
) -> (Router, DeliveryTask) {
    let (app, task, _) = app_and_metering(meter, config, outbox, now);
    (app, task)
}

/// [`app_with`], and the metering behind it.
fn app_and_metering(
    meter: Arc<dyn MeterStore>,
    config: MeteringConfig,
    outbox: Outbox,
    now: DateTime<Utc>,
) -> (Router, DeliveryTask, Metering) {
    let (metering, task) = Metering::start_with(
        meter,
        config,
        outbox,
        Arc::new(move || now),
        Duration::from_millis(100),
    );
    let app = app_with_metering(metering.clone());
    (app, task, metering)
}

/// A billable call of `caller` creating project `P<n>`.
async fn create_project(app: &Router, caller: &Caller<'_>, n: u32) -> Value {
    call_tool_as(
        app,
        caller,
        "create_project",
        json!({"name": format!("P{n}")}),
    )
    .await
}

fn free_quota(limit: u64) -> MeteringConfig {
    MeteringConfig {
        limits: QuotaLimits {
            free: DailyQuota(Some(limit)),
            ..QuotaLimits::default()
        },
        ..MeteringConfig::default()
    }
}

/// The exact refusal, with the reset computed here: next midnight UTC, seconds rounded up.
fn expected_refusal(tier: &str, limit: u64, now: DateTime<Utc>) -> String {
    let reset = (now.date_naive() + chrono::Days::new(1))
        .and_hms_opt(0, 0, 0)
        .expect("midnight")
        .and_utc();
    let millis = (reset - now).num_milliseconds();
    let secs = (millis + 999) / 1000;
    format!(
        "Daily quota exhausted: the {tier} plan allows {limit} billable tool calls per UTC day and all \
{limit} have been used today. The quota resets at {} (in {secs} seconds). Upgrade the plan for a \
higher limit, or wait until then; tools that are not billable, such as get_usage, still work.",
        reset.format("%Y-%m-%dT%H:%M:%SZ")
    )
}

fn caller<'a>(tenant: &'a str, tier: &'a str, request_id: &'a str) -> Caller<'a> {
    Caller {
        tenant,
        tier,
        request_id,
        ..Caller::default()
    }
}

fn project_count(listed: &Value) -> usize {
    listed["projects"].as_array().map_or(0, Vec::len)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_calls_never_exceed_the_quota_in_redis() {
    let redis = RedisServer::start();
    let meter = RedisMeter::lazy(&redis.url()).expect("meter");
    concurrent_calls_never_exceed_the_quota(meter, &mut redis.connection()).await;
}

/// The same against a three-master Redis Cluster: every metering script keeps to one slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_calls_never_exceed_the_quota_in_a_redis_cluster() {
    let cluster = RedisCluster::start();
    let meter = RedisMeter::lazy_cluster(&cluster.urls()).expect("meter");
    concurrent_calls_never_exceed_the_quota(meter, &mut cluster.connection()).await;
}

/// 60 concurrent calls of a free tenant (quota 20) against `meter`, whose Redis `conn` reaches.
async fn concurrent_calls_never_exceed_the_quota(
    meter: RedisMeter,
    conn: &mut dyn redis::ConnectionLike,
) {
    let now = Utc::now();
    let (app, task) = app_with(Arc::new(meter), free_quota(20), Outbox::memory(), now);
    let tenant = format!("acme-{}", uuid::Uuid::new_v4().simple());

    let calls = (0..60).map(|i| {
        let app = app.clone();
        let tenant = tenant.clone();
        tokio::spawn(async move {
            let request_id = format!("req-{i}");
            call_tool_as(
                &app,
                &caller(&tenant, "free", &request_id),
                "create_project",
                json!({"name": format!("P{i}")}),
            )
            .await
        })
    });
    let results = futures_util::future::join_all(calls).await;
    let expected = expected_refusal("free", 20, now);
    let (mut succeeded, mut refused) = (0, 0);
    for result in results {
        let response = result.expect("task");
        if response.get("error").is_some() {
            assert_eq!(rpc_error_code(&response), -32050, "{response}");
            assert_eq!(response["error"]["message"], expected.as_str());
            assert_eq!(response["error"]["data"]["limit"], 20);
            assert_eq!(response["error"]["data"]["tier"], "free");
            refused += 1;
        } else {
            ok(&response);
            succeeded += 1;
        }
    }
    assert_eq!((succeeded, refused), (20, 40));

    // Refused calls did not run; non-billable tools still work.
    let me = caller(&tenant, "free", "req-list");
    let listed = ok(&call_tool_as(&app, &me, "list_projects", json!({"limit": 100})).await);
    assert_eq!(project_count(&listed), 20, "{listed}");
    let usage = ok(&call_tool_as(&app, &me, "get_usage", json!({})).await);
    let reset = (now.date_naive() + chrono::Days::new(1)).format("%Y-%m-%dT00:00:00Z");
    assert_eq!(usage["tier"], "free");
    assert_eq!(usage["limit"], 20);
    assert_eq!(usage["used"], 20);
    assert_eq!(usage["remaining"], 0);
    assert_eq!(usage["resetsAt"], reset.to_string());

    // One event per successful call in the stream; the day counter expires a bit after a day.
    task.shutdown(Duration::from_secs(5)).await;
    let entries: Vec<(String, Vec<String>)> = redis::cmd("XRANGE")
        .arg(USAGE_STREAM)
        .arg("-")
        .arg("+")
        .query(conn)
        .expect("xrange");
    assert_eq!(entries.len(), 20);
    let mut ids = std::collections::HashSet::new();
    for (_, fields) in &entries {
        let event = mcp_edge_backend::metering::UsageEvent::from_fields(fields).expect("event");
        assert_eq!(event.tenant_id, tenant);
        assert_eq!(event.tool, "create_project");
        assert_eq!(event.user_id, "alice");
        assert!(event.billable && event.request_id.starts_with("req-"));
        assert!(ids.insert(event.event_id));
    }
    let key = mcp_edge_backend::metering::keys::quota_day(&tenant, now.date_naive());
    let used: u64 = redis::cmd("GET").arg(&key).query(conn).expect("counter");
    let ttl: i64 = redis::cmd("TTL").arg(&key).query(conn).expect("ttl");
    assert_eq!(used, 20);
    assert!((86_400..=90_000).contains(&ttl), "{ttl}");
}

#[tokio::test]
async fn failed_calls_are_refunded_and_only_successes_billed() {
    let now = Utc::now();
    let meter = Arc::new(MemoryMeter::new());
    let (app, task) = app_with(meter.clone(), free_quota(2), Outbox::memory(), now);
    let me = caller("acme", "free", "req-1");

    // Failed calls (isError: a business failure, bad arguments) are given back.
    let failed = call_tool_as(
        &app,
        &me,
        "create_task",
        json!({"project_id": "prj_0123456789abcdef0123456789abcdef", "title": "x"}),
    )
    .await;
    tool_error(&failed);
    let invalid = call_tool_as(&app, &me, "create_project", json!({"nope": 1})).await;
    tool_error(&invalid);
    let usage = ok(&call_tool_as(&app, &me, "get_usage", json!({})).await);
    assert_eq!(usage["used"], 0, "{usage}");

    for i in 0..2 {
        let request_id = format!("req-ok-{i}");
        ok(&call_tool_as(
            &app,
            &caller("acme", "free", &request_id),
            "create_project",
            json!({"name": format!("P{i}")}),
        )
        .await);
    }
    let refused = call_tool_as(&app, &me, "create_project", json!({"name": "P3"})).await;
    assert_eq!(rpc_error_code(&refused), -32050);
    assert_eq!(
        refused["error"]["message"],
        expected_refusal("free", 2, now).as_str()
    );
    // Non-billable tools are neither counted nor refused.
    let listed = ok(&call_tool_as(&app, &me, "list_projects", json!({})).await);
    assert_eq!(project_count(&listed), 2);
    let usage = ok(&call_tool_as(&app, &me, "get_usage", json!({})).await);
    assert_eq!(
        (usage["used"].as_u64(), usage["remaining"].as_u64()),
        (Some(2), Some(0))
    );
    // Another tenant has its own quota; enterprise is unlimited.
    ok(&call_tool_as(
        &app,
        &caller("globex", "free", "r"),
        "create_project",
        json!({"name": "G"}),
    )
    .await);
    let big = ok(&call_tool_as(
        &app,
        &caller("initech", "enterprise", "r"),
        "get_usage",
        json!({}),
    )
    .await);
    assert!(
        big["limit"].is_null() && big["remaining"].is_null(),
        "{big}"
    );

    task.shutdown(Duration::from_secs(5)).await;
    let events = meter.events();
    let billed: Vec<(&str, &str, &str)> = events
        .iter()
        .map(|e| (e.tenant_id.as_str(), e.tool.as_str(), e.request_id.as_str()))
        .collect();
    assert_eq!(
        billed,
        [
            ("acme", "create_project", "req-ok-0"),
            ("acme", "create_project", "req-ok-1"),
            ("globex", "create_project", "r")
        ]
    );
}

#[tokio::test]
async fn redis_down_fails_closed_for_free_and_open_for_pro_then_replays_at_startup() {
    let mut redis = RedisServer::start();
    let outbox_dir = temp_dir("outbox");
    redis.kill();
    let now = Utc::now();
    let meter = RedisMeter::lazy(&redis.url()).expect("meter");
    let outbox = Outbox::open_dir(&outbox_dir).expect("outbox");
    let (app, task) = app_with(Arc::new(meter), MeteringConfig::default(), outbox, now);

    let free = caller("acme", "free", "req-free");
    let refused = call_tool_as(&app, &free, "create_project", json!({"name": "A"})).await;
    assert_eq!(rpc_error_code(&refused), -32051, "{refused}");
    assert_eq!(
        refused["error"]["message"],
        "The daily quota of the free plan cannot be checked right now because the usage store is \
unavailable, so this billable call was not run. Try again in a minute; tools that are not billable \
still work."
    );
    let listed = ok(&call_tool_as(&app, &free, "list_projects", json!({})).await);
    assert_eq!(project_count(&listed), 0, "the refused call did not run");

    let pro = caller("globex", "pro", "req-pro");
    ok(&call_tool_as(&app, &pro, "create_project", json!({"name": "B"})).await);
    let usage = call_tool_as(&app, &pro, "get_usage", json!({})).await;
    assert_eq!(rpc_error_code(&usage), -32051, "{usage}");
    task.shutdown(Duration::from_secs(10)).await;
    assert_eq!(pending_in(&outbox_dir).expect("outbox"), 1);

    // Redis is back; a new backend delivers the outbox at startup and counts the call.
    redis.restart();
    let meter = RedisMeter::lazy(&redis.url()).expect("meter");
    let outbox = Outbox::open_dir(&outbox_dir).expect("outbox");
    let (app, task) = app_with(Arc::new(meter), MeteringConfig::default(), outbox, now);
    assert_eq!(stream_len_reaches(&redis, 1).await, 1);
    let usage = ok(&call_tool_as(&app, &pro, "get_usage", json!({})).await);
    assert_eq!(usage["used"], 1, "{usage}");
    task.shutdown(Duration::from_secs(5)).await;
    assert_eq!(pending_in(&outbox_dir).expect("outbox"), 0);
    let _ = std::fs::remove_dir_all(&outbox_dir);
}

/// Polls `XLEN` of the usage stream until it is `want` (at most 5 s); the last length seen.
async fn stream_len_reaches(redis: &RedisServer, want: u64) -> u64 {
    stream_len_reaches_within(redis, want, Duration::from_secs(5)).await
}

/// [`stream_len_reaches`] waiting at most `time`.
async fn stream_len_reaches_within(redis: &RedisServer, want: u64, time: Duration) -> u64 {
    let mut conn = redis.connection();
    let deadline = std::time::Instant::now() + time;
    loop {
        let len: u64 = redis::cmd("XLEN")
            .arg(USAGE_STREAM)
            .query(&mut conn)
            .expect("xlen");
        if len == want || std::time::Instant::now() > deadline {
            return len;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_request_sent_three_times_runs_once_and_is_billed_once() {
    let redis = RedisServer::start();
    let now = Utc::now();
    let tenant = format!("acme-{}", uuid::Uuid::new_v4().simple());
    let backend = || {
        let meter = RedisMeter::lazy(&redis.url()).expect("meter");
        app_with(
            Arc::new(meter),
            MeteringConfig::default(),
            Outbox::memory(),
            now,
        )
    };
    // Two backends behind the same edge, sharing the Redis.
    let ((a, task_a), (b, task_b)) = (backend(), backend());
    let me = caller(&tenant, "pro", "req-captured");
    let body = tool_call("create_project", json!({"name": "Once"}));
    let mut answers = Vec::new();
    for app in [&a, &a, &b] {
        let (_, text, _) = send(app, signed_post_as(&me, "127.0.0.1:10000", &body)).await;
        answers.push(serde_json::from_str::<Value>(&text).expect("json"));
    }
    ok(&answers[0]);
    for replay in &answers[1..] {
        assert_eq!(rpc_error_code(replay), -32053, "{replay}");
        assert_eq!(replay["error"]["data"]["requestId"], "req-captured");
    }
    let listed = ok(&call_tool_as(&a, &me, "list_projects", json!({})).await);
    let executed = project_count(&listed);
    let billed = stream_len_reaches(&redis, 1).await;
    let used = ok(&call_tool_as(&b, &me, "get_usage", json!({})).await)["used"].clone();
    eprintln!("sent 3 times: acknowledged 1, executed {executed}, billed {billed}, counted {used}");
    assert_eq!((executed, billed, used), (1, 1, json!(1)));
    task_a.shutdown(Duration::from_secs(5)).await;
    task_b.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_reservation_whose_answer_was_lost_is_counted_once() {
    let redis = RedisServer::start();
    let meter = RedisMeter::lazy(&redis.url()).expect("meter");
    let tenant = mcp_edge_backend::tenant::test_tenant("acme-slow");
    let now = Utc::now();
    let key = mcp_edge_backend::metering::keys::quota_day("acme-slow", now.date_naive());
    let event = mcp_edge_backend::metering::UsageEvent::new(&tenant, "create_task", "1", now);
    // The reservation ran on Redis, but the backend timed out, let the call run uncounted, and
    // its event reaches Redis later: the call is counted once. Replays of the reservation too.
    meter
        .reserve(&key, Some(5), &event.event_id)
        .await
        .expect("reserve");
    meter
        .reserve(&key, Some(5), &event.event_id)
        .await
        .expect("reserve");
    let record = mcp_edge_backend::metering::SpoolRecord {
        event,
        quota_counted: false,
    };
    assert!(meter.deliver(&record, &key).await.expect("deliver"));
    assert!(!meter.deliver(&record, &key).await.expect("deliver"));
    // A call that never reserved is counted when its event arrives.
    let other = mcp_edge_backend::metering::UsageEvent::new(&tenant, "create_task", "2", now);
    let other = mcp_edge_backend::metering::SpoolRecord {
        event: other,
        quota_counted: false,
    };
    assert!(meter.deliver(&other, &key).await.expect("deliver"));
    let used = meter.used(&key).await.expect("used");
    eprintln!("2 calls (one reservation answer lost, replayed once): billed 2, counted {used}");
    assert_eq!(used, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_outbox_disk_refuses_billable_calls_until_it_has_room_again() {
    let dir = temp_dir("outbox-full");
    let (outbox, disk) = Outbox::open_dir_with_fault(&dir).expect("outbox");
    let meter = Arc::new(MemoryMeter::new());
    let (app, task, metering) =
        app_and_metering(meter.clone(), MeteringConfig::default(), outbox, Utc::now());
    let me = caller("acme", "pro", "req-disk");
    let create = |n: u32| create_project(&app, &me, n);
    let mut acknowledged = 0;
    ok(&create(0).await);
    acknowledged += 1;
    // Its delivery removes it from the outbox, a write too: let that happen before the disk
    // fills, or the removal is what finds the disk full and the next call is refused up front.
    let delivered_by = std::time::Instant::now() + Duration::from_secs(5);
    while metering.outbox_backlog() > 0 && std::time::Instant::now() < delivered_by {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(metering.outbox_backlog(), 0, "every event was delivered");

    disk.set(true);
    // The call in flight when the disk fills: it ran, but its event cannot be recorded, so it is
    // answered with an error (not acknowledged, not billed). Later calls are refused up front.
    let lost = create(1).await;
    assert_eq!(rpc_error_code(&lost), -32052, "{lost}");
    let listed = ok(&call_tool_as(&app, &me, "list_projects", json!({})).await);
    let before = project_count(&listed);
    for n in 2..5 {
        let refused = create(n).await;
        assert_eq!(rpc_error_code(&refused), -32052, "{refused}");
        assert!(
            refused["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("cannot record usage")),
            "{refused}"
        );
    }
    let listed = ok(&call_tool_as(&app, &me, "list_projects", json!({})).await);
    assert_eq!(project_count(&listed), before, "refused calls did not run");
    assert_eq!(
        metering.counts().unwritable_refusals,
        3,
        "the metric counts the calls refused up front"
    );
    // The call's failed commit, plus the recovery probe's if it ran meanwhile (once a second).
    let failures = metering.outbox_stats().failures;
    assert!(failures >= 1, "the failed commit is counted: {failures}");
    let usage = ok(&call_tool_as(&app, &me, "get_usage", json!({})).await);
    assert_eq!(
        usage["used"], 1,
        "the unrecorded call was refunded: {usage}"
    );

    disk.set(false);
    let mut recovered = None;
    for n in 5..100 {
        let answer = create(n).await;
        if answer.get("error").is_none() {
            recovered = Some(answer);
            break;
        }
        assert_eq!(rpc_error_code(&answer), -32052, "{answer}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ok(&recovered.expect("accepted again once the disk has room"));
    acknowledged += 1;
    task.shutdown(Duration::from_secs(5)).await;
    let billed = meter.events().len();
    eprintln!("disk full then freed: acknowledged {acknowledged}, billed {billed}");
    assert_eq!(billed, acknowledged);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `GET /readyz`: its status and body.
async fn readiness(app: &Router) -> (StatusCode, String) {
    let request = axum::http::Request::get("/readyz")
        .body(axum::body::Body::empty())
        .expect("request");
    let (status, text, _) = send(app, request).await;
    (status, text)
}

/// Waits (bounded) until the first event is delivered: its removal is a write too, which must
/// happen before a disk fault is switched on.
async fn until_delivered(metering: &Metering) {
    let by = std::time::Instant::now() + Duration::from_secs(5);
    while metering.outbox_backlog() > 0 && std::time::Instant::now() < by {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(metering.outbox_backlog(), 0, "every event was delivered");
}

/// Waits (bounded) until the outbox writer is `Stopped` or `Stuck`.
async fn until_writer(metering: &Metering, stopped: bool) {
    use mcp_edge_backend::metering::outbox::WriterState;
    let by = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let state = metering.outbox_writer_state();
        match state {
            WriterState::Stopped if stopped => return,
            WriterState::Stuck(_) if !stopped => return,
            _ => assert!(std::time::Instant::now() < by, "writer still {state:?}"),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The billable `calls` are refused -32052 before they run.
async fn refused_up_front(app: &Router, me: &Caller<'_>, calls: std::ops::Range<u32>) {
    let listed = ok(&call_tool_as(app, me, "list_projects", json!({})).await);
    let before = project_count(&listed);
    for n in calls {
        let refused = create_project(app, me, n).await;
        assert_eq!(rpc_error_code(&refused), -32052, "{refused}");
    }
    let listed = ok(&call_tool_as(app, me, "list_projects", json!({})).await);
    assert_eq!(project_count(&listed), before, "refused calls did not run");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_outbox_writer_refuses_billable_calls_before_they_run() {
    let dir = temp_dir("outbox-dead");
    let outbox = Outbox::open_dir(&dir).expect("outbox");
    let meter = Arc::new(MemoryMeter::new());
    let writer = outbox.clone();
    let (app, _task, metering) =
        app_and_metering(meter, MeteringConfig::default(), outbox, Utc::now());
    let me = caller("acme", "pro", "req-dead");
    ok(&create_project(&app, &me, 0).await);
    until_delivered(&metering).await;
    assert_eq!(readiness(&app).await.0, StatusCode::OK);

    writer.crash_writer();
    until_writer(&metering, true).await;
    refused_up_front(&app, &me, 1..4).await;
    assert_eq!(metering.counts().unwritable_refusals, 3);
    let (status, text) = readiness(&app).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{text}");
    assert!(text.contains("stopped"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_outbox_writer_refuses_billable_calls_until_it_moves_again() {
    let dir = temp_dir("outbox-stuck");
    let (outbox, disk) = Outbox::open_dir_with_fault(&dir).expect("outbox");
    outbox.set_writer_deadline(Duration::from_millis(500));
    let meter = Arc::new(MemoryMeter::new());
    let (app, _task, metering) =
        app_and_metering(meter, MeteringConfig::default(), outbox, Utc::now());
    let metrics = mcp_edge_backend::metrics::router(mcp_edge_backend::metrics::Sources {
        metering: metering.clone(),
        shedder: mcp_edge_backend::shed::Shedder::new(4),
    });
    let writer_up = || async {
        let request = axum::http::Request::get("/metrics")
            .body(axum::body::Body::empty())
            .expect("request");
        let (_, text, _) = send(&metrics, request).await;
        text.lines()
            .find_map(|l| {
                l.strip_prefix("mcp_edge_outbox_writer_up ")
                    .map(str::to_owned)
            })
            .expect("writer_up metric")
    };
    let me = caller("acme", "pro", "req-stuck");
    ok(&create_project(&app, &me, 0).await);
    until_delivered(&metering).await;
    assert_eq!(writer_up().await, "1");

    disk.hang(true);
    // The call in flight when the disk hangs waits out the writer's deadline, not for ever.
    let lost = tokio::time::timeout(Duration::from_secs(30), create_project(&app, &me, 1))
        .await
        .expect("answered within the writer's deadline, not held while the disk hangs");
    assert_eq!(rpc_error_code(&lost), -32052, "{lost}");
    // The writer is still inside the hung commit, soon past its deadline: stuck.
    until_writer(&metering, false).await;
    refused_up_front(&app, &me, 2..5).await;
    let (status, text) = readiness(&app).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{text}");
    assert!(text.contains("busy"), "{text}");
    assert_eq!(writer_up().await, "0");

    disk.hang(false);
    let by = std::time::Instant::now() + Duration::from_secs(10);
    while readiness(&app).await.0 != StatusCode::OK {
        assert!(
            std::time::Instant::now() < by,
            "ready again once the disk answers"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    ok(&create_project(&app, &me, 5).await);
    assert_eq!(writer_up().await, "1");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn the_outbox_directory_belongs_to_one_process() {
    let dir = temp_dir("outbox-lock");
    let first = Outbox::open_dir(&dir).expect("outbox");
    let second = Outbox::open_dir(&dir);
    assert!(second.is_err(), "a second opener is refused");
    first.close().await.expect("close");
    Outbox::open_dir(&dir)
        .expect("free again")
        .close()
        .await
        .expect("close");
    let _ = std::fs::remove_dir_all(&dir);
}

/// What an event costs on the request path, and how group commit shares fsyncs. Run with
/// `cargo test -p mcp-edge-backend --release --test metering -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a check"]
async fn outbox_cost_per_call() {
    let dir = temp_dir("outbox-bench");
    let outbox = Outbox::open_dir(&dir).expect("outbox");
    let tenant = mcp_edge_backend::tenant::test_tenant("acme");
    let record = |n: usize| mcp_edge_backend::metering::SpoolRecord {
        event: mcp_edge_backend::metering::UsageEvent::new(
            &tenant,
            "create_task",
            &n.to_string(),
            Utc::now(),
        ),
        quota_counted: true,
    };
    for concurrency in [1usize, 8, 64, 256] {
        let per_task = if concurrency == 1 {
            500
        } else {
            4000 / concurrency
        };
        let before = outbox.stats();
        let start = std::time::Instant::now();
        let tasks = (0..concurrency).map(|t| {
            let outbox = outbox.clone();
            let records: Vec<_> = (0..per_task).map(|i| record(t * 1_000_000 + i)).collect();
            tokio::spawn(async move {
                for r in records {
                    outbox
                        .append(std::slice::from_ref(&r))
                        .await
                        .expect("append");
                }
            })
        });
        futures_util::future::join_all(tasks).await;
        let elapsed = start.elapsed();
        let after = outbox.stats();
        let calls = (concurrency * per_task) as f64;
        let commits = (after.append_commits - before.append_commits) as f64;
        eprintln!(
            "{concurrency:>3} concurrent: {calls} appends in {elapsed:?}: {:.1} µs latency per call, \
{:.0} appends/s, {commits} commits ({:.1} events per fsync)",
            elapsed.as_secs_f64() * 1e6 * concurrency as f64 / calls,
            calls / elapsed.as_secs_f64(),
            calls / commits,
        );
    }
    outbox.close().await.expect("close");
    let _ = std::fs::remove_dir_all(&dir);
}

/// How fast a backlog (an outage's worth of events) drains into a real Redis, for two backlog
/// sizes (replay is linear when the rates agree), and what an hour's outage at the edge
/// benchmark's rate (README, "What the filter costs": ~3 670 calls/s) would take to replay. Run
/// like [`outbox_cost_per_call`].
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a check"]
async fn outbox_backlog_delivery_rate() {
    const EDGE_CALLS_PER_SECOND: f64 = 3670.0;
    let redis = RedisServer::start();
    let tenant = mcp_edge_backend::tenant::test_tenant("acme");
    let now = Utc::now();
    let mut in_stream = 0;
    for backlog in [20_000, 100_000] {
        let dir = temp_dir("outbox-backlog");
        let outbox = Outbox::open_dir(&dir).expect("outbox");
        for chunk in 0..backlog / 500 {
            let records: Vec<_> = (0..500)
                .map(|i| mcp_edge_backend::metering::SpoolRecord {
                    event: mcp_edge_backend::metering::UsageEvent::new(
                        &tenant,
                        "create_task",
                        &format!("{backlog}-{}", chunk * 500 + i),
                        now,
                    ),
                    quota_counted: false,
                })
                .collect();
            outbox.append(&records).await.expect("append");
        }
        let start = std::time::Instant::now();
        let meter = Arc::new(RedisMeter::lazy(&redis.url()).expect("meter"));
        let task = mcp_edge_backend::metering::delivery::start(
            meter,
            outbox.clone(),
            Duration::from_millis(100),
            Arc::default(),
            Arc::default(),
        );
        in_stream += backlog as u64;
        let reached = stream_len_reaches_within(&redis, in_stream, Duration::from_secs(300)).await;
        let elapsed = start.elapsed();
        let rate = backlog as f64 / elapsed.as_secs_f64();
        eprintln!(
            "backlog of {backlog}: delivered in {elapsed:?} ({rate:.0} events/s); an hour at \
{EDGE_CALLS_PER_SECOND} calls/s would replay in {:.1} min",
            3600.0 * EDGE_CALLS_PER_SECOND / rate / 60.0
        );
        assert_eq!(reached, in_stream);
        task.shutdown(Duration::from_secs(5)).await;
        assert_eq!(pending_in(&dir).expect("outbox"), 0);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// Default quotas but `limit` billable calls a day for the pro tier.
fn pro_quota(limit: u64) -> MeteringConfig {
    MeteringConfig {
        limits: QuotaLimits {
            pro: DailyQuota(Some(limit)),
            ..QuotaLimits::default()
        },
        ..MeteringConfig::default()
    }
}

/// `get_usage` of `me` once Redis answers again (the breaker skips Redis for a second after the
/// last failure; at most 4 s).
async fn usage_once_redis_answers(app: &Router, me: &Caller<'_>) -> Value {
    let mut usage = call_tool_as(app, me, "get_usage", json!({})).await;
    for _ in 0..40 {
        if usage.get("error").is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        usage = call_tool_as(app, me, "get_usage", json!({})).await;
    }
    usage
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paid_tenant_is_stopped_at_its_quota_while_redis_is_down() {
    let mut redis = RedisServer::start();
    let now = Utc::now();
    let config = pro_quota(5);
    let meter = RedisMeter::lazy(&redis.url()).expect("meter");
    let (app, task, metering) = app_and_metering(Arc::new(meter), config, Outbox::memory(), now);
    let me = caller("acme-outage", "pro", "req-outage");
    let create = |n: u32| create_project(&app, &me, n);
    for n in 0..2 {
        ok(&create(n).await);
    }
    redis.kill();
    let mut acknowledged = 2;
    let mut refused = 0;
    for n in 2..10 {
        let answer = create(n).await;
        if answer.get("error").is_some() {
            assert_eq!(rpc_error_code(&answer), -32050, "{answer}");
            refused += 1;
        } else {
            acknowledged += 1;
        }
    }
    let stats = metering.fail_open_stats();
    assert_eq!((acknowledged, refused), (5, 5));
    assert_eq!((stats.admitted, stats.refused), (3, 5));
    assert!(stats.time > Duration::ZERO);

    // Redis is back: the calls admitted meanwhile are counted when their events arrive.
    redis.restart();
    let billed = stream_len_reaches(&redis, 5).await;
    let usage = ok(&usage_once_redis_answers(&app, &me).await);
    eprintln!(
        "pro quota 5, Redis down after 2 calls: acknowledged {acknowledged} ({} failing open, {} \
refused at the quota), billed {billed}, counted {}",
        stats.admitted, stats.refused, usage["used"]
    );
    assert_eq!((billed, usage["used"].as_u64()), (5, Some(5)));
    task.shutdown(Duration::from_secs(5)).await;
}

/// The sequence measured against the release backend (issue 19): quota 20; 3 calls with Redis up;
/// Redis killed, 25 calls (17 served failing open, 8 refused); Redis back, 25 calls, then more once
/// every event is delivered: nothing more may be served, and the counter says 20. With a Redis
/// that lost its data the counter is restored from what the backend knew; with one that kept it
/// the calls admitted while failing open reach the counter before it grants again.
async fn quota_holds_across_a_redis_outage(mut redis: RedisServer) {
    let now = Utc::now();
    let config = pro_quota(20);
    let meter = RedisMeter::lazy(&redis.url()).expect("meter");
    let (app, task, metering) = app_and_metering(Arc::new(meter), config, Outbox::memory(), now);
    let me = caller("acme-reconcile", "pro", "req-reconcile");
    let mut next = 0;
    let mut calls = |n: u32| {
        let from = next;
        next += n;
        from..next
    };
    let up = served(&app, &me, calls(3)).await;
    until_delivered(&metering).await;
    redis.kill();
    let down = served(&app, &me, calls(25)).await;
    redis.restart();
    let back = served(&app, &me, calls(25)).await;
    // Every event delivered (17 and, if Redis kept them, the first 3), the breaker closed.
    let events = if redis.is_persistent() { 20 } else { 17 };
    let in_stream = stream_len_reaches_within(&redis, events, Duration::from_secs(30)).await;
    assert_eq!(in_stream, events);
    ok(&usage_once_redis_answers(&app, &me).await);
    let after = served(&app, &me, calls(5)).await;
    let usage = ok(&call_tool_as(&app, &me, "get_usage", json!({})).await);
    eprintln!(
        "quota 20: Redis up {up} served; down {down}; back {back}; after delivery ({in_stream} \
events in the stream) {after}; counter {}; fail-open {:?}",
        usage["used"],
        metering.fail_open_stats()
    );
    assert_eq!((up, down), (3, 17));
    assert_eq!(up + down + back + after, 20, "served against a quota of 20");
    assert_eq!(usage["used"], 20, "{usage}");
    task.shutdown(Duration::from_secs(5)).await;
}

/// Calls `create_project` for each of `range`; how many were served (the others must be refused
/// at the quota).
async fn served(app: &Router, me: &Caller<'_>, range: std::ops::Range<u32>) -> u32 {
    let mut served = 0;
    for n in range {
        let answer = create_project(app, me, n).await;
        if answer.get("error").is_none() {
            served += 1;
        } else {
            assert_eq!(rpc_error_code(&answer), -32050, "{answer}");
        }
    }
    served
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quota_holds_after_an_outage_of_a_redis_without_persistence() {
    quota_holds_across_a_redis_outage(RedisServer::start_volatile()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quota_holds_after_an_outage_of_a_redis_that_kept_its_data() {
    quota_holds_across_a_redis_outage(RedisServer::start()).await;
}

/// Every metering script on `meter`: reservations (once per call, up to the limit), refunds,
/// raising a counter, delivering events (a reserved call not counted again, an unreserved one
/// counted once, a duplicate ignored) and claims (shared unless in memory); `stream_len` reads the
/// usage stream's length.
async fn every_metering_script_runs(meter: &dyn MeterStore, stream_len: impl Fn() -> u64) {
    use mcp_edge_backend::metering::{Reservation, SpoolRecord, UsageEvent};
    let now = Utc::now();
    let tenant =
        mcp_edge_backend::tenant::test_tenant(&format!("acme-{}", uuid::Uuid::new_v4().simple()));
    let key = mcp_edge_backend::metering::keys::quota_day(&tenant.tenant_id, now.date_naive());
    // A call's reservation is keyed as its usage event is (`event::call_key`).
    let call =
        |n: u32| mcp_edge_backend::metering::event::call_key(&tenant.request_id, &n.to_string());
    let reserve = |n: u32| {
        let (key, call) = (key.clone(), call(n));
        async move { meter.reserve(&key, Some(2), &call).await.map_err(|e| e.0) }
    };
    let granted = |used| Ok::<_, String>(Reservation::Granted { used });
    assert_eq!(reserve(1).await, granted(1));
    assert_eq!(reserve(1).await, granted(1), "counted once per call");
    assert_eq!(reserve(2).await, granted(2));
    assert_eq!(reserve(3).await, Ok(Reservation::Exhausted { used: 2 }));
    meter.refund(&key, &call(2)).await.expect("refund");
    meter.refund(&key, &call(2)).await.expect("refund again");
    assert_eq!(meter.used(&key).await.expect("used"), 1);
    assert_eq!(meter.raise_to(&key, 3).await.expect("raise"), 3);
    assert_eq!(meter.raise_to(&key, 2).await.expect("no lower"), 3);

    let record = |n: u32, quota_counted| SpoolRecord {
        event: UsageEvent::new(&tenant, "create_project", &n.to_string(), now),
        quota_counted,
    };
    let before = stream_len();
    assert!(
        meter
            .deliver(&record(1, true), &key)
            .await
            .expect("deliver")
    );
    assert_eq!(
        meter.used(&key).await.expect("used"),
        3,
        "reserved: not counted again"
    );
    assert!(
        meter
            .deliver(&record(4, false), &key)
            .await
            .expect("deliver")
    );
    assert_eq!(
        meter.used(&key).await.expect("used"),
        4,
        "ran uncounted: counted now"
    );
    assert!(!meter.deliver(&record(4, false), &key).await.expect("again"));
    assert_eq!(
        meter.used(&key).await.expect("used"),
        4,
        "a duplicate changes nothing"
    );
    assert_eq!(stream_len(), before + 2);

    let once = mcp_edge_backend::metering::keys::request_once(&tenant.tenant_id, &call(9));
    assert!(meter.claim_once(&once, 60).await.expect("claim"));
    let shared = meter.kind() == "redis";
    assert_eq!(
        meter.claim_once(&once, 60).await.expect("claim again"),
        !shared
    );
}

#[tokio::test]
async fn every_metering_operation_runs_in_memory() {
    let meter = MemoryMeter::new();
    every_metering_script_runs(&meter, || meter.events().len() as u64).await;
}

#[tokio::test]
async fn every_metering_script_runs_on_one_redis() {
    let redis = RedisServer::start();
    let meter = RedisMeter::lazy(&redis.url()).expect("meter");
    every_metering_script_runs(&meter, || {
        redis::cmd("XLEN")
            .arg(USAGE_STREAM)
            .query(&mut redis.connection())
            .expect("xlen")
    })
    .await;
}

#[tokio::test]
async fn every_metering_script_runs_on_a_redis_cluster() {
    let cluster = RedisCluster::start();
    let meter = RedisMeter::lazy_cluster(&cluster.urls()).expect("meter");
    every_metering_script_runs(&meter, || {
        redis::cmd("XLEN")
            .arg(USAGE_STREAM)
            .query(&mut cluster.connection())
            .expect("xlen")
    })
    .await;
}
