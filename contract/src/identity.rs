//! The identity the edge vouches for: who is calling, for which tenant, with what rights.
//!
//! The filter builds an [`Identity`] from a verified token; the backend reads it back from the
//! identity assertion ([`crate::assertion`]). [`Identity::check`] is the one rule both sides apply
//! to its values, so what the edge signs is what a verifier accepts.

use crate::limits;

/// Names of the trusted request headers.
pub mod headers {
    /// Every header with this prefix is removed from inbound requests by the filter.
    pub const PREFIX: &str = "x-mcp-";
    /// The identity assertion (contract v3), the one header the filter sets.
    pub const IDENTITY: &str = crate::assertion::HEADER;
    /// Contract v2's signature header: a request carrying it comes from an edge older than v3,
    /// and a verifier says so rather than only "missing x-mcp-identity".
    pub const V2_SIGNATURE: &str = "x-mcp-gateway-signature";

    /// Whether a header name belongs to the trusted namespace (any casing).
    pub fn is_trusted(name: &str) -> bool {
        name.len() >= PREFIX.len()
            && name.as_bytes()[..PREFIX.len()].eq_ignore_ascii_case(PREFIX.as_bytes())
    }
}

/// The plan a tenant is on: its rate limit at the edge and its daily quota at the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tier {
    Free,
    Pro,
    Enterprise,
}

impl Tier {
    pub const ALL: [Tier; 3] = [Tier::Free, Tier::Pro, Tier::Enterprise];

    /// `free`, `pro` or `enterprise`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Free => "free",
            Self::Pro => "pro",
            Self::Enterprise => "enterprise",
        }
    }

    /// The tier of that exact name, if any.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }

    /// A token's `rate_limit_tier` claim: an unknown or missing tier is the lowest one.
    pub fn from_claim(value: Option<&str>) -> Self {
        value.and_then(Self::parse).unwrap_or(Self::Free)
    }
}

impl std::fmt::Display for Tier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Who is calling, as the edge vouches for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub tenant_id: String,
    /// The token's `sub`.
    pub user_id: String,
    pub scopes: Vec<String>,
    /// For example `team:engineering`; empty when the token has none.
    pub data_scope: String,
    pub tier: Tier,
}

impl Identity {
    /// Whether `scope` was granted.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    /// The scopes as sent on the wire: space separated.
    pub fn scopes_joined(&self) -> String {
        self.scopes.join(" ")
    }

    /// The rule every identity value meets before the edge signs it and after a verifier reads
    /// it: a tenant id of 1..=128 bytes, bounded user, scope and data scope, no control
    /// characters anywhere, scopes that read back as written (non-empty, no whitespace). `Err`
    /// names the claim that breaks it.
    pub fn check(&self) -> Result<(), &'static str> {
        use crate::assertion::claims;
        let bounded = |value: &str, max: usize| value.len() <= max && !has_control(value);
        if self.tenant_id.is_empty() || !bounded(&self.tenant_id, limits::MAX_TENANT_ID_BYTES) {
            return Err(claims::TENANT_ID);
        }
        if !bounded(&self.user_id, limits::MAX_SUB_BYTES) {
            return Err(claims::SUB);
        }
        if !bounded(&self.data_scope, limits::MAX_DATA_SCOPE_BYTES) {
            return Err(claims::DATA_SCOPE);
        }
        let scopes_len = self.scopes.iter().map(|s| s.len() + 1).sum::<usize>();
        if scopes_len > limits::MAX_SCOPE_BYTES + 1
            || self
                .scopes
                .iter()
                .any(|s| s.is_empty() || s.chars().any(char::is_whitespace) || has_control(s))
        {
            return Err(claims::SCOPE);
        }
        Ok(())
    }

    /// An identity for tests and examples: `tenant_id`, user `user-of-<tenant>`, read and write
    /// scopes, team `engineering`, the pro tier.
    pub fn example(tenant_id: &str) -> Self {
        Self {
            tenant_id: tenant_id.to_string(),
            user_id: format!("user-of-{tenant_id}"),
            scopes: vec![crate::scopes::READ.into(), crate::scopes::WRITE.into()],
            data_scope: "team:engineering".into(),
            tier: Tier::Pro,
        }
    }
}

/// Whether `value` holds a control character (C0, DEL or C1).
fn has_control(value: &str) -> bool {
    value.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_names_the_claim_that_breaks_the_rule() {
        let ok = Identity::example("acme");
        assert_eq!(ok.check(), Ok(()));
        let unicode = Identity {
            tenant_id: "Ünïcode 租户".into(),
            user_id: " zoë@example.com ".into(),
            scopes: vec!["mcp:read".into(), "100%".into()],
            data_scope: "team:ré\u{1F600}d".into(),
            tier: Tier::Free,
        };
        assert_eq!(unicode.check(), Ok(()), "any printable value travels");
        type Spoil = fn(&mut Identity);
        let cases: [(Spoil, &str); 9] = [
            (|i| i.tenant_id.clear(), "tenant_id"),
            (|i| i.tenant_id = "a".repeat(129), "tenant_id"),
            (|i| i.tenant_id = "a\u{85}b".into(), "tenant_id"),
            (|i| i.user_id = "u\nv".into(), "sub"),
            (|i| i.user_id = "u".repeat(257), "sub"),
            (|i| i.data_scope = "\u{7f}".into(), "data_scope"),
            (|i| i.scopes = vec!["a b".into()], "scope"),
            (|i| i.scopes = vec![String::new()], "scope"),
            (|i| i.scopes = vec!["s".repeat(1025)], "scope"),
        ];
        for (spoil, claim) in cases {
            let mut id = Identity::example("acme");
            spoil(&mut id);
            assert_eq!(id.check(), Err(claim), "{id:?}");
        }
        let max = Identity {
            tenant_id: "t".repeat(128),
            scopes: vec!["s".repeat(1024)],
            ..Identity::example("acme")
        };
        assert_eq!(max.check(), Ok(()), "the limits themselves are allowed");
    }

    #[test]
    fn tiers() {
        assert_eq!(Tier::from_claim(Some("pro")), Tier::Pro);
        assert_eq!(Tier::from_claim(Some("platinum")), Tier::Free);
        assert_eq!(Tier::from_claim(None), Tier::Free);
        assert_eq!(Tier::parse("Pro"), None);
        assert!(headers::is_trusted("X-MCP-Identity"));
        assert!(!headers::is_trusted("x-mc"));
        assert!(!headers::is_trusted("mcp-session-id"));
    }
}
