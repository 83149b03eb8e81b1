//! JSON-RPC batches (MCP 2025-03-26) through the real router: each element answered by id,
//! notifications and responses unanswered, one failing element leaving the others alone, batches
//! refused whole when malformed or under a later protocol version, and each billable element
//! metered exactly once and counted against the daily quota.

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use common::*;
use mcp_edge_backend::batch::{DEFAULT_MAX_BATCH_ANSWER_BYTES, MAX_BATCH_ELEMENTS};
use mcp_edge_backend::metering::{
    DailyQuota, DeliveryTask, MemoryMeter, Metering, MeteringConfig, Outbox, QuotaLimits, call_key,
};
use mcp_edge_contract::codes::BATCH_ANSWER_FULL;
use mcp_edge_contract::limits::MAX_JSONRPC_ID_BYTES;
use serde_json::{Value, json};

fn call(id: Value, tool: &str, arguments: Value) -> Value {
    json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":tool,"arguments":arguments}})
}

fn notification(method: &str) -> Value {
    json!({"jsonrpc":"2.0","method":method})
}

/// Sends `body` as the default caller under `version` ("" = no header).
async fn post(app: &Router, version: &str, body: &Value) -> (StatusCode, String, Option<String>) {
    send(app, signed_post_at(&Caller::default(), version, body)).await
}

/// The answers of a served batch, by id; checks 200, JSON, one answer per id.
async fn answers(app: &Router, version: &str, body: &Value) -> Vec<(Value, Value)> {
    let (status, text, content_type) = post(app, version, body).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(content_type.as_deref(), Some("application/json"), "{text}");
    let array: Vec<Value> = serde_json::from_str(&text).expect("a JSON array");
    let by_id: Vec<(Value, Value)> = array.into_iter().map(|a| (a["id"].clone(), a)).collect();
    let mut ids: Vec<String> = by_id.iter().map(|(id, _)| id.to_string()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), by_id.len(), "one answer per id: {text}");
    by_id
}

fn answer_to(answers: &[(Value, Value)], id: Value) -> Value {
    answers
        .iter()
        .find(|(got, _)| *got == id)
        .map(|(_, a)| a.clone())
        .unwrap_or_else(|| panic!("no answer to {id}: {answers:?}"))
}

