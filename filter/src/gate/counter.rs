//! The Envoy counters a step bumps, as values rather than names: the glue defines each counter's
//! metric once per worker (by [`Counter::name`]) and keeps its id, so no stat name is formatted or
//! hashed as a string per request. The names are the stats contract and do not change.

use crate::tenant::Tier;

use super::denial::Outcome;

/// One Envoy counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Counter {
    /// `mcp_edge.outcome.<outcome>`.
    Outcome(Outcome),
    /// `mcp_edge.ratelimit.<tier>.admitted` or `.limited`: the local bucket's verdict.
    RateLimit { tier: Tier, limited: bool },
    /// `mcp_edge.global_ratelimit.<tier>.<verdict>`: the global service's verdict.
    GlobalRateLimit { tier: Tier, verdict: &'static str },
    /// `mcp_edge.jwks.<event>`: a JWKS fetch `started` or `not_started` (could not be dispatched),
    /// a request that needs keys `waited` for the fetch or was judged at once (`wait_refused`: too
    /// many wait).
    Jwks(&'static str),
}

impl Counter {
    /// The stat's name in Envoy.
    pub fn name(self) -> String {
        match self {
            Self::Outcome(outcome) => format!("mcp_edge.outcome.{}", outcome.stat_name()),
            Self::RateLimit { tier, limited } => format!(
                "mcp_edge.ratelimit.{}.{}",
                tier.name(),
                if limited { "limited" } else { "admitted" }
            ),
            Self::GlobalRateLimit { tier, verdict } => {
                format!("mcp_edge.global_ratelimit.{}.{verdict}", tier.name())
            }
            Self::Jwks(event) => format!("mcp_edge.jwks.{event}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_stats_contract() {
        let cases = [
            (
                Counter::Outcome(Outcome::Allowed),
                "mcp_edge.outcome.allowed",
            ),
            (
                Counter::Outcome(Outcome::InvalidToken("expired")),
                "mcp_edge.outcome.denied.invalid_token.expired",
            ),
            (
                Counter::RateLimit {
                    tier: Tier::Pro,
                    limited: false,
                },
                "mcp_edge.ratelimit.pro.admitted",
            ),
            (
                Counter::RateLimit {
                    tier: Tier::Free,
                    limited: true,
                },
                "mcp_edge.ratelimit.free.limited",
            ),
            (
                Counter::GlobalRateLimit {
                    tier: Tier::Enterprise,
                    verdict: "failed_open",
                },
                "mcp_edge.global_ratelimit.enterprise.failed_open",
            ),
            (Counter::Jwks("waited"), "mcp_edge.jwks.waited"),
        ];
        for (counter, name) in cases {
            assert_eq!(counter.name(), name);
        }
    }
}
