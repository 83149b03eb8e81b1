//! The backend checks each tool's catalogue scope itself (defence in depth): a call the edge let
//! through with the wrong scopes — as a wrong `tool_scopes` in envoy.yaml would — is refused with
//! -32042 before it runs, and it is neither executed nor counted against the quota.

mod common;

use common::*;
use mcp_edge_contract::codes::INSUFFICIENT_SCOPE;
use serde_json::json;

#[tokio::test]
async fn a_tool_runs_only_with_its_catalogue_scope() {
    let app = app();
    let admin = Caller::default();
    let made = ok(&call_tool_as(&app, &admin, "create_project", json!({"name": "Keep"})).await);
    let id = made["project"]["id"].as_str().expect("id").to_owned();
    let used = ok(&call_tool_as(&app, &admin, "get_usage", json!({})).await)["used"].clone();

    // As if the edge's tool_scopes said delete_project needs mcp:write.
    let writer = Caller {
        scopes: "mcp:read mcp:write",
        ..Caller::default()
    };
    let refused = call_tool_as(
        &app,
        &writer,
        "delete_project",
        json!({"project_id": id, "confirm_name": "Keep"}),
    )
    .await;
    assert_eq!(
        rpc_error_code(&refused),
        i64::from(INSUFFICIENT_SCOPE),
        "{refused}"
    );
    let message = refused["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("mcp:admin"), "{message}");
    assert_eq!(refused["error"]["data"]["requiredScope"], "mcp:admin");

    // A read-only token cannot write, whatever the edge let through.
    let reader = Caller {
        scopes: "mcp:read",
        ..Caller::default()
    };
    let refused = call_tool_as(&app, &reader, "create_project", json!({"name": "Not"})).await;
    assert_eq!(
        rpc_error_code(&refused),
        i64::from(INSUFFICIENT_SCOPE),
        "{refused}"
    );
    let refused = call_tool_as(&app, &reader, "archive_project", json!({"project_id": id})).await;
    assert_eq!(
        rpc_error_code(&refused),
        i64::from(INSUFFICIENT_SCOPE),
        "{refused}"
    );

    // Nothing ran and nothing was counted; the reader still reads.
    let listed = ok(&call_tool_as(&app, &reader, "list_projects", json!({})).await);
    let names: Vec<&str> = listed["projects"]
        .as_array()
        .expect("projects")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(names, ["Keep"], "{listed}");
    let usage = ok(&call_tool_as(&app, &admin, "get_usage", json!({})).await);
    assert_eq!(usage["used"], used, "refused calls are not billed: {usage}");

    // The holder of the scope still can.
    let deleted = call_tool_as(
        &app,
        &admin,
        "delete_project",
        json!({"project_id": id, "confirm_name": "Keep"}),
    )
    .await;
    assert_eq!(ok(&deleted)["project"]["id"], id.as_str());
}
