//! The operator's limits file: each tier's request budget per fixed window (and optional budgets
//! per tool), enforced for every tenant across all Envoy replicas.
//!
//! Parsing is strict (unknown fields are refused) and every error names the field it is about, so
//! a typo stops the service at start, or is refused on reload while the old limits stay, instead of
//! silently loosening a limit.

use std::collections::BTreeMap;
use std::path::Path;

use mcp_edge_contract::Tier;
use serde::Deserialize;

/// The domain (`RateLimitRequest.domain`) when the file names none.
pub const DEFAULT_DOMAIN: &str = "mcp-edge";
/// The longest tool name a limit may name (MCP: 1 to 128 characters).
pub const MAX_TOOL_NAME_BYTES: usize = 128;
const MAX_DOMAIN_BYTES: usize = 64;

/// A window length the rate limit protocol can report (`RateLimit.Unit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Unit {
    Second,
    Minute,
    Hour,
    Day,
}

impl Unit {
    pub const ALL: [Unit; 4] = [Unit::Second, Unit::Minute, Unit::Hour, Unit::Day];

    pub fn seconds(self) -> u64 {
        match self {
            Self::Second => 1,
            Self::Minute => 60,
            Self::Hour => 3_600,
            Self::Day => 86_400,
        }
    }

    /// The unit of a window of that many seconds, if it is one.
    pub fn from_seconds(seconds: u64) -> Option<Self> {
        Self::ALL.into_iter().find(|u| u.seconds() == seconds)
    }

    /// The field that sets it: `requests_per_minute` and so on.
    pub fn field(self) -> &'static str {
        match self {
            Self::Second => "requests_per_second",
            Self::Minute => "requests_per_minute",
            Self::Hour => "requests_per_hour",
            Self::Day => "requests_per_day",
        }
    }
}

/// At most `requests` per fixed window of one `unit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub requests: u32,
    pub unit: Unit,
}

/// One tier's budgets: for the tenant as a whole, and per tool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TierLimits {
    pub windows: Vec<Window>,
    pub tools: BTreeMap<String, Vec<Window>>,
}

/// The validated file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitsConfig {
    /// The `RateLimitRequest.domain` this service answers for.
    pub domain: String,
    pub tiers: BTreeMap<Tier, TierLimits>,
}

/// A refused file: the field (a dotted path such as `tiers.free.requests_per_minute`) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct LimitsError {
    pub field: String,
    pub problem: String,
}

fn err(field: impl Into<String>, problem: impl Into<String>) -> LimitsError {
    LimitsError {
        field: field.into(),
        problem: problem.into(),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    domain: Option<String>,
    tiers: BTreeMap<String, RawLimits>,
}

/// A tier's or a tool's budgets; `tools` only at tier level.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    requests_per_second: Option<u64>,
    requests_per_minute: Option<u64>,
    requests_per_hour: Option<u64>,
    requests_per_day: Option<u64>,
    tools: Option<BTreeMap<String, RawLimits>>,
}

impl RawLimits {
    fn by_unit(&self, unit: Unit) -> Option<u64> {
        match unit {
            Unit::Second => self.requests_per_second,
            Unit::Minute => self.requests_per_minute,
            Unit::Hour => self.requests_per_hour,
            Unit::Day => self.requests_per_day,
        }
    }

    fn windows(&self, field: &str) -> Result<Vec<Window>, LimitsError> {
        let mut windows = Vec::new();
        for unit in Unit::ALL {
            let Some(requests) = self.by_unit(unit) else {
                continue;
            };
            let requests = u32::try_from(requests)
                .ok()
                .filter(|r| *r > 0)
                .ok_or_else(|| {
                    err(
                        format!("{field}.{}", unit.field()),
                        "must be between 1 and 4294967295",
                    )
                })?;
            windows.push(Window { requests, unit });
        }
        if windows.is_empty() {
            let fields: Vec<&str> = Unit::ALL.iter().map(|u| u.field()).collect();
            return Err(err(
                field,
                format!("needs at least one of {}", fields.join(", ")),
            ));
        }
        Ok(windows)
    }
}

/// Reads and validates the file at `path`.
pub fn load(path: &Path) -> Result<LimitsConfig, LimitsError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| err(path.display().to_string(), format!("cannot read: {e}")))?;
    parse(&text)
}

