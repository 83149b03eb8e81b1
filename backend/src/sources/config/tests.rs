//! The sources file: what it accepts, and the errors that stop the start naming the file.

use super::*;

/// Writes `sources` and a small document beside it; returns the sources file's path.
fn write(dir: &Path, sources: &str) -> PathBuf {
    let doc = serde_json::json!({
        "openapi": "3.0.3", "info": {"title": "Notes", "version": "1"},
        "security": [{"oauth": ["mcp:read"]}],
        "paths": {
            "/": {"get": {"operationId": "listNotes", "tags": ["notes"], "responses": {}},
                  "post": {"operationId": "createNote", "tags": ["notes"],
                           "security": [{"oauth": ["mcp:write"]}], "responses": {}}},
            "/{id}": {"delete": {"operationId": "deleteNote",
                                 "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
                                 "responses": {}}}
        }
    });
    std::fs::write(dir.join("notes.json"), doc.to_string()).unwrap();
    let path = dir.join("sources.yaml");
    std::fs::write(&path, sources).unwrap();
    path
}

const NOTES: &str = "openapi:\n  - name: notes\n    document: notes.json\n    base_url: \"http://127.0.0.1:9/{tenant_id}\"\n";

#[test]
fn a_source_is_read_with_its_settings() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{NOTES}    select: {{ tags: [notes], operations: [deleteNote, noSuchOp] }}\n    operations:\n      createNote: {{ name: create_note, billable: true }}\n      deleteNote: {{ scope: \"mcp:admin\" }}\n"
    );
    let (file, loaded) = load_sources(&write(dir.path(), &text)).unwrap();
    assert!(file.demo);
    let source = &loaded[0];
    let tools: Vec<(&str, &str, bool)> = source
        .tools
        .iter()
        .map(|t| (t.name.as_str(), t.scope.as_str(), t.billable))
        .collect();
    assert_eq!(
        tools,
        [
            ("listNotes", "mcp:read", false),
            ("create_note", "mcp:write", true),
            ("deleteNote", "mcp:admin", false)
        ]
    );
    assert_eq!(source.config.timeout_ms, 10_000);
    assert_eq!(source.warnings.len(), 1, "{:?}", source.warnings);
    assert_eq!(source.warnings[0].operation, "noSuchOp");
}

#[test]
fn errors_name_the_file_and_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("demo: yes please\n", "demo: invalid type"),
        (
            "openapi:\n  - name: x\n    documnet: a.json\n",
            "unknown field `documnet`",
        ),
        (
            &format!("{NOTES}    select: {{ tags: [notes] }}\n    timeout_ms: 0\n"),
            "openapi[0] (notes): timeout_ms must be 1 to 300000",
        ),
        (NOTES, "select names no operation and no tag"),
        (
            "openapi:\n  - name: notes\n    document: notes.json\n    base_url: \"http://127.0.0.1:9\"\n    select: { tags: [notes] }\n",
            "the API would not know the tenant",
        ),
        (
            "openapi:\n  - name: notes\n    document: notes.json\n    base_url: \"http://{tenant_id}.api.test\"\n    select: { tags: [notes] }\n",
            "{tenant_id} may only be in base_url's path",
        ),
        (
            &format!(
                "{NOTES}    select: {{ tags: [notes] }}\n    identity: {{ bearer: client_credentials }}\n"
            ),
            "bearer: client_credentials needs identity.client_credentials",
        ),
        (
            &format!("{NOTES}    document: missing.json\n    select: {{ tags: [notes] }}\n"),
            "duplicate field `document`",
        ),
    ];
    for (text, expected) in cases {
        let path = write(dir.path(), text);
        let error = load_sources(&path).unwrap_err().to_string();
        assert!(error.starts_with(&path.display().to_string()), "{error}");
        assert!(error.contains(expected), "{text}\n→ {error}");
    }
    let text = "openapi:\n  - name: notes\n    document: missing.json\n    base_url: \"http://127.0.0.1:9/{tenant_id}\"\n    select: { tags: [notes] }\n";
    let error = load_sources(&write(dir.path(), text))
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("cannot read the document") && error.contains("missing.json"),
        "{error}"
    );
}

#[test]
fn two_tools_of_one_name_refuse_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{NOTES}    select: {{ operations: [listNotes, createNote] }}\n    operations:\n      createNote: {{ name: listNotes }}\n"
    );
    let error = load_sources(&write(dir.path(), &text))
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("notes.json: /paths/~1/post: a second tool named \"listNotes\""),
        "{error}"
    );
}
