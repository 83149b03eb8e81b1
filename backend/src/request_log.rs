//! One log line per HTTP request, inside a span that carries the gateway's request id.
//!
//! The span has `method`, `path`, and `request_id` and `tenant_id`, which [`crate::gateway_auth`]
//! records once the identity assertion checks out (the request id is the assertion's `jti`).
//! Everything logged while serving the request inherits them.
//!
//! The same span is the request's server span when traces are exported ([`crate::telemetry`]):
//! its parent comes from `traceparent`, it gets the answer's status, and a tool call records
//! `tool`, `outcome` and `error_code` in it (through the [`CallSpan`] put into the request's
//! extensions).

use std::time::Instant;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument as _;

use crate::telemetry::{CallSpan, continue_trace, record_status};

pub async fn log_requests(mut request: Request, next: Next) -> Response {
    let span = tracing::info_span!(
        "request",
        otel.name = tracing::field::Empty,
        otel.kind = tracing::field::Empty,
        method = %request.method(),
        path = %request.uri().path(),
        request_id = tracing::field::Empty,
        tenant_id = tracing::field::Empty,
        tool = tracing::field::Empty,
        outcome = tracing::field::Empty,
        error_code = tracing::field::Empty,
        http.response.status_code = tracing::field::Empty,
    );
    continue_trace(&span, &request);
    request.extensions_mut().insert(CallSpan(span.clone()));
    let started = Instant::now();
    async move {
        let response = next.run(request).await;
        record_status(&tracing::Span::current(), response.status().as_u16());
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
