//! The project tracker's business flows through the real router: projects (archive, delete),
//! tasks (create, list with filters and pages, update, assign), analytics, and data-scope
//! narrowing inside one tenant. Every success is checked to carry the same JSON as
//! `structuredContent` and as a text block.

mod common;

use std::sync::Arc;

use common::*;
use mcp_edge_backend::metering::Metering;
use mcp_edge_backend::store::{MemoryStore, StoreLimits};
use mcp_edge_contract::codes::LIMIT_REACHED;
use serde_json::{Value, json};

async fn create_project(app: &axum::Router, tenant: &str, scope: &str, name: &str) -> String {
    let r = call_tool_scoped(
        app,
        tenant,
        scope,
        "create_project",
        json!({ "name": name }),
    )
    .await;
    ok(&r)["project"]["id"].as_str().expect("id").to_owned()
}

async fn create_task(app: &axum::Router, args: Value) -> Value {
    ok(&call_tool(app, "acme", "create_task", args).await)["task"].clone()
}

#[tokio::test]
async fn caps_are_json_rpc_errors_and_not_billed() {
    let limits = StoreLimits {
        projects_per_tenant: 2,
        tasks_per_project: 1,
    };
    let app = app_with_store(
        Arc::new(MemoryStore::with_limits(limits)),
        Metering::in_memory(),
    );
    let first = create_project(&app, "acme", "team:engineering", "One").await;
    create_project(&app, "acme", "team:engineering", "Two").await;
    let request = tool_call("create_project", json!({"name": "Three"}));
    let refused = rpc(&app, "acme", request.clone()).await;
    assert_eq!(refused["id"], request["id"], "{refused}");
    assert_eq!(
        rpc_error_code(&refused),
        i64::from(LIMIT_REACHED),
        "{refused}"
    );
    let message = refused["error"]["message"].as_str().expect("message");
    assert!(
        message.starts_with("Nothing was created")
            && message.contains("limit of 2 projects per organisation")
            && message.contains("delete_project"),
        "{message}"
    );
    assert_eq!(
        refused["error"]["data"],
        json!({"limit": 2, "what": "projects per organisation"})
    );

    create_task(&app, json!({"project_id": first, "title": "only"})).await;
    let refused = call_tool(
        &app,
        "acme",
        "create_task",
        json!({"project_id": first, "title": "second"}),
    )
    .await;
    assert_eq!(
        rpc_error_code(&refused),
        i64::from(LIMIT_REACHED),
        "{refused}"
    );
    assert_eq!(refused["error"]["data"]["what"], "tasks per project");

    // Two projects and one task were billed; the refused calls were not.
    let usage = ok(&call_tool(&app, "acme", "get_usage", json!({})).await);
    assert_eq!(usage["used"], 3, "{usage}");
    // Another tenant has its own places.
    create_project(&app, "globex", "team:engineering", "Mine").await;
}

