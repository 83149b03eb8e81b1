//! The gate's side of the global rate limit: after the local bucket and the body's verdict admit a
//! request, it waits for the rate limit service ([`crate::rate_limit::global`] decides what the
//! answer means); then it is forwarded as it would have been, or answered 429 or 503.

use crate::config::EdgeConfig;
use crate::rate_limit::global::{self as decision, GlobalCall, GlobalLimit, GlobalVerdict};
use crate::tenant::TenantContext;

use super::{BodySummary, Forwarded, Gate, Outcome, Output, Phase, Step};

/// A request admitted locally, held until the service answers.
#[derive(Debug)]
pub(super) struct AwaitingGlobal {
    /// What forwarding it does (trusted headers, counters, access log), applied once admitted.
    pub(super) forward: Output,
    pub(super) forwarded: Box<Forwarded>,
}

/// The call for this request: its tenant, tier, tool and cost.
pub(super) fn call(
    limit: &GlobalLimit,
    tenant: &TenantContext,
    summary: &BodySummary,
) -> GlobalCall {
    GlobalCall {
        upstream: limit.upstream.clone(),
        message: limit.request(
            &tenant.tenant_id,
            tenant.tier,
            summary.tool.as_deref(),
            summary.cost,
        ),
        timeout_ms: limit.timeout_ms,
    }
}

/// Puts the global limit's `RateLimit` headers in place of the local bucket's, when it sent any.
pub(super) fn use_global_headers(set: &mut Vec<(String, String)>, global: &[(String, String)]) {
    if global.is_empty() {
        return;
    }
    set.retain(|(name, _)| !global.iter().any(|(g, _)| g == name));
    set.extend(global.iter().cloned());
}

impl Gate {
    /// Step 3b: the global rate limit service answered (`grpc_status` 0 and the response), failed
    /// or timed out (another status), or could not be asked (`grpc_status` `None`).
    pub fn on_global_answer(
        &mut self,
        cfg: &EdgeConfig,
        grpc_status: Option<u32>,
        body: Option<&[u8]>,
    ) -> Output {
        let Phase::AwaitingGlobal(waiting) = std::mem::take(&mut self.phase) else {
            return Output::step(Step::Continue);
        };
        let AwaitingGlobal {
            forward,
            mut forwarded,
        } = *waiting;
        let Some(limit) = &cfg.global_rate_limit else {
            self.phase = Phase::Forwarded(forwarded);
            return forward;
        };
        let tier = forwarded.tenant.tier;
        let verdict = decision::decide(limit, tier, grpc_status, body);
        let counter = verdict.counter(tier);
        let mut out = match verdict {
            GlobalVerdict::Admitted(headers) => {
                forwarded.global_headers = headers;
                self.phase = Phase::Forwarded(forwarded);
                forward
            }
            GlobalVerdict::FailedOpen => {
                self.phase = Phase::Forwarded(forwarded);
                forward
            }
            GlobalVerdict::OverLimit(reply) => {
                self.answer(cfg, reply, Outcome::RateLimited, Some(&forwarded.tenant))
            }
            GlobalVerdict::FailedClosed(reply) => self.answer(
                cfg,
                reply,
                Outcome::GlobalLimitUnavailable,
                Some(&forwarded.tenant),
            ),
        };
        out.counters.insert(0, counter);
        out
    }
}
