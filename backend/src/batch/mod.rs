//! JSON-RPC batches (MCP 2025-03-26), which rmcp's Streamable HTTP server cannot parse: it reads
//! one message per POST.
//!
//! Under 2025-03-26 (`MCP-Protocol-Version` absent or `2025-03-26`) the edge judges a batch element
//! by element, charges its length against the tenant's rate and forwards it; this layer serves it.
//! It sits behind [`crate::gateway_auth`], whose signature covers the whole batch body, so the
//! batch is verified once and then split ([`split`]): each element is sent to rmcp on its own,
//! with the request's headers and verified tenant, as if it were a single-message POST, and goes
//! through `call_tool` and metering like any other call. The answers ([`answer`]) are collected in
//! the batch's order into one JSON array; notifications and responses get none, and a batch with
//! nothing to answer gets 202 with no body. Elements run one after the other, at most
//! [`MAX_BATCH_ELEMENTS`] of them.
//!
//! Any other request passes through untouched: a batch under a later version, which forbids
//! batches, is refused by rmcp exactly as before.

pub mod answer;
pub mod split;

use axum::body::{Body, Bytes, to_bytes};
use axum::extract::Request;
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::gateway_auth::PROTOCOL_VERSION;
use crate::jsonrpc_error::{INVALID_REQUEST, error_object, error_response, json_response};
pub use split::{BatchRefusal, Element, MAX_BATCH_ELEMENTS};

/// The one protocol version whose batches the backend serves (also what an absent header means).
pub const BATCH_PROTOCOL_VERSION: &str = "2025-03-26";

/// The axum middleware: `axum::middleware::from_fn(serve_batches)`, inside the gateway check.
pub async fn serve_batches(request: Request, next: Next) -> Response {
    if !may_batch(&request) {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    // Already buffered (and capped) by the gateway check: this only takes the bytes back.
    let body = match to_bytes(body, mcp_edge_contract::limits::MAX_BODY_BYTES_CEILING).await {
        Ok(body) => body,
        Err(_) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                INVALID_REQUEST,
                "request body could not be read",
            );
        }
    };
    if !is_array(&body) {
        return next.run(Request::from_parts(parts, Body::from(body))).await;
    }
    match split::split(&body) {
        Ok(elements) => serve(&parts, elements, &next).await,
        Err(refusal) => {
            tracing::info!(reason = %refusal, "refused a batch");
            error_response(
                StatusCode::BAD_REQUEST,
                refusal.code(),
                &refusal.to_string(),
            )
        }
    }
}

/// A POST speaking 2025-03-26, the one version whose batches are served.
fn may_batch(request: &Request) -> bool {
    request.method() == Method::POST
        && request
            .headers()
            .get(PROTOCOL_VERSION)
            .is_none_or(|v| v.as_bytes() == BATCH_PROTOCOL_VERSION.as_bytes())
}

/// Whether a body is a JSON array (its first non-whitespace byte opens one).
fn is_array(body: &[u8]) -> bool {
    body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[')
}

/// Runs the elements in order and answers with the array of their answers (or 202).
async fn serve(parts: &Parts, elements: Vec<Element<'_>>, next: &Next) -> Response {
    tracing::debug!(elements = elements.len(), "serving a batch");
    let mut answers = Vec::with_capacity(elements.len());
    for element in elements {
        if let Some(answer) = run(parts, element, next).await {
            answers.push(answer);
        }
    }
    if answers.is_empty() {
        StatusCode::ACCEPTED.into_response()
    } else {
        json_response(StatusCode::OK, &Value::Array(answers))
    }
}

/// Runs one element; its answer, if JSON-RPC gives it one.
async fn run(parts: &Parts, element: Element<'_>, next: &Next) -> Option<Value> {
    match element {
        Element::Request { id, raw, .. } => {
            let response = next.clone().run(single(parts, raw.get())).await;
            Some(answer::answer_of(&id, response).await)
        }
        Element::Notification { raw } => {
            let response = next.clone().run(single(parts, raw.get())).await;
            if response.status() != StatusCode::ACCEPTED {
                tracing::debug!(status = %response.status(), "a notification in a batch was not accepted");
            }
            None
        }
        Element::Response => None,
        Element::Invalid { id } => Some(error_object(
            &id,
            INVALID_REQUEST,
            "Invalid Request: this batch element is not a JSON-RPC request, notification or response",
        )),
    }
}

/// The single-message POST of one element: the batch's head (headers, verified tenant), the
/// element's own bytes and length.
fn single(parts: &Parts, element: &str) -> Request {
    let mut parts = parts.clone();
    parts
        .headers
        .insert(header::CONTENT_LENGTH, HeaderValue::from(element.len()));
    Request::from_parts(
        parts,
        Body::from(Bytes::copy_from_slice(element.as_bytes())),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(version: Option<&str>) -> Request {
        let mut builder = Request::builder().method("POST").uri("/mcp");
        if let Some(v) = version {
            builder = builder.header(PROTOCOL_VERSION, v);
        }
        builder.body(Body::empty()).expect("request")
    }

    #[test]
    fn only_2025_03_26_posts_may_batch() {
        assert!(may_batch(&post(None)));
        assert!(may_batch(&post(Some("2025-03-26"))));
        for later in ["2025-06-18", "2025-11-25", "2026-07-28", "2024-11-05", ""] {
            assert!(!may_batch(&post(Some(later))), "{later}");
        }
        let get = Request::builder()
            .method("GET")
            .uri("/mcp")
            .body(Body::empty())
            .expect("request");
        assert!(!may_batch(&get));
    }

    #[test]
    fn arrays_are_told_by_their_first_byte() {
        assert!(is_array(b"[]"));
        assert!(is_array(b" \r\n\t[1]"));
        assert!(!is_array(b"{\"a\":[1]}"));
        assert!(!is_array(b""));
        assert!(!is_array(b"  "));
    }
}
