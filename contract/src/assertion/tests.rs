use super::*;
use serde_json::{Value, json};

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
const NOW: u64 = 1_767_225_600;
const BODY: &[u8] = br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
const LINE: RequestLine<'static> = RequestLine {
    method: "POST",
    path: "/mcp?x=1",
    protocol_version: "2025-06-18",
};

fn signer(issuer: &str, audience: &str) -> AssertionSigner {
    AssertionSigner::new(&GatewayKey::new(SECRET).unwrap(), issuer, audience)
}

fn verifier() -> AssertionVerifier {
    AssertionVerifier::new(SECRET, DEFAULT_ISSUER, DEFAULT_AUDIENCE).unwrap()
}

fn sign_at(identity: &Identity, line: &RequestLine<'_>, body: &[u8], now: u64) -> String {
    let digest = body_digest(body);
    signer(DEFAULT_ISSUER, DEFAULT_AUDIENCE)
        .sign(
            &IdentityClaims::new(identity).unwrap(),
            &Binding {
                method: line.method,
                path: line.path,
                protocol_version: line.protocol_version,
                request_id: "mcpe-0123",
                issued_at: now,
                body_digest: &digest,
            },
        )
        .unwrap()
}

/// A JWS over any header and payload, signed with `secret` by plain HMAC (no midstate).
fn forge(secret: &[u8], header: &Value, payload: &Value) -> String {
    let head = URL_SAFE_NO_PAD.encode(header.to_string());
    let body = URL_SAFE_NO_PAD.encode(payload.to_string());
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
    mac.update(format!("{head}.{body}").as_bytes());
    let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{head}.{body}.{sig}")
}

/// The payload the edge writes for `Identity::example("acme")` on `LINE` with `BODY` at `NOW`.
fn edge_payload() -> Value {
    json!({
        "iss": DEFAULT_ISSUER, "aud": DEFAULT_AUDIENCE, "iat": NOW, "exp": NOW + 30,
        "jti": "mcpe-0123", "sub": "user-of-acme", "tenant_id": "acme",
        "scope": "mcp:read mcp:write", "data_scope": "team:engineering", "tier": "pro",
        "htm": "POST", "htp": "/mcp?x=1", "mcp_pv": "2025-06-18", "body_sha256": body_digest(BODY),
    })
}

fn jose() -> Value {
    json!({"alg": "HS256", "typ": "JWT"})
}

#[test]
fn what_the_edge_signs_the_verifier_reads_back() {
    let acme = Identity::example("acme");
    let unicode = Identity {
        tenant_id: "Ünïcode 租户 \"quoted\" \\".into(),
        user_id: " zoë@example.com ".into(),
        scopes: vec!["mcp:read".into(), "100%".into()],
        data_scope: "team:ré\u{1F600}d".into(),
        tier: Tier::Enterprise,
    };
    for identity in [acme, unicode] {
        let token = sign_at(&identity, &LINE, BODY, NOW);
        let vouched = verifier().verify(&token, &LINE, BODY, NOW + 5).unwrap();
        assert_eq!(vouched.identity, identity);
        assert_eq!(vouched.request_id, "mcpe-0123");
        assert_eq!(vouched.issued_at, NOW);
    }
}

#[test]
fn it_is_a_plain_jwt_with_exactly_the_contracts_claims() {
    let token = sign_at(&Identity::example("acme"), &LINE, BODY, NOW);
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3);
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    assert_eq!(header, jose());
    assert_eq!(decode_unverified(&token).unwrap(), edge_payload());
    // The signature is HMAC-SHA256 over `header.payload`, computed here without the midstate.
    assert_eq!(token, forge_like(&token));
}

/// The token re-signed with a fresh HMAC over its own first two parts.
fn forge_like(token: &str) -> String {
    let (signed, _) = token.rsplit_once('.').unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET).unwrap();
    mac.update(signed.as_bytes());
    format!(
        "{signed}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    )
}

