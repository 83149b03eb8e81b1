//! Reads rmcp's HTTP answer to one batch element as that element's JSON-RPC answer.
//!
//! rmcp runs in stateless JSON-response mode, so a request is normally answered with one
//! `application/json` JSON-RPC message. It falls back to an event stream when a handler sends
//! something before its result; then the answer is the stream's message with the element's id.
//! Anything else (a plain-text refusal such as 406 or 415, an unreadable body) becomes a JSON-RPC
//! error with the element's id, so that one element's failure never costs the others theirs.

use axum::http::{StatusCode, header};
use axum::response::Response;
use http_body_util::{BodyExt as _, LengthLimitError, Limited};
use serde_json::Value;

use crate::jsonrpc_error::{INTERNAL_ERROR, INVALID_REQUEST, error_object};

/// The most bytes of one element's answer the backend reads; every tool's result is paged far
/// below this.
const MAX_ANSWER_BYTES: usize = mcp_edge_contract::limits::MAX_BODY_BYTES_CEILING;

/// The most characters of a non-JSON refusal quoted in the error message.
const MAX_QUOTED_CHARS: usize = 200;

/// The JSON-RPC answer to the request `id`, from rmcp's HTTP response to it.
pub async fn answer_of(id: &Value, response: Response) -> Value {
    answer_within(id, response, MAX_ANSWER_BYTES)
        .await
        .unwrap_or_else(|TooLarge| {
            error_object(id, INTERNAL_ERROR, "the answer to this call is too large")
        })
}

/// The answer to one element was larger than the bytes it was allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLarge;

/// [`answer_of`], serialised, when it takes at most `limit` bytes; reading stops at the limit.
pub async fn answer_within(
    id: &Value,
    response: Response,
    limit: usize,
) -> Result<Value, TooLarge> {
    let status = response.status();
    let media = media_type(&response);
    let body = match Limited::new(response.into_body(), limit).collect().await {
        Ok(body) => body.to_bytes(),
        Err(e) if e.is::<LengthLimitError>() => return Err(TooLarge),
        Err(e) => {
            tracing::warn!(error = %e, "could not read the answer to a batch element");
            return Ok(error_object(
                id,
                INTERNAL_ERROR,
                "the answer to this call could not be read",
            ));
        }
    };
    let message = match media.as_str() {
        "application/json" => serde_json::from_slice::<Value>(&body).ok(),
        "text/event-stream" => from_event_stream(id, &body),
        _ => None,
    };
    Ok(match message {
        Some(Value::Object(mut object)) => {
            // rmcp answers some refusals with `id: null`; in a batch the id tells them apart.
            if object.get("id").is_none_or(Value::is_null) {
                object.insert("id".into(), id.clone());
            }
            Value::Object(object)
        }
        _ => refusal(id, status, &body),
    })
}

/// The media type of a response, lower case, without parameters.
fn media_type(response: &Response) -> String {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// The JSON-RPC response or error with `id` among the `data:` lines of an event stream.
fn from_event_stream(id: &Value, body: &[u8]) -> Option<Value> {
    let text = std::str::from_utf8(body).ok()?.replace("\r\n", "\n");
    text.split("\n\n")
        .filter_map(|event| {
            let data: Vec<&str> = event
                .lines()
                .filter_map(|line| line.strip_prefix("data:"))
                .map(|d| d.strip_prefix(' ').unwrap_or(d))
                .collect();
            serde_json::from_str::<Value>(&data.join("\n")).ok()
        })
        .find(|message| {
            message.get("id") == Some(id)
                && (message.get("result").is_some() || message.get("error").is_some())
        })
}

/// A JSON-RPC error for an answer that carried none: rmcp's words, with the HTTP status.
fn refusal(id: &Value, status: StatusCode, body: &[u8]) -> Value {
    let text: String = String::from_utf8_lossy(body)
        .chars()
        .take(MAX_QUOTED_CHARS)
        .collect();
    let (code, what) = if status.is_client_error() {
        (INVALID_REQUEST, "was refused")
    } else {
        (INTERNAL_ERROR, "failed")
    };
    let detail = if text.trim().is_empty() {
        String::new()
    } else {
        format!(": {}", text.trim())
    };
    error_object(
        id,
        code,
        &format!("this call {what} (HTTP {}){detail}", status.as_u16()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use serde_json::json;

    fn response(status: u16, content_type: Option<&str>, body: &str) -> Response {
        let mut builder = Response::builder().status(status);
        if let Some(ct) = content_type {
            builder = builder.header(header::CONTENT_TYPE, ct);
        }
        builder.body(Body::from(body.to_owned())).expect("response")
    }

    #[tokio::test]
    async fn a_json_answer_is_taken_as_is() {
        let body = r#"{"jsonrpc":"2.0","id":5,"result":{"ok":true}}"#;
        let got = answer_of(
            &json!(5),
            response(200, Some("application/json; charset=utf-8"), body),
        )
        .await;
        assert_eq!(got, json!({"jsonrpc":"2.0","id":5,"result":{"ok":true}}));
    }

    #[tokio::test]
    async fn a_refusal_without_an_id_gets_the_elements_id() {
        let body = r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"no"}}"#;
        let got = answer_of(&json!("x"), response(400, Some("application/json"), body)).await;
        assert_eq!(got["id"], "x");
        assert_eq!(got["error"]["code"], -32600);
    }

    #[tokio::test]
    async fn an_event_stream_yields_the_message_with_the_id() {
        let body = "event: message\r\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{}}\r\n\r\n\
                    id: 1\ndata: {\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{}}\n\n";
        let got = answer_of(&json!(2), response(200, Some("text/event-stream"), body)).await;
        assert_eq!(got, json!({"jsonrpc":"2.0","id":2,"result":{}}));
        let none = answer_of(&json!(3), response(200, Some("text/event-stream"), body)).await;
        assert_eq!(none["error"]["code"], INTERNAL_ERROR, "{none}");
    }

    #[tokio::test]
    async fn reading_stops_at_the_limit() {
        let body = r#"{"jsonrpc":"2.0","id":5,"result":{"ok":true}}"#;
        let json = || response(200, Some("application/json"), body);
        assert_eq!(
            answer_within(&json!(5), json(), body.len() - 1).await,
            Err(TooLarge)
        );
        let got = answer_within(&json!(5), json(), body.len()).await;
        assert_eq!(got.expect("fits")["result"]["ok"], true);
    }

    #[tokio::test]
    async fn plain_text_refusals_become_errors_with_the_id() {
        let got = answer_of(
            &json!(7),
            response(415, Some("text/plain"), "fail to deserialize request body"),
        )
        .await;
        assert_eq!(got["id"], 7);
        assert_eq!(got["error"]["code"], INVALID_REQUEST);
        assert_eq!(
            got["error"]["message"],
            "this call was refused (HTTP 415): fail to deserialize request body"
        );
        let got = answer_of(&json!(8), response(500, None, "")).await;
        assert_eq!(got["error"]["code"], INTERNAL_ERROR);
        assert_eq!(got["error"]["message"], "this call failed (HTTP 500)");
        let got = answer_of(&json!(9), response(202, None, "")).await;
        assert_eq!(
            got["error"]["code"], INTERNAL_ERROR,
            "a request needs an answer"
        );
        let long = "x".repeat(1000);
        let got = answer_of(&json!(1), response(400, None, &long)).await;
        let message = got["error"]["message"].as_str().unwrap_or_default();
        assert!(message.len() < 300, "{message}");
    }
}
