//! The API's answer, or the failure to get one, as the MCP tool result an agent can act on: pure.
//!
//! - 2xx: the JSON body as structured content (an object as is, anything else as `result`) and as
//!   text; the response headers the document declares (`X-Total-Count`, `Link`, …) as a second text
//!   block, since agents page with them.
//! - 401/403: `isError`, "the API refused this tenant", with the API's message.
//! - other 4xx: `isError`, the API's message (`message`, `error`, `detail` or `title` of a JSON
//!   body, else its text), so the agent can correct the call.
//! - 5xx, a timeout, an unreachable API: `isError`, said to be retryable (a write may or may not
//!   have happened: said so too).
//! - An answer over the size cap: `isError`, naming the cap.

use rmcp::model::{CallToolResult, ContentBlock};
use serde_json::{Value, json};

/// The longest excerpt of an API's error text quoted to the agent.
const MAX_QUOTED: usize = 1000;

/// What the API answered.
#[derive(Debug, Clone)]
pub struct HttpAnswer<'a> {
    pub status: u16,
    pub content_type: Option<&'a str>,
    pub body: &'a [u8],
    /// The declared response headers it carried, by name.
    pub headers: Vec<(String, String)>,
}

/// Why there is no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoAnswer {
    /// The call's arguments do not fit the operation.
    Arguments(String),
    /// No answer within the deadline.
    Timeout { ms: u64 },
    /// No connection, or it broke.
    Unreachable(String),
    /// The answer is larger than the cap.
    TooLarge { cap: usize },
    /// The backend could not get its own credentials for the API.
    Credentials(String),
}

/// The tool result of an answer of the API to `method`.
pub fn from_answer(api: &str, method: &str, answer: &HttpAnswer<'_>) -> CallToolResult {
    let json = is_json(answer.content_type)
        .then(|| serde_json::from_slice::<Value>(answer.body).ok())
        .flatten();
    let status = answer.status;
    if (200..300).contains(&status) {
        let structured = match json {
            Some(Value::Object(map)) => Value::Object(map),
            Some(other) => json!({ "result": other }),
            None if answer.body.is_empty() => json!({}),
            None => json!({ "result": String::from_utf8_lossy(answer.body) }),
        };
        let mut result = CallToolResult::structured(structured);
        if !answer.headers.is_empty() {
            let lines: Vec<String> = answer
                .headers
                .iter()
                .map(|(name, value)| format!("{name}: {value}"))
                .collect();
            result.content.push(ContentBlock::text(format!(
                "Response headers:\n{}",
                lines.join("\n")
            )));
        }
        return result;
    }
    let said = json
        .as_ref()
        .and_then(api_message)
        .unwrap_or_else(|| quote(&String::from_utf8_lossy(answer.body)));
    let said = if said.is_empty() {
        String::new()
    } else {
        format!(": {said}")
    };
    let text = match status {
        401 | 403 => format!(
            "The API {api} refused this tenant (HTTP {status}){said}. Retrying will not help; \
the tenant's access to this API must change."
        ),
        300..=399 => format!(
            "The API {api} answered with a redirect (HTTP {status}), which this tool does not \
follow; the source's base_url may be out of date"
        ),
        400..=499 => format!("The API {api} refused the call (HTTP {status}){said}"),
        _ => format!(
            "The API {api} failed (HTTP {status}){said}. This is retryable: try again later{}.",
            maybe_done(method)
        ),
    };
    CallToolResult::error(vec![ContentBlock::text(text)])
}

/// The tool result when there is no answer.
pub fn from_failure(api: &str, method: &str, failure: &NoAnswer) -> CallToolResult {
    let text = match failure {
        NoAnswer::Arguments(reason) => format!("Invalid arguments: {reason}"),
        NoAnswer::Timeout { ms } => format!(
            "The API {api} did not answer within {ms} ms. This is retryable: try again later{}.",
            maybe_done(method)
        ),
        NoAnswer::Unreachable(reason) => format!(
            "The API {api} could not be reached ({reason}). This is retryable: try again later{}.",
            maybe_done(method)
        ),
        NoAnswer::TooLarge { cap } => format!(
            "The API {api} answered with more than {cap} bytes, more than this tool returns; \
narrow the request (filters, a smaller page)."
        ),
        NoAnswer::Credentials(reason) => format!(
            "The backend could not get its credentials for the API {api} ({reason}). This is \
retryable: try again later."
        ),
    };
    CallToolResult::error(vec![ContentBlock::text(text)])
}

/// For a method that changes something, the caveat that it may have.
fn maybe_done(method: &str) -> &'static str {
    match method {
        "GET" | "HEAD" | "OPTIONS" => "",
        _ => " (the change may or may not have been made: check before repeating it)",
    }
}

fn is_json(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|ct| {
        let essence = ct.split(';').next().unwrap_or("").trim();
        essence.eq_ignore_ascii_case("application/json")
            || essence.to_ascii_lowercase().ends_with("+json")
    })
}

/// The message of a JSON error body, in the members APIs commonly use.
fn api_message(body: &Value) -> Option<String> {
    ["message", "error", "detail", "title", "error_description"]
        .iter()
        .find_map(|key| match body.get(key) {
            Some(Value::String(s)) => Some(quote(s)),
            Some(Value::Object(inner)) => inner.get("message").and_then(Value::as_str).map(quote),
            _ => None,
        })
        .or_else(|| {
            let text = body.to_string();
            (text != "{}").then(|| quote(&text))
        })
}

/// `text` trimmed and cut to [`MAX_QUOTED`] bytes on a character boundary.
fn quote(text: &str) -> String {
    let text = text.trim();
    if text.len() <= MAX_QUOTED {
        return text.to_string();
    }
    let mut end = MAX_QUOTED;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}
