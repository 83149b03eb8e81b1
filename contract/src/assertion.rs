//! The identity assertion (trust contract v3): one compact JWS in one request header,
//! `x-mcp-identity`, that any JWT library verifies.
//!
//! The edge signs it (HS256, the gateway secret, `typ: "JWT"`) on every request it lets through;
//! the backend verifies it, then compares the request binding (`htm`, `htp`, `mcp_pv`,
//! `body_sha256`) with the request it received, then refuses a `jti` it has already run. It is the
//! pattern of Google IAP's `x-goog-iap-jwt-assertion` and Cloudflare Access's
//! `Cf-Access-Jwt-Assertion`.
//!
//! Building it cheaply. A JWS payload is base64url(JSON), and base64 of a concatenation is the
//! concatenation of the base64s when every piece but the last is a multiple of 3 bytes long. JSON
//! allows spaces between members, so the payload is written in three pieces, each but the last
//! padded with spaces to a multiple of 3 bytes:
//! 1. `{"iss":…,"aud":…,` — fixed by the configuration; encoded once, and the HMAC is fed the
//!    JOSE header and this piece once ([`AssertionSigner::new`] keeps the midstate);
//! 2. `"sub":…,"tenant_id":…,"scope":…,"data_scope":…,"tier":…,` — fixed by the verified token;
//!    encoded once per cached caller ([`IdentityClaims::new`]);
//! 3. `"iat":…,"exp":…,"jti":…,"htm":…,"htp":…,"mcp_pv":…,"body_sha256":…}` — the request's own.
//!
//! So a request costs its own claims' JSON and base64, and one HMAC over them.

use std::collections::HashSet;
use std::io::Write as _;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use jwt_simple::prelude::{
    Audiences, Duration, HS256Key, MACLike, UnixTimeStamp, VerificationOptions,
};
use serde::Deserialize;
use sha2::Sha256;

use crate::identity::{Identity, Tier};
use crate::key::{GatewayKey, SecretTooShort, body_digest};

/// The one request header the edge sets on an allowed request.
pub const HEADER: &str = "x-mcp-identity";

/// `exp` − `iat` of every assertion (seconds).
pub const LIFETIME_SECS: u64 = 30;

/// How far (seconds) a verifier accepts `iat`/`exp` from its own clock.
pub const MAX_CLOCK_SKEW_SECS: u64 = 30;

/// The longest `jti` a verifier accepts (bytes); the edge's request ids are 37.
pub const MAX_JTI_BYTES: usize = 128;

/// The longest assertion either side accepts (bytes). The edge refuses to sign a longer one (a
/// request whose path alone is that long), rather than forward what the verifier refuses.
pub const MAX_ASSERTION_BYTES: usize = 16 * 1024;

/// The edge's name (`iss`) when the configuration names none.
pub const DEFAULT_ISSUER: &str = "mcp-edge";

/// The upstream's name (`aud`) when the configuration names none.
pub const DEFAULT_AUDIENCE: &str = "mcp-edge-backend";

/// The JOSE header, byte for byte (any verifier reads it as JSON; it is fixed so it is encoded once).
pub const JOSE_HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

/// The payload's claim names.
pub mod claims {
    pub const ISS: &str = "iss";
    pub const AUD: &str = "aud";
    pub const IAT: &str = "iat";
    pub const EXP: &str = "exp";
    pub const JTI: &str = "jti";
    pub const SUB: &str = "sub";
    pub const TENANT_ID: &str = "tenant_id";
    pub const SCOPE: &str = "scope";
    pub const DATA_SCOPE: &str = "data_scope";
    pub const TIER: &str = "tier";
    pub const HTM: &str = "htm";
    pub const HTP: &str = "htp";
    pub const MCP_PV: &str = "mcp_pv";
    pub const BODY_SHA256: &str = "body_sha256";
}

