//! Existing HTTP APIs behind MCP (issue 22): the backend started with a `--tool-sources` file
//! naming three OpenAPI documents of `tests/openapi/`, served by APIs no one here wrote —
//! `json-server` 0.17.4 from npm (persists, pages, filters), one process per API — and by the
//! tests' recording server (a stand-in, named as such) where what the backend sends must be read
//! back. Envoy's `tool_scopes` come from the backend's own `--print-tool-scopes` over that file.
//!
//! Tenants are kept apart by the APIs themselves: each tenant's notes are a json-server
//! collection of their own, reached through the source's `base_url` (`…/{tenant_id}`) or the
//! document's `tenant_id` path parameter, which the backend fills from the verified identity.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use jwt_simple::prelude::{HS256Key, MACLike as _, VerificationOptions};
use mcp_edge_tests::client::{http, post_mcp, sdk_client, structured, tool_names};
use mcp_edge_tests::procs::{Proc, cargo_bin, free_port, node_bin};
use mcp_edge_tests::recorder::{self, Recorder};
use mcp_edge_tests::rmcp_client::{self, call};
use mcp_edge_tests::runner::{self, Case};
use mcp_edge_tests::stack::{Stack, StackOptions};
use serde_json::{Value, json};

/// The json-server collections (one per tenant) every API starts with.
const COLLECTIONS: &str = r#"{"tenant-ts": [], "tenant-rmcp": [], "tenant-other": [],
  "tenant-fail": [{"id": 1, "title": "still here"}]}"#;

/// The servers this binary starts besides the stack.
struct Apis {
    dir: tempfile::TempDir,
    /// json-server of the notes source, by port.
    notes: u16,
    bookmarks: u16,
    /// json-server of the `flaky` source: the failure case stops it.
    flaky: Mutex<Option<Proc>>,
    others: Mutex<Vec<Proc>>,
    recorder: Recorder,
    _runtime: tokio::runtime::Runtime,
}

static APIS: OnceLock<Apis> = OnceLock::new();

fn apis() -> &'static Apis {
    APIS.get().expect("the APIs start before the cases")
}

fn openapi_dir() -> PathBuf {
    mcp_edge_tests::repo_root().join("tests/openapi")
}

/// json-server on a port of its own over a copy of [`COLLECTIONS`]; `delay_ms` holds each answer.
fn json_server(dir: &Path, name: &str, delay_ms: Option<u64>) -> Result<(Proc, u16)> {
    let db = dir.join(format!("{name}-db.json"));
    std::fs::write(&db, COLLECTIONS)?;
    let port = free_port()?;
    let mut cmd = Command::new(node_bin());
    cmd.arg(openapi_dir().join("node_modules/json-server/lib/cli/bin.js"))
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .arg(&db);
    if let Some(ms) = delay_ms {
        cmd.args(["--delay", &ms.to_string()]);
    }
    let mut server = Proc::spawn(name, cmd, dir)?;
    server.wait_for_port(([127, 0, 0, 1], port).into(), Duration::from_secs(60))?;
    Ok((server, port))
}

/// The sources file of this binary's backend.
fn sources_file(dir: &Path, notes: u16, bookmarks: u16, slow: u16, flaky: u16, rec: u16) -> String {
    let doc = |name: &str| openapi_dir().join(name).display().to_string();
    let (notes_doc, bookmarks_doc, probe_doc) = (
        doc("notes.openapi.yaml"),
        doc("bookmarks.openapi.yaml"),
        doc("probe.openapi.yaml"),
    );
    let _ = dir;
    format!(
        r#"demo: true
openapi:
  - name: notes
    document: {notes_doc}
    base_url: "http://127.0.0.1:{notes}/{{tenant_id}}"
    select: {{ tags: [notes] }}
    operations: {{ createNote: {{ billable: true }} }}
  - name: bookmarks
    document: {bookmarks_doc}
    base_url: "http://127.0.0.1:{bookmarks}"
    select: {{ operations: [listBookmarks, addBookmark] }}
  - name: probe
    document: {probe_doc}
    base_url: "http://127.0.0.1:{rec}/api"
    select: {{ operations: [probe] }}
    identity: {{ tenant_header: X-Tenant-Id, user_header: X-User-Id, bearer: assertion }}
  - name: slow
    document: {notes_doc}
    base_url: "http://127.0.0.1:{slow}/{{tenant_id}}"
    select: {{ operations: [listNotes] }}
    operations: {{ listNotes: {{ name: list_notes_slowly }} }}
    timeout_ms: 300
    retries: 1
  - name: flaky
    document: {notes_doc}
    base_url: "http://127.0.0.1:{flaky}/{{tenant_id}}"
    select: {{ operations: [getNote] }}
    operations: {{ getNote: {{ name: get_note_flaky }} }}
    retries: 0
"#
    )
}

