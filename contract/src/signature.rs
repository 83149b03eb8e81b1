//! The gateway signature: HMAC-SHA256 over a newline-joined canonical string.
//!
//! The string holds a version tag, the HTTP method, the path, every [`Identity`] header value in
//! [`Identity::header_values`] order, the request id, the signing time and the SHA-256 of the body
//! the filter judged. So a captured header set can neither be replayed later nor carry another body.
//! [`vouch_headers`] is the filter's half, [`verify_vouched`] the backend's.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::identity::{HeaderError, Identity, headers};

/// How far (seconds) the backend accepts `x-mcp-gateway-time` from its own clock, either way.
pub const MAX_GATEWAY_CLOCK_SKEW_SECS: u64 = 30;

/// The shortest gateway secret either side accepts (bytes).
pub const MIN_SECRET_LEN: usize = 32;

/// Version tag at the head of the canonical string; bump it when the canonical form changes.
const CANONICAL_VERSION: &str = "mcp-edge-gateway-v2";

/// What the signature covers besides the identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestFacts<'a> {
    pub method: &'a str,
    /// The request target as sent upstream (path and query).
    pub path: &'a str,
    /// The request's `MCP-Protocol-Version` header as forwarded (empty when absent): the version
    /// the edge judged the body under.
    pub protocol_version: &'a str,
    pub request_id: &'a str,
    /// Unix seconds at which the filter signed.
    pub gateway_time: u64,
    /// [`body_digest`] of the body the filter judged.
    pub body_digest: &'a str,
}

/// What the backend sees of a request besides its trusted headers and body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLine<'a> {
    pub method: &'a str,
    /// Path and query, as received.
    pub path: &'a str,
    /// The `MCP-Protocol-Version` header (empty when absent).
    pub protocol_version: &'a str,
}

/// A request the backend verified: who, and under which request id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vouched {
    pub identity: Identity,
    pub request_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContractError {
    /// A value contains a control character, so the canonical string would be ambiguous.
    ControlCharacter(&'static str),
    /// The secret is shorter than [`MIN_SECRET_LEN`].
    SecretTooShort,
    /// The signature does not match.
    BadSignature,
    /// `x-mcp-gateway-time` is further than [`MAX_GATEWAY_CLOCK_SKEW_SECS`] from now.
    Stale { gateway_time: u64, now: u64 },
    /// A trusted header is missing or malformed.
    Header(HeaderError),
}

impl std::fmt::Display for ContractError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ControlCharacter(field) => write!(f, "{field} contains a control character"),
            Self::SecretTooShort => write!(f, "gateway secret shorter than {MIN_SECRET_LEN} bytes"),
            Self::BadSignature => write!(f, "gateway signature does not match"),
            Self::Stale { gateway_time, now } => write!(
                f,
                "gateway time {gateway_time} is more than {MAX_GATEWAY_CLOCK_SKEW_SECS}s from now ({now})"
            ),
            Self::Header(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for ContractError {}

impl From<HeaderError> for ContractError {
    fn from(e: HeaderError) -> Self {
        Self::Header(e)
    }
}

/// SHA-256 of a body, base64url without padding.
pub fn body_digest(body: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(body))
}

/// The gateway secret, keyed once: HMAC-SHA256's inner and outer pads are hashed when the key is
/// made, not on every request.
#[derive(Clone)]
pub struct GatewayKey(Hmac<Sha256>);

impl std::fmt::Debug for GatewayKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GatewayKey(<redacted>)")
    }
}

impl GatewayKey {
    /// Refuses a secret shorter than [`MIN_SECRET_LEN`].
    pub fn new(secret: &[u8]) -> Result<Self, ContractError> {
        if secret.len() < MIN_SECRET_LEN {
            return Err(ContractError::SecretTooShort);
        }
        Hmac::<Sha256>::new_from_slice(secret)
            .map(Self)
            .map_err(|_| ContractError::SecretTooShort)
    }

    /// A fresh HMAC-SHA256 keyed with the gateway secret, for other values the edge binds to an
    /// identity with the same secret (session ids, `filter/src/session.rs`).
    pub fn keyed_mac(&self) -> Hmac<Sha256> {
        self.0.clone()
    }

