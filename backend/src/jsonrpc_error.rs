//! JSON-RPC error bodies for answers the backend gives before rmcp sees a request.
//!
//! Every error a client sees is a JSON-RPC error object (see docs/errors.md). Codes of our own lie in the implementation-defined range and avoid the ones SDKs use
//! (-32000, -32001).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// JSON-RPC "Invalid Request": used for a body over the size cap.
pub use mcp_edge_contract::codes::INVALID_REQUEST;
/// JSON-RPC "Parse error": a batch body that is not JSON.
pub use mcp_edge_contract::codes::PARSE_ERROR;
/// The gateway signature or trusted headers are missing, malformed, repeated, stale or do not verify.
pub use mcp_edge_contract::codes::UNAUTHORIZED as GATEWAY_AUTH_FAILED;

/// JSON-RPC "Internal error": a batch element whose answer the backend could not read.
pub const INTERNAL_ERROR: i32 = -32603;

/// A JSON-RPC error object answering the request `id` (`Value::Null` when unknown).
pub fn error_object(id: &Value, code: i32, message: &str) -> Value {
    serde_json::json!({
        "jsonrpc": "2.0",
        "id": id,
        "error": { "code": code, "message": message },
    })
}

/// An HTTP response with a JSON body.
pub fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// An HTTP response with a JSON-RPC error body carrying `id: null`.
pub fn error_response(status: StatusCode, code: i32, message: &str) -> Response {
    json_response(status, &error_object(&Value::Null, code, message))
}
