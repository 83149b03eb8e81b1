//! `verify_bearer`: is this JWT signed by a key we trust, for us, now, and what does it say?
//!
//! jwt-simple does the signature and the registered-claim checks, but its defaults are too lenient
//! for an edge (no `exp` accepted, 15 minutes of clock skew, `iss`/`aud` unchecked), so every option
//! is set explicitly here and the missing-`exp` rule is ours.

use std::collections::{BTreeSet, HashSet};

use jwt_simple::JWTError;
use jwt_simple::prelude::*;
use serde_json::{Map, Value};

use crate::claim_mapping::ClaimMapping;
use crate::keys::{Algorithm, KeySet, VerifyingKey};
use crate::tenant::{ClaimError, TenantContext, tenant_context};

/// What a token must satisfy besides its signature.
#[derive(Debug, Clone, Default)]
pub struct TokenPolicy {
    pub issuers: BTreeSet<String>,
    pub audiences: BTreeSet<String>,
    pub algorithms: BTreeSet<Algorithm>,
    pub leeway_seconds: u64,
    /// The `typ` header a token must carry (compared without case; `application/` may precede it).
    pub required_typ: Option<String>,
    /// Which claims say who the caller is (the configuration's `claims`).
    pub claims: ClaimMapping,
}

/// A token that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    pub tenant: TenantContext,
    /// `exp`, unix seconds.
    pub expires_at: u64,
}

/// Why a token was refused. Every variant is a 401 `invalid_token`, except that `UnknownKey` may
/// first be worth one refetch of the JWKS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenError {
    Malformed,
    AlgorithmNotAllowed(String),
    /// The token names a `kid` that no trusted key has.
    UnknownKey(String),
    /// No trusted key matches the token's algorithm (and `kid`, if any).
    NoMatchingKey,
    BadSignature,
    Expired,
    NotYetValid,
    MissingExpiry,
    WrongIssuer,
    WrongAudience,
    /// The `typ` header is not the one the configuration requires.
    WrongType,
    InvalidClaim(ClaimError),
    /// The introspection endpoint says the (opaque) token is not active.
    Inactive,
    /// The introspection endpoint did not answer usably (error status, timeout, bad JSON).
    IntrospectionFailed,
}

impl TokenError {
    /// A short, stable reason for logs and stats.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::AlgorithmNotAllowed(_) => "algorithm_not_allowed",
            Self::UnknownKey(_) => "unknown_kid",
            Self::NoMatchingKey => "no_matching_key",
            Self::BadSignature => "bad_signature",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::MissingExpiry => "missing_exp",
            Self::WrongIssuer => "wrong_issuer",
            Self::WrongAudience => "wrong_audience",
            Self::WrongType => "wrong_typ",
            Self::InvalidClaim(_) => "invalid_claim",
            Self::Inactive => "inactive",
            Self::IntrospectionFailed => "introspection_failed",
        }
    }

    /// A sentence a client (and the person behind it) can act on.
    pub fn description(&self) -> String {
        match self {
            Self::Malformed => "the access token is not a well-formed JWT".into(),
            Self::AlgorithmNotAllowed(a) => format!("tokens signed with {a:?} are not accepted"),
            Self::UnknownKey(_) | Self::NoMatchingKey => {
                "the access token is not signed by a trusted key".into()
            }
            Self::BadSignature => "the access token's signature is invalid".into(),
            Self::Expired => "the access token has expired".into(),
            Self::NotYetValid => "the access token is not valid yet".into(),
            Self::MissingExpiry => "the access token has no expiry (exp)".into(),
            Self::WrongIssuer => "the access token was issued by an untrusted issuer".into(),
            Self::WrongAudience => "the access token was not issued for this resource".into(),
            Self::WrongType => "the access token is not of the required type (typ)".into(),
            Self::InvalidClaim(c) => format!("the access token's {c}"),
            Self::Inactive => "the access token is not active".into(),
            Self::IntrospectionFailed => "the access token could not be introspected".into(),
        }
    }
}

impl std::fmt::Display for TokenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.description())
    }
}

