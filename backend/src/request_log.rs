//! One log line per HTTP request, inside a span that carries the gateway's request id.
//!
//! The span has `method`, `path`, `request_id` (from `x-mcp-request-id`, as sent; on /mcp it is
//! verified by [`crate::gateway_auth`] right after) and `tenant_id`, which the gateway layer records
//! once the signature checks out. Everything logged while serving the request inherits them.

use std::time::Instant;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use mcp_edge_contract::headers;
use tracing::Instrument as _;

pub async fn log_requests(request: Request, next: Next) -> Response {
    let request_id = request
        .headers()
        .get(headers::REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_owned();
    let span = tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        request_id = %request_id,
        tenant_id = tracing::field::Empty,
    );
    let started = Instant::now();
    async move {
        let response = next.run(request).await;
        tracing::info!(
            status = response.status().as_u16(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "request served"
        );
        response
    }
    .instrument(span)
    .await
}
