//! The global rate limit: the question the filter asks a rate limit service (Envoy's
//! `ShouldRateLimit`, see [`super::rls_proto`]) after the local bucket admitted a request, and what
//! its answer, or its absence, means for the request.
//!
//! Descriptors of `tenant` (the verified tenant id) and `tier`; when `tool_descriptor` is on, one
//! per tool the body calls, with `tool` and as many hits as it has calls of that tool, and one
//! without `tool` for the rest of the body's messages. So a batch (2025-03-26) costs each tool's
//! budget as single calls would, and the tier's budget its length. The request's `hits_addend` is
//! the whole cost (a batch of k messages costs k). Pure: the glue dispatches the call and hands the
//! answer back.

use std::collections::BTreeMap;

use mcp_edge_contract::codes;

use crate::reply::{self, Reply};
use crate::tenant::Tier;

use super::rls_proto::{
    CODE_OK, CODE_OVER_LIMIT, DescriptorEntry, RateLimitDescriptor, RateLimitRequest,
    RateLimitResponse, UInt64Value,
};

/// What a tier's requests get when the service cannot decide (unreachable, past the timeout, an
/// error such as UNAVAILABLE when its Redis is down, an answer that cannot be read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureMode {
    /// Admitted (the local bucket still holds).
    Open,
    /// Refused: 503 with `Retry-After: 1`.
    Closed,
}

impl FailureMode {
    /// Like the daily quotas: the free tier fails closed, paid tiers open.
    pub fn default_for(tier: Tier) -> Self {
        match tier {
            Tier::Free => Self::Closed,
            Tier::Pro | Tier::Enterprise => Self::Open,
        }
    }
}

/// The validated `global_rate_limit` of the plugin configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlobalLimit {
    /// The Envoy cluster (HTTP/2) of the rate limit service.
    pub cluster: String,
    /// `cluster` as the encoded GrpcService `dispatch_grpc_call` takes.
    pub upstream: String,
    pub domain: String,
    /// The most a request waits for the answer; Envoy cancels the call after it.
    pub timeout_ms: u64,
    /// The same for a worker's first call, which also waits for the connection to the service
    /// (a cold connection must not open, or close, the limit).
    pub first_call_timeout_ms: u64,
    pub failure_mode: BTreeMap<Tier, FailureMode>,
    /// Whether descriptors name the tools a body calls.
    pub tool_descriptor: bool,
    /// `Bearer <shared secret>`, sent as the call's `authorization` metadata, when configured.
    pub authorization: Option<String>,
}

impl GlobalLimit {
    pub fn failure_mode(&self, tier: Tier) -> FailureMode {
        self.failure_mode
            .get(&tier)
            .copied()
            .unwrap_or_else(|| FailureMode::default_for(tier))
    }

    /// The encoded `RateLimitRequest` for one request of `tenant_id` costing `cost`, whose
    /// `tools/call`s are `tool_calls` (each tool once, with its number of calls).
    pub fn request(
        &self,
        tenant_id: &str,
        tier: Tier,
        tool_calls: &[(String, u64)],
        cost: u64,
    ) -> Vec<u8> {
        let entry = |key: &str, value: &str| DescriptorEntry {
            key: key.into(),
            value: value.into(),
        };
        let descriptor = |tool: Option<&str>, hits: u64| {
            let mut entries = vec![entry("tenant", tenant_id), entry("tier", tier.name())];
            entries.extend(tool.map(|t| entry("tool", t)));
            RateLimitDescriptor {
                entries,
                hits_addend: Some(UInt64Value { value: hits }),
            }
        };
        let cost = cost.max(1);
        let tool_calls = if self.tool_descriptor {
            tool_calls
        } else {
            &[]
        };
        let mut descriptors: Vec<_> = tool_calls
            .iter()
            .map(|(tool, calls)| descriptor(Some(tool), *calls))
            .collect();
        let rest = cost.saturating_sub(tool_calls.iter().map(|(_, calls)| calls).sum());
        if descriptors.is_empty() || rest > 0 {
            descriptors.push(descriptor(None, rest.max(1)));
        }
        RateLimitRequest {
            domain: self.domain.clone(),
            descriptors,
            hits_addend: u32::try_from(cost).unwrap_or(u32::MAX),
        }
        .to_bytes()
    }
}

