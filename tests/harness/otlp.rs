//! An OTLP trace receiver for the tracing tests, built on the official OpenTelemetry protobuf
//! definitions (`opentelemetry-proto`: its messages and its tonic `TraceService` server).
//!
//! The OpenTelemetry Collector cannot be installed from the registries this project uses (it is a
//! Go program, in none of Debian, PyPI, npm or crates.io), so the tests receive spans themselves:
//! OTLP/gRPC (`TraceService/Export`, what Envoy's OpenTelemetry tracer sends) on one port and
//! OTLP/HTTP with protobuf bodies (`POST /v1/traces`, what the backend's `--otlp-endpoint` sends)
//! on another, the Collector's two default receivers. Every span received is kept, flattened, for
//! the test to read; nothing is checked or answered differently from a Collector.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use axum::body::Bytes;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use prost::Message as _;

use crate::procs::free_port;

/// One span as received, with its service and attributes as strings.
#[derive(Debug, Clone)]
pub struct ReceivedSpan {
    /// The resource's `service.name`.
    pub service: String,
    pub name: String,
    /// Hex, as in `traceparent`.
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a root span.
    pub parent_span_id: String,
    /// OTLP's `SpanKind` number (2 = server, 3 = client).
    pub kind: i32,
    pub attributes: BTreeMap<String, String>,
    /// How it arrived: `grpc` or `http`.
    pub via: &'static str,
}

impl ReceivedSpan {
    /// The attribute `key`, if the span has it.
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }
}

type Spans = Arc<Mutex<Vec<ReceivedSpan>>>;

/// A running receiver; its servers stop with its runtime when it is dropped.
pub struct OtlpReceiver {
    /// OTLP/gRPC (Envoy's `otel_collector` cluster).
    pub grpc_port: u16,
    /// OTLP/HTTP: the base URL is `http://127.0.0.1:<http_port>` (the backend's `--otlp-endpoint`).
    pub http_port: u16,
    spans: Spans,
    _runtime: tokio::runtime::Runtime,
}

impl OtlpReceiver {
    pub fn start() -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        let spans = Spans::default();
        let grpc_port = free_port()?;
        let http_port = free_port()?;
        let grpc = runtime.block_on(tokio::net::TcpListener::bind(("127.0.0.1", grpc_port)))?;
        let http = runtime.block_on(tokio::net::TcpListener::bind(("127.0.0.1", http_port)))?;
        let service = TraceServiceServer::new(GrpcReceiver(spans.clone()));
        runtime.spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(grpc)),
        );
        let http_spans = spans.clone();
        let app = axum::Router::new().route(
            "/v1/traces",
            axum::routing::post(move |body: Bytes| receive_http(http_spans.clone(), body)),
        );
        runtime.spawn(async move { axum::serve(http, app).await });
        Ok(Self {
            grpc_port,
            http_port,
            spans,
            _runtime: runtime,
        })
    }

    /// The backend's `--otlp-endpoint`.
    pub fn http_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.spans.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// The spans of trace `trace_id` once `done` holds for them, or an error naming `what` (with
    /// every span received) after `timeout`. Exporters send in batches: the spans of one request
    /// arrive apart, so the test says what it waits for.
    pub fn wait_for_trace(
        &self,
        trace_id: &str,
        what: &str,
        timeout: Duration,
        done: impl Fn(&[ReceivedSpan]) -> bool,
    ) -> Result<Vec<ReceivedSpan>> {
        let deadline = Instant::now() + timeout;
        loop {
            let trace: Vec<ReceivedSpan> = self
                .spans()
                .into_iter()
                .filter(|s| s.trace_id == trace_id)
                .collect();
            if done(&trace) {
                return Ok(trace);
            }
            if Instant::now() > deadline {
                bail!(
                    "no {what} in trace {trace_id} after {timeout:?}; spans received: {:#?}",
                    self.spans()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

struct GrpcReceiver(Spans);

#[tonic::async_trait]
impl TraceService for GrpcReceiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        keep(&self.0, request.into_inner(), "grpc");
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

async fn receive_http(spans: Spans, body: Bytes) -> axum::response::Response {
    match ExportTraceServiceRequest::decode(body) {
        Ok(request) => {
            keep(&spans, request, "http");
            (
                [(header::CONTENT_TYPE, "application/x-protobuf")],
                ExportTraceServiceResponse::default().encode_to_vec(),
            )
                .into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
}

fn keep(spans: &Spans, request: ExportTraceServiceRequest, via: &'static str) {
    let mut received = Vec::new();
    for resource_spans in request.resource_spans {
        let service = resource_spans
            .resource
            .as_ref()
            .and_then(|r| {
                r.attributes
                    .iter()
                    .find(|kv| kv.key == "service.name")
                    .map(value_text)
            })
            .unwrap_or_default();
        for scope in resource_spans.scope_spans {
            for span in scope.spans {
                received.push(ReceivedSpan {
                    service: service.clone(),
                    name: span.name,
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                    kind: span.kind,
                    attributes: span
                        .attributes
                        .iter()
                        .map(|kv| (kv.key.clone(), value_text(kv)))
                        .collect(),
                    via,
                });
            }
        }
    }
    if let Ok(mut all) = spans.lock() {
        all.extend(received);
    }
}

/// An attribute's value as text (numbers and booleans as they print).
fn value_text(kv: &KeyValue) -> String {
    match kv.value.as_ref().and_then(|v: &AnyValue| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A W3C `traceparent` for a fresh trace (sampled): the trace id the test then looks for.
pub fn new_traceparent() -> Result<(String, String)> {
    let mut bytes = [0u8; 24];
    getrandom(&mut bytes)?;
    let trace_id = hex(&bytes[..16]);
    let parent_id = hex(&bytes[16..]);
    Ok((format!("00-{trace_id}-{parent_id}-01"), trace_id))
}

fn getrandom(buf: &mut [u8]) -> Result<()> {
    use std::io::Read as _;
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(buf))
        .context("reading /dev/urandom")
}