#[test]
fn pieces_join_whatever_their_lengths() {
    // Names and identities of every length modulo 3: the padded pieces must still make one
    // base64url payload that decodes to JSON and one MAC over it.
    for issuer in ["e", "ed", "edg", "edge"] {
        for tenant in ["a", "ab", "abc"] {
            let token = signer(issuer, "b")
                .sign(
                    &IdentityClaims::new(&Identity::example(tenant)).unwrap(),
                    &Binding {
                        method: "POST",
                        path: "/mcp",
                        protocol_version: "",
                        request_id: "r",
                        issued_at: NOW,
                        body_digest: "d",
                    },
                )
                .unwrap();
            let payload = decode_unverified(&token).unwrap();
            assert_eq!(payload["iss"], issuer);
            assert_eq!(payload["tenant_id"], tenant);
            assert_eq!(payload["mcp_pv"], "");
            assert_eq!(token, forge_like(&token));
        }
    }
}

#[test]
fn a_token_from_another_jwt_library_verifies() {
    let mut payload = edge_payload();
    for registered in ["iss", "aud", "iat", "exp", "jti", "sub"] {
        payload.as_object_mut().unwrap().remove(registered);
    }
    let claims = jwt_simple::prelude::Claims::with_custom_claims(
        payload,
        Duration::from_secs(LIFETIME_SECS),
    )
    .with_issuer(DEFAULT_ISSUER)
    .with_audience(DEFAULT_AUDIENCE)
    .with_subject("user-of-acme")
    .with_jwt_id("mcpe-0123");
    let mut claims = claims;
    claims.issued_at = Some(UnixTimeStamp::from_secs(NOW));
    claims.expires_at = Some(UnixTimeStamp::from_secs(NOW + LIFETIME_SECS));
    claims.invalid_before = Some(UnixTimeStamp::from_secs(NOW));
    let token = HS256Key::from_bytes(SECRET).authenticate(claims).unwrap();
    let vouched = verifier().verify(&token, &LINE, BODY, NOW).unwrap();
    assert_eq!(vouched.identity, Identity::example("acme"));
}

#[test]
fn the_binding_must_match_the_request() {
    let token = sign_at(&Identity::example("acme"), &LINE, BODY, NOW);
    let v = verifier();
    let cases = [
        (
            RequestLine {
                method: "GET",
                ..LINE
            },
            BODY,
            claims::HTM,
        ),
        (
            RequestLine {
                path: "/mcp",
                ..LINE
            },
            BODY,
            claims::HTP,
        ),
        (
            RequestLine {
                protocol_version: "",
                ..LINE
            },
            BODY,
            claims::MCP_PV,
        ),
        (LINE, &b"{}"[..], claims::BODY_SHA256),
    ];
    for (line, body, claim) in cases {
        assert_eq!(
            v.verify(&token, &line, body, NOW),
            Err(AssertionError::Mismatch(claim))
        );
    }
}

#[test]
fn time_names_and_signature_are_checked() {
    let identity = Identity::example("acme");
    let token = sign_at(&identity, &LINE, BODY, NOW);
    let v = verifier();
    let refused = |r: Result<Vouched, AssertionError>| matches!(r, Err(AssertionError::Token(_)));
    // exp = iat + 30, plus 30 s of skew: accepted until +59, refused from +60 (RFC 7519: before
    // exp; PyJWT and jose agree).
    assert!(v.verify(&token, &LINE, BODY, NOW + 59).is_ok());
    assert!(refused(v.verify(&token, &LINE, BODY, NOW + 60)));
    // Issued more than 30 s in the future.
    assert!(v.verify(&token, &LINE, BODY, NOW - 30).is_ok());
    assert!(refused(v.verify(&token, &LINE, BODY, NOW - 31)));
    let other_names = [
        AssertionVerifier::new(SECRET, "other-edge", DEFAULT_AUDIENCE).unwrap(),
        AssertionVerifier::new(SECRET, DEFAULT_ISSUER, "other-backend").unwrap(),
        AssertionVerifier::new(
            b"another-secret-another-secret-xx",
            DEFAULT_ISSUER,
            DEFAULT_AUDIENCE,
        )
        .unwrap(),
    ];
    for other in other_names {
        assert!(refused(other.verify(&token, &LINE, BODY, NOW)), "{other:?}");
    }
    // One flipped payload byte.
    let (head, rest) = token.split_once('.').unwrap();
    let tampered = format!("{head}.{}", rest.replacen("ey", "ez", 1));
    assert!(refused(v.verify(&tampered, &LINE, BODY, NOW)));
    assert!(refused(v.verify("not-a-jwt", &LINE, BODY, NOW)));
}

