//! The trust contract between the mcp-edge filter and the backend.
//!
//! The filter is the only writer of `x-mcp-*` request headers. On every request it lets through it
//! sets the headers named in [`headers`] and signs them, together with the HTTP method, the path and
//! the SHA-256 of the body it judged, with HMAC-SHA256 over a newline-joined canonical string. The
//! backend recomputes the signature and refuses anything that does not match or is not fresh, so a
//! captured header set can neither be replayed later nor carry another body.
//!
//! Both sides use this crate, so the canonical form cannot drift between them.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

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
}

/// How far (seconds) the backend accepts `x-mcp-gateway-time` from its own clock, either way.
pub const MAX_GATEWAY_CLOCK_SKEW_SECS: u64 = 30;

/// The shortest gateway secret either side accepts (bytes).
pub const MIN_SECRET_LEN: usize = 32;

/// Version tag at the head of the canonical string; bump it when the canonical form changes.
const CANONICAL_VERSION: &str = "mcp-edge-gateway-v1";

/// Everything the gateway signature covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedRequest<'a> {
    pub method: &'a str,
    /// The request target as sent upstream (path and query).
    pub path: &'a str,
    pub tenant_id: &'a str,
    pub user_id: &'a str,
    /// Space separated scopes.
    pub scopes: &'a str,
    pub data_scope: &'a str,
    pub tier: &'a str,
    pub request_id: &'a str,
    /// Unix seconds at which the filter signed.
    pub gateway_time: u64,
    /// [`body_digest`] of the body the filter judged.
    pub body_digest: &'a str,
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
        }
    }
}

impl std::error::Error for ContractError {}

/// SHA-256 of a body, base64url without padding.
pub fn body_digest(body: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(body))
}

/// The newline-joined string that is signed. Fails if a value could make it ambiguous.
pub fn canonical_string(req: &SignedRequest<'_>) -> Result<String, ContractError> {
    let fields: [(&'static str, &str); 9] = [
        ("method", req.method),
        ("path", req.path),
        ("tenant_id", req.tenant_id),
        ("user_id", req.user_id),
        ("scopes", req.scopes),
        ("data_scope", req.data_scope),
        ("tier", req.tier),
        ("request_id", req.request_id),
        ("body_digest", req.body_digest),
    ];
    for (name, value) in fields {
        if value.chars().any(char::is_control) {
            return Err(ContractError::ControlCharacter(name));
        }
    }
    let time = req.gateway_time.to_string();
    Ok([
        CANONICAL_VERSION,
        req.method,
        req.path,
        req.tenant_id,
        req.user_id,
        req.scopes,
        req.data_scope,
        req.tier,
        req.request_id,
        &time,
        req.body_digest,
    ]
    .join("\n"))
}

fn mac(secret: &[u8], req: &SignedRequest<'_>) -> Result<Hmac<Sha256>, ContractError> {
    if secret.len() < MIN_SECRET_LEN {
        return Err(ContractError::SecretTooShort);
    }
    let canonical = canonical_string(req)?;
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret).map_err(|_| ContractError::SecretTooShort)?;
    mac.update(canonical.as_bytes());
    Ok(mac)
}

/// The value of `x-mcp-gateway-signature` for `req`.
pub fn sign(secret: &[u8], req: &SignedRequest<'_>) -> Result<String, ContractError> {
    Ok(URL_SAFE_NO_PAD.encode(mac(secret, req)?.finalize().into_bytes()))
}

/// Checks freshness against `now` (unix seconds), then the signature in constant time.
pub fn verify(
    secret: &[u8],
    req: &SignedRequest<'_>,
    signature: &str,
    now: u64,
) -> Result<(), ContractError> {
    if req.gateway_time.abs_diff(now) > MAX_GATEWAY_CLOCK_SKEW_SECS {
        return Err(ContractError::Stale {
            gateway_time: req.gateway_time,
            now,
        });
    }
    let expected = mac(secret, req)?.finalize().into_bytes();
    let given = URL_SAFE_NO_PAD
        .decode(signature.as_bytes())
        .map_err(|_| ContractError::BadSignature)?;
    if given.len() == expected.len() && bool::from(given.as_slice().ct_eq(expected.as_slice())) {
        Ok(())
    } else {
        Err(ContractError::BadSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn sample(digest: &str) -> SignedRequest<'_> {
        SignedRequest {
            method: "POST",
            path: "/mcp",
            tenant_id: "acme",
            user_id: "user_1",
            scopes: "mcp:read mcp:write",
            data_scope: "team:engineering",
            tier: "pro",
            request_id: "req-1",
            gateway_time: 1_000,
            body_digest: digest,
        }
    }

    #[test]
    fn signature_round_trips() {
        let d = body_digest(b"{}");
        let sig = sign(SECRET, &sample(&d)).unwrap();
        assert_eq!(verify(SECRET, &sample(&d), &sig, 1_010), Ok(()));
    }

    #[test]
    fn every_field_is_covered() {
        let d = body_digest(b"{}");
        let sig = sign(SECRET, &sample(&d)).unwrap();
        let other = body_digest(b"{ }");
        let variants: Vec<SignedRequest<'_>> = vec![
            SignedRequest {
                method: "GET",
                ..sample(&d)
            },
            SignedRequest {
                path: "/mcp2",
                ..sample(&d)
            },
            SignedRequest {
                tenant_id: "other",
                ..sample(&d)
            },
            SignedRequest {
                user_id: "u2",
                ..sample(&d)
            },
            SignedRequest {
                scopes: "mcp:admin",
                ..sample(&d)
            },
            SignedRequest {
                data_scope: "",
                ..sample(&d)
            },
            SignedRequest {
                tier: "enterprise",
                ..sample(&d)
            },
            SignedRequest {
                request_id: "req-2",
                ..sample(&d)
            },
            SignedRequest {
                gateway_time: 1_001,
                ..sample(&d)
            },
            sample(&other),
        ];
        for v in variants {
            assert_eq!(
                verify(SECRET, &v, &sig, 1_000),
                Err(ContractError::BadSignature),
                "{v:?}"
            );
        }
    }

    #[test]
    fn stale_and_future_times_are_refused() {
        let d = body_digest(b"");
        let sig = sign(SECRET, &sample(&d)).unwrap();
        assert!(matches!(
            verify(SECRET, &sample(&d), &sig, 1_031),
            Err(ContractError::Stale { .. })
        ));
        assert!(matches!(
            verify(SECRET, &sample(&d), &sig, 969),
            Err(ContractError::Stale { .. })
        ));
        assert_eq!(verify(SECRET, &sample(&d), &sig, 970), Ok(()));
    }

    #[test]
    fn newline_in_a_value_is_refused() {
        let d = body_digest(b"");
        let req = SignedRequest {
            tenant_id: "a\nb",
            ..sample(&d)
        };
        assert_eq!(
            sign(SECRET, &req),
            Err(ContractError::ControlCharacter("tenant_id"))
        );
    }

    #[test]
    fn short_secret_and_garbage_signature_are_refused() {
        let d = body_digest(b"");
        assert_eq!(
            sign(b"short", &sample(&d)),
            Err(ContractError::SecretTooShort)
        );
        assert_eq!(
            verify(SECRET, &sample(&d), "!!!", 1_000),
            Err(ContractError::BadSignature)
        );
        assert_eq!(
            verify(SECRET, &sample(&d), "", 1_000),
            Err(ContractError::BadSignature)
        );
    }
}
