//! What a `ShouldRateLimit` request must carry, checked before anything is counted.
//!
//! Each descriptor names one tenant: entries `tenant` (the verified tenant id), `tier` (`free`,
//! `pro` or `enterprise`) and optionally `tool`; any other key, a missing or repeated one, an
//! unknown tier or domain is refused with `INVALID_ARGUMENT` and a message saying which. A request
//! costs `hits_addend` (the descriptor's own when set, else the request's; 0 or unset means 1), so
//! a batch of k calls can be charged k at once.

use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::service::ratelimit::v3::RateLimitRequest;
use mcp_edge_contract::Tier;
use mcp_edge_contract::limits::MAX_TENANT_ID_BYTES;

use crate::limits_file::{MAX_TOOL_NAME_BYTES, is_tool_name};

pub const ENTRY_TENANT: &str = "tenant";
pub const ENTRY_TIER: &str = "tier";
pub const ENTRY_TOOL: &str = "tool";
/// The most descriptors one request may carry (each is counted on its own): the filter sends one
/// per tool a batch calls, and a batch holds at most this many messages.
pub const MAX_DESCRIPTORS: usize = mcp_edge_contract::limits::MAX_BATCH_ELEMENTS;

/// One descriptor, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantDescriptor {
    pub tenant: String,
    pub tier: Tier,
    pub tool: Option<String>,
    /// What this request costs against the descriptor's limits.
    pub hits: u64,
}

/// The request's descriptors, or why the request is refused.
pub fn check(request: &RateLimitRequest, domain: &str) -> Result<Vec<TenantDescriptor>, String> {
    if request.domain != domain {
        return Err(format!(
            "unknown domain {:?}: this service answers for {domain:?}",
            request.domain
        ));
    }
    if request.descriptors.is_empty() || request.descriptors.len() > MAX_DESCRIPTORS {
        return Err(format!(
            "a request carries 1 to {MAX_DESCRIPTORS} descriptors, not {}",
            request.descriptors.len()
        ));
    }
    let request_hits = match request.hits_addend {
        0 => 1,
        n => u64::from(n),
    };
    request
        .descriptors
        .iter()
        .enumerate()
        .map(|(i, d)| descriptor(d, request_hits).map_err(|e| format!("descriptor {i}: {e}")))
        .collect()
}

