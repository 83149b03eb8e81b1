//! Admission against the tenant's token bucket (its tier's rate limit).

use crate::config::EdgeConfig;
use crate::rate_limit::{Decision, Limit, SharedStore, SlotSecret};
use crate::tenant::{TenantContext, Tier};

use super::{Denial, tenant_table};

/// What an admitted request learned about its tenant's bucket, for the response headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateState {
    pub tier: Tier,
    pub per_minute: u64,
    pub remaining: u64,
    pub reset_secs: u64,
}

impl RateState {
    /// `RateLimit-Policy` and `RateLimit` (draft-ietf-httpapi-ratelimit-headers): the tier's quota
    /// per 60 s window, what is left now and when the bucket is full again.
    pub fn headers(&self) -> [(&'static str, String); 2] {
        let name = self.tier.name();
        [
            (
                "ratelimit-policy",
                format!("\"{name}\";q={};w=60", self.per_minute),
            ),
            (
                "ratelimit",
                format!("\"{name}\";r={};t={}", self.remaining, self.reset_secs),
            ),
        ]
    }
}

/// Takes `cost` tokens from the tenant's bucket, or refuses with 429.
pub fn admit(
    cfg: &EdgeConfig,
    store: &dyn SharedStore,
    secret: &SlotSecret,
    tenant: &TenantContext,
    cost: u64,
    now_ms: u64,
) -> Result<RateState, Denial> {
    let tier = tenant.tier;
    let limit: Limit = cfg.rate_limits.get(&tier).copied().unwrap_or(Limit {
        capacity: 1,
        per_minute: 1,
    });
    let decision =
        tenant_table(cfg, secret).update(store, tenant.tenant_id.as_bytes(), &limit, now_ms, |s| {
            let (next, d) = limit.take(s, cost, now_ms);
            (Some(next), d)
        });
    let retry_after = match decision {
        Some(Decision::Admitted {
            remaining,
            reset_secs,
        }) => {
            return Ok(RateState {
                tier,
                per_minute: limit.per_minute,
                remaining,
                reset_secs,
            });
        }
        Some(Decision::Limited { retry_after_secs }) => retry_after_secs,
        // No free slot for this tenant's bucket: refuse rather than run unlimited.
        None => 1,
    };
    let state = RateState {
        tier,
        per_minute: limit.per_minute,
        remaining: 0,
        reset_secs: retry_after,
    };
    Err(Denial::RateLimited { tier, limit, state })
}

#[cfg(test)]
mod limit_tests {
    use super::*;
    use crate::config::parse_config;
    use crate::gate::{Outcome, describe_body};
    use crate::rate_limit::testing::MemoryShared;
    use mcp_edge_contract::Identity;
    use serde_json::Value;
    use serde_json::json;

    fn cfg() -> EdgeConfig {
        let v = json!({
            "resource": "https://mcp.example/mcp",
            "issuers": ["https://as"],
            "jwks": {"inline": {"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo", "kid": "k"}]}},
            "gateway_secret": {"inline": "0123456789abcdef0123456789abcdef"},
            "prm": {"authorization_servers": ["https://as"], "scopes_supported": ["mcp:read", "mcp:write"]},
            "tool_scopes": {},
            "rate_limits": {
                "free": {"requests_per_minute": 60, "burst": 2},
                "pro": {"requests_per_minute": 600, "burst": 5},
                "enterprise": {"requests_per_minute": 6000, "burst": 50}
            },
            "invalid_token_limit": {"requests_per_minute": 60, "burst": 3}
        });
        parse_config(v.to_string().as_bytes(), &|_| None).unwrap()
    }

    fn tenant(id: &str, tier: Tier) -> TenantContext {
        TenantContext {
            identity: Identity {
                tier,
                ..Identity::example(id)
            },
            allowed_tools: None,
        }
    }

    #[test]
    fn tenants_are_limited_by_their_tier() {
        let c = cfg();
        let shared = MemoryShared::default();
        let free = tenant("f", Tier::Free);
        let pro = tenant("p", Tier::Pro);
        assert!(admit(&c, &shared, &SlotSecret([0; 16]), &free, 1, 0).is_ok());
        let state = admit(&c, &shared, &SlotSecret([0; 16]), &free, 1, 0).unwrap();
        assert_eq!(state.remaining, 0);
        assert_eq!(state.headers()[0].1, "\"free\";q=60;w=60");
        let denial = admit(&c, &shared, &SlotSecret([0; 16]), &free, 1, 0).unwrap_err();
        let (reply, outcome) = (denial.reply(Some(&c)), denial.outcome());
        assert_eq!((reply.status, outcome), (429, Outcome::RateLimited));
        assert_eq!(reply.header("retry-after"), Some("1"));
        let body: Value = serde_json::from_slice(&reply.body).unwrap();
        let msg = body["error"]["message"].as_str().unwrap();
        assert!(
            msg.contains("free tier") && msg.contains("60 requests a minute"),
            "{msg}"
        );
        // the pro tenant is untouched, and a batch costs its length
        assert!(admit(&c, &shared, &SlotSecret([0; 16]), &pro, 5, 0).is_ok());
        assert!(admit(&c, &shared, &SlotSecret([0; 16]), &pro, 1, 0).is_err());
        // an hour later everyone is full again
        assert!(admit(&c, &shared, &SlotSecret([0; 16]), &free, 2, 3_600_000).is_ok());
    }

    #[test]
    fn cost_counts_requests_and_notifications() {
        let batch = br#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","method":"notifications/x"},{"jsonrpc":"2.0","id":2,"result":{}}]"#;
        assert_eq!(describe_body(batch).unwrap().cost, 2);
        assert_eq!(
            describe_body(br#"{"jsonrpc":"2.0","id":2,"result":{}}"#)
                .unwrap()
                .cost,
            1
        );
    }
}
