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
