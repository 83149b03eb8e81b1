//! Plans (tiers), their daily quotas and what the quota does while the usage store is down.
//!
//! A tier comes from the gateway's `x-mcp-tier` header (the token's `rate_limit_tier` claim; the edge
//! reads an unknown or missing one as free, the most restrictive plan).

use std::fmt;
use std::str::FromStr;

/// The plan a tenant is on: the contract's tier, vouched for by the gateway.
pub use mcp_edge_contract::Tier;

/// A daily quota: a number of billable calls per UTC day, or unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DailyQuota(pub Option<u64>);

impl DailyQuota {
    pub const UNLIMITED: Self = Self(None);

    pub fn limit(self) -> Option<u64> {
        self.0
    }
}

impl FromStr for DailyQuota {
    type Err = String;

    /// A positive number of calls per day; `0` or `unlimited` mean no limit.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("unlimited") {
            return Ok(Self::UNLIMITED);
        }
        match s.parse::<u64>() {
            Ok(0) => Ok(Self::UNLIMITED),
            Ok(n) => Ok(Self(Some(n))),
            Err(_) => Err(format!(
                "{s:?} is not a daily quota: give a number of calls per day, or 0 / unlimited"
            )),
        }
    }
}

impl fmt::Display for DailyQuota {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(n) => write!(f, "{n}"),
            None => f.write_str("unlimited"),
        }
    }
}

/// The daily quota of each tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaLimits {
    pub free: DailyQuota,
    pub pro: DailyQuota,
    pub enterprise: DailyQuota,
}

impl Default for QuotaLimits {
    /// free 100, pro 10 000, enterprise unlimited.
    fn default() -> Self {
        Self {
            free: DailyQuota(Some(100)),
            pro: DailyQuota(Some(10_000)),
            enterprise: DailyQuota::UNLIMITED,
        }
    }
}

impl QuotaLimits {
    pub fn of(&self, tier: Tier) -> DailyQuota {
        match tier {
            Tier::Free => self.free,
            Tier::Pro => self.pro,
            Tier::Enterprise => self.enterprise,
        }
    }
}

/// What a billable call does when its quota cannot be checked (the usage store is unreachable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenDown {
    /// Refuse the call (JSON-RPC error -32051); the business call does not run.
    Closed,
    /// Run the call; its usage event goes to the outbox and counts towards the day's quota when
    /// it is delivered.
    Open,
}

/// [`WhenDown`] per tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DownPolicy {
    pub free: WhenDown,
    pub pro: WhenDown,
    pub enterprise: WhenDown,
}

impl Default for DownPolicy {
    /// Closed for free, open for the paid tiers.
    fn default() -> Self {
        Self {
            free: WhenDown::Closed,
            pro: WhenDown::Open,
            enterprise: WhenDown::Open,
        }
    }
}

impl DownPolicy {
    pub fn of(&self, tier: Tier) -> WhenDown {
        match tier {
            Tier::Free => self.free,
            Tier::Pro => self.pro,
            Tier::Enterprise => self.enterprise,
        }
    }
}

impl FromStr for DownPolicy {
    type Err = String;

    /// Comma-separated `tier=open|closed`; tiers not named keep their default.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut policy = Self::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (tier, mode) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?}: expected tier=open or tier=closed"))?;
            let mode = match mode.trim() {
                "open" => WhenDown::Open,
                "closed" => WhenDown::Closed,
                other => return Err(format!("{other:?}: expected open or closed")),
            };
            match tier.trim() {
                "free" => policy.free = mode,
                "pro" => policy.pro = mode,
                "enterprise" => policy.enterprise = mode,
                other => {
                    return Err(format!(
                        "{other:?} is not a tier (expected free, pro or enterprise)"
                    ));
                }
            }
        }
        Ok(policy)
    }
}

impl fmt::Display for DownPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = |w: WhenDown| match w {
            WhenDown::Open => "open",
            WhenDown::Closed => "closed",
        };
        write!(
            f,
            "free={},pro={},enterprise={}",
            s(self.free),
            s(self.pro),
            s(self.enterprise)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas_parse() {
        assert_eq!("100".parse(), Ok(DailyQuota(Some(100))));
        assert_eq!("0".parse(), Ok(DailyQuota::UNLIMITED));
        assert_eq!("Unlimited".parse(), Ok(DailyQuota::UNLIMITED));
        assert!("-1".parse::<DailyQuota>().is_err());
        assert!("ten".parse::<DailyQuota>().is_err());
        assert_eq!(DailyQuota(Some(7)).to_string(), "7");
        assert_eq!(DailyQuota::UNLIMITED.to_string(), "unlimited");
        let limits = QuotaLimits::default();
        assert_eq!(limits.of(Tier::Free).limit(), Some(100));
        assert_eq!(limits.of(Tier::Pro).limit(), Some(10_000));
        assert_eq!(limits.of(Tier::Enterprise).limit(), None);
    }

    #[test]
    fn down_policy_parses_and_round_trips() {
        let p: DownPolicy = "pro=closed".parse().expect("policy");
        assert_eq!(p.free, WhenDown::Closed);
        assert_eq!(p.pro, WhenDown::Closed);
        assert_eq!(p.enterprise, WhenDown::Open);
        let all: DownPolicy = "free=open, pro=open ,enterprise=closed"
            .parse()
            .expect("policy");
        assert_eq!(all.to_string(), "free=open,pro=open,enterprise=closed");
        assert_eq!(all.to_string().parse::<DownPolicy>(), Ok(all));
        assert_eq!(
            DownPolicy::default().to_string(),
            "free=closed,pro=open,enterprise=open"
        );
        for bad in ["free", "free=maybe", "gold=open"] {
            assert!(bad.parse::<DownPolicy>().is_err(), "{bad}");
        }
    }
}
