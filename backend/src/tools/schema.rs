//! Schema touch-ups for tool inputs.
//!
//! An optional field is `Option<T>` with `#[serde(default)]` and `#[schemars(with = "T")]`, so its
//! schema is the plain `T` (an enum stays a flat `enum`, not `anyOf` with null); schemars then adds
//! `"default": null`, which contradicts the field's type. [`drop_null_defaults`] removes it.
//!
//! schemars also marks Rust integer types with formats such as `"uint64"`, which JSON Schema does
//! not define: strict validators in MCP clients (the TypeScript SDK's Ajv) warn about every one.
//! [`drop_integer_formats`] removes them from a tool's schemas (keeping `"minimum": 0` for unsigned).

/// Removes `"default": null` from every property of an object schema.
pub fn drop_null_defaults(schema: &mut schemars::Schema) {
    if let Some(properties) = schema
        .get_mut("properties")
        .and_then(serde_json::Value::as_object_mut)
    {
        for property in properties.values_mut() {
            if let Some(property) = property.as_object_mut()
                && property
                    .get("default")
                    .is_some_and(serde_json::Value::is_null)
            {
                property.remove("default");
            }
        }
    }
}

fn is_rust_integer_format(format: &str) -> bool {
    let digits = format
        .strip_prefix("uint")
        .or_else(|| format.strip_prefix("int"))
        .unwrap_or("x");
    digits.bytes().all(|b| b.is_ascii_digit())
}

fn strip_formats(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            let rust_format = map
                .get("format")
                .and_then(serde_json::Value::as_str)
                .filter(|f| is_rust_integer_format(f))
                .map(str::to_string);
            if let Some(format) = rust_format {
                map.remove("format");
                if format.starts_with('u') && !map.contains_key("minimum") {
                    map.insert("minimum".into(), serde_json::json!(0));
                }
            }
            map.values_mut().for_each(strip_formats);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(strip_formats),
        _ => {}
    }
}

/// Removes schemars' Rust integer formats from a tool's input and output schemas.
pub fn drop_integer_formats(tool: &mut rmcp::model::Tool) {
    let tidy = |schema: &mut std::sync::Arc<rmcp::model::JsonObject>| {
        let mut value = serde_json::Value::Object((**schema).clone());
        strip_formats(&mut value);
        if let serde_json::Value::Object(map) = value {
            *schema = std::sync::Arc::new(map);
        }
    };
    tidy(&mut tool.input_schema);
    if let Some(output) = tool.output_schema.as_mut() {
        tidy(output);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_formats_go_and_unsigned_keep_a_minimum() {
        let mut v = serde_json::json!({
            "properties": {
                "a": {"type": "integer", "format": "uint64", "minimum": 0},
                "b": {"type": "integer", "format": "int32"},
                "c": {"type": "integer", "format": "uint8"},
                "d": {"type": "string", "format": "date"},
                "e": {"items": {"type": "integer", "format": "uint"}}
            }
        });
        strip_formats(&mut v);
        assert_eq!(
            v,
            serde_json::json!({
                "properties": {
                    "a": {"type": "integer", "minimum": 0},
                    "b": {"type": "integer"},
                    "c": {"type": "integer", "minimum": 0},
                    "d": {"type": "string", "format": "date"},
                    "e": {"items": {"type": "integer", "minimum": 0}}
                }
            })
        );
    }

    #[test]
    fn no_tool_schema_keeps_a_rust_integer_format() {
        for tool in super::super::ProjectTools::catalogue() {
            let text = serde_json::to_string(&tool).unwrap_or_default();
            for f in ["\"uint", "\"int8", "\"int16", "\"int32", "\"int64"] {
                assert!(
                    !text.contains(&format!("\"format\":{f}")),
                    "{}: {text}",
                    tool.name
                );
            }
        }
    }

    #[test]
    fn only_null_defaults_go() {
        let mut schema = schemars::json_schema!({
            "type": "object",
            "properties": {
                "a": {"type": "string", "default": null},
                "b": {"type": "boolean", "default": false}
            }
        });
        drop_null_defaults(&mut schema);
        assert_eq!(
            schema.as_value()["properties"],
            serde_json::json!({"a": {"type": "string"}, "b": {"type": "boolean", "default": false}})
        );
    }
}
