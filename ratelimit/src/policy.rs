//! Which counters a descriptor is checked against: one per tier window, counted per tenant, and
//! one per tier, tool and window, counted per tenant, as the limits file sets them.
//!
//! A counter's key names the domain, limit, window length and tenant but not the maximum, so a
//! reloaded file that raises or lowers a budget keeps what was already counted.

use std::time::Duration;

use crate::descriptor::TenantDescriptor;
use crate::limits_file::{LimitsConfig, Window};

/// One counter to check: its key, the limit's name (for headers and logs: `free`,
/// `pro/search_tasks`), its maximum per window and the hits this request asks of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterCheck {
    pub key: String,
    pub name: String,
    pub max: u64,
    pub window: Duration,
    pub hits: u64,
}

/// Every counter `d` is checked against under `config`.
pub fn counters_for(config: &LimitsConfig, d: &TenantDescriptor) -> Vec<CounterCheck> {
    let Some(tier_limits) = config.tiers.get(&d.tier) else {
        return Vec::new();
    };
    let tier = d.tier.name();
    let mut checks: Vec<CounterCheck> = tier_limits
        .windows
        .iter()
        .map(|w| check(config, tier.to_string(), w, d))
        .collect();
    if let Some(windows) = d.tool.as_ref().and_then(|t| tier_limits.tools.get(t)) {
        let name = format!("{tier}/{}", d.tool.as_deref().unwrap_or_default());
        checks.extend(windows.iter().map(|w| check(config, name.clone(), w, d)));
    }
    checks
}

fn check(
    config: &LimitsConfig,
    name: String,
    window: &Window,
    d: &TenantDescriptor,
) -> CounterCheck {
    let seconds = window.unit.seconds();
    CounterCheck {
        // The tenant goes last: names and windows have fixed shapes, so keys cannot collide.
        key: format!("{}:{name}:{seconds}:{}", config.domain, d.tenant),
        name,
        max: u64::from(window.requests),
        window: Duration::from_secs(seconds),
        hits: d.hits,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits_file::parse;
    use mcp_edge_contract::Tier;

    fn descriptor(tier: Tier, tool: Option<&str>) -> TenantDescriptor {
        TenantDescriptor {
            tenant: "acme".into(),
            tier,
            tool: tool.map(str::to_string),
            hits: 3,
        }
    }

    #[test]
    fn one_counter_per_tier_window_and_per_tool_window() {
        let cfg = parse(
            "tiers:
  free: { requests_per_minute: 60 }
  pro: { requests_per_minute: 600, tools: { search_tasks: { requests_per_second: 2 } } }
  enterprise: { requests_per_minute: 6000, requests_per_hour: 100000 }",
        )
        .expect("valid");
        let seen = |tier, tool| -> Vec<(String, String, u64, u64, u64)> {
            counters_for(&cfg, &descriptor(tier, tool))
                .into_iter()
                .map(|c| (c.key, c.name, c.max, c.window.as_secs(), c.hits))
                .collect()
        };
        assert_eq!(
            seen(Tier::Pro, Some("search_tasks")),
            vec![
                ("mcp-edge:pro:60:acme".into(), "pro".into(), 600, 60, 3),
                (
                    "mcp-edge:pro/search_tasks:1:acme".into(),
                    "pro/search_tasks".into(),
                    2,
                    1,
                    3
                ),
            ]
        );
        assert_eq!(seen(Tier::Pro, Some("other")).len(), 1);
        assert_eq!(seen(Tier::Free, Some("search_tasks")).len(), 1);
        let enterprise = seen(Tier::Enterprise, None);
        assert_eq!(
            enterprise.iter().map(|c| (c.2, c.3)).collect::<Vec<_>>(),
            vec![(6000, 60), (100000, 3600)]
        );
    }
}