fn map_jwt_error(e: &jwt_simple::Error) -> TokenError {
    match e.downcast_ref::<JWTError>() {
        Some(JWTError::TokenHasExpired) => TokenError::Expired,
        Some(JWTError::TokenNotValidYet) | Some(JWTError::ClockDrift) => TokenError::NotYetValid,
        Some(JWTError::RequiredIssuerMismatch) | Some(JWTError::RequiredIssuerMissing) => {
            TokenError::WrongIssuer
        }
        Some(JWTError::RequiredAudienceMismatch) | Some(JWTError::RequiredAudienceMissing) => {
            TokenError::WrongAudience
        }
        Some(JWTError::InvalidSignature) | Some(JWTError::InvalidAuthenticationTag) => {
            TokenError::BadSignature
        }
        _ => TokenError::Malformed,
    }
}

type TokenClaims = JWTClaims<Map<String, Value>>;

fn verify_with(
    key: &VerifyingKey,
    token: &str,
    options: VerificationOptions,
) -> Result<TokenClaims, jwt_simple::Error> {
    match key {
        VerifyingKey::Rs256(k) => k.verify_token(token, options),
        VerifyingKey::Es256(k) => k.verify_token(token, Some(options)),
        VerifyingKey::EdDsa(k) => k.verify_token(token, Some(options)),
        VerifyingKey::Hs256(k) => k.verify_token(token, Some(options)),
    }
}

/// Verifies a bearer token against the trusted keys at time `now` (unix seconds).
pub fn verify_bearer(
    token: &str,
    keys: &KeySet,
    policy: &TokenPolicy,
    now: u64,
) -> Result<VerifiedToken, TokenError> {
    let meta = Token::decode_metadata(token).map_err(|_| TokenError::Malformed)?;
    let alg_name = meta.algorithm();
    let alg = Algorithm::from_name(alg_name)
        .filter(|a| policy.algorithms.contains(a))
        .ok_or_else(|| TokenError::AlgorithmNotAllowed(alg_name.to_string()))?;
    let kid = meta.key_id();
    if let Some(required) = &policy.required_typ {
        let typ = meta.signature_type().unwrap_or_default();
        let typ = typ
            .get(..12)
            .filter(|p| p.eq_ignore_ascii_case("application/"))
            .map_or(typ, |_| &typ[12..]);
        if !typ.eq_ignore_ascii_case(required) {
            return Err(TokenError::WrongType);
        }
    }

    let options = || VerificationOptions {
        allowed_issuers: Some(policy.issuers.iter().cloned().collect::<HashSet<_>>()),
        allowed_audiences: Some(policy.audiences.iter().cloned().collect::<HashSet<_>>()),
        time_tolerance: Some(Duration::from_secs(policy.leeway_seconds)),
        artificial_time: Some(Duration::from_secs(now)),
        accept_future: false,
        max_token_length: Some(crate::bearer::MAX_TOKEN_BYTES),
        ..Default::default()
    };

    let mut last_error = None;
    for key in keys.candidates(kid, alg) {
        match verify_with(key, token, options()) {
            Ok(claims) => return finish(claims, &policy.claims),
            Err(e) => last_error = Some(map_jwt_error(&e)),
        }
    }
    Err(match (last_error, kid) {
        (Some(e), _) => e,
        (None, Some(kid)) if !keys.knows_kid(kid) => TokenError::UnknownKey(kid.to_string()),
        (None, _) => TokenError::NoMatchingKey,
    })
}

