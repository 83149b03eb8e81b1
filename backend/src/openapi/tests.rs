//! The translation on a small document shaped like a real one (a json-server style resource API).

use super::*;

fn doc() -> Value {
    json!({
        "openapi": "3.1.0",
        "info": {"title": "Notes", "version": "1"},
        "security": [{"oauth": ["notes:read"]}],
        "paths": {
            "/notes": {
                "get": {
                    "operationId": "listNotes", "tags": ["notes"], "summary": "List notes",
                    "parameters": [
                        {"name": "_page", "in": "query", "schema": {"type": "integer"},
                         "description": "Page number"},
                        {"name": "x-trace", "in": "cookie", "schema": {"type": "string"}}
                    ],
                    "responses": {"200": {"description": "ok", "content": {"application/json":
                        {"schema": {"type": "array", "items": {"$ref": "#/components/schemas/Note"}}}}}}
                },
                "post": {
                    "operationId": "createNote", "tags": ["notes"], "summary": "Create a note",
                    "security": [{"oauth": ["notes:write"]}],
                    "requestBody": {"$ref": "#/components/requestBodies/NoteBody"},
                    "responses": {"201": {"description": "created", "content": {"application/json":
                        {"schema": {"$ref": "#/components/schemas/Note"}}}}}
                }
            },
            "/notes/{id}": {
                "parameters": [{"name": "id", "in": "path", "required": true,
                                "schema": {"type": "string"}}],
                "delete": {"operationId": "deleteNote", "tags": ["admin"],
                           "security": [{"oauth": ["notes:admin"]}],
                           "responses": {"200": {"description": "gone"}}},
                "put": {"operationId": "replaceNote", "tags": ["notes"],
                        "requestBody": {"content": {"text/plain": {"schema": {"type": "string"}}}},
                        "responses": {"200": {"description": "ok"}}},
                "get": {"tags": ["notes"], "responses": {"200": {"description": "ok"}}}
            },
            "/loop": {
                "get": {"operationId": "loop", "parameters": [{"$ref": "#/components/parameters/A"}],
                        "responses": {}}
            }
        },
        "components": {
            "schemas": {
                "Note": {"type": "object", "required": ["id", "text"], "properties": {
                    "id": {"type": "string", "readOnly": true},
                    "text": {"type": "string"},
                    "secret": {"type": "string", "writeOnly": true}
                }}
            },
            "requestBodies": {"NoteBody": {"required": true, "content": {"application/json":
                {"schema": {"$ref": "#/components/schemas/Note"}}}}},
            "parameters": {"A": {"$ref": "#/components/parameters/B"},
                           "B": {"$ref": "#/components/parameters/A"}}
        }
    })
}

fn select(ids: &[&str], tags: &[&str]) -> Selection {
    Selection {
        operation_ids: ids.iter().map(|s| s.to_string()).collect(),
        tags: tags.iter().map(|s| s.to_string()).collect(),
        ..Selection::default()
    }
}

fn tool<'a>(tools: &'a [OpenApiTool], name: &str) -> &'a OpenApiTool {
    tools.iter().find(|t| t.name == name).expect(name)
}

#[test]
fn nothing_is_exposed_unless_selected() {
    let (tools, warnings) =
        tools_from_document(&doc(), "notes.json", &Selection::default()).unwrap();
    assert!(tools.is_empty() && warnings.is_empty());
    let (tools, _) =
        tools_from_document(&doc(), "notes.json", &select(&["deleteNote"], &[])).unwrap();
    assert_eq!(tools.len(), 1);
    assert_eq!(tools[0].name, "deleteNote");
}

#[test]
fn a_selected_tag_brings_its_operations_and_skips_what_cannot_be_translated() {
    let (tools, warnings) =
        tools_from_document(&doc(), "notes.json", &select(&[], &["notes"])).unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["createNote"], "{warnings:?}");
    let reasons: Vec<(&str, &str)> = warnings
        .iter()
        .map(|w| (w.operation.as_str(), w.reason.as_str()))
        .collect();
    assert_eq!(
        reasons,
        [
            (
                "GET /notes (listNotes)",
                "parameter \"x-trace\" in \"cookie\" is not supported"
            ),
            (
                "GET /notes/{id}",
                "no operationId (tag-selected operations need one)"
            ),
            (
                "PUT /notes/{id} (replaceNote)",
                "the request body is not application/json"
            ),
        ]
    );
}

