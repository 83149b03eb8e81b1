//! Traces and metrics of the running stack (issue 21 section 3).
//!
//! Traces: this binary's Envoy keeps envoy.yaml's OpenTelemetry tracing on, its `otel_collector`
//! cluster pointed at an OTLP receiver the test runs (`harness/otlp.rs`: the official protobuf
//! definitions; the Collector itself cannot be installed here), and the backend exports to the
//! same receiver (`--otlp-endpoint`). Each case sends its own `traceparent` and reads the spans of
//! that trace: one trace id from the client through Envoy into the backend, the backend's span a
//! child of Envoy's, tenant, tool and outcome on both, and refused requests traced at the edge
//! only, without an identity the token did not vouch for.
//!
//! Metrics: every metric the Grafana dashboard (docs/observability/grafana-dashboard.json) queries
//! exists on the stack's endpoints that docs/observability/prometheus.yml scrapes, after a few
//! requests that move each counter (an allowed call, a denial, a 429).

use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use mcp_edge_tests::client::*;
use mcp_edge_tests::otlp::{OtlpReceiver, ReceivedSpan, new_traceparent};
use mcp_edge_tests::procs::free_port;
use mcp_edge_tests::runner::Case;
use mcp_edge_tests::stack::{Stack, StackOptions};
use reqwest::blocking::Response;
use serde_json::json;

mod observability_metrics;
use observability_metrics::every_metric_the_dashboard_queries_exists_on_the_stack;

/// The receiver every span of this binary's stack goes to.
static RECEIVER: OnceLock<OtlpReceiver> = OnceLock::new();
/// The backend's metrics listener (`--metrics-addr`).
static BACKEND_METRICS_PORT: OnceLock<u16> = OnceLock::new();

/// How long spans may take to arrive: both exporters send as spans end (the harness sets Envoy's
/// tracer to flush every span and the backend's batch delay to 100 ms); this bounds a failure.
const SPANS_ARRIVE_WITHIN: Duration = Duration::from_secs(30);

const EDGE_SERVICE: &str = "mcp-edge";
/// OTLP's `SPAN_KIND_SERVER`.
const SERVER_KIND: i32 = 2;
const BACKEND_SERVICE: &str = "mcp-edge-backend";

fn receiver() -> Result<&'static OtlpReceiver> {
    RECEIVER.get().context("the OTLP receiver was not started")
}

/// A `tools/call` of `tool` through the edge to the backend, in the trace `traceparent` names.
fn traced_call(s: &Stack, token: &str, tool: &str, traceparent: &str) -> Result<Response> {
    Ok(http()
        .post(&s.mcp_url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("authorization", format!("Bearer {token}"))
        .header("traceparent", traceparent)
        .body(
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                   "params": {"name": tool, "arguments": {}}})
            .to_string(),
        )
        .send()?)
}

fn of_service<'a>(trace: &'a [ReceivedSpan], service: &str) -> Vec<&'a ReceivedSpan> {
    trace.iter().filter(|s| s.service == service).collect()
}

/// The edge's span that carries the filter's verdict (its `outcome` tag is set).
fn edge_verdict_span(trace: &[ReceivedSpan]) -> Option<&ReceivedSpan> {
    trace
        .iter()
        .find(|s| s.service == EDGE_SERVICE && s.attr("outcome").is_some_and(|o| !o.is_empty()))
}

/// Fails if the backend has a span of trace `trace_id`, judged after an allowed call made later
/// has its backend span in: the backend exports its spans in the order they end, so a span of
/// the earlier request would have arrived by then. No timed wait.
fn never_reached_the_backend(s: &Stack, trace_id: &str) -> Result<()> {
    marker_call_traced(s)?;
    let reached: Vec<ReceivedSpan> = receiver()?
        .spans()
        .into_iter()
        .filter(|sp| sp.trace_id == trace_id && sp.service == BACKEND_SERVICE)
        .collect();
    ensure!(
        reached.is_empty(),
        "the refused call has backend spans: {reached:#?}"
    );
    Ok(())
}