/// Why an assertion cannot be built or is refused. The message is safe to show a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AssertionError {
    /// The secret is shorter than [`crate::MIN_SECRET_LEN`].
    SecretTooShort,
    /// An identity or request value the edge will not sign (it names the claim).
    Unsignable(&'static str),
    /// Signature, `typ`, `iss`, `aud`, `iat` or `exp` refused by the JWT library (its words).
    Token(String),
    /// A claim the contract requires is absent.
    MissingClaim(&'static str),
    /// A claim is present but not what the contract allows.
    MalformedClaim(&'static str),
    /// A binding claim differs from the request received (it names the claim).
    Mismatch(&'static str),
}

impl std::fmt::Display for AssertionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::SecretTooShort => SecretTooShort.fmt(f),
            Self::Unsignable(claim) => write!(f, "claim {claim} cannot be signed"),
            Self::Token(why) => write!(f, "assertion refused: {why}"),
            Self::MissingClaim(claim) => write!(f, "assertion has no {claim} claim"),
            Self::MalformedClaim(claim) => write!(f, "assertion claim {claim} is malformed"),
            Self::Mismatch(claim) => {
                write!(f, "assertion claim {claim} does not match the request")
            }
        }
    }
}

impl std::error::Error for AssertionError {}

impl From<SecretTooShort> for AssertionError {
    fn from(_: SecretTooShort) -> Self {
        Self::SecretTooShort
    }
}

/// Appends `value` as a JSON string (quotes and escapes; Unicode as is).
fn push_json_string(out: &mut Vec<u8>, value: &str) {
    // Writing a &str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, value);
}

/// Appends `"name":"value",`.
fn push_member(out: &mut Vec<u8>, name: &str, value: &str) {
    push_json_string(out, name);
    out.push(b':');
    push_json_string(out, value);
    out.push(b',');
}

/// Spaces until the length is a multiple of 3, then base64url: a piece that later pieces'
/// base64 can be appended to.
fn encode_piece(mut json: Vec<u8>) -> String {
    while !json.len().is_multiple_of(3) {
        json.push(b' ');
    }
    URL_SAFE_NO_PAD.encode(json)
}

/// The caller's identity claims, checked and encoded once (payload piece 2). The filter keeps it
/// with a verified token, so a cached caller's identity is neither encoded nor checked again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityClaims(String);

impl IdentityClaims {
    /// Refuses an identity a verifier would not read back as this one ([`Identity::check`]).
    pub fn new(identity: &Identity) -> Result<Self, AssertionError> {
        identity.check().map_err(AssertionError::Unsignable)?;
        let mut json = Vec::with_capacity(128);
        push_member(&mut json, claims::SUB, &identity.user_id);
        push_member(&mut json, claims::TENANT_ID, &identity.tenant_id);
        push_member(&mut json, claims::SCOPE, &identity.scopes_joined());
        push_member(&mut json, claims::DATA_SCOPE, &identity.data_scope);
        push_member(&mut json, claims::TIER, identity.tier.name());
        Ok(Self(encode_piece(json)))
    }
}

/// What an assertion binds besides the identity: this request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding<'a> {
    /// `htm`: the HTTP method.
    pub method: &'a str,
    /// `htp`: path and query as forwarded.
    pub path: &'a str,
    /// `mcp_pv`: `MCP-Protocol-Version` as forwarded ("" when absent).
    pub protocol_version: &'a str,
    /// `jti`: the edge's request id.
    pub request_id: &'a str,
    /// `iat`: unix seconds at which the edge signed (`exp` is `iat` + [`LIFETIME_SECS`]).
    pub issued_at: u64,
    /// `body_sha256`: [`body_digest`] of the exact body judged.
    pub body_digest: &'a str,
}

/// The edge's half: the configuration's piece and the HMAC fed with it, made once per
/// configuration; [`Self::sign`] per request.
#[derive(Clone)]
pub struct AssertionSigner {
    /// `<JOSE header>.<piece 1>`, base64url.
    prefix: String,
    /// HMAC-SHA256 after `prefix`.
    midstate: Hmac<Sha256>,
}