    /// The MAC over the canonical string (fed line by line; the string itself is never built).
    fn mac(
        &self,
        identity_values: &[(&'static str, String)],
        facts: &RequestFacts<'_>,
    ) -> Result<Hmac<Sha256>, ContractError> {
        self.mac_at(identity_values, facts, &facts.gateway_time.to_string())
    }

    /// [`Self::mac`] with the signing time already written as decimal digits.
    fn mac_at(
        &self,
        identity_values: &[(&'static str, String)],
        facts: &RequestFacts<'_>,
        time: &str,
    ) -> Result<Hmac<Sha256>, ContractError> {
        let mut mac = self.0.clone();
        canonical(identity_values, facts, time, |piece| {
            mac.update(piece.as_bytes())
        })?;
        Ok(mac)
    }

    /// The filter's half for an identity whose headers were prepared once
    /// ([`IdentityHeaders::new`]): every `x-mcp-*` header to set, signature last. Per request only
    /// the request's own values are checked and the MAC computed.
    pub fn vouch(
        &self,
        identity: &IdentityHeaders,
        facts: &RequestFacts<'_>,
    ) -> Result<Vec<(&'static str, String)>, ContractError> {
        if !survives_http(facts.request_id) {
            return Err(HeaderError::Malformed(headers::REQUEST_ID).into());
        }
        let time = facts.gateway_time.to_string();
        let mac = self.mac_at(&identity.0, facts, &time)?;
        let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        let mut out = Vec::with_capacity(identity.0.len() + 3);
        out.extend(identity.0.iter().cloned());
        out.push((headers::REQUEST_ID, facts.request_id.to_string()));
        out.push((headers::GATEWAY_TIME, time));
        out.push((headers::GATEWAY_SIGNATURE, signature));
        Ok(out)
    }
}

/// An identity's `x-mcp-*` header values, encoded and checked once: each survives HTTP unchanged
/// and [`Identity::from_header_values`] reads them back as this identity. The filter keeps them
/// with a verified token, so a cached caller's identity is neither encoded nor checked again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityHeaders(Vec<(&'static str, String)>);

impl IdentityHeaders {
    /// Refuses an identity the backend could not read back as signed: a value that would not
    /// survive HTTP unchanged, or that [`Identity::from_header_values`] refuses or reads
    /// differently.
    pub fn new(identity: &Identity) -> Result<Self, ContractError> {
        let values = identity.header_values();
        if let Some((name, _)) = values.iter().find(|(_, v)| !survives_http(v)) {
            return Err(HeaderError::Malformed(name).into());
        }
        let read = |name| {
            values
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.as_str())
        };
        if Identity::from_header_values(read)? != *identity {
            // Only the scopes can read back differently: an empty one, or one with a space in it.
            return Err(HeaderError::Malformed(headers::SCOPES).into());
        }
        Ok(Self(values))
    }
}

/// Whether `value` holds a control character (`char::is_control`: C0, DEL and C1), read
/// byte by byte: C1 characters are the only ones whose UTF-8 starts with 0xC2 then 0x80..=0x9F.
fn has_control(value: &str) -> bool {
    let bytes = value.as_bytes();
    bytes.iter().enumerate().any(|(i, &b)| {
        b < 0x20 || b == 0x7f || (b == 0xc2 && bytes.get(i + 1).is_some_and(|n| *n <= 0x9f))
    })
}

/// Hands the canonical string to `out` piece by piece, newlines included (the MAC is fed without
/// the string being built).
/// Fails, before anything is handed over, if a value could make it ambiguous.
fn canonical(
    identity_values: &[(&'static str, String)],
    facts: &RequestFacts<'_>,
    time: &str,
    mut out: impl FnMut(&str),
) -> Result<(), ContractError> {
    let request = [
        ("method", facts.method),
        ("path", facts.path),
        ("protocol_version", facts.protocol_version),
    ];
    let identity = identity_values.iter().map(|(n, v)| (*n, v.as_str()));
    let tail = [
        ("request_id", facts.request_id),
        ("body_digest", facts.body_digest),
    ];
    if let Some((name, _)) = request
        .into_iter()
        .chain(identity.clone())
        .chain(tail)
        .find(|(_, v)| has_control(v))
    {
        return Err(ContractError::ControlCharacter(name));
    }
    out(CANONICAL_VERSION);
    for (_, value) in request
        .into_iter()
        .chain(identity)
        .chain([("request_id", facts.request_id), ("time", time)])
    {
        out("\n");
        out(value);
    }
    out("\n");
    out(facts.body_digest);
    Ok(())
}

/// The newline-joined string that is signed. Fails if a value could make it ambiguous.
pub fn canonical_string(
    identity: &Identity,
    facts: &RequestFacts<'_>,
) -> Result<String, ContractError> {
    let identity_values = identity.header_values();
    let time = facts.gateway_time.to_string();
    let mut string = String::new();
    canonical(&identity_values, facts, &time, |piece| {
        string.push_str(piece)
    })?;
    Ok(string)
}

/// The value of `x-mcp-gateway-signature`.
pub fn sign(
    secret: &[u8],
    identity: &Identity,
    facts: &RequestFacts<'_>,
) -> Result<String, ContractError> {
    let mac = GatewayKey::new(secret)?.mac(&identity.header_values(), facts)?;
    Ok(URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
}

/// Checks freshness against `now` (unix seconds), then the signature in constant time.
pub fn verify(
    secret: &[u8],
    identity: &Identity,
    facts: &RequestFacts<'_>,
    signature: &str,
    now: u64,
) -> Result<(), ContractError> {
    if facts.gateway_time.abs_diff(now) > MAX_GATEWAY_CLOCK_SKEW_SECS {
        return Err(ContractError::Stale {
            gateway_time: facts.gateway_time,
            now,
        });
    }
    let expected = GatewayKey::new(secret)?
        .mac(&identity.header_values(), facts)?
        .finalize()
        .into_bytes();
    let given = URL_SAFE_NO_PAD
        .decode(signature.as_bytes())
        .map_err(|_| ContractError::BadSignature)?;
    if given.len() == expected.len() && bool::from(given.as_slice().ct_eq(expected.as_slice())) {
        Ok(())
    } else {
        Err(ContractError::BadSignature)
    }
}

/// Whether a header value reaches the backend byte for byte: visible ASCII and inner spaces only
/// (HTTP trims outer whitespace, and the backend reads values as visible ASCII).
fn survives_http(value: &str) -> bool {
    !value.starts_with(' ')
        && !value.ends_with(' ')
        && value.bytes().all(|b| (0x20..0x7f).contains(&b))
}

/// The filter's half: every `x-mcp-*` header to set on an allowed request, signature last.
///
/// Refuses an identity the backend could not read back as signed: a value that would not survive
/// HTTP unchanged, or that [`Identity::from_header_values`] refuses or reads differently.
pub fn vouch_headers(
    secret: &[u8],
    identity: &Identity,
    facts: &RequestFacts<'_>,
) -> Result<Vec<(&'static str, String)>, ContractError> {
    vouch_headers_with(&GatewayKey::new(secret)?, identity, facts)
}

/// [`vouch_headers`] with a key made once ([`GatewayKey::new`]); the filter prepares the identity
/// once per verified token and calls [`GatewayKey::vouch`] per request.
pub fn vouch_headers_with(
    key: &GatewayKey,
    identity: &Identity,
    facts: &RequestFacts<'_>,
) -> Result<Vec<(&'static str, String)>, ContractError> {
    key.vouch(&IdentityHeaders::new(identity)?, facts)
}

/// The backend's half: the identity and request id from the trusted headers (`header` returns a
/// header's one value), verified against the request line, the body and the clock.
pub fn verify_vouched<'h>(
    secret: &[u8],
    header: impl Fn(&'static str) -> Option<&'h str>,
    request: &RequestLine<'_>,
    body: &[u8],
    now: u64,
) -> Result<Vouched, ContractError> {
    let identity = Identity::from_header_values(&header)?;
    let required = |name| header(name).ok_or(HeaderError::Missing(name));
    let request_id = required(headers::REQUEST_ID)?;
    let time = required(headers::GATEWAY_TIME)?;
    let gateway_time =
        parse_unix_secs(time).ok_or(HeaderError::Malformed(headers::GATEWAY_TIME))?;
    let signature = required(headers::GATEWAY_SIGNATURE)?;
    let digest = body_digest(body);
    let facts = RequestFacts {
        method: request.method,
        path: request.path,
        protocol_version: request.protocol_version,
        request_id,
        gateway_time,
        body_digest: &digest,
    };
    verify(secret, &identity, &facts, signature, now)?;
    Ok(Vouched {
        identity,
        request_id: request_id.to_string(),
    })
}

/// Plain decimal digits only (no sign, no spaces).
fn parse_unix_secs(value: &str) -> Option<u64> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Tier;
    use std::collections::HashMap;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    const LINE: RequestLine<'static> = RequestLine {
        method: "POST",
        path: "/mcp",
        protocol_version: "2025-06-18",
    };

    fn facts(digest: &str) -> RequestFacts<'_> {
        RequestFacts {
            method: "POST",
            path: "/mcp",
            protocol_version: "2025-06-18",
            request_id: "req-1",
            gateway_time: 1_000,
            body_digest: digest,
        }
    }

    #[test]
    fn canonical_form_is_stable() {
        let d = body_digest(b"{}");
        let id = Identity::example("acme");
        assert_eq!(
            canonical_string(&id, &facts(&d)).unwrap(),
            format!(
                "mcp-edge-gateway-v2\nPOST\n/mcp\n2025-06-18\nacme\nuser-of-acme\nmcp:read mcp:write\nteam:engineering\npro\nreq-1\n1000\n{d}"
            )
        );
    }

    #[test]
    fn control_characters_are_found_byte_by_byte_as_char_is_control_finds_them() {
        for c in (0..0x3000u32).filter_map(char::from_u32) {
            let value = format!("a{c}b");
            assert_eq!(has_control(&value), c.is_control(), "U+{:04X}", c as u32);
        }
    }

    #[test]
    fn the_mac_is_over_the_canonical_string() {
        let d = body_digest(b"{}");
        let id = Identity::example("acme");
        let mut mac = Hmac::<Sha256>::new_from_slice(SECRET).unwrap();
        mac.update(canonical_string(&id, &facts(&d)).unwrap().as_bytes());
        let expected = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        assert_eq!(sign(SECRET, &id, &facts(&d)).unwrap(), expected);
        let key = GatewayKey::new(SECRET).unwrap();
        let vouched = vouch_headers_with(&key, &id, &facts(&d)).unwrap();
        assert_eq!(vouched, vouch_headers(SECRET, &id, &facts(&d)).unwrap());
        assert_eq!(
            vouched.last().map(|(_, v)| v.as_str()),
            Some(expected.as_str())
        );
        assert_eq!(format!("{key:?}"), "GatewayKey(<redacted>)");
        assert_eq!(
            GatewayKey::new(b"short").map(|_| ()),
            Err(ContractError::SecretTooShort)
        );
    }

    #[test]
    fn signature_round_trips() {
        let d = body_digest(b"{}");
        let id = Identity::example("acme");
        let sig = sign(SECRET, &id, &facts(&d)).unwrap();
        assert_eq!(verify(SECRET, &id, &facts(&d), &sig, 1_010), Ok(()));
    }

    #[test]
    fn every_field_is_covered() {
        let d = body_digest(b"{}");
        let id = Identity::example("acme");
        let sig = sign(SECRET, &id, &facts(&d)).unwrap();
        let other = body_digest(b"{ }");
        let identities = [
            Identity {
                tenant_id: "other".into(),
                ..id.clone()
            },
            Identity {
                user_id: "u2".into(),
                ..id.clone()
            },
            Identity {
                scopes: vec!["mcp:admin".into()],
                ..id.clone()
            },
            Identity {
                data_scope: String::new(),
                ..id.clone()
            },
            Identity {
                tier: Tier::Enterprise,
                ..id.clone()
            },
        ];
        for v in &identities {
            assert_eq!(
                verify(SECRET, v, &facts(&d), &sig, 1_000),
                Err(ContractError::BadSignature),
                "{v:?}"
            );
        }
        let variants = [
            RequestFacts {
                method: "GET",
                ..facts(&d)
            },
            RequestFacts {
                path: "/mcp2",
                ..facts(&d)
            },
            RequestFacts {
                protocol_version: "2025-03-26",
                ..facts(&d)
            },
            RequestFacts {
                request_id: "req-2",
                ..facts(&d)
            },
            RequestFacts {
                gateway_time: 1_001,
                ..facts(&d)
            },
            facts(&other),
        ];
        for v in &variants {
            assert_eq!(
                verify(SECRET, &id, v, &sig, 1_000),
                Err(ContractError::BadSignature),
                "{v:?}"
            );
        }
    }

    #[test]
    fn stale_and_future_times_are_refused() {
        let d = body_digest(b"");
        let id = Identity::example("acme");
        let sig = sign(SECRET, &id, &facts(&d)).unwrap();
        assert!(matches!(
            verify(SECRET, &id, &facts(&d), &sig, 1_031),
            Err(ContractError::Stale { .. })
        ));
        assert!(matches!(
            verify(SECRET, &id, &facts(&d), &sig, 969),
            Err(ContractError::Stale { .. })
        ));
        assert_eq!(verify(SECRET, &id, &facts(&d), &sig, 970), Ok(()));
    }

    #[test]
    fn control_characters_are_encoded_in_identity_values_and_refused_elsewhere() {
        let d = body_digest(b"");
        let id = Identity {
            tenant_id: "a\nb".into(),
            ..Identity::example("x")
        };
        let sig = sign(SECRET, &id, &facts(&d)).unwrap();
        assert_eq!(verify(SECRET, &id, &facts(&d), &sig, 1_000), Ok(()));
        let odd = RequestFacts {
            request_id: "r\n1",
            ..facts(&d)
        };
        assert_eq!(
            sign(SECRET, &id, &odd),
            Err(ContractError::ControlCharacter("request_id"))
        );
    }

    #[test]
    fn short_secret_and_garbage_signature_are_refused() {
        let d = body_digest(b"");
        let id = Identity::example("acme");
        assert_eq!(
            sign(b"short", &id, &facts(&d)),
            Err(ContractError::SecretTooShort)
        );
        assert_eq!(
            verify(SECRET, &id, &facts(&d), "!!!", 1_000),
            Err(ContractError::BadSignature)
        );
        assert_eq!(
            verify(SECRET, &id, &facts(&d), "", 1_000),
            Err(ContractError::BadSignature)
        );
    }

    #[test]
    fn identities_the_backend_could_not_read_back_are_not_vouched_for() {
        // Found by the `signature` fuzz target: these were signed, then refused by the backend.
        let d = body_digest(b"");
        let vouch = |change: &dyn Fn(&mut Identity)| {
            let mut id = Identity::example("acme");
            change(&mut id);
            vouch_headers(SECRET, &id, &facts(&d)).map(|_| ())
        };
        let malformed = |name| Err(ContractError::Header(HeaderError::Malformed(name)));
        assert_eq!(
            vouch(&|i| i.tenant_id.clear()),
            malformed(headers::TENANT_ID)
        );
        assert_eq!(
            vouch(&|i| i.user_id = "u".repeat(257)),
            malformed(headers::USER_ID)
        );
        assert_eq!(
            vouch(&|i| i.scopes = vec!["a b".into()]),
            malformed(headers::SCOPES)
        );
        assert_eq!(
            vouch(&|i| i.scopes.push(String::new())),
            malformed(headers::SCOPES)
        );
        assert_eq!(
            vouch(&|i| i.scopes = vec![String::new()]),
            malformed(headers::SCOPES)
        );
        assert_eq!(vouch(&|i| i.data_scope.clear()), Ok(()));
        assert_eq!(vouch(&|i| i.scopes.clear()), Ok(()));
        // Values HTTP would not carry as they are travel percent-encoded, and read back intact.
        assert_eq!(vouch(&|i| i.tenant_id.insert(0, ' ')), Ok(()));
        assert_eq!(vouch(&|i| i.user_id.push('\u{e9}')), Ok(()));
        assert_eq!(vouch(&|i| i.data_scope.push(' ')), Ok(()));
    }

    #[test]
    fn vouched_headers_verify_on_the_other_side() {
        let id = Identity::example("acme");
        let d = body_digest(b"{}");
        let headers: HashMap<&str, String> = vouch_headers(SECRET, &id, &facts(&d))
            .unwrap()
            .into_iter()
            .collect();
        let get = |n: &'static str| headers.get(n).map(String::as_str);
        let vouched = verify_vouched(SECRET, get, &LINE, b"{}", 1_000).unwrap();
        assert_eq!(
            vouched,
            Vouched {
                identity: id,
                request_id: "req-1".into()
            }
        );
        assert_eq!(
            verify_vouched(SECRET, get, &LINE, b"{ }", 1_000),
            Err(ContractError::BadSignature)
        );
        let no_time = |n: &'static str| {
            if n == headers::GATEWAY_TIME {
                None
            } else {
                get(n)
            }
        };
        assert_eq!(
            verify_vouched(SECRET, no_time, &LINE, b"{}", 1_000),
            Err(ContractError::Header(HeaderError::Missing(
                headers::GATEWAY_TIME
            )))
        );
        let bad_time = |n: &'static str| {
            if n == headers::GATEWAY_TIME {
                Some("+1000")
            } else {
                get(n)
            }
        };
        assert_eq!(
            verify_vouched(SECRET, bad_time, &LINE, b"{}", 1_000),
            Err(ContractError::Header(HeaderError::Malformed(
                headers::GATEWAY_TIME
            )))
        );
    }
}