/// An allowed call in a trace of its own, returned once its edge span (with the verdict) and its
/// backend span arrived: spans of earlier requests are in by then, had they been made.
fn marker_call_traced(s: &Stack) -> Result<()> {
    let token = s.token("tenant-trace-marker")?;
    let (traceparent, marker_trace) = new_traceparent()?;
    let resp = traced_call(s, &token, "list_projects", &traceparent)?;
    ensure!(resp.status() == 200, "marker call: {}", resp.status());
    receiver()?.wait_for_trace(
        &marker_trace,
        "edge and backend spans of the marker call",
        SPANS_ARRIVE_WITHIN,
        |t| edge_verdict_span(t).is_some() && !of_service(t, BACKEND_SERVICE).is_empty(),
    )?;
    Ok(())
}

/// A call of `tool` in a new trace that the edge answers `status`; its trace id and spans, once
/// the edge's span with the verdict arrived.
fn refused_call(
    s: &Stack,
    token: &str,
    tool: &str,
    status: u16,
) -> Result<(String, Vec<ReceivedSpan>)> {
    let (traceparent, trace_id) = new_traceparent()?;
    let resp = traced_call(s, token, tool, &traceparent)?;
    ensure!(resp.status() == status, "status {}", resp.status());
    let trace = receiver()?.wait_for_trace(
        &trace_id,
        "edge span with its verdict",
        SPANS_ARRIVE_WITHIN,
        |t| edge_verdict_span(t).is_some(),
    )?;
    Ok((trace_id, trace))
}

// ---------------------------------------------------------------------------------------------

fn an_allowed_call_is_one_trace_from_the_client_through_envoy_into_the_backend(
    s: &Stack,
) -> Result<()> {
    let token = s.token("tenant-traced")?;
    let (traceparent, trace_id) = new_traceparent()?;
    let client_span_id = traceparent
        .split('-')
        .nth(2)
        .context("traceparent shape")?
        .to_string();
    let resp = traced_call(s, &token, "list_projects", &traceparent)?;
    ensure!(resp.status() == 200, "status {}", resp.status());
    let body = resp.text()?;
    ensure!(!body.contains("\"error\""), "{body}");

    let trace = receiver()?.wait_for_trace(
        &trace_id,
        "edge span with its verdict and backend span",
        SPANS_ARRIVE_WITHIN,
        |t| {
            edge_verdict_span(t).is_some()
                && of_service(t, BACKEND_SERVICE)
                    .iter()
                    .any(|sp| sp.kind == SERVER_KIND)
        },
    )?;
    let edge = edge_verdict_span(&trace).context("edge span")?;
    let edge_ids: Vec<&str> = of_service(&trace, EDGE_SERVICE)
        .iter()
        .map(|sp| sp.span_id.as_str())
        .collect();
    // The backend's server span (rmcp's own spans, if any, are its children).
    let servers: Vec<&ReceivedSpan> = of_service(&trace, BACKEND_SERVICE)
        .into_iter()
        .filter(|sp| sp.kind == SERVER_KIND)
        .collect();
    ensure!(servers.len() == 1, "one backend server span: {trace:#?}");
    let backend = servers[0];

    // The client's trace continues at the edge, and the backend's span is a child of the edge's.
    ensure!(
        edge.parent_span_id == client_span_id,
        "the edge's span is not the client's child: {edge:#?}"
    );
    ensure!(
        edge_ids.contains(&backend.parent_span_id.as_str()),
        "the backend's span's parent {} is none of the edge's spans {edge_ids:?}",
        backend.parent_span_id
    );
    ensure!(
        backend.attr("http.response.status_code") == Some("200"),
        "status: {backend:#?}"
    );
    ensure!(
        backend.name == "POST /mcp",
        "the backend's server span is named {:?}",
        backend.name
    );
    ensure!(
        edge.via == "grpc" && backend.via == "http",
        "{edge:#?} {backend:#?}"
    );

    for (span, outcome) in [(edge, "allowed"), (backend, "ok")] {
        ensure!(
            span.attr("tenant_id") == Some("tenant-traced")
                && span.attr("tool") == Some("list_projects")
                && span.attr("outcome") == Some(outcome),
            "tenant, tool and outcome: {span:#?}"
        );
    }
    ensure!(
        edge.attr("rpc_method") == Some("tools/call"),
        "rpc_method: {edge:#?}"
    );
    // One request id across both: the edge's (the assertion's jti) in both spans.
    let request_id = edge.attr("request_id").unwrap_or_default();
    ensure!(
        !request_id.is_empty() && backend.attr("request_id") == Some(request_id),
        "request ids: {edge:#?} {backend:#?}"
    );
    // The user (sub) is in neither.
    for span in [edge, backend] {
        ensure!(
            !span.attributes.values().any(|v| v.contains("user-of-")),
            "a span names the user: {span:#?}"
        );
    }
    Ok(())
}

