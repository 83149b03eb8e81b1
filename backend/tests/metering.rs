//! Daily quota and usage events through the real router: exact refusals under concurrency against
//! a real Redis, refunds of failed calls, fail-closed/fail-open while Redis is down, and the
//! startup replay of a spool. Tests that need Redis start their own `redis-server`.

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use chrono::{DateTime, Utc};
use common::*;
use mcp_edge_backend::metering::USAGE_STREAM;
use mcp_edge_backend::metering::spool::SPOOL_FILE;
use mcp_edge_backend::metering::{
    DailyQuota, EmitterTask, MemoryMeter, MeterStore, Metering, MeteringConfig, QuotaLimits,
    RedisMeter, Spool,
};
use mcp_edge_backend::redis_server::{RedisServer, temp_dir};
use serde_json::{Value, json};

fn app_with(
    meter: Arc<dyn MeterStore>,
    config: MeteringConfig,
    spool: Spool,
    now: DateTime<Utc>,
) -> (Router, EmitterTask) {
    let (metering, task) = Metering::start_with(
        meter,
        config,
        spool,
        Arc::new(move || now),
        Duration::from_millis(100),
    );
    (app_with_metering(metering), task)
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
    let now = Utc::now();
    let meter = RedisMeter::lazy(&redis.url()).expect("meter");
    let (app, task) = app_with(Arc::new(meter), free_quota(20), Spool::memory(), now);
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
    let mut conn = redis.connection();
    let entries: Vec<(String, Vec<String>)> = redis::cmd("XRANGE")
        .arg(USAGE_STREAM)
        .arg("-")
        .arg("+")
        .query(&mut conn)
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
    let key = format!(
        "mcp-edge:tenant:{}:{tenant}:quota:{}",
        tenant.len(),
        now.date_naive()
    );
    let (used, ttl): (u64, i64) = redis::pipe()
        .cmd("GET")
        .arg(&key)
        .cmd("TTL")
        .arg(&key)
        .query(&mut conn)
        .expect("counter");
    assert_eq!(used, 20);
    assert!((86_400..=90_000).contains(&ttl), "{ttl}");
}

#[tokio::test]
async fn failed_calls_are_refunded_and_only_successes_billed() {
    let now = Utc::now();
    let meter = Arc::new(MemoryMeter::new());
    let (app, task) = app_with(meter.clone(), free_quota(2), Spool::memory(), now);
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
    let spool_dir = temp_dir("spool");
    redis.kill();
    let now = Utc::now();
    let meter = RedisMeter::lazy(&redis.url()).expect("meter");
    let spool = Spool::open_dir(&spool_dir).expect("spool");
    let (app, task) = app_with(Arc::new(meter), MeteringConfig::default(), spool, now);

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
    let spooled = std::fs::read_to_string(spool_dir.join(SPOOL_FILE)).expect("spool");
    assert_eq!(spooled.lines().count(), 1, "{spooled}");
    assert!(spooled.contains("\"quota_counted\":false"), "{spooled}");

    // Redis is back; a new backend replays the spool at startup and counts the call.
    redis.restart();
    let meter = RedisMeter::lazy(&redis.url()).expect("meter");
    let spool = Spool::open_dir(&spool_dir).expect("spool");
    let (app, task) = app_with(Arc::new(meter), MeteringConfig::default(), spool, now);
    let mut conn = redis.connection();
    let mut len = 0;
    for _ in 0..100 {
        len = redis::cmd("XLEN")
            .arg(USAGE_STREAM)
            .query(&mut conn)
            .expect("xlen");
        if len == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(len, 1);
    let usage = ok(&call_tool_as(&app, &pro, "get_usage", json!({})).await);
    assert_eq!(usage["used"], 1, "{usage}");
    task.shutdown(Duration::from_secs(5)).await;
    assert_eq!(
        std::fs::read_to_string(spool_dir.join(SPOOL_FILE)).expect("spool"),
        ""
    );
    let _ = std::fs::remove_dir_all(&spool_dir);
}