#[test]
fn input_and_output_schemas_resolve_refs_and_drop_what_a_side_never_sends() {
    let (tools, _) =
        tools_from_document(&doc(), "notes.json", &select(&["createNote"], &[])).unwrap();
    let create = tool(&tools, "createNote");
    assert_eq!(create.method, "POST");
    assert!(create.has_body);
    assert_eq!(create.scope, "notes:write");
    assert_eq!(
        create.input_schema["properties"]["body"],
        json!({"type": "object", "required": ["text"], "properties": {
            "text": {"type": "string"}, "secret": {"type": "string", "writeOnly": true}}})
    );
    assert_eq!(create.input_schema["required"], json!(["body"]));
    assert_eq!(
        create.output_schema,
        Some(
            json!({"type": "object", "required": ["id", "text"], "properties": {
            "id": {"type": "string", "readOnly": true}, "text": {"type": "string"}}})
        )
    );
    assert!(!create.hints.read_only && !create.hints.idempotent);
}

#[test]
fn path_item_parameters_methods_and_the_documents_security() {
    let mut selection = select(&["deleteNote"], &[]);
    selection
        .names
        .insert("deleteNote".into(), "delete_note".into());
    selection.billable.insert("deleteNote".into());
    let (tools, _) = tools_from_document(&doc(), "notes.json", &selection).unwrap();
    let delete = tool(&tools, "delete_note");
    assert_eq!(delete.path, "/notes/{id}");
    assert_eq!(
        delete.parameters,
        [Parameter {
            name: "id".into(),
            location: Location::Path,
            required: true
        }]
    );
    assert_eq!(delete.input_schema["required"], json!(["id"]));
    assert!(delete.hints.destructive && delete.billable);
    assert_eq!(delete.scope, "notes:admin");
    assert_eq!(delete.output_schema, None);
}

#[test]
fn a_non_object_answer_is_wrapped_and_the_configured_scope_wins() {
    let mut doc = doc();
    doc["paths"]["/notes"]["get"]["parameters"]
        .as_array_mut()
        .unwrap()
        .pop();
    let mut selection = select(&["listNotes"], &[]);
    let (tools, _) = tools_from_document(&doc, "notes.json", &selection).unwrap();
    let list = tool(&tools, "listNotes");
    assert_eq!(list.scope, "notes:read", "the document's security");
    assert!(list.hints.read_only);
    let out = list.output_schema.clone().unwrap();
    assert_eq!(out["properties"]["result"]["type"], "array");
    assert_eq!(
        out["properties"]["result"]["items"]["properties"]["id"]["readOnly"],
        true
    );
    assert!(
        out["properties"]["result"]["items"]["properties"]
            .get("secret")
            .is_none()
    );
    assert_eq!(
        list.input_schema["properties"]["_page"]["description"],
        "Page number"
    );
    selection
        .scopes
        .insert("listNotes".into(), "mcp:read".into());
    let (tools, _) = tools_from_document(&doc, "notes.json", &selection).unwrap();
    assert_eq!(tool(&tools, "listNotes").scope, "mcp:read");
}