#[test]
fn headers_other_than_hs256_jwt_are_refused() {
    let v = verifier();
    for header in [
        json!({"alg": "none", "typ": "JWT"}),
        json!({"alg": "HS512", "typ": "JWT"}),
        json!({"alg": "HS256", "typ": "at+jwt"}),
        json!({"alg": "HS256"}),
    ] {
        let token = forge(SECRET, &header, &edge_payload());
        assert!(
            matches!(
                v.verify(&token, &LINE, BODY, NOW),
                Err(AssertionError::Token(_))
            ),
            "{header}"
        );
    }
    let unsigned = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(json!({"alg": "none"}).to_string()),
        URL_SAFE_NO_PAD.encode(edge_payload().to_string())
    );
    assert!(v.verify(&unsigned, &LINE, BODY, NOW).is_err());
}

#[test]
fn every_contract_claim_is_required_and_checked() {
    let v = verifier();
    for claim in [
        claims::EXP,
        claims::IAT,
        claims::JTI,
        claims::SUB,
        claims::TENANT_ID,
        claims::SCOPE,
        claims::DATA_SCOPE,
        claims::TIER,
        claims::HTM,
        claims::HTP,
        claims::MCP_PV,
        claims::BODY_SHA256,
    ] {
        let mut payload = edge_payload();
        payload.as_object_mut().unwrap().remove(claim);
        let token = forge(SECRET, &jose(), &payload);
        assert_eq!(
            v.verify(&token, &LINE, BODY, NOW),
            Err(AssertionError::MissingClaim(claim)),
            "without {claim}"
        );
    }
    let spoiled: [(&str, Value, &str); 8] = [
        (claims::TIER, json!("platinum"), claims::TIER),
        (claims::TENANT_ID, json!(""), claims::TENANT_ID),
        (claims::TENANT_ID, json!("a\u{0}b"), claims::TENANT_ID),
        (claims::SCOPE, json!("a  b"), claims::SCOPE),
        (claims::SCOPE, json!(" a"), claims::SCOPE),
        (claims::JTI, json!(""), claims::JTI),
        (claims::JTI, json!("a b"), claims::JTI),
        (claims::EXP, json!(NOW + 3600), claims::EXP),
    ];
    for (claim, value, named) in spoiled {
        let mut payload = edge_payload();
        payload[claim] = value.clone();
        let token = forge(SECRET, &jose(), &payload);
        assert_eq!(
            v.verify(&token, &LINE, BODY, NOW),
            Err(AssertionError::MalformedClaim(named)),
            "{claim} = {value}"
        );
    }
    // An audience list naming another service too.
    let mut payload = edge_payload();
    payload["aud"] = json!([DEFAULT_AUDIENCE, "other"]);
    let token = forge(SECRET, &jose(), &payload);
    assert_eq!(
        v.verify(&token, &LINE, BODY, NOW),
        Err(AssertionError::MalformedClaim(claims::AUD))
    );
    // A number where a string belongs is not read as a string.
    let mut payload = edge_payload();
    payload[claims::TENANT_ID] = json!(42);
    let token = forge(SECRET, &jose(), &payload);
    assert!(matches!(
        v.verify(&token, &LINE, BODY, NOW),
        Err(AssertionError::Token(_))
    ));
}

#[test]
fn unsignable_identities_are_refused_before_signing() {
    let identity = Identity {
        scopes: vec!["a b".into()],
        ..Identity::example("acme")
    };
    assert_eq!(
        IdentityClaims::new(&identity),
        Err(AssertionError::Unsignable(claims::SCOPE))
    );
    assert!(AssertionVerifier::new(b"short", "i", "a").is_err());
    let claims = IdentityClaims::new(&Identity::example("acme")).unwrap();
    for jti in ["", "a b", "é", &"r".repeat(129)] {
        let binding = Binding {
            method: "POST",
            path: "/mcp",
            protocol_version: "",
            request_id: jti,
            issued_at: NOW,
            body_digest: "d",
        };
        assert_eq!(
            signer(DEFAULT_ISSUER, DEFAULT_AUDIENCE).sign(&claims, &binding),
            Err(AssertionError::Unsignable(claims::JTI)),
            "{jti:?}"
        );
    }
}
