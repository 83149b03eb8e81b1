//! End-to-end through the real router (gateway check + rmcp Streamable HTTP + tools + memory store),
//! driven with `tower::ServiceExt::oneshot` and requests signed as the filter signs them.

mod common;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use mcp_edge_backend::app::mcp_service;
use mcp_edge_backend::metering::Metering;
use mcp_edge_backend::sources::ToolRegistry;
use mcp_edge_backend::store::MemoryStore;
use mcp_edge_contract::headers;
use serde_json::{Value, json};

#[tokio::test]
async fn initialize_list_and_call() {
    let app = app();

    let init = rpc(
        &app,
        "acme",
        json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
            "protocolVersion":"2025-06-18","capabilities":{},
            "clientInfo":{"name":"test","version":"1.0"}}}),
    )
    .await;
    assert_eq!(init["id"], 1);
    assert_eq!(
        init["result"]["serverInfo"]["name"], "mcp-edge-backend",
        "{init}"
    );
    assert!(
        init["result"]["capabilities"]["tools"].is_object(),
        "{init}"
    );

    let (status, text, _) = send(
        &app,
        signed_post(
            "acme",
            "127.0.0.1:10000",
            &json!({"jsonrpc":"2.0","method":"notifications/initialized"}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{text}");

    let list = rpc(
        &app,
        "acme",
        json!({"jsonrpc":"2.0","id":2,"method":"tools/list"}),
    )
    .await;
    let tools = list["result"]["tools"].as_array().expect("tools");
    let names: Vec<&str> = tools.iter().filter_map(|t| t["name"].as_str()).collect();
    assert_eq!(names.len(), 11, "{list}");
    for name in [
        "list_projects",
        "create_project",
        "get_project",
        "archive_project",
        "delete_project",
        "list_tasks",
        "create_task",
        "update_task",
        "assign_task",
        "get_analytics",
        "get_usage",
    ] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
    let list_tool = tools
        .iter()
        .find(|t| t["name"] == "list_projects")
        .expect("list_projects");
    assert_eq!(list_tool["annotations"]["readOnlyHint"], true);
    assert_eq!(list_tool["annotations"]["idempotentHint"], true);
    assert!(
        list_tool["inputSchema"]["properties"]["cursor"]["description"].is_string(),
        "{list_tool}"
    );
    let create_tool = tools
        .iter()
        .find(|t| t["name"] == "create_project")
        .expect("create_project");
    assert_eq!(create_tool["annotations"]["readOnlyHint"], false);
    assert_eq!(create_tool["annotations"]["destructiveHint"], false);

    // create → list → get
    let created = call_tool(
        &app,
        "acme",
        "create_project",
        json!({"name":"Apollo","description":"moon"}),
    )
    .await;
    let result = &created["result"];
    assert_eq!(result["isError"], false, "{created}");
    let project = &result["structuredContent"]["project"];
    let id = project["id"].as_str().expect("id").to_owned();
    assert!(id.starts_with("prj_"));
    assert_eq!(project["name"], "Apollo");
    assert_eq!(project["description"], "moon");
    assert_eq!(project["team"], "engineering");
    assert_eq!(project["createdBy"], "alice");
    let text: Value = serde_json::from_str(result["content"][0]["text"].as_str().expect("text"))
        .expect("json text");
    assert_eq!(text, result["structuredContent"]);

    let listed = call_tool(&app, "acme", "list_projects", json!({})).await;
    let page = &listed["result"]["structuredContent"];
    assert_eq!(
        page["projects"].as_array().map(Vec::len),
        Some(1),
        "{listed}"
    );
    assert!(page.get("nextCursor").is_none(), "{listed}");

    let got = call_tool(&app, "acme", "get_project", json!({"project_id": id})).await;
    assert_eq!(
        got["result"]["structuredContent"]["project"]["id"],
        id.as_str(),
        "{got}"
    );

    // another tenant sees none of it
    let other = call_tool(&app, "globex", "list_projects", json!({})).await;
    assert_eq!(
        other["result"]["structuredContent"]["projects"],
        json!([]),
        "{other}"
    );
    let other_get = call_tool(&app, "globex", "get_project", json!({"project_id": id})).await;
    assert_eq!(other_get["result"]["isError"], true, "{other_get}");
}

#[tokio::test]
async fn pagination_through_the_tool() {
    let app = app();
    for i in 0..5 {
        let r = call_tool(
            &app,
            "acme",
            "create_project",
            json!({"name": format!("p{i}")}),
        )
        .await;
        assert_eq!(r["result"]["isError"], false, "{r}");
    }
    let mut names = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut args = json!({"limit": 2});
        if let Some(c) = &cursor {
            args["cursor"] = json!(c);
        }
        let r = call_tool(&app, "acme", "list_projects", args).await;
        let page = &r["result"]["structuredContent"];
        for p in page["projects"].as_array().expect("projects") {
            names.push(p["name"].as_str().expect("name").to_owned());
        }
        match page["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(names, ["p0", "p1", "p2", "p3", "p4"]);
}

#[tokio::test]
async fn errors_an_agent_can_act_on() {
    let app = app();

    let unknown = call_tool(
        &app,
        "acme",
        "get_project",
        json!({"project_id": "prj_nope"}),
    )
    .await;
    assert_eq!(unknown["result"]["isError"], true, "{unknown}");
    let message = unknown["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default();
    assert!(message.contains("list_projects"), "{message}");

    let bad_cursor = call_tool(&app, "acme", "list_projects", json!({"cursor": "garbage"})).await;
    assert_eq!(bad_cursor["error"]["code"], -32602, "{bad_cursor}");

    let bad_limit = call_tool(&app, "acme", "list_projects", json!({"limit": 0})).await;
    assert_eq!(bad_limit["error"]["code"], -32602, "{bad_limit}");

    // Tool input never names a tenant: unknown fields are refused (rmcp reports argument
    // deserialisation failures as a tool error result).
    let smuggled = call_tool(
        &app,
        "acme",
        "list_projects",
        json!({"tenant_id": "globex"}),
    )
    .await;
    assert_eq!(smuggled["result"]["isError"], true, "{smuggled}");
    let message = smuggled["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default();
    assert!(message.contains("tenant_id"), "{message}");

    let long_name = call_tool(
        &app,
        "acme",
        "create_project",
        json!({"name": "x".repeat(201)}),
    )
    .await;
    assert_eq!(long_name["result"]["isError"], true, "{long_name}");
}

#[tokio::test]
async fn unsigned_requests_never_reach_rmcp() {
    let app = app();
    let mut request = signed_post(
        "acme",
        "127.0.0.1:10000",
        &json!({"jsonrpc":"2.0","id":2,"method":"tools/list"}),
    );
    request.headers_mut().remove(headers::IDENTITY);
    let (status, text, _) = send(&app, request).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{text}");
    let body: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(body["error"]["code"], -32040);
    assert!(body["id"].is_null());

    let (status, text, _) = send(
        &app,
        Request::get("/healthz").body(Body::empty()).expect("req"),
    )
    .await;
    assert_eq!((status, text.as_str()), (StatusCode::OK, "ok"));
}

#[tokio::test]
async fn hosts_outside_the_allowlist_are_refused() {
    let app = app();
    let body = json!({"jsonrpc":"2.0","id":2,"method":"tools/list"});
    for host in ["127.0.0.1:10000", "localhost:8081", "localhost"] {
        let (status, text, _) = send(&app, signed_post("acme", host, &body)).await;
        assert_eq!(status, StatusCode::OK, "{host}: {text}");
    }
    let (status, _, _) = send(&app, signed_post("acme", "evil.example:80", &body)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_tool_call_without_tenant_context_fails() {
    // The rmcp service alone, with no gateway layer in front: nothing puts a TenantContext in.
    let bare = Router::new().route_service(
        "/mcp",
        mcp_service(
            Arc::new(ToolRegistry::demo(
                Arc::new(MemoryStore::new()),
                Metering::in_memory(),
            )),
            Metering::in_memory(),
            vec!["127.0.0.1".into()],
        ),
    );
    let body = json!({"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"list_projects","arguments":{}}});
    let (status, text, _) = send(&bare, signed_post("acme", "127.0.0.1:10000", &body)).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let response: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(response["error"]["code"], -32603, "{response}");
}

/// What `tools/list` tells a client about each tool: annotations and the input schema limits.
#[tokio::test]
async fn tools_list_carries_annotations_and_limits() {
    let app = app();
    let list = rpc(
        &app,
        "acme",
        json!({"jsonrpc":"2.0","id":2,"method":"tools/list"}),
    )
    .await;
    let tools = list["result"]["tools"].as_array().expect("tools");
    let tool = |name: &str| -> Value {
        tools
            .iter()
            .find(|t| t["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} missing"))
    };
    // name, readOnly, destructive, idempotent
    let expected = [
        ("list_projects", true, false, true),
        ("get_project", true, false, true),
        ("create_project", false, false, false),
        ("archive_project", false, false, true),
        ("delete_project", false, true, false),
        ("list_tasks", true, false, true),
        ("create_task", false, false, false),
        ("update_task", false, false, true),
        ("assign_task", false, false, true),
        ("get_analytics", true, false, true),
    ];
    for (name, read_only, destructive, idempotent) in expected {
        let t = tool(name);
        let a = &t["annotations"];
        assert_eq!(a["readOnlyHint"], read_only, "{name}: {a}");
        assert_eq!(a["destructiveHint"], destructive, "{name}: {a}");
        assert_eq!(a["idempotentHint"], idempotent, "{name}: {a}");
        assert_eq!(a["openWorldHint"], false, "{name}: {a}");
        assert!(t["outputSchema"]["type"] == "object", "{name}: {t}");
        assert_eq!(t["inputSchema"]["additionalProperties"], false, "{name}");
        assert!(
            !t["inputSchema"].to_string().contains("\"default\":null"),
            "{name}: {t}"
        );
    }

    let create = tool("create_task");
    let p = &create["inputSchema"]["properties"];
    assert_eq!(p["title"]["maxLength"], 200, "{create}");
    assert_eq!(p["description"]["maxLength"], 5000);
    assert_eq!(
        p["priority"]["enum"],
        json!(["low", "medium", "high", "urgent"])
    );
    assert_eq!(p["priority"]["default"], "medium");
    assert_eq!(p["assignee_email"]["format"], "email");
    assert_eq!(p["due_date"]["format"], "date");
    assert!(p["due_date"]["pattern"].is_string());
    let update = tool("update_task");
    assert_eq!(
        update["inputSchema"]["properties"]["status"]["enum"],
        json!(["todo", "in_progress", "done"]),
        "{update}"
    );
    assert_eq!(
        update["inputSchema"]["properties"]["title"]["maxLength"],
        200
    );
    let list_tasks = tool("list_tasks");
    let p = &list_tasks["inputSchema"]["properties"];
    assert_eq!(p["limit"]["minimum"], 1, "{list_tasks}");
    assert_eq!(p["limit"]["maximum"], 100);
    assert_eq!(p["status"]["enum"], json!(["todo", "in_progress", "done"]));
    assert!(p["cursor"]["description"].is_string());
}

/// `tenant_id` (or anything else unknown) in the arguments is refused by every tool.
#[tokio::test]
async fn no_tool_takes_a_tenant_id() {
    let app = app();
    let calls = [
        ("list_projects", json!({})),
        ("get_project", json!({"project_id": "prj_x"})),
        ("create_project", json!({"name": "x"})),
        ("archive_project", json!({"project_id": "prj_x"})),
        (
            "delete_project",
            json!({"project_id": "prj_x", "confirm_name": "x"}),
        ),
        ("list_tasks", json!({"project_id": "prj_x"})),
        ("create_task", json!({"project_id": "prj_x", "title": "t"})),
        ("update_task", json!({"task_id": "tsk_x", "title": "t"})),
        (
            "assign_task",
            json!({"task_id": "tsk_x", "assignee_email": "a@b.co"}),
        ),
        ("get_analytics", json!({})),
    ];
    for (name, mut args) in calls {
        args["tenant_id"] = json!("globex");
        let r = call_tool(&app, "acme", name, args).await;
        let message = tool_error(&r);
        assert!(message.contains("tenant_id"), "{name}: {message}");
    }
    let projects = ok(&call_tool(&app, "acme", "list_projects", json!({})).await);
    assert_eq!(projects["projects"], json!([]), "nothing was created");
}