fn descriptor(d: &RateLimitDescriptor, request_hits: u64) -> Result<TenantDescriptor, String> {
    if d.is_negative_hits {
        return Err("is_negative_hits (giving budget back) is not supported".into());
    }
    let (mut tenant, mut tier, mut tool) = (None, None, None);
    for entry in &d.entries {
        let slot = match entry.key.as_str() {
            ENTRY_TENANT => &mut tenant,
            ENTRY_TIER => &mut tier,
            ENTRY_TOOL => &mut tool,
            other => {
                return Err(format!(
                    "unknown entry {other:?} (the entries are {ENTRY_TENANT}, {ENTRY_TIER} and optionally {ENTRY_TOOL})"
                ));
            }
        };
        if slot.replace(entry.value.as_str()).is_some() {
            return Err(format!("entry {:?} appears more than once", entry.key));
        }
    }
    let tenant = tenant.ok_or_else(|| format!("missing entry {ENTRY_TENANT:?}"))?;
    if tenant.is_empty() || tenant.len() > MAX_TENANT_ID_BYTES {
        return Err(format!(
            "entry {ENTRY_TENANT:?} must be 1 to {MAX_TENANT_ID_BYTES} bytes"
        ));
    }
    let tier_name = tier.ok_or_else(|| format!("missing entry {ENTRY_TIER:?}"))?;
    let tier = Tier::parse(tier_name).ok_or_else(|| {
        format!("entry {ENTRY_TIER:?} is {tier_name:?}, not free, pro or enterprise")
    })?;
    if let Some(tool) = tool
        && !is_tool_name(tool)
    {
        return Err(format!(
            "entry {ENTRY_TOOL:?} is not a tool name (1 to {MAX_TOOL_NAME_BYTES} of A-Z a-z 0-9 _ - .)"
        ));
    }
    Ok(TenantDescriptor {
        tenant: tenant.to_string(),
        tier,
        tool: tool.map(str::to_string),
        hits: d.hits_addend.map_or(request_hits, |h| h.value),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::Entry;
    use envoy_types::pb::google::protobuf::UInt64Value;

    fn entries(pairs: &[(&str, &str)]) -> RateLimitDescriptor {
        RateLimitDescriptor {
            entries: pairs
                .iter()
                .map(|(k, v)| Entry {
                    key: k.to_string(),
                    value: v.to_string(),
                })
                .collect(),
            ..Default::default()
        }
    }

    fn request(descriptors: Vec<RateLimitDescriptor>, hits_addend: u32) -> RateLimitRequest {
        RateLimitRequest {
            domain: "mcp-edge".into(),
            descriptors,
            hits_addend,
        }
    }

    #[test]
    fn a_tenant_descriptor_is_accepted_in_any_entry_order() {
        let req = request(
            vec![entries(&[
                ("tier", "pro"),
                ("tool", "search_tasks"),
                ("tenant", "acme"),
            ])],
            0,
        );
        assert_eq!(
            check(&req, "mcp-edge"),
            Ok(vec![TenantDescriptor {
                tenant: "acme".into(),
                tier: Tier::Pro,
                tool: Some("search_tasks".into()),
                hits: 1,
            }])
        );
    }

    #[test]
    fn hits_come_from_the_descriptor_then_the_request() {
        let mut own = entries(&[("tenant", "acme"), ("tier", "free")]);
        own.hits_addend = Some(UInt64Value { value: 7 });
        let req = request(
            vec![own, entries(&[("tenant", "acme"), ("tier", "free")])],
            3,
        );
        let hits: Vec<u64> = check(&req, "mcp-edge")
            .expect("valid")
            .iter()
            .map(|d| d.hits)
            .collect();
        assert_eq!(hits, vec![7, 3]);
    }

    #[test]
    fn bad_requests_are_refused_with_the_reason() {
        let ok = || entries(&[("tenant", "acme"), ("tier", "free")]);
        let long_tenant = "t".repeat(MAX_TENANT_ID_BYTES + 1);
        let mut negative = ok();
        negative.is_negative_hits = true;
        let cases = [
            (
                RateLimitRequest {
                    domain: "other".into(),
                    ..request(vec![ok()], 1)
                },
                "unknown domain",
            ),
            (request(vec![], 1), "1 to 100 descriptors"),
            (
                request(vec![ok(); MAX_DESCRIPTORS + 1], 1),
                "1 to 100 descriptors",
            ),
            (
                request(vec![entries(&[("tier", "free")])], 1),
                "missing entry \"tenant\"",
            ),
            (
                request(vec![entries(&[("tenant", "a")])], 1),
                "missing entry \"tier\"",
            ),
            (
                request(vec![entries(&[("tenant", "a"), ("tier", "gold")])], 1),
                "\"gold\", not free",
            ),
            (
                request(
                    vec![entries(&[("tenant", "a"), ("tier", "free"), ("ip", "1")])],
                    1,
                ),
                "unknown entry \"ip\"",
            ),
            (
                request(
                    vec![entries(&[
                        ("tenant", "a"),
                        ("tenant", "b"),
                        ("tier", "free"),
                    ])],
                    1,
                ),
                "more than once",
            ),
            (
                request(vec![entries(&[("tenant", ""), ("tier", "free")])], 1),
                "1 to 128 bytes",
            ),
            (
                request(
                    vec![entries(&[("tenant", &long_tenant), ("tier", "free")])],
                    1,
                ),
                "1 to 128 bytes",
            ),
            (
                request(
                    vec![entries(&[
                        ("tenant", "a"),
                        ("tier", "free"),
                        ("tool", "x y"),
                    ])],
                    1,
                ),
                "not a tool name",
            ),
            (
                request(vec![ok(), negative], 1),
                "descriptor 1: is_negative_hits",
            ),
        ];
        for (req, expected) in cases {
            let e = check(&req, "mcp-edge").expect_err(expected);
            assert!(e.contains(expected), "{e:?} should contain {expected:?}");
        }
    }
}
