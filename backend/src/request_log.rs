//! One log line per HTTP request, inside a span that carries the gateway's request id.
//!
//! The span has `method`, `path`, and `request_id` and `tenant_id`, which [`crate::gateway_auth`]
//! records once the identity assertion checks out (the request id is the assertion's `jti`).
//! Everything logged while serving the request inherits them.

use std::time::Instant;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument as _;

pub async fn log_requests(request: Request, next: Next) -> Response {
    let span = tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        request_id = tracing::field::Empty,
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
