//! A JSON Schema from the document made self-contained for a tool: every `$ref` replaced by what
//! it points at (depth-bounded, so a recursive schema is refused rather than expanded forever),
//! and the members a side never sends removed: `readOnly` ones from what the agent sends (the API
//! sets them), `writeOnly` ones from what it gets back.

use serde_json::{Map, Value};

use super::refs::Resolver;

/// Nesting levels a schema may have once its references are inlined.
const MAX_DEPTH: usize = 32;

/// The schema of a tool argument: references inlined, `readOnly` members dropped.
pub fn for_input(resolver: &Resolver<'_>, schema: &Value) -> Result<Value, String> {
    inline(resolver, schema, "readOnly", 0)
}

/// The schema of a tool's answer: references inlined, `writeOnly` members dropped.
pub fn for_output(resolver: &Resolver<'_>, schema: &Value) -> Result<Value, String> {
    inline(resolver, schema, "writeOnly", 0)
}

fn inline(
    resolver: &Resolver<'_>,
    schema: &Value,
    hidden: &str,
    depth: usize,
) -> Result<Value, String> {
    if depth > MAX_DEPTH {
        return Err(format!(
            "a schema nested deeper than {MAX_DEPTH} levels (recursive?)"
        ));
    }
    let schema = resolver.resolve(schema)?;
    Ok(match schema {
        Value::Object(map) => {
            let mut out = Map::new();
            let mut dropped = Vec::new();
            for (key, value) in map {
                let value = match key.as_str() {
                    // Member schemas: drop the hidden ones, inline the rest.
                    "properties" => {
                        let mut props = Map::new();
                        for (name, member) in value.as_object().cloned().unwrap_or_default() {
                            let member = inline(resolver, &member, hidden, depth + 1)?;
                            if member.get(hidden) == Some(&Value::Bool(true)) {
                                dropped.push(name);
                            } else {
                                props.insert(name, member);
                            }
                        }
                        Value::Object(props)
                    }
                    // Examples and defaults are data, not schemas.
                    "example" | "examples" | "default" | "enum" | "const" => value,
                    _ => inline(resolver, &value, hidden, depth + 1)?,
                };
                out.insert(key, value);
            }
            if let Some(Value::Array(required)) = out.get_mut("required") {
                required.retain(|r| r.as_str().is_none_or(|r| !dropped.iter().any(|d| d == r)));
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|item| inline(resolver, item, hidden, depth + 1))
                .collect::<Result<_, _>>()?,
        ),
        other => other,
    })
}