impl std::fmt::Debug for AssertionSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AssertionSigner")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl AssertionSigner {
    /// `issuer` is the edge's name (`iss`), `audience` the upstream's (`aud`).
    pub fn new(key: &GatewayKey, issuer: &str, audience: &str) -> Self {
        let mut json = vec![b'{'];
        push_member(&mut json, claims::ISS, issuer);
        push_member(&mut json, claims::AUD, audience);
        let mut prefix = URL_SAFE_NO_PAD.encode(JOSE_HEADER);
        prefix.push('.');
        prefix.push_str(&encode_piece(json));
        let mut midstate = key.keyed_mac();
        midstate.update(prefix.as_bytes());
        Self { prefix, midstate }
    }

    /// The compact JWS for `identity` on this request. Refuses a request id a verifier would
    /// refuse (empty, over [`MAX_JTI_BYTES`], not visible ASCII), and an assertion longer than
    /// [`MAX_ASSERTION_BYTES`].
    pub fn sign(
        &self,
        identity: &IdentityClaims,
        binding: &Binding<'_>,
    ) -> Result<String, AssertionError> {
        if !jti_is_valid(binding.request_id) {
            return Err(AssertionError::Unsignable(claims::JTI));
        }
        let mut json = Vec::with_capacity(160 + binding.path.len());
        // Numbers written straight into the piece (writing into a Vec cannot fail).
        let _ = write!(
            json,
            "\"{}\":{},\"{}\":{},",
            claims::IAT,
            binding.issued_at,
            claims::EXP,
            binding.issued_at.saturating_add(LIFETIME_SECS)
        );
        push_member(&mut json, claims::JTI, binding.request_id);
        push_member(&mut json, claims::HTM, binding.method);
        push_member(&mut json, claims::HTP, binding.path);
        push_member(&mut json, claims::MCP_PV, binding.protocol_version);
        push_json_string(&mut json, claims::BODY_SHA256);
        json.push(b':');
        push_json_string(&mut json, binding.body_digest);
        json.push(b'}');
        let request = URL_SAFE_NO_PAD.encode(json);

        let mut mac = self.midstate.clone();
        mac.update(identity.0.as_bytes());
        mac.update(request.as_bytes());
        let signature = mac.finalize().into_bytes();

        let mut token =
            String::with_capacity(self.prefix.len() + identity.0.len() + request.len() + 44);
        token.push_str(&self.prefix);
        token.push_str(&identity.0);
        token.push_str(&request);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(signature, &mut token);
        if token.len() > MAX_ASSERTION_BYTES {
            return Err(AssertionError::Unsignable(claims::HTP));
        }
        Ok(token)
    }
}

/// What the backend sees of a request besides the assertion and the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLine<'a> {
    pub method: &'a str,
    /// Path and query, as received.
    pub path: &'a str,
    /// The `MCP-Protocol-Version` header ("" when absent).
    pub protocol_version: &'a str,
}

/// A request the backend verified: who, and under which request id (`jti`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vouched {
    pub identity: Identity,
    pub request_id: String,
    /// The assertion's `iat`.
    pub issued_at: u64,
}

/// The payload's claims beyond the registered ones jwt-simple reads itself.
#[derive(Debug, Deserialize)]
struct ContractClaims {
    tenant_id: Option<String>,
    scope: Option<String>,
    data_scope: Option<String>,
    tier: Option<String>,
    htm: Option<String>,
    htp: Option<String>,
    mcp_pv: Option<String>,
    body_sha256: Option<String>,
}

/// The backend's half: the secret and the two names, made once.
#[derive(Clone)]
pub struct AssertionVerifier {
    key: HS256Key,
    issuer: String,
    audience: String,
}

impl std::fmt::Debug for AssertionVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AssertionVerifier")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

impl AssertionVerifier {
    /// Refuses a secret shorter than [`crate::MIN_SECRET_LEN`]. `issuer` is the edge's name,
    /// `audience` this service's, exactly as the edge is configured.
    pub fn new(secret: &[u8], issuer: &str, audience: &str) -> Result<Self, SecretTooShort> {
        GatewayKey::new(secret)?;
        Ok(Self {
            key: HS256Key::from_bytes(secret),
            issuer: issuer.to_string(),
            audience: audience.to_string(),
        })
    }

