//! The answer to `ShouldRateLimit`, built from the counters' decision: a status per descriptor (the
//! limit that decided, what is left, when its window resets) and the response headers a 429 or a
//! success carries (`RateLimit-Policy`, `RateLimit` and, over the limit, `Retry-After`), so the
//! caller, the native Envoy filter or the wasm filter, can pass them on without knowing the limits.

use crate::limiter::{CounterState, Decision};
use crate::limits_file::Unit;
use crate::policy::CounterCheck;
use envoy_types::pb::envoy::config::core::v3::HeaderValue;
use envoy_types::pb::envoy::service::ratelimit::v3::RateLimitResponse;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::rate_limit::Unit as ProtoUnit;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::{
    Code, DescriptorStatus, RateLimit,
};
use envoy_types::pb::google::protobuf::Duration as ProtoDuration;

/// The counter that speaks for one descriptor's decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deciding {
    pub name: String,
    pub max: u64,
    pub window_secs: u64,
    pub remaining: u64,
    /// Whole seconds until the window resets (rounded up, at least 1).
    pub reset_secs: u64,
    pub reset: std::time::Duration,
}

/// One descriptor's outcome.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub limited: bool,
    pub deciding: Option<Deciding>,
}

impl Outcome {
    /// One descriptor's part of `decision`, over the counters it was checked against. Over the
    /// limit: among its counters that cannot take its hits, the one whose window resets last (all
    /// of them must reset before it is admitted). Admitted: the one with the least left.
    pub fn from_decision(decision: &Decision, checks: &[CounterCheck]) -> Self {
        let views: Vec<(&CounterCheck, Deciding)> = checks
            .iter()
            .filter_map(|c| {
                let state = decision.counters.get(&c.key)?;
                Some((c, deciding_counter(c, state)))
            })
            .collect();
        // Not counted when limited, so what is counted plus these hits is what did not fit.
        let blocked = |(c, d): &&(&CounterCheck, Deciding)| d.remaining < c.hits;
        let limited = decision.limited && views.iter().any(|v| blocked(&v));
        let deciding = if limited {
            views
                .iter()
                .filter(blocked)
                .map(|(_, d)| d)
                .max_by_key(|d| d.reset)
        } else {
            views
                .iter()
                .map(|(_, d)| d)
                .min_by_key(|d| (d.remaining, std::cmp::Reverse(d.window_secs)))
        };
        Self {
            limited,
            deciding: deciding.cloned(),
        }
    }

    fn status(&self) -> DescriptorStatus {
        let code = if self.limited {
            Code::OverLimit
        } else {
            Code::Ok
        };
        let Some(d) = &self.deciding else {
            return DescriptorStatus {
                code: code.into(),
                ..Default::default()
            };
        };
        let unit = Unit::from_seconds(d.window_secs).map_or(ProtoUnit::Unknown, |u| match u {
            Unit::Second => ProtoUnit::Second,
            Unit::Minute => ProtoUnit::Minute,
            Unit::Hour => ProtoUnit::Hour,
            Unit::Day => ProtoUnit::Day,
        });
        DescriptorStatus {
            code: code.into(),
            current_limit: Some(RateLimit {
                name: d.name.clone(),
                requests_per_unit: clamp_u32(d.max),
                unit: unit.into(),
            }),
            limit_remaining: clamp_u32(d.remaining),
            duration_until_reset: Some(ProtoDuration {
                seconds: i64::try_from(d.reset.as_secs()).unwrap_or(i64::MAX),
                nanos: i32::try_from(d.reset.subsec_nanos()).unwrap_or(0),
            }),
            quota: None,
        }
    }
}

fn deciding_counter(check: &CounterCheck, state: &CounterState) -> Deciding {
    let reset = state.reset_in;
    let reset_secs = reset.as_secs() + u64::from(reset.subsec_nanos() > 0);
    Deciding {
        name: check.name.clone(),
        max: check.max,
        window_secs: check.window.as_secs(),
        remaining: check.max.saturating_sub(state.count),
        reset_secs: reset_secs.max(1),
        reset,
    }
}