#[tokio::test]
async fn archive_and_delete_projects() {
    let app = app();
    let keep = create_project(&app, "acme", "team:engineering", "Keep").await;
    let old = create_project(&app, "acme", "team:engineering", "Old").await;
    create_task(&app, json!({"project_id": old, "title": "leftover"})).await;

    let archived =
        ok(&call_tool(&app, "acme", "archive_project", json!({"project_id": old})).await);
    assert_eq!(archived["project"]["archived"], true, "{archived}");
    let again = ok(&call_tool(&app, "acme", "archive_project", json!({"project_id": old})).await);
    assert_eq!(again, archived, "archiving twice changes nothing");

    let listed = ok(&call_tool(&app, "acme", "list_projects", json!({})).await);
    let ids: Vec<&str> = listed["projects"]
        .as_array()
        .expect("projects")
        .iter()
        .filter_map(|p| p["id"].as_str())
        .collect();
    assert_eq!(ids, [keep.as_str()]);
    let all = ok(&call_tool(
        &app,
        "acme",
        "list_projects",
        json!({"include_archived": true}),
    )
    .await);
    assert_eq!(all["projects"].as_array().map(Vec::len), Some(2), "{all}");

    let refused = call_tool(
        &app,
        "acme",
        "create_task",
        json!({"project_id": old, "title": "more"}),
    )
    .await;
    let message = tool_error(&refused);
    assert!(
        message.contains("archived") && message.contains("create_project"),
        "{message}"
    );

    let mismatch = call_tool(
        &app,
        "acme",
        "delete_project",
        json!({"project_id": old, "confirm_name": "old"}),
    )
    .await;
    let message = tool_error(&mismatch);
    assert!(
        message.contains("get_project") && message.contains("confirm_name"),
        "{message}"
    );
    assert!(
        !message.contains("\"Old\""),
        "the name is not handed out: {message}"
    );

    let deleted = ok(&call_tool(
        &app,
        "acme",
        "delete_project",
        json!({"project_id": old, "confirm_name": "Old"}),
    )
    .await);
    assert_eq!(deleted["project"]["id"], old.as_str(), "{deleted}");
    assert_eq!(deleted["tasksDeleted"], 1);
    let gone = call_tool(&app, "acme", "get_project", json!({"project_id": old})).await;
    assert!(tool_error(&gone).contains("list_projects"));
    let gone = call_tool(&app, "acme", "list_tasks", json!({"project_id": old})).await;
    assert!(tool_error(&gone).contains("list_projects"));
    let gone = call_tool(
        &app,
        "acme",
        "delete_project",
        json!({"project_id": old, "confirm_name": "Old"}),
    )
    .await;
    tool_error(&gone);
    let gone = call_tool(
        &app,
        "acme",
        "archive_project",
        json!({"project_id": "prj_nope"}),
    )
    .await;
    tool_error(&gone);
}