    /// Verifies `token` (the `x-mcp-identity` value) at `now` (unix seconds): the JWS with
    /// jwt-simple (HS256, `typ: JWT`, exact `iss` and `aud`, `exp` required, at most
    /// [`MAX_CLOCK_SKEW_SECS`] of skew), then the identity claims, then the binding against the
    /// request received. Exactly-once on the `jti` is the caller's (it holds the state).
    pub fn verify(
        &self,
        token: &str,
        request: &RequestLine<'_>,
        body: &[u8],
        now: u64,
    ) -> Result<Vouched, AssertionError> {
        let options = VerificationOptions {
            required_signature_type: Some("JWT".into()),
            allowed_issuers: Some(HashSet::from([self.issuer.clone()])),
            allowed_audiences: Some(HashSet::from([self.audience.clone()])),
            time_tolerance: Some(Duration::from_secs(MAX_CLOCK_SKEW_SECS)),
            max_token_length: Some(MAX_ASSERTION_BYTES),
            artificial_time: Some(UnixTimeStamp::from_secs(now)),
            ..VerificationOptions::default()
        };
        let verified = self
            .key
            .verify_token::<ContractClaims>(token, Some(options))
            .map_err(|e| AssertionError::Token(e.to_string()))?;
        let custom = verified.custom;
        let required =
            |value: Option<String>, claim| value.ok_or(AssertionError::MissingClaim(claim));

        let issued_at = verified
            .issued_at
            .ok_or(AssertionError::MissingClaim(claims::IAT))?
            .as_secs();
        let expires_at = verified
            .expires_at
            .ok_or(AssertionError::MissingClaim(claims::EXP))?
            .as_secs();
        if expires_at.saturating_sub(issued_at) > LIFETIME_SECS {
            return Err(AssertionError::MalformedClaim(claims::EXP));
        }
        // RFC 7519: valid only *before* `exp` (plus the skew). jwt-simple still accepts the
        // second itself; PyJWT and jose do not, and every verifier must agree.
        if now >= expires_at.saturating_add(MAX_CLOCK_SKEW_SECS) {
            return Err(AssertionError::Token("token has expired".into()));
        }
        // One audience, as the edge writes it: a list naming others besides us is not ours.
        if let Some(Audiences::AsSet(set)) = &verified.audiences
            && set.len() != 1
        {
            return Err(AssertionError::MalformedClaim(claims::AUD));
        }
        let request_id = verified
            .jwt_id
            .ok_or(AssertionError::MissingClaim(claims::JTI))?;
        if !jti_is_valid(&request_id) {
            return Err(AssertionError::MalformedClaim(claims::JTI));
        }

        let tier = required(custom.tier, claims::TIER)?;
        let scope = required(custom.scope, claims::SCOPE)?;
        let identity = Identity {
            tenant_id: required(custom.tenant_id, claims::TENANT_ID)?,
            user_id: verified
                .subject
                .ok_or(AssertionError::MissingClaim(claims::SUB))?,
            scopes: if scope.is_empty() {
                Vec::new()
            } else {
                scope.split(' ').map(str::to_string).collect()
            },
            data_scope: required(custom.data_scope, claims::DATA_SCOPE)?,
            tier: Tier::parse(&tier).ok_or(AssertionError::MalformedClaim(claims::TIER))?,
        };
        identity.check().map_err(AssertionError::MalformedClaim)?;

        let bound = [
            (claims::HTM, custom.htm, request.method),
            (claims::HTP, custom.htp, request.path),
            (claims::MCP_PV, custom.mcp_pv, request.protocol_version),
        ];
        for (claim, signed, received) in bound {
            if required(signed, claim)? != received {
                return Err(AssertionError::Mismatch(claim));
            }
        }
        if required(custom.body_sha256, claims::BODY_SHA256)? != body_digest(body) {
            return Err(AssertionError::Mismatch(claims::BODY_SHA256));
        }
        Ok(Vouched {
            identity,
            request_id,
            issued_at,
        })
    }
}

/// A request id both sides accept: 1..=[`MAX_JTI_BYTES`] bytes of visible ASCII.
fn jti_is_valid(jti: &str) -> bool {
    !jti.is_empty() && jti.len() <= MAX_JTI_BYTES && jti.bytes().all(|b| b.is_ascii_graphic())
}

/// Reads a payload without verifying it (tests and tools that show what an assertion says).
pub fn decode_unverified(token: &str) -> Option<serde_json::Value> {
    let payload = token.split('.').nth(1)?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()
}

#[cfg(test)]
mod tests;