/// Parses and validates the file's text.
pub fn parse(text: &str) -> Result<LimitsConfig, LimitsError> {
    let raw: RawFile = serde_path_to_error::deserialize(serde_yaml::Deserializer::from_str(text))
        .map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." { "(file)".into() } else { path };
        err(field, e.into_inner().to_string())
    })?;
    let domain = raw.domain.unwrap_or_else(|| DEFAULT_DOMAIN.to_string());
    if domain.is_empty()
        || domain.len() > MAX_DOMAIN_BYTES
        || !domain.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(err(
            "domain",
            format!("must be 1 to {MAX_DOMAIN_BYTES} visible ASCII characters"),
        ));
    }
    if let Some(unknown) = raw.tiers.keys().find(|k| Tier::parse(k).is_none()) {
        let known: Vec<&str> = Tier::ALL.iter().map(|t| t.name()).collect();
        return Err(err(
            format!("tiers.{unknown}"),
            format!("unknown tier (the tiers are {})", known.join(", ")),
        ));
    }
    let mut tiers = BTreeMap::new();
    for tier in Tier::ALL {
        let field = format!("tiers.{}", tier.name());
        let raw_tier = raw
            .tiers
            .get(tier.name())
            .ok_or_else(|| err(&field, "missing: every tier needs a limit"))?;
        tiers.insert(tier, tier_limits(&field, raw_tier)?);
    }
    Ok(LimitsConfig { domain, tiers })
}

fn tier_limits(field: &str, raw: &RawLimits) -> Result<TierLimits, LimitsError> {
    let windows = raw.windows(field)?;
    let mut tools = BTreeMap::new();
    for (name, raw_tool) in raw.tools.iter().flatten() {
        let tool_field = format!("{field}.tools.{name}");
        if !is_tool_name(name) {
            return Err(err(
                tool_field,
                format!("not a tool name (1 to {MAX_TOOL_NAME_BYTES} of A-Z a-z 0-9 _ - .)"),
            ));
        }
        if raw_tool.tools.is_some() {
            return Err(err(
                format!("{tool_field}.tools"),
                "tools are only set per tier",
            ));
        }
        tools.insert(name.clone(), raw_tool.windows(&tool_field)?);
    }
    Ok(TierLimits { windows, tools })
}

