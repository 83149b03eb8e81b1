//! Schema touch-ups for tool inputs.
//!
//! An optional field is `Option<T>` with `#[serde(default)]` and `#[schemars(with = "T")]`, so its
//! schema is the plain `T` (an enum stays a flat `enum`, not `anyOf` with null); schemars then adds
//! `"default": null`, which contradicts the field's type. [`drop_null_defaults`] removes it.

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

#[cfg(test)]
mod tests {
    use super::*;

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