async fn project_names(app: &Router) -> Vec<String> {
    let listed = ok(&call_tool(app, "acme", "list_projects", json!({"limit": 100})).await);
    let mut names: Vec<String> = listed["projects"]
        .as_array()
        .expect("projects")
        .iter()
        .filter_map(|p| p["name"].as_str().map(str::to_owned))
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn two_tool_calls_are_answered_by_id() {
    for version in ["", "2025-03-26"] {
        let app = app();
        let batch = json!([
            call(json!("make"), "create_project", json!({"name": "Batch A"})),
            call(json!(2), "get_usage", json!({}))
        ]);
        let got = answers(&app, version, &batch).await;
        assert_eq!(got.len(), 2, "{version:?}: {got:?}");
        let made = ok(&answer_to(&got, json!("make")));
        assert_eq!(made["project"]["name"], "Batch A", "{made}");
        let usage = ok(&answer_to(&got, json!(2)));
        assert_eq!(usage["tier"], "pro", "{usage}");
        assert_eq!(project_names(&app).await, ["Batch A"], "{version:?}");
    }
}

#[tokio::test]
async fn notifications_are_run_but_not_answered() {
    let app = app();
    let batch = json!([
        notification("notifications/initialized"),
        call(json!(1), "list_projects", json!({})),
        notification("notifications/cancelled"),
    ]);
    let got = answers(&app, "", &batch).await;
    assert_eq!(got.len(), 1, "{got:?}");
    ok(&answer_to(&got, json!(1)));
}

#[tokio::test]
async fn only_notifications_and_responses_get_202_without_a_body() {
    let app = app();
    let batch = json!([
        notification("notifications/initialized"),
        {"jsonrpc":"2.0","id":"server-1","result":{}},
        {"jsonrpc":"2.0","id":"server-2","error":{"code":-1,"message":"no"}},
    ]);
    let (status, text, _) = post(&app, "2025-03-26", &batch).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{text}");
    assert_eq!(text, "");
}

#[tokio::test]
async fn later_versions_refuse_batches_as_before() {
    let app = app();
    let batch = json!([call(json!(1), "create_project", json!({"name": "Never"}))]);
    for version in ["2025-06-18", "2025-11-25"] {
        let (status, text, _) = post(&app, version, &batch).await;
        // rmcp's own refusal of a body that is not one message, unchanged.
        assert_eq!(
            status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{version}: {text}"
        );
        assert!(text.contains("deserialize"), "{version}: {text}");
    }
    assert!(project_names(&app).await.is_empty(), "nothing ran");
}

#[tokio::test]
async fn a_failing_element_does_not_stop_the_others() {
    let app = app();
    let batch = json!([
        call(json!(1), "drop_all_tables", json!({})),
        call(json!(2), "list_projects", json!({"limit": 0})),
        call(json!(3), "get_project", json!({"project_id": "prj_nope"})),
        {"jsonrpc":"2.0","id":4,"method":"tools/call","params":"not an object"},
        42,
        call(json!(5), "create_project", json!({"name": "Survivor"})),
    ]);
    let got = answers(&app, "", &batch).await;
    assert_eq!(got.len(), 6, "{got:?}");
    let unknown = answer_to(&got, json!(1));
    assert_eq!(rpc_error_code(&unknown), -32602, "{unknown}");
    assert!(
        unknown["error"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("tool not found")),
        "{unknown}"
    );
    assert_eq!(rpc_error_code(&answer_to(&got, json!(2))), -32602);
    tool_error(&answer_to(&got, json!(3)));
    // rmcp cannot read this element alone (it answers 415 in plain text): an error with its id.
    let unreadable = answer_to(&got, json!(4));
    assert_eq!(rpc_error_code(&unreadable), -32600, "{unreadable}");
    assert!(
        unreadable["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("HTTP 415")),
        "{unreadable}"
    );
    assert_eq!(rpc_error_code(&answer_to(&got, Value::Null)), -32600);
    ok(&answer_to(&got, json!(5)));
    assert_eq!(project_names(&app).await, ["Survivor"]);
}

#[tokio::test]
async fn malformed_batches_are_refused_whole() {
    let app = app();
    let ping = |id: Value| json!({"jsonrpc":"2.0","id":id,"method":"ping"});
    let make = call(json!(9), "create_project", json!({"name": "Never"}));
    let too_many: Vec<Value> = (0..=MAX_BATCH_ELEMENTS).map(|i| ping(json!(i))).collect();
    let cases = [
        (json!([]), "empty"),
        (json!([make.clone(), ping(json!("9"))]), "more than once"),
        (
            json!([make.clone(), {"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}]),
            "initialize",
        ),
        (json!(too_many), "at most 100"),
    ];
    for (batch, needle) in cases {
        let (status, text, _) = post(&app, "", &batch).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{needle}: {text}");
        let error: Value = serde_json::from_str(&text).expect("a JSON-RPC error");
        assert!(error["id"].is_null(), "{text}");
        assert_eq!(rpc_error_code(&error), -32600, "{text}");
        let message = error["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(needle), "{message}");
    }
    // Elements that are not objects are each answered with an invalid-request error.
    let got: Vec<Value> = {
        let (status, text, _) = post(&app, "", &json!([1, "x"])).await;
        assert_eq!(status, StatusCode::OK, "{text}");
        serde_json::from_str(&text).expect("array")
    };
    assert_eq!(got.len(), 2);
    for error in got {
        assert!(error["id"].is_null(), "{error}");
        assert_eq!(rpc_error_code(&error), -32600);
    }
    assert!(project_names(&app).await.is_empty(), "nothing ran");
}

#[tokio::test]
async fn the_signature_covers_the_whole_batch() {
    let app = app();
    let signed = json!([call(json!(1), "list_projects", json!({}))]);
    let smuggled = json!([
        call(json!(1), "list_projects", json!({})),
        call(json!(2), "create_project", json!({"name": "Smuggled"})),
    ]);
    let mut request = signed_post_at(&Caller::default(), "", &signed);
    *request.body_mut() = axum::body::Body::from(smuggled.to_string());
    let (status, text, _) = send(&app, request).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{text}");
    assert!(project_names(&app).await.is_empty());
}

/// The router over a memory meter with `config`; the meter holds the usage events.
fn metered_app(config: MeteringConfig) -> (Router, Arc<MemoryMeter>, DeliveryTask) {
    let meter = Arc::new(MemoryMeter::new());
    let (metering, task) = Metering::start(meter.clone(), config, Outbox::memory());
    (app_with_metering(metering), meter, task)
}

#[tokio::test]
async fn each_billable_element_is_metered_once() {
    let (app, meter, task) = metered_app(MeteringConfig::default());
    let batch = json!([
        call(json!(1), "create_project", json!({"name": "One"})),
        call(json!("two"), "create_project", json!({"name": "Two"})),
        call(json!(3), "list_projects", json!({})),
        call(json!(4), "create_project", json!({"nope": true})),
        notification("notifications/initialized"),
    ]);
    let got = answers(&app, "2025-03-26", &batch).await;
    assert_eq!(got.len(), 4, "{got:?}");
    tool_error(&answer_to(&got, json!(4)));
    let usage = ok(&call_tool(&app, "acme", "get_usage", json!({})).await);
    assert_eq!(usage["used"], 2, "two successful billable calls: {usage}");

    task.shutdown(Duration::from_secs(5)).await;
    let mut events: Vec<(String, String)> = meter
        .events()
        .iter()
        .map(|e| (e.event_id.clone(), e.tool.clone()))
        .collect();
    events.sort();
    // One request id (the batch's), one event per billable element, keyed by its JSON-RPC id.
    let request_ids: Vec<String> = meter
        .events()
        .iter()
        .map(|e| e.request_id.clone())
        .collect();
    assert_eq!(request_ids.len(), 2);
    assert_eq!(request_ids[0], request_ids[1], "{request_ids:?}");
    let mut expected = vec![
        (call_key(&request_ids[0], "1"), "create_project".to_owned()),
        (
            call_key(&request_ids[0], "two"),
            "create_project".to_owned(),
        ),
    ];
    expected.sort();
    assert_eq!(events, expected);
}

/// A JSON-RPC id is echoed, keys the exactly-once marker and the reservation, and names the usage
/// event, which Stripe takes as an `identifier` of at most 100 characters: a string id longer than
/// the contract's cap is refused, alone or in a batch, and the event id has one length.
#[tokio::test]
async fn long_ids_are_refused_and_event_ids_have_one_length() {
    let (app, meter, task) = metered_app(MeteringConfig::default());
    let make = |id: Value, name: &str| call(id, "create_project", json!({ "name": name }));
    let too_long = "i".repeat(300 * 1024);

    let refused = rpc(&app, "acme", make(json!(too_long), "Long")).await;
    assert_eq!(rpc_error_code(&refused), -32600, "a 300 KB id is refused");
    let (status, text, _) = post(
        &app,
        "",
        &json!([make(json!("x".repeat(MAX_JSONRPC_ID_BYTES + 1)), "Batch")]),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    let error: Value = serde_json::from_str(&text).expect("a JSON-RPC error");
    assert_eq!(rpc_error_code(&error), -32600, "{text}");
    assert!(error["id"].is_null(), "{text}");
    assert!(project_names(&app).await.is_empty(), "nothing ran");

    let longest = "l".repeat(MAX_JSONRPC_ID_BYTES);
    ok(&rpc(&app, "acme", make(json!(longest), "Longest")).await);
    ok(&rpc(&app, "acme", make(json!(1), "Short")).await);
    task.shutdown(Duration::from_secs(5)).await;
    let ids: Vec<usize> = meter.events().iter().map(|e| e.event_id.len()).collect();
    assert_eq!(ids, [43, 43], "one length whatever the JSON-RPC id's");
}

#[tokio::test]
async fn the_daily_quota_counts_every_element() {
    let config = MeteringConfig {
        limits: QuotaLimits {
            pro: DailyQuota(Some(2)),
            ..QuotaLimits::default()
        },
        ..MeteringConfig::default()
    };
    let (app, _meter, _task) = metered_app(config);
    let batch = json!([
        call(json!(1), "create_project", json!({"name": "One"})),
        call(json!(2), "create_project", json!({"name": "Two"})),
        call(json!(3), "create_project", json!({"name": "Three"})),
        call(json!(4), "list_projects", json!({})),
    ]);
    let got = answers(&app, "", &batch).await;
    ok(&answer_to(&got, json!(1)));
    ok(&answer_to(&got, json!(2)));
    assert_eq!(rpc_error_code(&answer_to(&got, json!(3))), -32050);
    ok(&answer_to(&got, json!(4)));
    assert_eq!(project_names(&app).await, ["One", "Two"]);
}

/// 20 full pages of large tasks ask for ~21 MB from a ~2 KB batch. The answer stays within the
/// 16 MiB default: the element that does not fit is answered -32058 (it ran), the calls after it
/// do not run; the array is streamed, one piece per answer.
#[tokio::test]
async fn a_batch_answer_is_capped_and_streamed() {
    use http_body_util::BodyExt as _;
    use tower::ServiceExt as _;

    let app = app();
    let made = ok(&call_tool(&app, "acme", "create_project", json!({"name": "Big"})).await);
    let project = made["project"]["id"].as_str().expect("id").to_owned();
    let description = "d".repeat(5000);
    for i in 0..100 {
        let task = json!({"project_id": project, "title": format!("Task {i}"), "description": description});
        ok(&call_tool(&app, "acme", "create_task", task).await);
    }
    let mut batch: Vec<Value> = (0..20)
        .map(|i| {
            call(
                json!(i),
                "list_tasks",
                json!({"project_id": project, "limit": 100}),
            )
        })
        .collect();
    batch.push(call(
        json!("late"),
        "create_project",
        json!({"name": "Late"}),
    ));
    let request = signed_post_at(&Caller::default(), "", &Value::Array(batch.clone()));
    let response = app.clone().oneshot(request).await.expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    let (mut text, mut pieces) = (Vec::new(), 0);
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.expect("frame").into_data() {
            pieces += 1;
            text.extend_from_slice(&data);
        }
    }
    let request_bytes = Value::Array(batch).to_string().len();
    println!(
        "request {request_bytes} bytes, answer {} bytes in {pieces} pieces",
        text.len()
    );
    // Results within the cap, plus a short error for each element that got none.
    assert!(
        text.len() <= DEFAULT_MAX_BATCH_ANSWER_BYTES + 21 * 512,
        "answer of {} bytes to a request of {request_bytes}",
        text.len()
    );
    assert!(pieces > 1, "the array is streamed, not sent in one piece");
    let answers: Vec<Value> = serde_json::from_slice(&text).expect("a JSON array");
    let ids: Vec<Value> = answers.iter().map(|a| a["id"].clone()).collect();
    let expected: Vec<Value> = (0..20).map(|i| json!(i)).chain([json!("late")]).collect();
    assert_eq!(ids, expected, "one answer per element, in order");
    let first_refused = answers
        .iter()
        .position(|a| a.get("error").is_some())
        .expect("an element over the cap");
    assert!(
        first_refused >= 10,
        "at least 10 full pages fit: {first_refused}"
    );
    for served in &answers[..first_refused] {
        assert_eq!(ok(served)["tasks"].as_array().map(Vec::len), Some(100));
    }
    let over = &answers[first_refused];
    assert_eq!(rpc_error_code(over), i64::from(BATCH_ANSWER_FULL), "{over}");
    assert_eq!(over["error"]["data"]["ran"], true, "{over}");
    for later in &answers[first_refused + 1..] {
        assert_eq!(
            rpc_error_code(later),
            i64::from(BATCH_ANSWER_FULL),
            "{later}"
        );
        assert_eq!(later["error"]["data"]["ran"], false, "{later}");
    }
    assert_eq!(
        project_names(&app).await,
        ["Big"],
        "the late call did not run"
    );
}