fn a_tool_the_token_may_not_call_is_traced_with_its_outcome_and_never_reaches_the_backend(
    s: &Stack,
) -> Result<()> {
    let token = s.token_with(
        "tenant-refused",
        "mcp:read mcp:write",
        Some(&["list_projects"]),
    )?;
    let (trace_id, trace) = refused_call(s, &token, "create_project", 403)?;
    let edge = edge_verdict_span(&trace).context("edge span")?;
    ensure!(
        edge.attr("outcome") == Some("denied.tool_not_allowed")
            && edge.attr("tool") == Some("create_project")
            && edge.attr("tenant_id") == Some("tenant-refused"),
        "{edge:#?}"
    );
    never_reached_the_backend(s, &trace_id)
}

fn a_token_that_fails_verification_is_traced_without_the_tenant_it_claims(s: &Stack) -> Result<()> {
    // A token for tenant-forged whose signature does not verify: its claims are unvouched.
    let token = s.token("tenant-forged")?;
    let (head_and_claims, _) = token.rsplit_once('.').context("token shape")?;
    let forged = format!("{head_and_claims}.c2lnbmF0dXJlLXRoYXQtZG9lcy1ub3QtdmVyaWZ5");
    let (trace_id, trace) = refused_call(s, &forged, "list_projects", 401)?;
    let edge = edge_verdict_span(&trace).context("edge span")?;
    ensure!(
        edge.attr("outcome")
            .is_some_and(|o| o.starts_with("denied.invalid_token")),
        "{edge:#?}"
    );
    for span in of_service(&trace, EDGE_SERVICE) {
        ensure!(
            span.attr("tenant_id").unwrap_or_default().is_empty()
                && !span
                    .attributes
                    .values()
                    .any(|v| v.contains("tenant-forged")),
            "an unverified token's tenant is in a span: {span:#?}"
        );
    }
    never_reached_the_backend(s, &trace_id)
}