#[tokio::test]
async fn tasks_from_creation_to_done() {
    let app = app();
    let project = create_project(&app, "acme", "team:engineering", "Apollo").await;

    let task = create_task(
        &app,
        json!({
            "project_id": project, "title": "Write launch plan", "description": "# Plan\n- a",
            "assignee_email": "Bob@Example.com", "priority": "high", "due_date": "2031-05-01"
        }),
    )
    .await;
    let id = task["id"].as_str().expect("id").to_owned();
    assert!(id.starts_with("tsk_"));
    assert_eq!(task["projectId"], project.as_str());
    assert_eq!(task["title"], "Write launch plan");
    assert_eq!(task["description"], "# Plan\n- a");
    assert_eq!(task["status"], "todo");
    assert_eq!(task["priority"], "high");
    assert_eq!(task["assigneeEmail"], "bob@example.com");
    assert_eq!(task["dueDate"], "2031-05-01");
    assert_eq!(task["createdBy"], "alice");
    assert_eq!(task["createdAt"], task["updatedAt"]);

    let minimal = create_task(&app, json!({"project_id": project, "title": "Small"})).await;
    assert_eq!(minimal["priority"], "medium", "{minimal}");
    assert!(minimal.get("assigneeEmail").is_none() && minimal.get("dueDate").is_none());

    // Bad input → isError results that say what is expected.
    let cases = [
        (
            json!({"project_id": project, "title": "x", "due_date": "01/05/2031"}),
            "YYYY-MM-DD",
        ),
        (
            json!({"project_id": project, "title": "x", "due_date": "2031-02-30"}),
            "YYYY-MM-DD",
        ),
        (
            json!({"project_id": project, "title": "x", "assignee_email": "bob"}),
            "email",
        ),
        (
            json!({"project_id": project, "title": "t".repeat(201)}),
            "200",
        ),
        (
            json!({"project_id": project, "title": "x", "priority": "critical"}),
            "`urgent`",
        ),
        (
            json!({"project_id": "prj_nope", "title": "x"}),
            "list_projects",
        ),
    ];
    for (args, hint) in cases {
        let r = call_tool(&app, "acme", "create_task", args.clone()).await;
        let message = tool_error(&r);
        assert!(message.contains(hint), "{args}: {message}");
    }

    let updated = ok(&call_tool(
        &app,
        "acme",
        "update_task",
        json!({"task_id": id, "status": "in_progress", "title": "Write the launch plan"}),
    )
    .await)["task"]
        .clone();
    assert_eq!(updated["status"], "in_progress", "{updated}");
    assert_eq!(updated["title"], "Write the launch plan");
    assert_eq!(updated["priority"], "high", "untouched fields stay");
    let repeated = ok(&call_tool(
        &app,
        "acme",
        "update_task",
        json!({"task_id": id, "status": "in_progress", "title": "Write the launch plan"}),
    )
    .await)["task"]
        .clone();
    assert_eq!(repeated, updated, "update_task is idempotent");

    let assigned = ok(&call_tool(
        &app,
        "acme",
        "assign_task",
        json!({"task_id": id, "assignee_email": "carol@example.com"}),
    )
    .await)["task"]
        .clone();
    assert_eq!(assigned["assigneeEmail"], "carol@example.com");
    let again = ok(&call_tool(
        &app,
        "acme",
        "assign_task",
        json!({"task_id": id, "assignee_email": "Carol@Example.com"}),
    )
    .await)["task"]
        .clone();
    assert_eq!(again, assigned, "assign_task is idempotent");

    let cases = [
        ("update_task", json!({"task_id": id}), "nothing to change"),
        (
            "update_task",
            json!({"task_id": id, "due_date": "next week"}),
            "YYYY-MM-DD",
        ),
        (
            "update_task",
            json!({"task_id": id, "status": "blocked"}),
            "`in_progress`",
        ),
        (
            "update_task",
            json!({"task_id": "tsk_nope", "title": "x"}),
            "list_tasks",
        ),
        (
            "assign_task",
            json!({"task_id": "tsk_0123456789abcdef0123456789abcdef", "assignee_email": "a@b.co"}),
            "list_tasks",
        ),
        (
            "assign_task",
            json!({"task_id": id, "assignee_email": "not an email"}),
            "email",
        ),
    ];
    for (tool, args, hint) in cases {
        let message = tool_error(&call_tool(&app, "acme", tool, args.clone()).await);
        assert!(message.contains(hint), "{tool} {args}: {message}");
    }

    let done = ok(&call_tool(
        &app,
        "acme",
        "update_task",
        json!({"task_id": id, "status": "done"}),
    )
    .await);
    assert_eq!(done["task"]["status"], "done");
    let listed = ok(&call_tool(
        &app,
        "acme",
        "list_tasks",
        json!({"project_id": project, "status": "done"}),
    )
    .await);
    assert_eq!(
        listed["tasks"].as_array().map(Vec::len),
        Some(1),
        "{listed}"
    );
    assert_eq!(listed["tasks"][0]["id"], id.as_str());
    assert!(listed.get("nextCursor").is_none());

    // Another tenant cannot reach the task.
    let foreign = call_tool(
        &app,
        "globex",
        "update_task",
        json!({"task_id": id, "title": "x"}),
    )
    .await;
    assert!(tool_error(&foreign).contains("list_tasks"));
}

