//! An OpenAPI 3.0/3.1 document read as MCP tools (issue 22): pure translation, no I/O.
//!
//! Nothing is exposed unless selected (by operationId or tag). Each selected operation becomes one
//! [`OpenApiTool`]: its name from the operationId (or the configuration), its description from
//! summary/description, its input schema from the path, query and header parameters plus the JSON
//! request body (as `body`, `readOnly` members dropped), its output schema from the first 2xx JSON
//! response, its annotations from the HTTP method, its scope from the configuration or the
//! operation's (else the document's) `security` scopes. `$ref`s inside the document are resolved.
//!
//! What cannot be translated faithfully (a `$ref` to another file, a cycle, a non-JSON body, a
//! cookie parameter, no scope anywhere) skips that operation with a [`Warning`] naming it; a
//! document that is not OpenAPI 3.x, or two tools with one name, is a [`DocumentError`] naming the
//! file and the JSON path, so the backend refuses to start rather than serve half a catalogue.

pub mod answer;
mod http_client;
mod refs;
pub mod request;
mod schema;
mod source;
mod tenant_params;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use refs::Resolver;

pub use source::OpenApiSource;
pub use tenant_params::keep_tenant_out;

/// The HTTP methods an OpenAPI path item may hold operations for; operations are read in this
/// order within a path, paths in the document's key order.
const METHODS: [&str; 7] = ["get", "put", "post", "delete", "patch", "head", "options"];

/// Which operations of one document become tools, and what the configuration says of them.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Operations selected by operationId.
    pub operation_ids: BTreeSet<String>,
    /// Operations selected by any of their tags.
    pub tags: BTreeSet<String>,
    /// A tool name other than the operationId.
    pub names: BTreeMap<String, String>,
    /// A scope other than the document's, by operationId.
    pub scopes: BTreeMap<String, String>,
    /// The operations whose successful calls are billed.
    pub billable: BTreeSet<String>,
}

/// Where a tool argument goes in the HTTP request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    Path,
    /// A path parameter named `tenant_id`: filled with the verified tenant, never an argument
    /// ([`keep_tenant_out`]).
    TenantPath,
    Query,
    Header,
}

/// One parameter of the operation, by the argument name the tool takes it under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parameter {
    pub name: String,
    pub location: Location,
    pub required: bool,
}

/// What clients may assume about a tool, from its HTTP method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MethodHints {
    pub read_only: bool,
    pub destructive: bool,
    pub idempotent: bool,
}

/// One operation as a tool.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenApiTool {
    pub name: String,
    pub operation_id: String,
    pub description: String,
    /// Upper-case HTTP method.
    pub method: String,
    /// The path template, `{name}` for each path parameter.
    pub path: String,
    pub parameters: Vec<Parameter>,
    /// Whether the tool takes a JSON `body` argument.
    pub has_body: bool,
    pub input_schema: Value,
    /// The 2xx JSON answer's schema, as an object (a non-object answer is its `result` member).
    pub output_schema: Option<Value>,
    /// The response headers the 2xx answer declares (pagination: `X-Total-Count`, `Link`, …).
    pub response_headers: Vec<String>,
    pub hints: MethodHints,
    pub scope: String,
    pub billable: bool,
}

/// An operation left out, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// `METHOD /path` (and the operationId when it has one).
    pub operation: String,
    pub reason: String,
}

/// A document that cannot be served at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {path}: {reason}")]
pub struct DocumentError {
    pub file: String,
    /// A JSON pointer into the document.
    pub path: String,
    pub reason: String,
}

