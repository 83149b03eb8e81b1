//! The identity the edge vouches for, and its encoding as trusted `x-mcp-*` headers.
//!
//! [`Identity`] is who is calling, for which tenant, with what rights. The filter builds it from a
//! verified token; the backend rebuilds it from the signed headers. Both sides go through
//! [`Identity::header_values`] and [`Identity::from_header_values`], so a field added here reaches
//! the wire, the signature (see [`crate::signature`]) and the backend in this one file.
//!
//! Any claim value the edge accepts must arrive intact, but HTTP header values are not a safe
//! carrier for every string: bytes outside visible ASCII may be refused or re-encoded on the way,
//! and spaces at either end are trimmed. So each value is percent-encoded where it has to be
//! ([`encode_value`]: `%`, control characters, non-ASCII, and spaces at the ends) and decoded
//! strictly on the other side; plain ASCII values look the same on the wire as before.

use crate::limits;

/// Names of the trusted request headers. All of them start with [`headers::PREFIX`].
pub mod headers {
    /// Every header with this prefix is removed from inbound requests by the filter.
    pub const PREFIX: &str = "x-mcp-";
    pub const TENANT_ID: &str = "x-mcp-tenant-id";
    pub const USER_ID: &str = "x-mcp-user-id";
    pub const SCOPES: &str = "x-mcp-scopes";
    pub const DATA_SCOPE: &str = "x-mcp-data-scope";
    pub const TIER: &str = "x-mcp-tier";
    pub const REQUEST_ID: &str = "x-mcp-request-id";
    pub const GATEWAY_TIME: &str = "x-mcp-gateway-time";
    pub const GATEWAY_SIGNATURE: &str = "x-mcp-gateway-signature";

    /// Every header the filter sets on an allowed request; the backend requires each exactly once.
    pub const ALL: [&str; 8] = [
        TENANT_ID,
        USER_ID,
        SCOPES,
        DATA_SCOPE,
        TIER,
        REQUEST_ID,
        GATEWAY_TIME,
        GATEWAY_SIGNATURE,
    ];

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

/// Why trusted headers do not make an [`Identity`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderError {
    Missing(&'static str),
    Malformed(&'static str),
}

impl std::fmt::Display for HeaderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Missing(name) => write!(f, "missing trusted header {name}"),
            Self::Malformed(name) => write!(f, "trusted header {name} is malformed"),
        }
    }
}

impl std::error::Error for HeaderError {}

impl Identity {
    /// Whether `scope` was granted.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    /// The scopes as sent on the wire: space separated.
    pub fn scopes_joined(&self) -> String {
        self.scopes.join(" ")
    }

    /// Each field as a trusted header (wire form, see [`encode_value`]), in the order the
    /// signature covers them.
    pub fn header_values(&self) -> Vec<(&'static str, String)> {
        vec![
            (headers::TENANT_ID, encode_value(&self.tenant_id)),
            (headers::USER_ID, encode_value(&self.user_id)),
            (headers::SCOPES, encode_value(&self.scopes_joined())),
            (headers::DATA_SCOPE, encode_value(&self.data_scope)),
            (headers::TIER, self.tier.name().to_string()),
        ]
    }

