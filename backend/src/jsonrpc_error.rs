//! JSON-RPC error bodies for answers the backend gives before rmcp sees a request.
//!
//! Every error a client sees is a JSON-RPC error object (see docs/errors.md). Codes of our own lie in the implementation-defined range and avoid the ones SDKs use
//! (-32000, -32001).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// JSON-RPC "Invalid Request": used for a body over the size cap.
pub use mcp_edge_contract::codes::INVALID_REQUEST;
/// The gateway signature or trusted headers are missing, malformed, repeated, stale or do not verify.
pub use mcp_edge_contract::codes::UNAUTHORIZED as GATEWAY_AUTH_FAILED;

/// An HTTP response with a JSON-RPC error body carrying `id: null`.
pub fn error_response(status: StatusCode, code: i32, message: &str) -> Response {
    let body = serde_json::json!({
        "jsonrpc": "2.0",
        "id": null,
        "error": { "code": code, "message": message },
    });
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