fn a_request_without_traceparent_starts_its_own_trace_at_the_edge(s: &Stack) -> Result<()> {
    let token = s.token("tenant-untraced")?;
    let marker = marker("untraced");
    let resp = post_mcp(&s.mcp_url, Some(&token), &call_body(&marker))?;
    ensure!(resp.status() == 200, "status {}", resp.status());
    // Found by its tenant: a root span at the edge, and the backend's span in the same trace.
    let deadline = std::time::Instant::now() + SPANS_ARRIVE_WITHIN;
    loop {
        let spans = receiver()?.spans();
        let edge = spans.iter().find(|sp| {
            sp.service == EDGE_SERVICE && sp.attr("tenant_id") == Some("tenant-untraced")
        });
        if let Some(edge) = edge {
            let backend = spans.iter().find(|sp| {
                sp.service == BACKEND_SERVICE && sp.attr("tenant_id") == Some("tenant-untraced")
            });
            if let Some(backend) = backend {
                ensure!(edge.parent_span_id.is_empty(), "not a root: {edge:#?}");
                ensure!(
                    backend.trace_id == edge.trace_id,
                    "two traces: {edge:#?} {backend:#?}"
                );
                return Ok(());
            }
        }
        ensure!(
            std::time::Instant::now() < deadline,
            "no edge and backend span for tenant-untraced: {spans:#?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn a_client_that_asks_not_to_be_traced_is_not_but_still_logged(s: &Stack) -> Result<()> {
    // Envoy's tracer follows the client's sampled flag: a traceparent ending in 00 gets no span
    // at the edge (nor, its child being unsampled, at the backend). Traces are not the audit
    // record: the access log line still names the request's tenant, tool and outcome.
    let tenant = format!("tenant-unsampled-{}", std::process::id());
    let token = s.token(&tenant)?;
    let (sampled, trace_id) = new_traceparent()?;
    let unsampled = format!("{}-00", sampled.trim_end_matches("-01"));
    let resp = traced_call(s, &token, "list_projects", &unsampled)?;
    ensure!(resp.status() == 200, "status {}", resp.status());
    // A sampled call after it: once its edge and backend spans are in, the unsampled call's
    // would be too, had they been made.
    marker_call_traced(s)?;
    let traced: Vec<ReceivedSpan> = receiver()?
        .spans()
        .into_iter()
        .filter(|sp| sp.trace_id == trace_id || sp.attr("tenant_id") == Some(tenant.as_str()))
        .collect();
    ensure!(
        traced.is_empty(),
        "an unsampled request was traced: {traced:#?}"
    );

    let deadline = std::time::Instant::now() + SPANS_ARRIVE_WITHIN;
    loop {
        let log = std::fs::read_to_string(s.dir().join("envoy.log"))?;
        let logged = log.lines().any(|l| {
            l.contains(&format!("\"tenant\":\"{tenant}\""))
                && l.contains("\"outcome\":\"allowed\"")
                && l.contains("\"tool\":\"list_projects\"")
        });
        if logged {
            return Ok(());
        }
        ensure!(
            std::time::Instant::now() < deadline,
            "no access log line for {tenant}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

const CASES: &[Case] = mcp_edge_tests::cases![
    an_allowed_call_is_one_trace_from_the_client_through_envoy_into_the_backend,
    a_tool_the_token_may_not_call_is_traced_with_its_outcome_and_never_reaches_the_backend,
    a_token_that_fails_verification_is_traced_without_the_tenant_it_claims,
    a_request_without_traceparent_starts_its_own_trace_at_the_edge,
    a_client_that_asks_not_to_be_traced_is_not_but_still_logged,
    every_metric_the_dashboard_queries_exists_on_the_stack,
];

fn main() {
    let receiver = match OtlpReceiver::start() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("could not start the OTLP receiver: {e:#}");
            std::process::exit(1);
        }
    };
    let (grpc_port, http_endpoint) = (receiver.grpc_port, receiver.http_endpoint());
    let _ = RECEIVER.set(receiver);
    let metrics_port = match free_port() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("no port for the backend's metrics: {e:#}");
            std::process::exit(1);
        }
    };
    let _ = BACKEND_METRICS_PORT.set(metrics_port);
    mcp_edge_tests::runner::run_with_options(
        &StackOptions {
            otel_collector: Some(grpc_port),
            backend_args: vec![
                "--otlp-endpoint".into(),
                http_endpoint,
                "--metrics-addr".into(),
                format!("127.0.0.1:{metrics_port}"),
            ],
            backend_env: vec![("OTEL_BSP_SCHEDULE_DELAY", "100".into())],
            plugin_overrides: observability_metrics::plugin_overrides(),
            ratelimit_service: true,
            ..StackOptions::default()
        },
        CASES,
    );
}