/// The selected operations of `doc` (read from `file`) as tools, and the warnings of those left out.
pub fn tools_from_document(
    doc: &Value,
    file: &str,
    selection: &Selection,
) -> Result<(Vec<OpenApiTool>, Vec<Warning>), DocumentError> {
    let error = |path: &str, reason: &str| DocumentError {
        file: file.to_string(),
        path: path.to_string(),
        reason: reason.to_string(),
    };
    let version = doc.get("openapi").and_then(Value::as_str).unwrap_or("");
    if !(version.starts_with("3.0.") || version.starts_with("3.1.")) {
        return Err(error("/openapi", "not an OpenAPI 3.0 or 3.1 document"));
    }
    let paths = doc
        .get("paths")
        .and_then(Value::as_object)
        .ok_or_else(|| error("/paths", "no paths object"))?;
    let resolver = Resolver::new(doc);
    let mut tools: Vec<OpenApiTool> = Vec::new();
    let mut warnings = Vec::new();
    for (path, item) in paths {
        let Some(item) = item.as_object() else {
            return Err(error(
                &pointer(&["paths", path]),
                "a path item is not an object",
            ));
        };
        for method in METHODS {
            let Some(operation) = item.get(method) else {
                continue;
            };
            let id = operation.get("operationId").and_then(Value::as_str);
            if !selected(operation, id, selection) {
                continue;
            }
            let label = match id {
                Some(id) => format!("{} {path} ({id})", method.to_uppercase()),
                None => format!("{} {path}", method.to_uppercase()),
            };
            let Some(id) = id else {
                warnings.push(Warning {
                    operation: label,
                    reason: "no operationId (tag-selected operations need one)".into(),
                });
                continue;
            };
            match operation_tool(&resolver, doc, item, method, path, id, operation, selection)
                .and_then(valid_name)
            {
                Ok(tool) => {
                    if tools.iter().any(|t| t.name == tool.name) {
                        return Err(error(
                            &pointer(&["paths", path, method]),
                            &format!("a second tool named {:?}", tool.name),
                        ));
                    }
                    tools.push(tool);
                }
                Err(reason) => warnings.push(Warning {
                    operation: label,
                    reason,
                }),
            }
        }
    }
    Ok((tools, warnings))
}

/// MCP's tool-name rule (1 to 128 of `A-Z a-z 0-9 _ - .`), which the edge's policy keys on too.
fn valid_name(tool: OpenApiTool) -> Result<OpenApiTool, String> {
    let ok = (1..=128).contains(&tool.name.len())
        && tool
            .name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(tool)
    } else {
        Err(format!(
            "the tool name {:?} is not 1 to 128 of A-Z a-z 0-9 _ - . (configure operations.{}.name)",
            tool.name, tool.operation_id
        ))
    }
}

fn selected(operation: &Value, id: Option<&str>, selection: &Selection) -> bool {
    if id.is_some_and(|id| selection.operation_ids.contains(id)) {
        return true;
    }
    operation
        .get("tags")
        .and_then(Value::as_array)
        .is_some_and(|tags| {
            tags.iter()
                .filter_map(Value::as_str)
                .any(|t| selection.tags.contains(t))
        })
}