/// What `mcp-edge-backend --print-tool-scopes` says the file's tools need.
fn printed_tool_scopes(sources: &Path) -> Result<Value> {
    let out = Command::new(cargo_bin("mcp-edge-backend")?)
        .arg("--print-tool-scopes")
        .arg("--tool-sources")
        .arg(sources)
        .output()?;
    ensure!(
        out.status.success(),
        "--print-tool-scopes: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(serde_json::from_slice(&out.stdout)?)
}

fn start_apis() -> Result<StackOptions> {
    let dir = tempfile::Builder::new()
        .prefix("mcp-edge-apis-")
        .tempdir()?;
    let (notes_proc, notes) = json_server(dir.path(), "notes-api", None)?;
    let (bookmarks_proc, bookmarks) = json_server(dir.path(), "bookmarks-api", None)?;
    let (slow_proc, slow) = json_server(dir.path(), "slow-api", Some(2_000))?;
    let (flaky_proc, flaky) = json_server(dir.path(), "flaky-api", None)?;
    let runtime = rmcp_client::runtime()?;
    let (recorder, rec_addr) = recorder::start(&runtime)?;
    let sources = dir.path().join("tool-sources.yaml");
    std::fs::write(
        &sources,
        sources_file(dir.path(), notes, bookmarks, slow, flaky, rec_addr.port()),
    )?;
    let tool_scopes = printed_tool_scopes(&sources)?;
    let options = StackOptions {
        backend_args: vec!["--tool-sources".into(), sources.display().to_string()],
        plugin_overrides: json!({ "tool_scopes": tool_scopes }),
        ..StackOptions::default()
    };
    let apis = Apis {
        dir,
        notes,
        bookmarks,
        flaky: Mutex::new(Some(flaky_proc)),
        others: Mutex::new(vec![notes_proc, bookmarks_proc, slow_proc]),
        recorder,
        _runtime: runtime,
    };
    if APIS.set(apis).is_err() {
        anyhow::bail!("the APIs were started twice");
    }
    Ok(options)
}

fn stop_apis() {
    if let Some(apis) = APIS.get() {
        if let Ok(mut flaky) = apis.flaky.lock() {
            flaky.take();
        }
        if let Ok(mut others) = apis.others.lock() {
            others.clear();
        }
    }
}

/// What a json-server holds for `tenant` (read directly, not through the edge).
fn stored(port: u16, tenant: &str) -> Result<Value> {
    let answer = http()
        .get(format!("http://127.0.0.1:{port}/{tenant}"))
        .send()?;
    ensure!(answer.status() == 200, "json-server: {}", answer.status());
    Ok(answer.json()?)
}

/// The text blocks of a tool result (as the TypeScript SDK prints it), joined.
fn text_of(result: &Value) -> String {
    result["content"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["text"].as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

const ALL_SCOPES: &str = "mcp:read mcp:write mcp:admin";

/// The edge lists every source's tools, and filters them by scope and `allowed_tools` as any tool.
fn every_sources_tools_are_listed_and_filtered_at_the_edge(s: &Stack) -> Result<()> {
    let every = s.token_with("tenant-ts", ALL_SCOPES, None)?;
    let listed = sdk_client(&s.mcp_url, &every, json!([]))?;
    let names = tool_names(&listed)?;
    for expected in [
        "list_projects",
        "listNotes",
        "createNote",
        "getNote",
        "updateNote",
        "deleteNote",
        "listBookmarks",
        "addBookmark",
        "probe",
        "list_notes_slowly",
        "get_note_flaky",
    ] {
        ensure!(names.contains(&expected), "{expected} missing: {names:?}");
    }
    ensure!(
        !names.contains(&"exportNotes"),
        "a cookie operation is listed"
    );
    ensure!(names.len() == 11 + 10, "{names:?}");
    let tools = listed["tools"].as_array().context("tools")?;
    let create = tools
        .iter()
        .find(|t| t["name"] == "createNote")
        .context("createNote")?;
    let body = &create["inputSchema"]["properties"]["body"];
    ensure!(
        body["properties"].get("id").is_none() && body["required"] == json!(["title"]),
        "readOnly id offered as input: {body}"
    );
    ensure!(
        create["outputSchema"]["properties"]["id"]["type"] == "integer",
        "{create}"
    );
    ensure!(
        create["annotations"]["readOnlyHint"] == false
            && tools
                .iter()
                .any(|t| t["name"] == "deleteNote" && t["annotations"]["destructiveHint"] == true),
        "{create}"
    );
    let bookmarks = tools
        .iter()
        .find(|t| t["name"] == "listBookmarks")
        .context("listBookmarks")?;
    ensure!(
        bookmarks["inputSchema"]["properties"]
            .get("tenant_id")
            .is_none(),
        "the tenant offered as input: {bookmarks}"
    );

    let reader = s.token_with("tenant-ts", "mcp:read", None)?;
    let names = tool_names(&sdk_client(&s.mcp_url, &reader, json!([]))?)?
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
    for write in ["createNote", "updateNote", "deleteNote", "addBookmark"] {
        ensure!(
            !names.iter().any(|n| n == write),
            "{write} listed to a reader"
        );
    }
    ensure!(names.iter().any(|n| n == "listNotes"), "{names:?}");
    let refused = post_mcp(
        &s.mcp_url,
        Some(&reader),
        &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                "params": {"name": "createNote", "arguments": {"body": {"title": "no"}}}})
        .to_string(),
    )?;
    ensure!(
        refused.status() == 403,
        "a reader's write: {}",
        refused.status()
    );

    let narrow = s.token_with("tenant-ts", ALL_SCOPES, Some(&["listNotes", "getNote"]))?;
    let names = tool_names(&sdk_client(&s.mcp_url, &narrow, json!([]))?)?
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
    ensure!(
        names == ["getNote", "listNotes"],
        "allowed_tools: {names:?}"
    );
    Ok(())
}

/// Create, read, update and delete a note with the official TypeScript SDK; the API holds what
/// the calls did, in the caller's tenant's collection only.
fn notes_crud_with_the_typescript_sdk(s: &Stack) -> Result<()> {
    let token = s.token_with("tenant-ts", ALL_SCOPES, None)?;
    let out = sdk_client(
        &s.mcp_url,
        &token,
        json!([
            {"name": "createNote", "arguments": {"body": {"title": "first", "body": "from the TS SDK"}}},
            {"name": "getNote", "arguments": {"id": 1}},
            {"name": "updateNote", "arguments": {"id": 1, "body": {"done": true}}},
            {"name": "listNotes", "arguments": {"done": true}},
            {"name": "get_usage", "arguments": {}},
        ]),
    )?;
    let results = &out["results"];
    // createNote is billable (the sources file says so), the others are not: one call counted.
    ensure!(
        structured(&results[4])["used"] == 1,
        "usage after one billable call: {}",
        results[4]
    );
    let created = structured(&results[0]);
    ensure!(
        created["id"] == 1 && created["title"] == "first",
        "create: {out}"
    );
    ensure!(
        structured(&results[1])["body"] == "from the TS SDK",
        "get: {out}"
    );
    ensure!(structured(&results[2])["done"] == true, "update: {out}");
    let listed = &structured(&results[3])["result"];
    ensure!(
        listed.as_array().map(Vec::len) == Some(1) && listed[0]["done"] == true,
        "filtered list: {out}"
    );
    let held = stored(apis().notes, "tenant-ts")?;
    ensure!(
        held == json!([{"title": "first", "body": "from the TS SDK", "id": 1, "done": true}]),
        "the API holds {held}"
    );
    ensure!(
        stored(apis().notes, "tenant-other")? == json!([]),
        "another tenant's space changed"
    );

    let out = sdk_client(
        &s.mcp_url,
        &token,
        json!([
            {"name": "deleteNote", "arguments": {"id": 1}},
            {"name": "getNote", "arguments": {"id": 1}},
        ]),
    )?;
    ensure!(out["results"][0]["isError"] != true, "delete: {out}");
    let gone = &out["results"][1];
    ensure!(
        gone["isError"] == true
            && text_of(gone).starts_with("The API notes refused the call (HTTP 404)"),
        "a deleted note: {gone}"
    );
    ensure!(
        stored(apis().notes, "tenant-ts")? == json!([]),
        "not deleted"
    );
    Ok(())
}

/// With rmcp's client: pages of a list, and two tenants that never see each other's notes or
/// bookmarks, whatever the agent sends.
fn pages_and_tenants_with_rmcp(s: &Stack) -> Result<()> {
    let rt = rmcp_client::runtime()?;
    let mine = s.token_with("tenant-rmcp", ALL_SCOPES, None)?;
    let theirs = s.token_with("tenant-other", ALL_SCOPES, None)?;
    rt.block_on(async {
        let client = rmcp_client::auto_client(s, &mine).await?;
        for title in ["n1", "n2", "n3"] {
            let created = client
                .call_tool(call("createNote", json!({"body": {"title": title}})))
                .await?;
            ensure!(created.is_error != Some(true), "{created:?}");
        }
        let page = client
            .call_tool(call("listNotes", json!({"_page": 2, "_limit": 2})))
            .await?;
        let items = page
            .structured_content
            .as_ref()
            .map(|v| v["result"].clone())
            .unwrap_or_default();
        ensure!(
            items.as_array().map(Vec::len) == Some(1) && items[0]["title"] == "n3",
            "page 2: {page:?}"
        );
        let text = serde_json::to_string(&page.content)?;
        ensure!(text.contains("X-Total-Count: 3"), "paging headers: {text}");
        let added = client
            .call_tool(call(
                "addBookmark",
                json!({"body": {"url": "https://example.org/a"}}),
            ))
            .await?;
        ensure!(added.is_error != Some(true), "{added:?}");
        let smuggled = client
            .call_tool(call("listBookmarks", json!({"tenant_id": "tenant-other"})))
            .await?;
        ensure!(
            smuggled.is_error == Some(true)
                && serde_json::to_string(&smuggled.content)?
                    .contains(r#"listBookmarks takes no argument \"tenant_id\""#),
            "a tenant named by the agent: {smuggled:?}"
        );
        client.cancel().await?;

        let other = rmcp_client::auto_client(s, &theirs).await?;
        let listed = other.call_tool(call("listNotes", json!({}))).await?;
        ensure!(
            listed.structured_content == Some(json!({"result": []})),
            "another tenant's notes: {listed:?}"
        );
        let by_id = other.call_tool(call("getNote", json!({"id": 1}))).await?;
        ensure!(
            by_id.is_error == Some(true),
            "another tenant's note 1: {by_id:?}"
        );
        let bookmarks = other.call_tool(call("listBookmarks", json!({}))).await?;
        ensure!(
            bookmarks.structured_content == Some(json!({"result": []})),
            "another tenant's bookmarks: {bookmarks:?}"
        );
        other.cancel().await?;
        Ok(())
    })?;
    ensure!(
        stored(apis().notes, "tenant-rmcp")?
            .as_array()
            .map(Vec::len)
            == Some(3),
        "the API's notes of tenant-rmcp"
    );
    let bookmarks = stored(apis().bookmarks, "tenant-rmcp")?;
    ensure!(
        bookmarks[0]["url"] == "https://example.org/a",
        "the API's bookmarks: {bookmarks}"
    );
    ensure!(stored(apis().bookmarks, "tenant-other")? == json!([]));
    Ok(())
}

/// The probe source sends the tenant and user headers and the edge's assertion as its bearer;
/// read back at the recording stand-in.
fn the_identity_reaches_the_api_as_configured(s: &Stack) -> Result<()> {
    let marker = format!("probe-{}", std::process::id());
    let token = s.token_with("tenant-ts", "mcp:read", None)?;
    let out = sdk_client(
        &s.mcp_url,
        &token,
        json!([{"name": "probe", "arguments": {"marker": marker}}]),
    )?;
    ensure!(out["results"][0]["isError"] != true, "{out}");
    let seen = apis().recorder.with_marker(&marker);
    ensure!(seen.len() == 1, "{} requests at the API", seen.len());
    let request = &seen[0];
    ensure!(
        request.path == format!("/api/probe/tenant-ts/mark/{marker}"),
        "{}",
        request.path
    );
    ensure!(request.header("x-tenant-id").as_deref() == Some("tenant-ts"));
    ensure!(request.header("x-user-id").as_deref() == Some("user-of-tenant-ts"));
    let bearer = request
        .header("authorization")
        .and_then(|h| h.strip_prefix("Bearer ").map(str::to_owned))
        .context("no bearer")?;
    // As an API would verify it: the signature with the shared secret, issuer, audience, expiry.
    let key = HS256Key::from_bytes(s.secret.as_bytes());
    let options = VerificationOptions {
        allowed_issuers: Some(["mcp-edge".to_string()].into()),
        allowed_audiences: Some(["mcp-edge-backend".to_string()].into()),
        ..VerificationOptions::default()
    };
    let claims = key
        .verify_token::<serde_json::Map<String, Value>>(&bearer, Some(options))
        .map_err(|e| anyhow::anyhow!("the bearer: {e}"))?;
    ensure!(
        claims.custom["tenant_id"] == "tenant-ts",
        "{:?}",
        claims.custom
    );
    Ok(())
}

/// A 500, a timeout and an API that is gone are tool errors saying they can be retried; the
/// timeout was retried once (GET); failed billable calls are not counted.
fn api_failures_are_tool_errors_an_agent_can_act_on(s: &Stack) -> Result<()> {
    let token = s.token_with("tenant-fail", ALL_SCOPES, None)?;
    let out = sdk_client(
        &s.mcp_url,
        &token,
        json!([
            {"name": "get_usage", "arguments": {}},
            // json-server answers a duplicate id with 500.
            {"name": "createNote", "arguments": {"body": {"title": "dup", "id": 1}}},
            {"name": "get_usage", "arguments": {}},
            {"name": "list_notes_slowly", "arguments": {}},
            {"name": "get_note_flaky", "arguments": {"id": 1}},
        ]),
    )?;
    let r = &out["results"];
    let failed = &r[1];
    ensure!(
        failed["isError"] == true
            && text_of(failed).starts_with("The API notes failed (HTTP 500)")
            && text_of(failed).contains("This is retryable")
            && text_of(failed).contains("may or may not have been made"),
        "500: {failed}"
    );
    ensure!(
        structured(&r[0])["used"] == structured(&r[2])["used"],
        "a failed billable call was counted: {} then {}",
        r[0],
        r[2]
    );
    let slow = &r[3];
    ensure!(
        slow["isError"] == true
            && text_of(slow)
                == "The API slow did not answer within 300 ms. This is retryable: try again later.",
        "timeout: {slow}"
    );
    let log = s.log_tail("backend", usize::MAX);
    for attempt in ["attempt=1", "attempt=2"] {
        ensure!(
            log.lines()
                .any(|l| l.contains("tool=list_notes_slowly") && l.contains(attempt)),
            "no {attempt} of the slow GET in the backend log"
        );
    }
    ensure!(
        structured(&r[4])["title"] == "still here",
        "flaky before: {}",
        r[4]
    );

    apis()
        .flaky
        .lock()
        .map_err(|_| anyhow::anyhow!("lock"))?
        .take()
        .context("the flaky API was stopped already")?
        .stop();
    let out = sdk_client(
        &s.mcp_url,
        &token,
        json!([{"name": "get_note_flaky", "arguments": {"id": 1}}]),
    )?;
    let gone = &out["results"][0];
    ensure!(
        gone["isError"] == true
            && text_of(gone).starts_with("The API flaky could not be reached (")
            && text_of(gone).ends_with("This is retryable: try again later."),
        "a stopped API: {gone}"
    );
    Ok(())
}

/// Bad configuration stops the backend with a message naming the file and the place; an
/// operation that cannot be a tool is logged, named, and left out.
fn bad_documents_stop_the_start_and_untranslatable_operations_are_named(s: &Stack) -> Result<()> {
    let log = s.log_tail("backend", usize::MAX);
    ensure!(
        log.lines().any(|l| l.contains("operation not served")
            && l.contains("GET /export (exportNotes)")
            && l.contains("cookie")),
        "no warning for exportNotes in the backend log"
    );
    let dir = apis().dir.path();
    let swagger = dir.join("swagger.yaml");
    std::fs::write(&swagger, "swagger: \"2.0\"\npaths: {}\n")?;
    let notes_doc = openapi_dir().join("notes.openapi.yaml");
    let cases = [
        (
            format!(
                "openapi:\n  - name: old\n    document: {}\n    base_url: \"http://127.0.0.1:9/{{tenant_id}}\"\n    select: {{ tags: [x] }}\n",
                swagger.display()
            ),
            vec![swagger.display().to_string() + ": /openapi: not an OpenAPI 3.0 or 3.1 document"],
        ),
        (
            format!(
                "openapi:\n  - name: notes\n    document: {}\n    base_url: \"http://127.0.0.1:9/{{tenant_id}}\"\n    select: {{ operations: [listNotes] }}\n    operations: {{ listNotes: {{ name: list_projects }} }}\n",
                notes_doc.display()
            ),
            vec!["the tool \"list_projects\" is offered by demo and by openapi:notes".to_string()],
        ),
    ];
    for (i, (text, expected)) in cases.iter().enumerate() {
        let file = dir.join(format!("bad-{i}.yaml"));
        std::fs::write(&file, text)?;
        let out = Command::new(cargo_bin("mcp-edge-backend")?)
            .args(["--listen", "127.0.0.1:0", "--tool-sources"])
            .arg(&file)
            .env("MCP_EDGE_GATEWAY_SECRET", &s.secret)
            .output()?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        ensure!(!out.status.success(), "started with {}", file.display());
        ensure!(stderr.contains(&file.display().to_string()), "{stderr}");
        for needle in expected {
            ensure!(
                stderr.contains(needle.as_str()),
                "{needle:?} not in: {stderr}"
            );
        }
    }
    Ok(())
}

fn main() {
    let options = match start_apis() {
        Ok(options) => options,
        Err(e) => {
            eprintln!("could not start the APIs: {e:#}");
            stop_apis();
            std::process::exit(1);
        }
    };
    let cases: &[Case] = mcp_edge_tests::cases![
        every_sources_tools_are_listed_and_filtered_at_the_edge,
        notes_crud_with_the_typescript_sdk,
        pages_and_tenants_with_rmcp,
        the_identity_reaches_the_api_as_configured,
        api_failures_are_tool_errors_an_agent_can_act_on,
        bad_documents_stop_the_start_and_untranslatable_operations_are_named,
    ];
    runner::run_then(&options, cases, &stop_apis);
}