#[test]
fn reference_cycles_are_skipped_and_bad_documents_refused_by_file_and_path() {
    let (_, warnings) = tools_from_document(&doc(), "notes.json", &select(&["loop"], &[])).unwrap();
    assert_eq!(warnings[0].reason, "$ref chain longer than 16 (a cycle?)");
    let err = tools_from_document(
        &json!({"swagger": "2.0"}),
        "old.json",
        &Selection::default(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "old.json: /openapi: not an OpenAPI 3.0 or 3.1 document"
    );
    let mut selection = select(&["createNote", "deleteNote"], &[]);
    selection
        .names
        .insert("deleteNote".into(), "createNote".into());
    let err = tools_from_document(&doc(), "notes.json", &selection).unwrap_err();
    assert_eq!(
        err.to_string(),
        "notes.json: /paths/~1notes~1{id}/delete: a second tool named \"createNote\""
    );
}

#[test]
fn an_operation_without_any_scope_is_not_exposed() {
    let mut doc = doc();
    doc.as_object_mut().unwrap().remove("security");
    doc["paths"]["/notes"]["get"]["parameters"]
        .as_array_mut()
        .unwrap()
        .pop();
    let (tools, warnings) =
        tools_from_document(&doc, "notes.json", &select(&["listNotes"], &[])).unwrap();
    assert!(tools.is_empty());
    assert_eq!(
        warnings[0].reason,
        "no scope: neither the configuration nor the document's security names one"
    );
}

/// The tools of a document whose paths name the tenant, for the request and tenant tests.
fn tenant_doc_tools() -> Vec<OpenApiTool> {
    let doc = json!({
        "openapi": "3.0.3",
        "info": {"title": "Orgs", "version": "1"},
        "security": [{"oauth": ["mcp:read"]}],
        "paths": {
            "/orgs/{tenant_id}/notes/{id}": {
                "parameters": [
                    {"name": "tenant_id", "in": "path", "required": true, "schema": {"type": "string"}},
                    {"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}
                ],
                "get": {"operationId": "getNote",
                        "parameters": [
                            {"name": "fields", "in": "query", "schema": {"type": "array", "items": {"type": "string"}}},
                            {"name": "X-Request-Tag", "in": "header", "schema": {"type": "string"}}
                        ],
                        "responses": {"200": {"description": "ok",
                            "headers": {"X-Total-Count": {"schema": {"type": "integer"}}},
                            "content": {"application/json": {"schema": {"type": "object"}}}}}},
                "put": {"operationId": "putNote",
                        "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object"}}}},
                        "responses": {"200": {"description": "ok"}}}
            },
            "/search": {
                "get": {"operationId": "search",
                        "parameters": [{"name": "tenant_id", "in": "query", "schema": {"type": "string"}}],
                        "responses": {"200": {"description": "ok"}}}
            },
            "/whoami": {
                "get": {"operationId": "whoami",
                        "parameters": [{"name": "X-Tenant", "in": "header", "schema": {"type": "string"}}],
                        "responses": {"200": {"description": "ok"}}}
            }
        }
    });
    let selection = select(&["getNote", "putNote", "search", "whoami"], &[]);
    tools_from_document(&doc, "orgs.json", &selection)
        .unwrap()
        .0
}

fn identity_with_header(header: &str) -> crate::sources::config::IdentityConfig {
    crate::sources::config::IdentityConfig {
        tenant_header: Some(header.to_string()),
        ..Default::default()
    }
}

#[test]
fn the_tenant_is_never_a_tool_argument() {
    let (tools, warnings) = keep_tenant_out(tenant_doc_tools(), &identity_with_header("x-tenant"));
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["getNote", "putNote"], "{warnings:?}");
    let get = &tools[0];
    assert!(
        get.input_schema["properties"].get("tenant_id").is_none(),
        "{}",
        get.input_schema
    );
    assert_eq!(get.input_schema["required"], json!(["id"]));
    assert_eq!(get.response_headers, ["X-Total-Count"]);
    let reasons: Vec<(&str, &str)> = warnings
        .iter()
        .map(|w| (w.operation.as_str(), w.reason.as_str()))
        .collect();
    assert_eq!(
        reasons,
        [
            (
                "GET /search (search)",
                "its query parameter \"tenant_id\" would let the agent name the tenant"
            ),
            (
                "GET /whoami (whoami)",
                "its header parameter \"X-Tenant\" is the one the identity travels in"
            ),
        ]
    );
}