/// A JSON pointer from its segments (RFC 6901 escaping).
fn pointer(segments: &[&str]) -> String {
    segments
        .iter()
        .map(|s| format!("/{}", s.replace('~', "~0").replace('/', "~1")))
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn operation_tool(
    resolver: &Resolver<'_>,
    doc: &Value,
    item: &Map<String, Value>,
    method: &str,
    path: &str,
    id: &str,
    operation: &Value,
    selection: &Selection,
) -> Result<OpenApiTool, String> {
    let mut properties = Map::new();
    let mut required = Vec::new();
    let mut parameters = Vec::new();
    // Path-item parameters first; an operation's parameter of the same name and place wins.
    let declared = item
        .get("parameters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .chain(
            operation
                .get("parameters")
                .and_then(Value::as_array)
                .into_iter()
                .flatten(),
        );
    let mut by_key: BTreeMap<(String, String), Value> = BTreeMap::new();
    for p in declared {
        let p = resolver.resolve(p)?;
        let name = p.get("name").and_then(Value::as_str).unwrap_or("");
        let place = p.get("in").and_then(Value::as_str).unwrap_or("");
        by_key.insert((place.to_string(), name.to_string()), p);
    }
    for ((place, name), p) in by_key {
        let location = match place.as_str() {
            "path" => Location::Path,
            "query" => Location::Query,
            "header" => Location::Header,
            other => return Err(format!("parameter {name:?} in {other:?} is not supported")),
        };
        if name.is_empty() || name == "body" || properties.contains_key(&name) {
            return Err(format!("parameter name {name:?} cannot be a tool argument"));
        }
        let mut schema = match p.get("schema") {
            Some(s) => schema::for_input(resolver, s)?,
            None => return Err(format!("parameter {name:?} has no schema")),
        };
        if let (Some(obj), Some(d)) = (schema.as_object_mut(), p.get("description")) {
            obj.insert("description".into(), d.clone());
        }
        let is_required =
            location == Location::Path || p.get("required").and_then(Value::as_bool) == Some(true);
        if is_required {
            required.push(Value::from(name.clone()));
        }
        properties.insert(name.clone(), schema);
        parameters.push(Parameter {
            name,
            location,
            required: is_required,
        });
    }
    let has_body = match operation.get("requestBody") {
        None => false,
        Some(body) => {
            let body = resolver.resolve(body)?;
            let Some(json_schema) = body.pointer("/content/application~1json/schema") else {
                return Err("the request body is not application/json".into());
            };
            properties.insert("body".into(), schema::for_input(resolver, json_schema)?);
            if body.get("required").and_then(Value::as_bool) == Some(true) {
                required.push(Value::from("body"));
            }
            true
        }
    };
    let output_schema = output_schema(resolver, operation)?;
    let response_headers = ok_response(operation)
        .map(|ok| resolver.resolve(ok))
        .transpose()?
        .and_then(|ok| ok.get("headers").and_then(Value::as_object).cloned())
        .map(|headers| headers.keys().cloned().collect())
        .unwrap_or_default();
    let scope = match selection.scopes.get(id) {
        Some(scope) => scope.clone(),
        None => security_scope(operation, doc).ok_or_else(|| {
            "no scope: neither the configuration nor the document's security names one".to_string()
        })?,
    };
    let description = [operation.get("summary"), operation.get("description")]
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect::<Vec<_>>()
        .join("\n\n");
    Ok(OpenApiTool {
        name: selection
            .names
            .get(id)
            .cloned()
            .unwrap_or_else(|| id.to_string()),
        operation_id: id.to_string(),
        description,
        method: method.to_uppercase(),
        path: path.to_string(),
        parameters,
        has_body,
        input_schema: json!({
            "type": "object",
            "properties": properties,
            "required": required,
            "additionalProperties": false,
        }),
        output_schema,
        response_headers,
        hints: hints(method),
        scope,
        billable: selection.billable.contains(id),
    })
}

/// The first 2xx response's JSON schema, as an object schema.
fn output_schema(resolver: &Resolver<'_>, operation: &Value) -> Result<Option<Value>, String> {
    let Some(ok) = ok_response(operation) else {
        return Ok(None);
    };
    let ok = resolver.resolve(ok)?;
    let Some(s) = ok.pointer("/content/application~1json/schema") else {
        return Ok(None);
    };
    let s = schema::for_output(resolver, s)?;
    Ok(Some(if s.get("type") == Some(&json!("object")) {
        s
    } else {
        json!({"type": "object", "properties": {"result": s}, "required": ["result"]})
    }))
}

/// The operation's first 2xx response (unresolved).
fn ok_response(operation: &Value) -> Option<&Value> {
    operation
        .get("responses")?
        .as_object()?
        .iter()
        .find(|(code, _)| code.starts_with('2'))
        .map(|(_, r)| r)
}

/// The first scope of the operation's first security requirement, else the document's.
fn security_scope(operation: &Value, doc: &Value) -> Option<String> {
    [operation.get("security"), doc.get("security")]
        .into_iter()
        .flatten()
        .next()?
        .as_array()?
        .iter()
        .filter_map(Value::as_object)
        .flat_map(|req| req.values())
        .filter_map(Value::as_array)
        .flatten()
        .filter_map(Value::as_str)
        .next()
        .map(str::to_string)
}

fn hints(method: &str) -> MethodHints {
    match method {
        "get" | "head" | "options" => MethodHints {
            read_only: true,
            destructive: false,
            idempotent: true,
        },
        "delete" => MethodHints {
            read_only: false,
            destructive: true,
            idempotent: true,
        },
        "put" => MethodHints {
            read_only: false,
            destructive: false,
            idempotent: true,
        },
        // post, patch
        _ => MethodHints {
            read_only: false,
            destructive: false,
            idempotent: false,
        },
    }
}

#[cfg(test)]
mod tests;