/// One line saying what the file sets, e.g.
/// `domain mcp-edge: free 60/minute; pro 600/minute (search_tasks 5/second)`.
pub fn summary(config: &LimitsConfig) -> String {
    let windows = |ws: &[Window]| {
        ws.iter()
            .map(|w| format!("{}/{}", w.requests, unit_name(w.unit)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let tiers: Vec<String> = config
        .tiers
        .iter()
        .map(|(tier, limits)| {
            let mut line = format!("{tier} {}", windows(&limits.windows));
            if !limits.tools.is_empty() {
                let tools: Vec<String> = limits
                    .tools
                    .iter()
                    .map(|(name, ws)| format!("{name} {}", windows(ws)))
                    .collect();
                line.push_str(&format!(" ({})", tools.join("; ")));
            }
            line
        })
        .collect();
    format!("domain {}: {}", config.domain, tiers.join("; "))
}

fn unit_name(unit: Unit) -> &'static str {
    match unit {
        Unit::Second => "second",
        Unit::Minute => "minute",
        Unit::Hour => "hour",
        Unit::Day => "day",
    }
}

/// MCP tool names: 1 to 128 of ASCII letters, digits, `_`, `-` and `.`.
pub fn is_tool_name(name: &str) -> bool {
    (1..=MAX_TOOL_NAME_BYTES).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "
domain: mcp-edge
tiers:
  free: { requests_per_minute: 60 }
  pro:
    requests_per_minute: 600
    tools:
      search_tasks: { requests_per_second: 5, requests_per_minute: 100 }
  enterprise: { requests_per_minute: 6000, requests_per_day: 1000000 }
";

    fn refused(text: &str) -> LimitsError {
        parse(text).expect_err("refused")
    }

    #[test]
    fn a_good_file_gives_every_tier_its_windows() {
        let cfg = parse(GOOD).expect("valid");
        assert_eq!(cfg.domain, "mcp-edge");
        let free = &cfg.tiers[&Tier::Free];
        assert_eq!(
            free.windows,
            vec![Window {
                requests: 60,
                unit: Unit::Minute
            }]
        );
        assert!(free.tools.is_empty());
        assert_eq!(
            cfg.tiers[&Tier::Pro].tools["search_tasks"],
            vec![
                Window {
                    requests: 5,
                    unit: Unit::Second
                },
                Window {
                    requests: 100,
                    unit: Unit::Minute
                }
            ]
        );
        assert_eq!(cfg.tiers[&Tier::Enterprise].windows.len(), 2);
    }

    #[test]
    fn the_summary_lists_every_budget() {
        assert_eq!(
            summary(&parse(GOOD).expect("valid")),
            "domain mcp-edge: free 60/minute; pro 600/minute (search_tasks 5/second, 100/minute); enterprise 6000/minute, 1000000/day"
        );
    }

    #[test]
    fn the_domain_defaults_to_mcp_edge() {
        let text = GOOD.replace("domain: mcp-edge\n", "");
        assert_eq!(parse(&text).expect("valid").domain, DEFAULT_DOMAIN);
    }

    #[test]
    fn the_shipped_file_is_valid_and_matches_the_filter_numbers() {
        let text = include_str!("../limits.yaml");
        let cfg = parse(text).expect("ratelimit/limits.yaml is valid");
        let per_minute = |tier| {
            cfg.tiers[&tier]
                .windows
                .iter()
                .find(|w| w.unit == Unit::Minute)
                .map(|w| w.requests)
        };
        assert_eq!(per_minute(Tier::Free), Some(60));
        assert_eq!(per_minute(Tier::Pro), Some(600));
        assert_eq!(per_minute(Tier::Enterprise), Some(6000));
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (
                GOOD.replace(
                    "free: { requests_per_minute: 60 }",
                    "free: { requests_per_minute: 0 }",
                ),
                "tiers.free.requests_per_minute",
            ),
            (
                GOOD.replace(
                    "free: { requests_per_minute: 60 }",
                    "free: { requests_per_minute: -1 }",
                ),
                "tiers.free.requests_per_minute",
            ),
            (
                GOOD.replace(
                    "free: { requests_per_minute: 60 }",
                    "free: { requests_per_minute: 5000000000 }",
                ),
                "tiers.free.requests_per_minute",
            ),
            (
                GOOD.replace(
                    "free: { requests_per_minute: 60 }",
                    "free: { requests_per_minute: lots }",
                ),
                "tiers.free.requests_per_minute",
            ),
            (
                GOOD.replace("free: { requests_per_minute: 60 }", "free: { burst: 20 }"),
                "tiers.free.burst",
            ),
            (
                GOOD.replace("free: { requests_per_minute: 60 }", "free: {}"),
                "tiers.free",
            ),
            (
                GOOD.replace("  free: { requests_per_minute: 60 }\n", ""),
                "tiers.free",
            ),
            (GOOD.replace("free:", "gold:"), "tiers.gold"),
            (
                GOOD.replace("search_tasks:", "\"search tasks\":"),
                "tiers.pro.tools.search tasks",
            ),
            (GOOD.replace("domain: mcp-edge", "domain: \"\""), "domain"),
            (
                GOOD.replace("domain: mcp-edge", "domian: mcp-edge"),
                "domian",
            ),
        ];
        for (text, field) in cases {
            let e = refused(&text);
            assert_eq!(e.field, field, "{e}");
        }
    }

    #[test]
    fn an_unknown_field_is_refused_with_its_name_and_the_expected_ones() {
        let e = refused(&GOOD.replace("free: { requests_per_minute: 60 }", "free: { burst: 20 }"));
        assert!(e.problem.contains("unknown field `burst`"), "{e}");
        assert!(e.problem.contains("requests_per_minute"), "{e}");
        let e = refused(&GOOD.replace("domain: mcp-edge", "domian: mcp-edge"));
        assert!(e.problem.contains("unknown field `domian`"), "{e}");
    }

    #[test]
    fn tools_cannot_nest() {
        let text = GOOD.replace(
            "search_tasks: { requests_per_second: 5, requests_per_minute: 100 }",
            "search_tasks: { requests_per_second: 5, tools: { x: { requests_per_second: 1 } } }",
        );
        assert_eq!(refused(&text).field, "tiers.pro.tools.search_tasks.tools");
    }

    #[test]
    fn tool_names_follow_mcp() {
        assert!(is_tool_name("search_tasks"));
        assert!(is_tool_name("a.b-c_1"));
        assert!(!is_tool_name(""));
        assert!(!is_tool_name("a'b"));
        assert!(!is_tool_name(&"a".repeat(129)));
    }
}
