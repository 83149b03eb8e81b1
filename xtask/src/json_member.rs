//! Replaces the value of one member of a JSON text in place — a `.json` file, or the plugin
//! configuration JSON embedded in envoy.yaml — so a generated value can live in a hand-written file
//! without reformatting (or losing the comments around) the rest of it.

use anyhow::{Result, bail};
use serde_json::Value;

/// `text` with the value of its one member named `key` replaced by `value`, written at the member's
/// indentation: an array of plain values on one line, anything else pretty-printed. Fails unless
/// exactly one `"key":` occurs and its value is an object or an array.
pub fn replace_value(text: &str, key: &str, value: &Value) -> Result<String> {
    let starts = value_starts(text, key);
    let [start] = starts[..] else {
        bail!("expected one \"{key}\" member, found {}", starts.len());
    };
    let Some(end) = container_end(text, start) else {
        bail!("the value of \"{key}\" is not a complete object or array");
    };
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let indent: String = text[line_start..]
        .chars()
        .take_while(|c| *c == ' ' || *c == '\t')
        .collect();
    Ok(format!(
        "{}{}{}",
        &text[..start],
        render(value, &indent)?,
        &text[end..]
    ))
}

/// The byte offset of the value of every `"key":` member in `text`.
fn value_starts(text: &str, key: &str) -> Vec<usize> {
    let quoted = format!("\"{key}\"");
    text.match_indices(&quoted)
        .filter_map(|(at, _)| {
            let rest = &text[at + quoted.len()..];
            let after_colon = rest.trim_start().strip_prefix(':')?;
            let value = after_colon.trim_start();
            Some(text.len() - value.len())
        })
        .collect()
}

/// The offset just past the object or array starting at `start`, skipping over strings.
fn container_end(text: &str, start: usize) -> Option<usize> {
    if !matches!(text[start..].chars().next(), Some('{' | '[')) {
        return None;
    }
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for (offset, c) in text[start..].char_indices() {
        match (in_string, c) {
            (true, _) if escaped => escaped = false,
            (true, '\\') => escaped = true,
            (true, '"') => in_string = false,
            (true, _) => {}
            (false, '"') => in_string = true,
            (false, '{' | '[') => depth += 1,
            (false, '}' | ']') => {
                depth -= 1;
                if depth == 0 {
                    return Some(start + offset + 1);
                }
            }
            (false, _) => {}
        }
    }
    None
}

/// `value` as it goes into a member whose line is indented by `indent`.
fn render(value: &Value, indent: &str) -> Result<String> {
    if let Value::Array(items) = value
        && items
            .iter()
            .all(|item| !item.is_array() && !item.is_object())
    {
        let items: Vec<String> = items.iter().map(Value::to_string).collect();
        return Ok(format!("[{}]", items.join(", ")));
    }
    let pretty = serde_json::to_string_pretty(value)?;
    Ok(pretty.replace('\n', &format!("\n{indent}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TEXT: &str = r#"# a comment
  value: |
    {
      "name": "tool_scopes",
      "tool_scopes": {
        "old": "x}]\"{"
      },
      "scopes": ["a"],
      "after": 1
    }
"#;

    #[test]
    fn replaces_only_the_member_and_keeps_the_indentation() {
        let out = replace_value(TEXT, "tool_scopes", &json!({"a": "r", "b": "w"})).expect("ok");
        assert_eq!(
            out,
            TEXT.replace(
                "{\n        \"old\": \"x}]\\\"{\"\n      }",
                "{\n        \"a\": \"r\",\n        \"b\": \"w\"\n      }"
            )
        );
        let out = replace_value(&out, "scopes", &json!(["a", "b:c"])).expect("ok");
        assert!(out.contains("\"scopes\": [\"a\", \"b:c\"],\n"), "{out}");
        assert!(out.starts_with("# a comment\n") && out.ends_with("\"after\": 1\n    }\n"));
    }

    #[test]
    fn refuses_missing_repeated_and_plain_members() {
        assert!(replace_value(TEXT, "missing", &json!([])).is_err());
        assert!(replace_value(TEXT, "after", &json!([])).is_err());
        let twice = format!("{TEXT}{TEXT}");
        assert!(replace_value(&twice, "scopes", &json!([])).is_err());
        assert!(replace_value("{\"scopes\": [\"a\"", "scopes", &json!([])).is_err());
    }
}
