//! `envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit`: checks the request, counts the
//! descriptors' hits against their tenants' limits in one all-or-nothing step and answers OK or OVER_LIMIT with statuses and
//! headers. A request it cannot read is `INVALID_ARGUMENT`; counters it cannot reach in time are
//! `UNAVAILABLE` at once (logged when an outage starts and ends, counted in metrics), so the caller
//! applies its own fail mode rather than waiting.

use std::sync::Arc;

use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_server::RateLimitService;
use envoy_types::pb::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use tonic::{Request, Response, Status};

use crate::descriptor;
use crate::in_force::InForce;
use crate::metrics::Metrics;
use crate::policy::{self, CounterCheck};
use crate::response::{Outcome, response};

pub struct RateLimitServer {
    in_force: Arc<InForce>,
    metrics: Arc<Metrics>,
}

impl RateLimitServer {
    pub fn new(in_force: Arc<InForce>, metrics: Arc<Metrics>) -> Self {
        Self { in_force, metrics }
    }
}

#[tonic::async_trait]
impl RateLimitService for RateLimitServer {
    async fn should_rate_limit(
        &self,
        request: Request<RateLimitRequest>,
    ) -> Result<Response<RateLimitResponse>, Status> {
        let request = request.into_inner();
        let config = self.in_force.config();
        let descriptors = descriptor::check(&request, &config.domain).map_err(|e| {
            self.metrics.invalid_request();
            Status::invalid_argument(e)
        })?;
        let checks: Vec<Vec<CounterCheck>> = descriptors
            .iter()
            .map(|d| policy::counters_for(&config, d))
            .collect();
        let all: Vec<CounterCheck> = checks.iter().flatten().cloned().collect();
        let at_ms = crate::clock_window::now_ms();
        let decision = match self.in_force.limiter.check_and_count(&all, at_ms).await {
            Ok(decision) => decision,
            Err(e) => {
                if self.metrics.storage_error(e.kind()) {
                    tracing::error!(error = %e, "counters unreachable: answering UNAVAILABLE until they answer again");
                }
                return Err(Status::unavailable(format!(
                    "rate limit counters unavailable: {e}"
                )));
            }
        };
        if self.metrics.storage_ok() {
            tracing::info!("counters reachable again");
        }
        let outcomes: Vec<Outcome> = checks
            .iter()
            .map(|c| Outcome::from_decision(&decision, c))
            .collect();
        for d in &descriptors {
            self.metrics.decision(d.tier, decision.limited);
        }
        Ok(Response::new(response(decision.limited, &outcomes)))
    }
}
