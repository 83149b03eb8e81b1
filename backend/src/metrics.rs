//! The Prometheus metrics endpoint (`GET /metrics` on `--metrics-addr`, off by default), on a
//! listener of its own: the MCP port only serves gateway-signed requests and stays so.
//!
//! The figures already live in the parts that own them (fail-open stats, outbox and metering
//! counters, the shedder); a [`Collector`] reads them at each scrape instead of a second set of
//! counters kept in step. `prometheus-client` (the Prometheus project's own Rust client) encodes
//! them: no global recorder, a few small dependencies; `metrics` + `metrics-exporter-prometheus`
//! would bring a global recorder and its own HTTP server for the same job.

use std::sync::Arc;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric as _};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::metering::outbox::WriterState;
use crate::metering::{Metering, Tier};
use crate::shed::Shedder;

/// The endpoint's path.
pub const METRICS_PATH: &str = "/metrics";
/// OpenMetrics text, what `prometheus_client::encoding::text` writes.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What the metrics are read from.
#[derive(Debug, Clone)]
pub struct Sources {
    pub metering: Metering,
    pub shedder: Shedder,
}

impl Collector for Sources {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let fail_open = self.metering.fail_open_stats();
        let counts = self.metering.counts();
        let outbox = self.metering.outbox_stats();
        let counter = |encoder: &mut DescriptorEncoder, name: &str, help: &str, value: u64| {
            let metric = ConstCounter::new(value);
            metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
        };
        let seconds = ConstCounter::new(fail_open.time.as_secs_f64());
        seconds.encode(encoder.encode_descriptor(
            "mcp_edge_fail_open_seconds",
            "Time the quota store was unreachable while calls failed open, in seconds.",
            None,
            seconds.metric_type(),
        )?)?;
        {
            let mut family = encoder.encode_descriptor(
                "mcp_edge_fail_open_admitted_calls",
                "Billable calls run while the quota store was unreachable (counted in this process).",
                None,
                prometheus_client::metrics::MetricType::Counter,
            )?;
            for (tier, admitted) in Tier::ALL.iter().zip(fail_open.admitted_by_tier) {
                let labels = [("tier", tier.name())];
                ConstCounter::new(admitted).encode(family.encode_family(&labels)?)?;
            }
        }
        counter(
            &mut encoder,
            "mcp_edge_fail_open_refused_calls",
            "Billable calls refused at the quota counted in this process while the store was unreachable.",
            fail_open.refused,
        )?;
        let backlog =
            ConstGauge::new(i64::try_from(self.metering.outbox_backlog()).unwrap_or(i64::MAX));
        backlog.encode(encoder.encode_descriptor(
            "mcp_edge_outbox_backlog_events",
            "Usage events in the outbox waiting for delivery to the usage store.",
            None,
            backlog.metric_type(),
        )?)?;
        counter(
            &mut encoder,
            "mcp_edge_outbox_appended_events",
            "Usage events committed to the outbox.",
            outbox.appended,
        )?;
        counter(
            &mut encoder,
            "mcp_edge_outbox_commit_failures",
            "Outbox commits that failed (disk full, I/O error).",
            outbox.failures,
        )?;
        counter(
            &mut encoder,
            "mcp_edge_outbox_compactions",
            "Compactions of the outbox file (after a backlog was delivered).",
            outbox.compactions,
        )?;
        let compacting = ConstCounter::new(outbox.compaction_micros as f64 / 1e6);
        compacting.encode(encoder.encode_descriptor(
            "mcp_edge_outbox_compaction_seconds",
            "Time spent compacting the outbox file (appends wait meanwhile), in seconds.",
            None,
            compacting.metric_type(),
        )?)?;
        counter(
            &mut encoder,
            "mcp_edge_outbox_unwritable_refusals",
            "Billable calls refused (-32052) before they ran because the outbox was unwritable or its writer thread gone or stuck.",
            counts.unwritable_refusals,
        )?;
        let up = |ok: bool| ConstGauge::new(i64::from(ok));
        let writer = up(self.metering.outbox_writer_state() == WriterState::Running);
        writer.encode(encoder.encode_descriptor(
            "mcp_edge_outbox_writer_up",
            "1 while the outbox writer thread runs and is not stuck on one commit; 0 when it has stopped (panicked) or is stuck.",
            None,
            writer.metric_type(),
        )?)?;
        let ready = up(self.metering.ready().is_ok());
        ready.encode(encoder.encode_descriptor(
            "mcp_edge_outbox_ready",
            "1 while billable calls can be recorded (what /readyz reports); 0 while they are refused.",
            None,
            ready.metric_type(),
        )?)?;
        counter(
            &mut encoder,
            "mcp_edge_usage_events_delivered",
            "Usage events moved from the outbox to the usage store.",
            counts.delivered,
        )?;
        counter(
            &mut encoder,
            "mcp_edge_replayed_calls_refused",
            "Calls refused as already received (-32053).",
            counts.replays_refused,
        )?;
        counter(
            &mut encoder,
            "mcp_edge_requests_shed",
            "Requests shed at capacity (503, -32054).",
            self.shedder.shed_count(),
        )
    }
}

/// The metrics router: `GET /metrics` only.
pub fn router(sources: Sources) -> Router {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(sources));
    let registry = Arc::new(registry);
    Router::new().route(
        METRICS_PATH,
        get(move || {
            let registry = registry.clone();
            async move { render(&registry) }
        }),
    )
}

fn render(registry: &Registry) -> Response {
    let mut text = String::new();
    match prometheus_client::encoding::text::encode(&mut text, registry) {
        Ok(()) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "encoding metrics");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use tower::ServiceExt as _;

    #[tokio::test]
    async fn renders_every_metric_at_zero_on_a_fresh_backend() {
        let app = router(Sources {
            metering: Metering::in_memory(),
            shedder: Shedder::new(4),
        });
        let response = app
            .oneshot(
                axum::http::Request::get(METRICS_PATH)
                    .body(Body::empty())
                    .expect("request"),
            )
            .await
            .expect("infallible");
        assert_eq!(response.status(), StatusCode::OK);
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        let text = String::from_utf8_lossy(&body);
        for line in [
            "mcp_edge_fail_open_seconds_total 0.0",
            "mcp_edge_fail_open_admitted_calls_total{tier=\"free\"} 0",
            "mcp_edge_fail_open_admitted_calls_total{tier=\"enterprise\"} 0",
            "mcp_edge_outbox_backlog_events 0",
            "mcp_edge_outbox_compactions_total 0",
            "mcp_edge_outbox_unwritable_refusals_total 0",
            "mcp_edge_usage_events_delivered_total 0",
            "mcp_edge_replayed_calls_refused_total 0",
            "mcp_edge_requests_shed_total 0",
            "mcp_edge_outbox_writer_up 1",
            "mcp_edge_outbox_ready 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