/// `exp` is required; the TenantContext is read from the custom claims, with `sub` (which
/// jwt-simple parses out of them) put back so a mapping can name it like any other claim.
fn finish(claims: TokenClaims, mapping: &ClaimMapping) -> Result<VerifiedToken, TokenError> {
    let expires_at = claims
        .expires_at
        .ok_or(TokenError::MissingExpiry)?
        .as_secs();
    let mut custom = claims.custom;
    if let Some(subject) = claims.subject {
        custom.insert("sub".to_string(), Value::String(subject));
    }
    let tenant = tenant_context(mapping, &custom).map_err(TokenError::InvalidClaim)?;
    Ok(VerifiedToken { tenant, expires_at })
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use serde_json::json;

    const NOW: u64 = 1_800_000_000;
    const ISS: &str = "https://auth.example";
    const AUD: &str = "https://mcp.example/mcp";

    fn policy() -> TokenPolicy {
        TokenPolicy {
            issuers: [ISS.to_string()].into(),
            audiences: [AUD.to_string()].into(),
            algorithms: [Algorithm::Rs256, Algorithm::Es256, Algorithm::EdDsa].into(),
            leeway_seconds: 30,
            required_typ: None,
            claims: ClaimMapping::default(),
        }
    }

    fn custom() -> Map<String, Value> {
        json!({"tenant_id": "acme", "scope": "mcp:read"})
            .as_object()
            .unwrap()
            .clone()
    }

    fn claims_at(iat: u64, valid_for: u64) -> JWTClaims<Map<String, Value>> {
        let mut c = Claims::with_custom_claims(custom(), Duration::from_secs(valid_for))
            .with_issuer(ISS)
            .with_audience(AUD)
            .with_subject("user_1");
        c.issued_at = Some(Duration::from_secs(iat));
        c.invalid_before = Some(Duration::from_secs(iat));
        c.expires_at = Some(Duration::from_secs(iat + valid_for));
        c
    }

    fn ed_setup() -> (Ed25519KeyPair, KeySet) {
        let kp = Ed25519KeyPair::generate().with_key_id("k1");
        let doc =
            json!({"keys": [serde_json::from_str::<Value>(&kp.public_key().to_jwk()).unwrap()]});
        let set = KeySet::from_jwks(doc.to_string().as_bytes(), &policy().algorithms).unwrap();
        (kp, set)
    }

    #[test]
    fn valid_token_yields_tenant() {
        let (kp, keys) = ed_setup();
        let t = kp.sign(claims_at(NOW - 10, 600)).unwrap();
        let v = verify_bearer(&t, &keys, &policy(), NOW).unwrap();
        assert_eq!(v.tenant.tenant_id, "acme");
        assert_eq!(v.tenant.user_id, "user_1");
        assert_eq!(v.expires_at, NOW + 590);
    }

    #[test]
    fn rsa_and_ecdsa_tokens_verify() {
        let rsa = RS256KeyPair::generate(2048).unwrap().with_key_id("r");
        let ec = ES256KeyPair::generate().with_key_id("e");
        let doc = json!({"keys": [
            serde_json::from_str::<Value>(&rsa.public_key().to_jwk()).unwrap(),
            serde_json::from_str::<Value>(&ec.public_key().to_jwk()).unwrap(),
        ]});
        let keys = KeySet::from_jwks(doc.to_string().as_bytes(), &policy().algorithms).unwrap();
        let t = rsa.sign(claims_at(NOW, 600)).unwrap();
        assert!(verify_bearer(&t, &keys, &policy(), NOW).is_ok());
        let t = ec.sign(claims_at(NOW, 600)).unwrap();
        assert!(verify_bearer(&t, &keys, &policy(), NOW).is_ok());
    }

    #[test]
    fn time_rules() {
        let (kp, keys) = ed_setup();
        // expired ten minutes ago: beyond the 30 s leeway
        let t = kp.sign(claims_at(NOW - 1200, 600)).unwrap();
        assert_eq!(
            verify_bearer(&t, &keys, &policy(), NOW),
            Err(TokenError::Expired)
        );
        // expired 20 s ago: within the leeway
        let t = kp.sign(claims_at(NOW - 620, 600)).unwrap();
        assert!(verify_bearer(&t, &keys, &policy(), NOW).is_ok());
        // not valid for another 5 minutes
        let t = kp.sign(claims_at(NOW + 300, 600)).unwrap();
        assert_eq!(
            verify_bearer(&t, &keys, &policy(), NOW),
            Err(TokenError::NotYetValid)
        );
        // no exp at all
        let mut c = claims_at(NOW, 600);
        c.expires_at = None;
        let t = kp.sign(c).unwrap();
        assert_eq!(
            verify_bearer(&t, &keys, &policy(), NOW),
            Err(TokenError::MissingExpiry)
        );
    }

    #[test]
    fn issuer_and_audience() {
        let (kp, keys) = ed_setup();
        let t = kp
            .sign(claims_at(NOW, 600).with_issuer("https://evil.example"))
            .unwrap();
        assert_eq!(
            verify_bearer(&t, &keys, &policy(), NOW),
            Err(TokenError::WrongIssuer)
        );
        let t = kp
            .sign(claims_at(NOW, 600).with_audience("https://other.example/mcp"))
            .unwrap();
        assert_eq!(
            verify_bearer(&t, &keys, &policy(), NOW),
            Err(TokenError::WrongAudience)
        );
        let mut c = claims_at(NOW, 600);
        c.audiences = None;
        let t = kp.sign(c).unwrap();
        assert_eq!(
            verify_bearer(&t, &keys, &policy(), NOW),
            Err(TokenError::WrongAudience)
        );
    }

    #[test]
    fn signature_and_key_rules() {
        let (kp, keys) = ed_setup();
        let other = Ed25519KeyPair::generate().with_key_id("k1");
        let t = other.sign(claims_at(NOW, 600)).unwrap();
        assert_eq!(
            verify_bearer(&t, &keys, &policy(), NOW),
            Err(TokenError::BadSignature)
        );
        let unknown = Ed25519KeyPair::generate().with_key_id("k2");
        let t = unknown.sign(claims_at(NOW, 600)).unwrap();
        assert_eq!(
            verify_bearer(&t, &keys, &policy(), NOW),
            Err(TokenError::UnknownKey("k2".into()))
        );
        let t = kp.sign(claims_at(NOW, 600)).unwrap();
        let mut tampered = t.clone();
        tampered.pop();
        tampered.push(if t.ends_with('A') { 'B' } else { 'A' });
        assert!(verify_bearer(&tampered, &keys, &policy(), NOW).is_err());
        assert_eq!(
            verify_bearer("not-a-jwt", &keys, &policy(), NOW),
            Err(TokenError::Malformed)
        );
    }

    fn forge(header: Value, payload: Value, sig: &[u8]) -> String {
        format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(payload.to_string()),
            URL_SAFE_NO_PAD.encode(sig)
        )
    }

    #[test]
    fn alg_none_and_hmac_confusion_are_refused() {
        let (kp, keys) = ed_setup();
        let payload =
            json!({"iss": ISS, "aud": AUD, "sub": "u", "tenant_id": "acme", "exp": NOW + 600});
        let t = forge(json!({"alg": "none", "kid": "k1"}), payload.clone(), b"");
        assert_eq!(
            verify_bearer(&t, &keys, &policy(), NOW),
            Err(TokenError::AlgorithmNotAllowed("none".into()))
        );
        // HS256 signed with the public key's bytes as the secret
        let public_jwk = kp.public_key().to_jwk();
        let hs = HS256Key::from_bytes(public_jwk.as_bytes()).with_key_id("k1");
        let c = Claims::with_custom_claims(custom(), Duration::from_secs(600))
            .with_issuer(ISS)
            .with_audience(AUD)
            .with_subject("u");
        let t = hs.authenticate(c).unwrap();
        assert_eq!(
            verify_bearer(&t, &keys, &policy(), NOW),
            Err(TokenError::AlgorithmNotAllowed("HS256".into()))
        );
        // an RS256 header against an EdDSA key with the same kid
        let t = forge(json!({"alg": "RS256", "kid": "k1"}), payload, b"sig");
        assert_eq!(
            verify_bearer(&t, &keys, &policy(), NOW),
            Err(TokenError::NoMatchingKey)
        );
    }

    #[test]
    fn bad_claims_make_the_token_invalid() {
        let (kp, keys) = ed_setup();
        let mut c = claims_at(NOW, 600);
        c.custom.insert("allowed_tools".into(), Value::Null);
        let t = kp.sign(c).unwrap();
        assert!(matches!(
            verify_bearer(&t, &keys, &policy(), NOW),
            Err(TokenError::InvalidClaim(_))
        ));
    }

    #[test]
    fn a_required_typ_is_enforced() {
        let (kp, set) = ed_setup();
        let strict = TokenPolicy {
            required_typ: Some("at+jwt".into()),
            ..policy()
        };
        let typed = |typ: &str| {
            let opts = HeaderOptions {
                signature_type: Some(typ.to_string()),
                ..Default::default()
            };
            kp.sign_with_options(claims_at(NOW, 600), &opts).unwrap()
        };
        let plain = kp.sign(claims_at(NOW, 600)).unwrap();
        assert_eq!(
            verify_bearer(&plain, &set, &strict, NOW).unwrap_err(),
            TokenError::WrongType
        );
        assert!(
            verify_bearer(&plain, &set, &policy(), NOW).is_ok(),
            "not required by default"
        );
        for ok in ["at+jwt", "AT+JWT", "application/at+jwt"] {
            assert!(
                verify_bearer(&typed(ok), &set, &strict, NOW).is_ok(),
                "{ok}"
            );
        }
        assert_eq!(
            verify_bearer(&typed("jwt"), &set, &strict, NOW).unwrap_err(),
            TokenError::WrongType
        );
    }
}