fn clamp_u32(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The response for all descriptors: over the limit when the decision was (nothing was counted
/// for any of them then), with the headers of the descriptor that decided.
pub fn response(limited: bool, outcomes: &[Outcome]) -> RateLimitResponse {
    let headline = if limited {
        outcomes
            .iter()
            .filter(|o| o.limited || outcomes.iter().all(|o| !o.limited))
            .filter_map(|o| o.deciding.as_ref())
            .max_by_key(|d| d.reset)
    } else {
        outcomes
            .iter()
            .filter_map(|o| o.deciding.as_ref())
            .min_by_key(|d| d.remaining)
    };
    RateLimitResponse {
        overall_code: if limited { Code::OverLimit } else { Code::Ok }.into(),
        statuses: outcomes.iter().map(Outcome::status).collect(),
        response_headers_to_add: headline.map_or_else(Vec::new, |d| headers(d, limited)),
        ..Default::default()
    }
}

/// `RateLimit-Policy` and `RateLimit` (draft-ietf-httpapi-ratelimit-headers) as the filter writes
/// them for its local buckets, and `Retry-After` when over the limit.
fn headers(d: &Deciding, limited: bool) -> Vec<HeaderValue> {
    let mut headers = vec![
        header(
            "ratelimit-policy",
            format!("\"{}\";q={};w={}", d.name, d.max, d.window_secs),
        ),
        header(
            "ratelimit",
            format!("\"{}\";r={};t={}", d.name, d.remaining, d.reset_secs),
        ),
    ];
    if limited {
        headers.push(header("retry-after", d.reset_secs.to_string()));
    }
    headers
}

fn header(key: &str, value: String) -> HeaderValue {
    HeaderValue {
        key: key.to_string(),
        value,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn deciding(name: &str, remaining: u64, reset_ms: u64) -> Deciding {
        let reset = Duration::from_millis(reset_ms);
        Deciding {
            name: name.into(),
            max: 60,
            window_secs: 60,
            remaining,
            reset_secs: reset.as_secs() + u64::from(reset.subsec_nanos() > 0),
            reset,
        }
    }

    fn header_map(r: &RateLimitResponse) -> Vec<(String, String)> {
        r.response_headers_to_add
            .iter()
            .map(|h| (h.key.clone(), h.value.clone()))
            .collect()
    }

    #[test]
    fn admitted_reports_the_least_remaining_without_retry_after() {
        let r = response(
            false,
            &[
                Outcome {
                    limited: false,
                    deciding: Some(deciding("free", 10, 30_000)),
                },
                Outcome {
                    limited: false,
                    deciding: Some(deciding("free/search", 2, 500)),
                },
            ],
        );
        assert_eq!(r.overall_code, i32::from(Code::Ok));
        assert_eq!(
            header_map(&r),
            vec![
                (
                    "ratelimit-policy".into(),
                    "\"free/search\";q=60;w=60".into()
                ),
                ("ratelimit".into(), "\"free/search\";r=2;t=1".into()),
            ]
        );
        let s = &r.statuses[0];
        assert_eq!(s.limit_remaining, 10);
        let limit = s.current_limit.as_ref().expect("limit");
        assert_eq!(
            (limit.requests_per_unit, limit.unit),
            (60, ProtoUnit::Minute.into())
        );
        assert_eq!(
            s.duration_until_reset,
            Some(ProtoDuration {
                seconds: 30,
                nanos: 0
            })
        );
    }

    #[test]
    fn over_limit_reports_the_longest_wait_with_retry_after() {
        let r = response(
            true,
            &[
                Outcome {
                    limited: false,
                    deciding: Some(deciding("free", 5, 59_000)),
                },
                Outcome {
                    limited: true,
                    deciding: Some(deciding("free/search", 0, 12_300)),
                },
            ],
        );
        assert_eq!(r.overall_code, i32::from(Code::OverLimit));
        assert_eq!(r.statuses[1].code, i32::from(Code::OverLimit));
        assert_eq!(r.statuses[0].code, i32::from(Code::Ok));
        assert!(header_map(&r).contains(&("retry-after".into(), "13".into())));
    }
}