/// The call the glue dispatches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlobalCall {
    pub upstream: String,
    pub message: Vec<u8>,
    pub timeout_ms: u64,
    /// The timeout when it is the worker's first call (see [`GlobalLimit::first_call_timeout_ms`]).
    pub first_call_timeout_ms: u64,
    /// The `authorization` metadata to send, when the service wants a shared secret.
    pub authorization: Option<String>,
}

impl GlobalCall {
    /// How long this call may wait: the first call of a worker, whose connection to the service
    /// is made now, gets the connect time; the calls after it the configured timeout.
    pub fn timeout_ms(&self, first_of_worker: bool) -> u64 {
        if first_of_worker {
            self.first_call_timeout_ms
        } else {
            self.timeout_ms
        }
    }
}

/// What the answer means for the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GlobalVerdict {
    /// Within the global budget: the `RateLimit`/`RateLimit-Policy` headers to answer with.
    Admitted(Vec<(String, String)>),
    /// Over the global budget: the 429 to answer.
    OverLimit(Reply),
    /// No decision, and the tier fails open: admitted.
    FailedOpen,
    /// No decision, and the tier fails closed: the 503 to answer.
    FailedClosed(Reply),
}

impl GlobalVerdict {
    /// The verdict's part of its Envoy counter, `mcp_edge.global_ratelimit.<tier>.<verdict>`.
    pub fn stat_verdict(&self) -> &'static str {
        match self {
            Self::Admitted(_) => "ok",
            Self::OverLimit(_) => "over_limit",
            Self::FailedOpen => "failed_open",
            Self::FailedClosed(_) => "failed_closed",
        }
    }
}

/// The response headers of the service passed on to the client; any other is dropped.
const PASSED_HEADERS: [&str; 3] = ["ratelimit-policy", "ratelimit", "retry-after"];

/// The verdict on one answer: `grpc_status` 0 with a `RateLimitResponse` body, or a failure
/// (any other status, including the timeout's, or `None` when the call could not be sent).
pub fn decide(
    limit: &GlobalLimit,
    tier: Tier,
    grpc_status: Option<u32>,
    body: Option<&[u8]>,
) -> GlobalVerdict {
    let response = match (grpc_status, body) {
        (Some(0), Some(body)) => RateLimitResponse::from_bytes(body),
        (Some(0), None) => RateLimitResponse::from_bytes(&[]),
        _ => None,
    };
    let Some(response) = response else {
        return failed(limit, tier);
    };
    let headers: Vec<(String, String)> = response
        .response_headers_to_add
        .iter()
        .filter_map(|h| {
            let name = h.key.to_ascii_lowercase();
            let value = h.text()?;
            let printable = value.bytes().all(|b| b == b' ' || b.is_ascii_graphic());
            (PASSED_HEADERS.contains(&name.as_str()) && printable)
                .then(|| (name, value.to_string()))
        })
        .collect();
    match response.overall_code {
        CODE_OK => GlobalVerdict::Admitted(
            headers
                .into_iter()
                .filter(|(n, _)| n != "retry-after")
                .collect(),
        ),
        CODE_OVER_LIMIT => GlobalVerdict::OverLimit(over_limit(tier, headers)),
        // UNKNOWN: the service did not decide.
        _ => failed(limit, tier),
    }
}

fn failed(limit: &GlobalLimit, tier: Tier) -> GlobalVerdict {
    match limit.failure_mode(tier) {
        FailureMode::Open => GlobalVerdict::FailedOpen,
        FailureMode::Closed => GlobalVerdict::FailedClosed(reply::jsonrpc_error(
            503,
            codes::UNAVAILABLE,
            &format!(
                "The global rate limit cannot be checked now and the {} tier is not served without it; retry shortly.",
                tier.name()
            ),
            vec![("retry-after".into(), "1".into())],
        )),
    }
}

