//! The gate's side of the global rate limit: after the local bucket and the body's verdict admit a
//! request, it waits for the rate limit service ([`crate::rate_limit::global`] decides what the
//! answer means); then it is forwarded as it would have been, or answered 429 or 503.

use crate::config::EdgeConfig;
use crate::rate_limit::global::{self as decision, GlobalCall, GlobalLimit, GlobalVerdict};
use crate::tenant::TenantContext;

use super::{BodySummary, Counter, Forwarded, Gate, Outcome, Output, Phase, Step};

/// A request admitted locally, held until the service answers.
#[derive(Debug)]
pub(super) struct AwaitingGlobal {
    /// What forwarding it does (trusted headers, counters, access log), applied once admitted.
    pub(super) forward: Output,
    pub(super) forwarded: Box<Forwarded>,
}

/// The call for this request: its tenant, tier, tools and cost.
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
            &summary.tool_calls,
            summary.cost,
        ),
        timeout_ms: limit.timeout_ms,
        first_call_timeout_ms: limit.first_call_timeout_ms,
        authorization: limit.authorization.clone(),
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
            self.forward(cfg, forwarded);
            return forward;
        };
        let tier = forwarded.tenant.tier;
        let verdict = decision::decide(limit, tier, grpc_status, body);
        let counter = Counter::GlobalRateLimit {
            tier,
            verdict: verdict.stat_verdict(),
        };
        let mut out = match verdict {
            GlobalVerdict::Admitted(headers) => {
                forwarded.global_headers = headers;
                self.forward(cfg, forwarded);
                forward
            }
            GlobalVerdict::FailedOpen => {
                self.forward(cfg, forwarded);
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

#[cfg(test)]
mod tests {
    use jwt_simple::prelude::*;
    use serde_json::{Value, json};

    use super::*;
    use crate::config::parse_config;
    use crate::gate::WorkerState;
    use crate::gate::tests::{FakeHost, head, token_of_tier};
    use crate::rate_limit::SlotSecret;
    use crate::rate_limit::rls_proto::{self, HeaderValue, RateLimitRequest, RateLimitResponse};
    use prost::Message;

    fn worker(kp: &Ed25519KeyPair) -> WorkerState {
        let jwk: Value = serde_json::from_str(&kp.public_key().to_jwk()).unwrap();
        let v = json!({
            "resource": "https://mcp.example/mcp",
            "issuers": ["https://as"],
            "jwks": {"inline": {"keys": [jwk]}},
            "gateway_secret": {"inline": "0123456789abcdef0123456789abcdef"},
            "prm": {"authorization_servers": ["https://as"], "scopes_supported": ["mcp:read", "mcp:write"]},
            "tool_scopes": {"list_projects": "mcp:read"},
            "global_rate_limit": {"cluster": "rls", "timeout_ms": 30, "tool_descriptor": true}
        });
        let cfg = parse_config(v.to_string().as_bytes(), &|_| None).unwrap();
        WorkerState::new(cfg, SlotSecret([1; 16]))
    }

    /// A `tools/call` through the gate up to the global check; the gate and the call it asks for.
    fn up_to_the_check(w: &mut WorkerState, tier: &str, kp: &Ed25519KeyPair) -> (Gate, Output) {
        let body = r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"list_projects","arguments":{}}}"#;
        body_up_to_the_check(w, tier, kp, body)
    }

    /// [`up_to_the_check`] with another body.
    fn body_up_to_the_check(
        w: &mut WorkerState,
        tier: &str,
        kp: &Ed25519KeyPair,
        body: &str,
    ) -> (Gate, Output) {
        let host = FakeHost::new(None);
        let bearer = token_of_tier(kp, "mcp:read", tier);
        let head = head("POST", "/mcp", Some(&bearer), &[]);
        let mut gate = Gate::default();
        let out = gate.on_request_headers(w, &host, head, false);
        assert_eq!(out.step, Step::WaitForBody);
        let cfg = w.config.clone();
        assert_eq!(
            gate.on_request_body(&cfg, body.len(), true).step,
            Step::ReadBody
        );
        let out = gate.on_body(w, &host, body.as_bytes());
        (gate, out)
    }

    fn answer(code: i32) -> Vec<u8> {
        let header = |k: &str, v: &str| HeaderValue {
            key: k.into(),
            value: v.into(),
            raw_value: vec![],
        };
        RateLimitResponse {
            overall_code: code,
            response_headers_to_add: vec![
                header("ratelimit-policy", "\"pro\";q=40;w=60"),
                header("ratelimit", "\"pro\";r=39;t=60"),
                header("retry-after", "60"),
            ],
        }
        .encode_to_vec()
    }

    #[test]
    fn an_admitted_request_waits_for_the_service_then_forwards_with_its_headers() {
        let kp = Ed25519KeyPair::generate().with_key_id("k1");
        let mut w = worker(&kp);
        let (mut gate, out) = up_to_the_check(&mut w, "pro", &kp);
        let Step::CheckGlobal(call) = &out.step else {
            panic!("{:?}", out.step)
        };
        assert_eq!(call.timeout_ms, 30);
        assert!(out.add_request_headers.is_empty(), "nothing vouched yet");
        let req = RateLimitRequest::decode(call.message.as_slice()).unwrap();
        let entries = req.first_entries();
        assert_eq!(
            entries,
            [
                ("tenant", "acme"),
                ("tier", "pro"),
                ("tool", "list_projects")
            ]
        );
        let cfg = w.config.clone();
        // more body callbacks while waiting keep the request held
        assert_eq!(gate.on_request_body(&cfg, 10, true).step, Step::WaitForBody);
        let out = gate.on_global_answer(&cfg, Some(0), Some(&answer(rls_proto::CODE_OK)));
        assert_eq!(out.step, Step::Continue);
        assert!(
            out.add_request_headers
                .iter()
                .any(|(n, _)| *n == "x-mcp-identity")
        );
        assert_eq!(out.counter_names()[0], "mcp_edge.global_ratelimit.pro.ok");
        let set =
            gate.on_response_headers(&cfg, false, |n| (n == ":status").then(|| b"200".to_vec()));
        assert!(
            set.contains(&("ratelimit".into(), "\"pro\";r=39;t=60".into())),
            "{set:?}"
        );
        assert_eq!(
            set.iter().filter(|(n, _)| n == "ratelimit-policy").count(),
            1,
            "the global policy replaces the local one: {set:?}"
        );
    }

    #[test]
    fn a_batch_asks_for_each_of_its_tools() {
        let kp = Ed25519KeyPair::generate().with_key_id("k1");
        let mut w = worker(&kp);
        let call = |id: u32, tool: &str| json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":tool,"arguments":{}}});
        let batch = json!([
            call(1, "list_projects"),
            {"jsonrpc":"2.0","id":2,"method":"ping"},
            call(3, "list_projects"),
        ]);
        let (_, out) = body_up_to_the_check(&mut w, "pro", &kp, &batch.to_string());
        let Step::CheckGlobal(call) = &out.step else {
            panic!("{:?}", out.step)
        };
        let req = RateLimitRequest::decode(call.message.as_slice()).unwrap();
        let got: Vec<(Vec<&str>, u64)> = req
            .descriptors
            .iter()
            .map(|d| {
                let values = d.entries.iter().map(|e| e.value.as_str()).collect();
                (values, d.hits_addend.as_ref().map_or(0, |h| h.value))
            })
            .collect();
        assert_eq!(
            got,
            [
                (vec!["acme", "pro", "list_projects"], 2),
                (vec!["acme", "pro"], 1)
            ],
            "two calls of the tool's budget, the ping of the tier's only"
        );
        assert_eq!(req.hits_addend, 3);
    }

    #[test]
    fn over_the_limit_or_without_an_answer_the_request_is_answered_here() {
        let kp = Ed25519KeyPair::generate().with_key_id("k1");
        let mut w = worker(&kp);
        let cfg = w.config.clone();
        let (mut gate, _) = up_to_the_check(&mut w, "pro", &kp);
        let out = gate.on_global_answer(&cfg, Some(0), Some(&answer(rls_proto::CODE_OVER_LIMIT)));
        let Step::Respond(reply) = &out.step else {
            panic!("{:?}", out.step)
        };
        assert_eq!(
            (reply.status, reply.header("retry-after")),
            (429, Some("60"))
        );
        assert!(
            out.counter_names()
                .contains(&"mcp_edge.outcome.denied.rate_limited".to_string())
        );
        // a second answer (there is none in Envoy) changes nothing
        assert_eq!(
            gate.on_global_answer(&cfg, Some(0), None).step,
            Step::Continue
        );

        let (mut gate, _) = up_to_the_check(&mut w, "free", &kp);
        let out = gate.on_global_answer(&cfg, Some(4), None);
        assert!(matches!(&out.step, Step::Respond(r) if r.status == 503));
        assert_eq!(
            out.counter_names()[0],
            "mcp_edge.global_ratelimit.free.failed_closed"
        );
        assert!(
            out.counter_names()
                .contains(&"mcp_edge.outcome.denied.global_limit_unavailable".to_string())
        );

        let (mut gate, _) = up_to_the_check(&mut w, "enterprise", &kp);
        let out = gate.on_global_answer(&cfg, None, None);
        assert_eq!(out.step, Step::Continue);
        assert_eq!(
            out.counter_names()[0],
            "mcp_edge.global_ratelimit.enterprise.failed_open"
        );
    }
}
