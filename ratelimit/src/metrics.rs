//! What the service counts, for operators: decisions per tier and outcome, Redis failures, refused
//! requests and limits reloads, and whether Redis answered last time; served as Prometheus
//! (OpenMetrics) text at `GET /metrics` on `--metrics-addr`.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use mcp_edge_contract::Tier;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    tier: &'static str,
    code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

/// The service's metrics and their registry.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    decisions: Family<DecisionLabels, Counter>,
    storage_errors: Family<KindLabels, Counter>,
    storage_up: Gauge,
    invalid_requests: Counter,
    reloads: Family<ResultLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("mcp_edge_ratelimit");
        let decisions = Family::<DecisionLabels, Counter>::default();
        registry.register(
            "decisions",
            "Descriptors decided, by tier and code (ok, over_limit)",
            decisions.clone(),
        );
        let storage_errors = Family::<KindLabels, Counter>::default();
        registry.register(
            "storage_errors",
            "Decisions that failed because Redis did not answer in time (timeout) or failed (error); each was answered UNAVAILABLE",
            storage_errors.clone(),
        );
        let storage_up = Gauge::default();
        registry.register(
            "storage_up",
            "1 when the last decision reached the counters, 0 when it failed",
            storage_up.clone(),
        );
        storage_up.set(1);
        let invalid_requests = Counter::default();
        registry.register(
            "invalid_requests",
            "Requests refused with INVALID_ARGUMENT (wrong domain or descriptor entries)",
            invalid_requests.clone(),
        );
        let reloads = Family::<ResultLabels, Counter>::default();
        registry.register(
            "limits_reloads",
            "Changes of the limits file applied (ok) or refused (error)",
            reloads.clone(),
        );
        Self {
            registry,
            decisions,
            storage_errors,
            storage_up,
            invalid_requests,
            reloads,
        }
    }

    pub fn decision(&self, tier: Tier, over_limit: bool) {
        let code = if over_limit { "over_limit" } else { "ok" };
        self.decisions
            .get_or_create(&DecisionLabels {
                tier: tier.name(),
                code,
            })
            .inc();
    }

    /// Records a failed decision; true when Redis answered the one before (a new outage).
    pub fn storage_error(&self, kind: &'static str) -> bool {
        self.storage_errors
            .get_or_create(&KindLabels { kind })
            .inc();
        self.storage_up.set(0) == 1
    }

    /// Records a decision that reached the counters; true when the one before failed (recovery).
    pub fn storage_ok(&self) -> bool {
        self.storage_up.set(1) == 0
    }

    pub fn invalid_request(&self) {
        self.invalid_requests.inc();
    }

    pub fn reload(&self, ok: bool) {
        let result = if ok { "ok" } else { "error" };
        self.reloads.get_or_create(&ResultLabels { result }).inc();
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }
}

/// `GET /metrics`.
pub fn router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/metrics", get(serve))
        .with_state(metrics)
}

async fn serve(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics.render(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_show_in_the_text() {
        let m = Metrics::new();
        m.decision(Tier::Pro, true);
        assert!(m.storage_error("timeout"));
        assert!(!m.storage_error("timeout"));
        assert!(m.storage_ok());
        m.reload(false);
        let text = m.render();
        for line in [
            "mcp_edge_ratelimit_decisions_total{tier=\"pro\",code=\"over_limit\"} 1",
            "mcp_edge_ratelimit_storage_errors_total{kind=\"timeout\"} 2",
            "mcp_edge_ratelimit_storage_up 1",
            "mcp_edge_ratelimit_limits_reloads_total{result=\"error\"} 1",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }
}