/// The 429 of the global limit, shaped like the local bucket's: `Retry-After` (the service's, at
/// least 1) and the service's `RateLimit`/`RateLimit-Policy`.
fn over_limit(tier: Tier, mut headers: Vec<(String, String)>) -> Reply {
    let retry_after = headers
        .iter()
        .find(|(n, _)| n == "retry-after")
        .and_then(|(_, v)| v.trim().parse::<u64>().ok())
        .unwrap_or(1)
        .max(1);
    headers.retain(|(n, _)| n != "retry-after");
    headers.insert(0, ("retry-after".into(), retry_after.to_string()));
    let message = format!(
        "Rate limit exceeded for the {} tier: its global limit across all edges is used up. Retry after {retry_after} s.",
        tier.name()
    );
    reply::jsonrpc_error(429, codes::RATE_LIMITED, &message, headers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rate_limit::rls_proto::HeaderValue;
    use prost::Message;
    use serde_json::Value;

    fn limit() -> GlobalLimit {
        GlobalLimit {
            cluster: "rls".into(),
            upstream: "rls".into(),
            domain: "mcp-edge".into(),
            timeout_ms: 20,
            first_call_timeout_ms: 1_000,
            failure_mode: BTreeMap::new(),
            tool_descriptor: false,
            authorization: None,
        }
    }

    #[test]
    fn a_workers_first_call_waits_for_the_connection() {
        let call = GlobalCall {
            upstream: "rls".into(),
            message: Vec::new(),
            timeout_ms: 20,
            first_call_timeout_ms: 1_000,
            authorization: None,
        };
        assert_eq!(call.timeout_ms(true), 1_000);
        assert_eq!(call.timeout_ms(false), 20);
    }

    fn answer(code: i32, headers: &[(&str, &str)]) -> Vec<u8> {
        RateLimitResponse {
            overall_code: code,
            response_headers_to_add: headers
                .iter()
                .map(|(k, v)| HeaderValue {
                    key: (*k).into(),
                    value: (*v).into(),
                    raw_value: vec![],
                })
                .collect(),
        }
        .encode_to_vec()
    }

    #[test]
    fn the_request_names_tenant_tier_and_cost() {
        let search = [("search".to_string(), 1)];
        let bytes = limit().request("acme", Tier::Pro, &search, 3);
        let req = RateLimitRequest::decode(bytes.as_slice()).expect("decodes");
        assert_eq!(req.domain, "mcp-edge");
        assert_eq!(req.hits_addend, 3);
        let entries = req.first_entries();
        assert_eq!(
            entries,
            [("tenant", "acme"), ("tier", "pro")],
            "no tool unless asked"
        );
        let with_tool = GlobalLimit {
            tool_descriptor: true,
            ..limit()
        };
        let req =
            RateLimitRequest::decode(with_tool.request("acme", Tier::Pro, &search, 0).as_slice())
                .expect("decodes");
        assert_eq!(req.descriptors.len(), 1);
        assert_eq!(req.descriptors[0].entries[2].value, "search");
        assert_eq!(req.hits_addend, 1, "a cost of 0 is sent as 1");
    }

    /// What each descriptor of a request names and costs: (tool, hits).
    fn descriptors(bytes: &[u8]) -> Vec<(Option<String>, u64)> {
        let req = RateLimitRequest::decode(bytes).expect("decodes");
        req.descriptors
            .iter()
            .map(|d| {
                assert_eq!(d.entries[0].value, "acme");
                assert_eq!(d.entries[1].value, "pro");
                (
                    d.entries.get(2).map(|e| e.value.clone()),
                    d.hits_addend.as_ref().map_or(0, |h| h.value),
                )
            })
            .collect()
    }

    #[test]
    fn a_batch_costs_each_of_its_tools_budgets() {
        let with_tool = GlobalLimit {
            tool_descriptor: true,
            ..limit()
        };
        let calls = [("search".to_string(), 3), ("create".to_string(), 1)];
        // Four calls and two other messages (a ping, a notification).
        let got = descriptors(&with_tool.request("acme", Tier::Pro, &calls, 6));
        assert_eq!(
            got,
            [
                (Some("search".into()), 3),
                (Some("create".into()), 1),
                (None, 2)
            ]
        );
        let only_calls = descriptors(&with_tool.request("acme", Tier::Pro, &calls, 4));
        assert_eq!(only_calls.len(), 2, "no descriptor for nothing");
        assert_eq!(
            descriptors(&limit().request("acme", Tier::Pro, &calls, 6)),
            [(None, 6)],
            "without tool_descriptor, one descriptor for the whole cost"
        );
        assert_eq!(
            descriptors(&with_tool.request("acme", Tier::Pro, &[], 1)),
            [(None, 1)]
        );
    }

    #[test]
    fn ok_admits_with_the_services_headers() {
        let body = answer(
            CODE_OK,
            &[
                ("RateLimit-Policy", "\"pro\";q=600;w=60"),
                ("ratelimit", "\"pro\";r=599;t=60"),
                ("x-injected", "no"),
            ],
        );
        let verdict = decide(&limit(), Tier::Pro, Some(0), Some(&body));
        assert_eq!(
            verdict,
            GlobalVerdict::Admitted(vec![
                ("ratelimit-policy".into(), "\"pro\";q=600;w=60".into()),
                ("ratelimit".into(), "\"pro\";r=599;t=60".into()),
            ])
        );
        assert_eq!(verdict.stat_verdict(), "ok");
    }

    #[test]
    fn over_limit_is_the_local_429_shape() {
        let body = answer(
            CODE_OVER_LIMIT,
            &[
                ("ratelimit-policy", "\"free\";q=60;w=60"),
                ("ratelimit", "\"free\";r=0;t=37"),
                ("retry-after", "37"),
            ],
        );
        let GlobalVerdict::OverLimit(reply) = decide(&limit(), Tier::Free, Some(0), Some(&body))
        else {
            panic!("not over the limit");
        };
        assert_eq!(reply.status, 429);
        assert_eq!(reply.header("retry-after"), Some("37"));
        assert_eq!(reply.header("ratelimit"), Some("\"free\";r=0;t=37"));
        assert_eq!(reply.header("ratelimit-policy"), Some("\"free\";q=60;w=60"));
        let json: Value = serde_json::from_slice(&reply.body).expect("json");
        assert_eq!(json["error"]["code"], codes::RATE_LIMITED);
        assert!(
            json["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("free tier"))
        );
        // without a Retry-After from the service: 1 s
        let bare = answer(CODE_OVER_LIMIT, &[]);
        let GlobalVerdict::OverLimit(reply) = decide(&limit(), Tier::Free, Some(0), Some(&bare))
        else {
            panic!("not over the limit");
        };
        assert_eq!(reply.header("retry-after"), Some("1"));
    }

    #[test]
    fn no_decision_applies_the_tiers_failure_mode() {
        let l = limit();
        let unavailable = Some(14);
        let deadline = Some(4);
        for status in [unavailable, deadline, None] {
            assert_eq!(
                decide(&l, Tier::Pro, status, None),
                GlobalVerdict::FailedOpen
            );
            let GlobalVerdict::FailedClosed(reply) = decide(&l, Tier::Free, status, None) else {
                panic!("free fails closed by default");
            };
            assert_eq!(
                (reply.status, reply.header("retry-after")),
                (503, Some("1"))
            );
            let json: Value = serde_json::from_slice(&reply.body).expect("json");
            assert_eq!(json["error"]["code"], codes::UNAVAILABLE);
        }
        // an unreadable answer, or UNKNOWN, is no decision either
        assert_eq!(
            decide(&l, Tier::Enterprise, Some(0), Some(&[0xff, 0xff])),
            GlobalVerdict::FailedOpen
        );
        assert_eq!(
            decide(&l, Tier::Enterprise, Some(0), Some(&answer(0, &[]))),
            GlobalVerdict::FailedOpen
        );
        let closed = GlobalLimit {
            failure_mode: [(Tier::Enterprise, FailureMode::Closed)].into(),
            ..limit()
        };
        assert!(matches!(
            decide(&closed, Tier::Enterprise, None, None),
            GlobalVerdict::FailedClosed(_)
        ));
        assert_eq!(GlobalVerdict::FailedOpen.stat_verdict(), "failed_open");
    }
}