#[tokio::test]
async fn list_tasks_pages_and_filters() {
    let app = app();
    let project = create_project(&app, "acme", "team:engineering", "Apollo").await;
    for i in 0..7 {
        let mut args = json!({"project_id": project, "title": format!("t{i}")});
        if i % 2 == 1 {
            args["assignee_email"] = json!("dave@example.com");
        }
        create_task(&app, args).await;
    }
    let mut titles = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut args = json!({"project_id": project, "limit": 2});
        if let Some(c) = &cursor {
            args["cursor"] = json!(c);
        }
        let page = ok(&call_tool(&app, "acme", "list_tasks", args).await);
        pages += 1;
        for t in page["tasks"].as_array().expect("tasks") {
            titles.push(t["title"].as_str().expect("title").to_owned());
        }
        match page["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, 4);
    assert_eq!(titles, ["t0", "t1", "t2", "t3", "t4", "t5", "t6"]);

    let daves = ok(&call_tool(
        &app,
        "acme",
        "list_tasks",
        json!({"project_id": project, "assignee_email": "DAVE@example.com", "limit": 3}),
    )
    .await);
    let titles: Vec<&str> = daves["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .filter_map(|t| t["title"].as_str())
        .collect();
    assert_eq!(titles, ["t1", "t3", "t5"]);
    assert!(
        daves.get("nextCursor").is_none(),
        "no more of Dave's tasks: {daves}"
    );

    for args in [
        json!({"project_id": project, "cursor": "garbage"}),
        json!({"project_id": project, "limit": 0}),
        json!({"project_id": project, "limit": 101}),
    ] {
        let r = call_tool(&app, "acme", "list_tasks", args.clone()).await;
        assert_eq!(rpc_error_code(&r), -32602, "{args}: {r}");
    }
}

#[tokio::test]
async fn analytics_count_what_the_caller_sees() {
    let app = app();
    let a = create_project(&app, "acme", "team:engineering", "A").await;
    let b = create_project(&app, "acme", "team:engineering", "B").await;
    create_task(
        &app,
        json!({"project_id": a, "title": "late", "priority": "urgent",
        "assignee_email": "bob@example.com", "due_date": "2000-01-01"}),
    )
    .await;
    let done = create_task(
        &app,
        json!({"project_id": a, "title": "done late",
        "assignee_email": "bob@example.com", "due_date": "2000-01-01"}),
    )
    .await;
    ok(&call_tool(
        &app,
        "acme",
        "update_task",
        json!({"task_id": done["id"], "status": "done"}),
    )
    .await);
    create_task(
        &app,
        json!({"project_id": b, "title": "later", "priority": "low",
        "due_date": "2999-01-01"}),
    )
    .await;

    let all = ok(&call_tool(&app, "acme", "get_analytics", json!({})).await);
    assert_eq!(all["projectCount"], 2, "{all}");
    assert_eq!(all["taskCount"], 3);
    assert_eq!(
        all["byStatus"],
        json!({"todo": 2, "in_progress": 0, "done": 1})
    );
    assert_eq!(
        all["byPriority"],
        json!({"low": 1, "medium": 1, "high": 0, "urgent": 1})
    );
    assert_eq!(all["overdue"], 1);
    assert_eq!(
        all["byAssignee"],
        json!({"bob@example.com": {"total": 2, "open": 1, "overdue": 1}})
    );
    assert_eq!(all["unassigned"], 1);
    assert!(all.get("projectId").is_none());
    assert_eq!(all["asOf"].as_str().map(str::len), Some(10));

    let one = ok(&call_tool(&app, "acme", "get_analytics", json!({"project_id": b})).await);
    assert_eq!(one["projectId"], b.as_str(), "{one}");
    assert_eq!(
        (one["projectCount"].clone(), one["taskCount"].clone()),
        (json!(1), json!(1))
    );
    assert_eq!(one["overdue"], 0);

    // Archived projects drop out of the whole-scope figures.
    ok(&call_tool(&app, "acme", "archive_project", json!({"project_id": a})).await);
    let after = ok(&call_tool(&app, "acme", "get_analytics", json!({})).await);
    assert_eq!(
        (after["projectCount"].clone(), after["taskCount"].clone()),
        (json!(1), json!(1))
    );

    let unknown = call_tool(
        &app,
        "acme",
        "get_analytics",
        json!({"project_id": "prj_nope"}),
    )
    .await;
    assert!(tool_error(&unknown).contains("list_projects"));
    let empty = ok(&call_tool(&app, "globex", "get_analytics", json!({})).await);
    assert_eq!(
        (empty["projectCount"].clone(), empty["taskCount"].clone()),
        (json!(0), json!(0))
    );
}

#[tokio::test]
async fn data_scope_narrows_inside_a_tenant() {
    let app = app();
    let eng = "team:eng";
    let sales = "team:sales";
    let e = create_project(&app, "acme", eng, "Engine").await;
    let s = create_project(&app, "acme", sales, "Deals").await;
    let sales_task = ok(&call_tool_scoped(
        &app,
        "acme",
        sales,
        "create_task",
        json!({"project_id": s, "title": "Call customer"}),
    )
    .await)["task"]["id"]
        .as_str()
        .expect("id")
        .to_owned();

    let project_names = |page: &Value| -> Vec<String> {
        page["projects"]
            .as_array()
            .expect("projects")
            .iter()
            .filter_map(|p| p["name"].as_str().map(str::to_owned))
            .collect()
    };
    let eng_list = ok(&call_tool_scoped(&app, "acme", eng, "list_projects", json!({})).await);
    assert_eq!(project_names(&eng_list), ["Engine"]);
    assert_eq!(eng_list["projects"][0]["team"], "eng");
    let all = ok(&call_tool_scoped(&app, "acme", "", "list_projects", json!({})).await);
    assert_eq!(project_names(&all), ["Engine", "Deals"]);

    // Everything team:eng tries on the sales project looks exactly like an unknown id.
    let unknown_project = tool_error(
        &call_tool_scoped(
            &app,
            "acme",
            eng,
            "get_project",
            json!({"project_id": "prj_0123456789abcdef0123456789abcdef"}),
        )
        .await,
    );
    let attempts = [
        ("get_project", json!({"project_id": s})),
        ("archive_project", json!({"project_id": s})),
        (
            "delete_project",
            json!({"project_id": s, "confirm_name": "Deals"}),
        ),
        ("list_tasks", json!({"project_id": s})),
        ("create_task", json!({"project_id": s, "title": "x"})),
        ("get_analytics", json!({"project_id": s})),
    ];
    for (tool, args) in attempts {
        let message = tool_error(&call_tool_scoped(&app, "acme", eng, tool, args.clone()).await);
        assert_eq!(
            message,
            unknown_project.replace("prj_0123456789abcdef0123456789abcdef", s.as_str()),
            "{tool}"
        );
    }
    for (tool, args) in [
        (
            "update_task",
            json!({"task_id": sales_task, "status": "done"}),
        ),
        (
            "assign_task",
            json!({"task_id": sales_task, "assignee_email": "x@y.io"}),
        ),
    ] {
        let message = tool_error(&call_tool_scoped(&app, "acme", eng, tool, args).await);
        assert!(message.contains("No task with id"), "{tool}: {message}");
    }
    let eng_stats = ok(&call_tool_scoped(&app, "acme", eng, "get_analytics", json!({})).await);
    assert_eq!(
        (
            eng_stats["projectCount"].clone(),
            eng_stats["taskCount"].clone()
        ),
        (json!(1), json!(0))
    );

    // The unscoped token reaches both teams' projects.
    let both = ok(&call_tool_scoped(&app, "acme", "", "get_analytics", json!({})).await);
    assert_eq!(
        (both["projectCount"].clone(), both["taskCount"].clone()),
        (json!(2), json!(1))
    );
    let done = ok(&call_tool_scoped(
        &app,
        "acme",
        "",
        "update_task",
        json!({"task_id": sales_task, "status": "done"}),
    )
    .await);
    assert_eq!(done["task"]["status"], "done");
    ok(&call_tool_scoped(&app, "acme", "", "get_project", json!({"project_id": e})).await);
    // The sales project is still there for sales.
    ok(&call_tool_scoped(&app, "acme", sales, "get_project", json!({"project_id": s})).await);

    // A data scope the server does not understand sees nothing and creates nothing.
    let odd = ok(&call_tool_scoped(&app, "acme", "org:acme", "list_projects", json!({})).await);
    assert_eq!(odd["projects"], json!([]));
    let refused = call_tool_scoped(
        &app,
        "acme",
        "org:acme",
        "create_project",
        json!({"name": "x"}),
    )
    .await;
    assert!(tool_error(&refused).contains("data scope"));
}