#[test]
fn a_call_becomes_the_operations_request() {
    let (tools, _) = keep_tenant_out(tenant_doc_tools(), &identity_with_header("x-tenant"));
    let args = json!({"id": "a/b c", "fields": ["x", "y&z"], "X-Request-Tag": "t1"});
    let planned = request::plan(
        &tools[0],
        "http://api.test/v1/",
        "acme corp",
        args.as_object().unwrap(),
    )
    .unwrap();
    assert_eq!(planned.method, http::Method::GET);
    assert_eq!(
        planned.url,
        "http://api.test/v1/orgs/acme%20corp/notes/a%2Fb%20c?fields=x&fields=y%26z"
    );
    assert_eq!(planned.headers.len(), 1);
    assert_eq!(planned.headers[0].0, "x-request-tag");
    assert!(planned.body.is_none());

    let put = &tools[1];
    let args = json!({"id": "1", "body": {"text": "hi"}});
    let planned = request::plan(
        put,
        "http://api.test/{tenant_id}",
        "globex",
        args.as_object().unwrap(),
    )
    .unwrap();
    assert_eq!(planned.url, "http://api.test/globex/orgs/globex/notes/1");
    assert_eq!(
        planned.body.as_deref(),
        Some(br#"{"text":"hi"}"#.as_slice())
    );
}

#[test]
fn bad_arguments_are_named() {
    let (tools, _) = keep_tenant_out(tenant_doc_tools(), &identity_with_header("x-tenant"));
    let get = &tools[0];
    let plan =
        |args: Value| request::plan(get, "http://api.test", "acme", args.as_object().unwrap());
    assert_eq!(
        plan(json!({})).unwrap_err(),
        "getNote needs the argument \"id\""
    );
    assert_eq!(
        plan(json!({"id": "1", "tenant_id": "globex"})).unwrap_err(),
        "getNote takes no argument \"tenant_id\""
    );
    assert_eq!(
        plan(json!({"id": ".."})).unwrap_err(),
        "\"id\": \"..\" cannot be a path segment"
    );
    assert_eq!(
        plan(json!({"id": {"x": 1}})).unwrap_err(),
        "\"id\" must be a string, a number or a boolean"
    );
    assert_eq!(
        plan(json!({"id": "1", "X-Request-Tag": "a\r\nb"})).unwrap_err(),
        "\"X-Request-Tag\" is not a valid header value"
    );
    assert!(request::plan(get, "http://api.test/{tenant_id}", "..", &Map::new()).is_err());
}

#[test]
fn answers_become_results_an_agent_can_act_on() {
    use answer::{HttpAnswer, NoAnswer, from_answer, from_failure};
    let text = |r: &rmcp::model::CallToolResult| {
        r.content
            .iter()
            .filter_map(|c| c.as_text().map(|t| t.text.clone()))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let answer = |status, body: &'static str| HttpAnswer {
        status,
        content_type: Some("application/json; charset=utf-8"),
        body: body.as_bytes(),
        headers: vec![],
    };
    let ok = from_answer(
        "notes",
        "GET",
        &HttpAnswer {
            headers: vec![("X-Total-Count".into(), "3".into())],
            ..answer(200, r#"[{"id":1}]"#)
        },
    );
    assert_eq!(ok.is_error, Some(false));
    assert_eq!(ok.structured_content, Some(json!({"result": [{"id": 1}]})));
    assert!(text(&ok).contains("X-Total-Count: 3"), "{}", text(&ok));

    let not_found = from_answer("notes", "GET", &answer(404, r#"{"message":"no note 9"}"#));
    assert_eq!(not_found.is_error, Some(true));
    assert_eq!(
        text(&not_found),
        "The API notes refused the call (HTTP 404): no note 9"
    );

    let refused = from_answer("notes", "GET", &answer(403, "{}"));
    assert!(
        text(&refused).starts_with("The API notes refused this tenant (HTTP 403)"),
        "{}",
        text(&refused)
    );

    let failed = from_answer("notes", "POST", &answer(500, "Insert failed, duplicate id"));
    assert!(
        text(&failed).contains("This is retryable"),
        "{}",
        text(&failed)
    );
    assert!(
        text(&failed).contains("may or may not have been made"),
        "{}",
        text(&failed)
    );

    let timeout = from_failure("notes", "GET", &NoAnswer::Timeout { ms: 500 });
    assert_eq!(
        text(&timeout),
        "The API notes did not answer within 500 ms. This is retryable: try again later."
    );
    let long = "é".repeat(2000);
    let quoted = from_answer(
        "notes",
        "GET",
        &HttpAnswer {
            content_type: Some("text/plain"),
            ..answer(400, "")
        },
    );
    assert_eq!(text(&quoted), "The API notes refused the call (HTTP 400)");
    let body = long.as_bytes().to_vec();
    let cut = from_answer(
        "notes",
        "GET",
        &HttpAnswer {
            status: 422,
            content_type: None,
            body: &body,
            headers: vec![],
        },
    );
    assert!(
        text(&cut).len() < 1100 && text(&cut).ends_with('…'),
        "{}",
        text(&cut).len()
    );
}

#[test]
fn tool_names_follow_mcps_rule() {
    let doc = json!({
        "openapi": "3.1.0", "info": {"title": "x", "version": "1"},
        "security": [{"oauth": ["mcp:read"]}],
        "paths": {"/a": {"get": {"operationId": "get a thing", "responses": {}}}}
    });
    let (tools, warnings) =
        tools_from_document(&doc, "x.json", &select(&["get a thing"], &[])).unwrap();
    assert!(tools.is_empty());
    assert!(
        warnings[0]
            .reason
            .contains("configure operations.get a thing.name"),
        "{warnings:?}"
    );
}