    /// The identity from its trusted headers (`header` returns a header's one value).
    pub fn from_header_values<'h>(
        header: impl Fn(&'static str) -> Option<&'h str>,
    ) -> Result<Self, HeaderError> {
        let get = |name| header(name).ok_or(HeaderError::Missing(name));
        let bounded = |name, max: usize| {
            let value = decode_value(get(name)?).ok_or(HeaderError::Malformed(name))?;
            if value.len() > max {
                Err(HeaderError::Malformed(name))
            } else {
                Ok(value)
            }
        };
        let tenant_id = bounded(headers::TENANT_ID, limits::MAX_TENANT_ID_BYTES)?;
        if tenant_id.is_empty() {
            return Err(HeaderError::Malformed(headers::TENANT_ID));
        }
        let tier = get(headers::TIER)?;
        // Exactly as written: scopes joined by single spaces, so that no other header value
        // (another whitespace, a doubled space) reads as the same, signed, scopes.
        let scopes = bounded(headers::SCOPES, limits::MAX_SCOPE_BYTES)?;
        let scopes = if scopes.is_empty() {
            Vec::new()
        } else {
            scopes
                .split(' ')
                .map(|s| {
                    if s.is_empty() || s.bytes().any(|b| b.is_ascii_whitespace()) {
                        Err(HeaderError::Malformed(headers::SCOPES))
                    } else {
                        Ok(s.to_string())
                    }
                })
                .collect::<Result<_, _>>()?
        };
        Ok(Self {
            tenant_id,
            user_id: bounded(headers::USER_ID, limits::MAX_SUB_BYTES)?,
            scopes,
            data_scope: bounded(headers::DATA_SCOPE, limits::MAX_DATA_SCOPE_BYTES)?,
            tier: Tier::parse(tier).ok_or(HeaderError::Malformed(headers::TIER))?,
        })
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

/// Whether a byte is carried as it is: visible ASCII other than `%`, and inner spaces.
fn is_plain(byte: u8) -> bool {
    (byte.is_ascii_graphic() && byte != b'%') || byte == b' '
}

/// A value in its wire form: `%XX` for `%`, control characters, non-ASCII bytes and the spaces at
/// either end; every other byte as it is.
pub fn encode_value(value: &str) -> String {
    let bytes = value.as_bytes();
    let ends_plain = |i: usize| bytes[i] != b' ' || (i > 0 && i + 1 < bytes.len());
    if bytes
        .iter()
        .enumerate()
        .all(|(i, b)| is_plain(*b) && ends_plain(i))
    {
        return value.to_string();
    }
    let mut out = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().enumerate() {
        if is_plain(*b) && ends_plain(i) {
            out.push(char::from(*b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The value of a wire form, or `None` when it is not exactly what [`encode_value`] makes of it.
pub fn decode_value(wire: &str) -> Option<String> {
    let bytes = wire.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else if is_plain(b) {
            out.push(b);
            i += 1;
        } else {
            return None;
        }
    }
    let value = String::from_utf8(out).ok()?;
    // One wire form per value: `%4a`, `%41` or a raw space at an end are not what the encoder
    // writes, and would let a changed header read as the same, signed, value.
    (encode_value(&value) == wire).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn headers_round_trip() {
        let id = Identity::example("acme");
        let map: HashMap<&str, String> = id.header_values().into_iter().collect();
        let back = Identity::from_header_values(|n| map.get(n).map(String::as_str)).unwrap();
        assert_eq!(back, id);
        assert_eq!(map[headers::SCOPES], "mcp:read mcp:write");
    }

    #[test]
    fn missing_or_malformed_headers_are_named() {
        let id = Identity::example("acme");
        for (name, _) in id.header_values() {
            let map: HashMap<&str, String> = id
                .header_values()
                .into_iter()
                .filter(|(n, _)| *n != name)
                .collect();
            assert_eq!(
                Identity::from_header_values(|n| map.get(n).map(String::as_str)),
                Err(HeaderError::Missing(name))
            );
        }
        let mut map: HashMap<&str, String> = id.header_values().into_iter().collect();
        map.insert(headers::TIER, "platinum".into());
        assert_eq!(
            Identity::from_header_values(|n| map.get(n).map(String::as_str)),
            Err(HeaderError::Malformed(headers::TIER))
        );
        map.insert(headers::TIER, "pro".into());
        map.insert(headers::TENANT_ID, String::new());
        assert_eq!(
            Identity::from_header_values(|n| map.get(n).map(String::as_str)),
            Err(HeaderError::Malformed(headers::TENANT_ID))
        );
    }

    #[test]
    fn any_claim_value_arrives_intact() {
        let id = Identity {
            tenant_id: "Ünïcode 租户".into(),
            user_id: " zoë@example.com ".into(),
            scopes: vec!["mcp:read".into(), "100%".into()],
            data_scope: "team:ré\u{1F600}d".into(),
            tier: Tier::Free,
        };
        let wire: HashMap<&str, String> = id.header_values().into_iter().collect();
        for value in wire.values() {
            assert!(
                value.bytes().all(|b| b.is_ascii_graphic() || b == b' '),
                "{value}"
            );
            assert!(
                !value.starts_with(' ') && !value.ends_with(' '),
                "{value:?}"
            );
        }
        assert_eq!(wire[headers::USER_ID], "%20zo%C3%AB@example.com%20");
        assert_eq!(wire[headers::SCOPES], "mcp:read 100%25");
        let back = Identity::from_header_values(|n| wire.get(n).map(String::as_str)).unwrap();
        assert_eq!(back, id);
        // Plain values look as they always did.
        assert_eq!(encode_value("team:engineering"), "team:engineering");
        assert_eq!(encode_value("mcp:read mcp:write"), "mcp:read mcp:write");
    }

    #[test]
    fn only_wire_forms_decode() {
        for bad in ["%", "%4", "%zz", "caf\u{e9}", "a\tb", "%FF"] {
            assert_eq!(decode_value(bad), None, "{bad:?}");
        }
        assert_eq!(decode_value("%25b").as_deref(), Some("%b"));
        for not_canonical in ["%41b", "%c3%a9", " a", "a "] {
            assert_eq!(decode_value(not_canonical), None, "{not_canonical:?}");
        }
    }

    #[test]
    fn scopes_are_read_exactly_as_written() {
        // Found by the `signature` fuzz target: "a 2\tc" read as the scopes of "a 2 c" and
        // verified against their signature.
        let id = Identity::example("acme");
        let mut map: HashMap<&str, String> = id.header_values().into_iter().collect();
        for bad in ["a\tb", "a  b", " a", "a ", "a\nb", " "] {
            map.insert(headers::SCOPES, bad.into());
            assert_eq!(
                Identity::from_header_values(|n| map.get(n).map(String::as_str)),
                Err(HeaderError::Malformed(headers::SCOPES)),
                "{bad:?}"
            );
        }
        for (good, scopes) in [("", vec![]), ("a", vec!["a"]), ("a b", vec!["a", "b"])] {
            map.insert(headers::SCOPES, good.into());
            let read = Identity::from_header_values(|n| map.get(n).map(String::as_str)).unwrap();
            assert_eq!(read.scopes, scopes);
        }
    }

    #[test]
    fn tiers() {
        assert_eq!(Tier::from_claim(Some("pro")), Tier::Pro);
        assert_eq!(Tier::from_claim(Some("platinum")), Tier::Free);
        assert_eq!(Tier::from_claim(None), Tier::Free);
        assert_eq!(Tier::parse("Pro"), None);
        assert!(headers::is_trusted("X-MCP-Tenant-Id"));
        assert!(!headers::is_trusted("x-mc"));
        assert!(!headers::is_trusted("mcp-session-id"));
    }
}
