//! Traces over OTLP, so a request can be followed from the edge into the backend (issue 21).
//!
//! With `--otlp-endpoint` (or `OTEL_EXPORTER_OTLP_ENDPOINT`), every `tracing` span goes out as an
//! OpenTelemetry span over OTLP/HTTP (protobuf, `<endpoint>/v1/traces`), batched on the SDK's own
//! thread (`OTEL_BSP_*` variables tune the batching). Without it nothing is set up and a request
//! costs no more than before.
//!
//! The request span ([`crate::request_log`]) is the server span: its parent is the span named by
//! the request's W3C `traceparent` (Envoy's, when the request came through the edge), so the two
//! join into one trace. It records the tenant ([`crate::gateway_auth`], only from a verified
//! assertion), and a tool call records its tool and outcome ([`CallSpan`]). The user (`sub`) is
//! never recorded: a trace store is usually read by more people than the data behind it.

use std::sync::OnceLock;

use opentelemetry::propagation::{Extractor, TextMapPropagator as _};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use rmcp::model::CallToolResponse;
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// The `service.name` of the backend's spans (`OTEL_SERVICE_NAME` overrides it).
pub const SERVICE_NAME: &str = "mcp-edge-backend";

/// Set once spans are exported: only then is `traceparent` read.
static PROPAGATOR: OnceLock<TraceContextPropagator> = OnceLock::new();

/// The exporter's provider; flushed and stopped by [`Exporting::shutdown`].
pub struct Exporting {
    provider: SdkTracerProvider,
}

impl Exporting {
    /// Sends the spans still batched and stops the exporter (at the end of `main`).
    pub fn shutdown(self) {
        if let Err(e) = self.provider.shutdown() {
            eprintln!("mcp-edge-backend: flushing traces: {e}");
        }
    }
}

/// The URL spans are posted to for an OTLP base URL: `<base>/v1/traces`, as the OTLP
/// specification derives it from `OTEL_EXPORTER_OTLP_ENDPOINT`.
pub fn traces_url(endpoint: &str) -> String {
    format!("{}/v1/traces", endpoint.trim_end_matches('/'))
}

/// The `tracing` layer that exports spans to `endpoint`, and the provider behind it.
pub fn otlp_layer<S>(
    endpoint: &str,
) -> anyhow::Result<(
    tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::SdkTracer>,
    Exporting,
)>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(traces_url(endpoint))
        .build()?;
    let resource = Resource::builder().with_service_name(SERVICE_NAME).build();
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build();
    let tracer = provider.tracer(SERVICE_NAME);
    let _ = PROPAGATOR.set(TraceContextPropagator::new());
    Ok((
        tracing_opentelemetry::layer().with_tracer(tracer),
        Exporting { provider },
    ))
}

/// When spans are exported: names `span` as the request's server span (`POST /mcp`, kind server)
/// and makes the span named by the request's `traceparent` (W3C trace context) its parent; a
/// missing or malformed `traceparent` leaves it a root. Otherwise nothing (the log lines stay as
/// they were: empty fields are not printed).
pub fn continue_trace<B>(span: &tracing::Span, request: &http::Request<B>) {
    if let Some(propagator) = PROPAGATOR.get() {
        span.record(
            "otel.name",
            format_args!("{} {}", request.method(), request.uri().path()),
        );
        span.record("otel.kind", "server");
        let parent = propagator.extract(&Headers(request.headers()));
        let _ = span.set_parent(parent);
    }
}

/// Records the HTTP status of the answer on the server span, when spans are exported (the log
/// line of the answer has it already).
pub fn record_status(span: &tracing::Span, status: u16) {
    if PROPAGATOR.get().is_some() {
        span.record("http.response.status_code", status);
    }
}

/// Request headers as the propagator reads them.
struct Headers<'a>(&'a http::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// The request's span, carried in the request's extensions so a tool call (which rmcp runs in a
/// task of its own, outside it) can record its tool and outcome there.
#[derive(Clone)]
pub struct CallSpan(pub tracing::Span);

impl CallSpan {
    /// The span of the HTTP request behind this call, if the request log put one there.
    pub fn of_call(context: &RequestContext<RoleServer>) -> Option<Self> {
        context
            .extensions
            .get::<http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<Self>())
            .cloned()
    }

    /// Records the tool's name and how its call ended: `ok`, `tool_error` (a result the tool
    /// marked as an error) or `error` with the JSON-RPC error's code (quota, scope, store...).
    pub fn record(&self, tool: &str, result: &Result<CallToolResponse, ErrorData>) {
        self.0.record("tool", tool);
        self.0.record("outcome", outcome(result));
        if let Err(e) = result {
            self.0.record("error_code", e.code.0);
        }
    }
}

/// The `outcome` a call's result is recorded as.
fn outcome(result: &Result<CallToolResponse, ErrorData>) -> &'static str {
    match result {
        Ok(CallToolResponse::Complete(r)) if r.is_error == Some(true) => "tool_error",
        Ok(_) => "ok",
        Err(_) => "error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traces_go_to_the_v1_traces_path_of_the_base_url() {
        assert_eq!(
            traces_url("http://127.0.0.1:4318"),
            "http://127.0.0.1:4318/v1/traces"
        );
        assert_eq!(
            traces_url("http://collector:4318/"),
            "http://collector:4318/v1/traces"
        );
    }

    #[test]
    fn outcomes_tell_a_tool_error_from_a_refusal() {
        let ok = rmcp::model::CallToolResult::success(vec![]);
        let failed = rmcp::model::CallToolResult::error(vec![]);
        assert_eq!(outcome(&Ok(CallToolResponse::Complete(ok))), "ok");
        assert_eq!(
            outcome(&Ok(CallToolResponse::Complete(failed))),
            "tool_error"
        );
        assert_eq!(
            outcome(&Err(ErrorData::internal_error("no", None))),
            "error"
        );
    }
}
