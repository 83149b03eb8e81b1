//! `cargo xtask assertion-vectors`: writes docs/assertion-vectors.json, test vectors for the
//! identity assertion (`x-mcp-identity`, trust contract v3) made by the contract's own signer, so
//! a service behind the edge in any language (docs/verify/, the `mcp-edge-trust` crate) is checked
//! against the bytes the filter sends.
//!
//! Each vector is a request the filter let through: its inputs (identity, method, path,
//! `MCP-Protocol-Version`, body, signing time) and the token [`AssertionSigner`] makes for them
//! (deterministic, so the file is reproducible). Each check is a request a service receives,
//! derived from a vector by one change (or none), with the verdict every verifier must give:
//! accepted with the vector's identity and request id, or refused with the name of the reason.
//! The verdicts are written down here, not computed by a verifier: xtask/tests/assertion_vectors.rs
//! runs the Rust, Python and Node verifiers on the committed file and compares, and fails when the
//! file is not what the contract makes now.

use anyhow::{Context as _, Result, anyhow};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use mcp_edge_contract::assertion::{
    DEFAULT_AUDIENCE, DEFAULT_ISSUER, HEADER, JOSE_HEADER, LIFETIME_SECS, MAX_CLOCK_SKEW_SECS,
    decode_unverified,
};
use mcp_edge_contract::{
    AssertionSigner, Binding, GatewayKey, Identity, IdentityClaims, Tier, body_digest, headers,
};
use serde_json::{Map, Value, json};
use sha2::Sha256;

use crate::sync_config::Generated;

pub const ASSERTION_VECTORS_JSON: &str = "docs/assertion-vectors.json";

/// The gateway secret of every vector (the UTF-8 bytes of this string, as the edge reads
/// `MCP_EDGE_GATEWAY_SECRET`).
const SECRET: &str = "test-vector-gateway-secret-0123456789";
/// A secret of the right length that is not the one the vectors were signed with.
const WRONG_SECRET: &str = "test-vector-other-secret-0123456789ab";
/// 2026-01-01T00:00:00Z: when every vector is signed.
const SIGNED_AT: u64 = 1_767_225_600;
/// The `MCP-Protocol-Version` request header.
const PROTOCOL_VERSION_HEADER: &str = "mcp-protocol-version";

/// A request the filter vouches for.
struct Case {
    name: &'static str,
    about: &'static str,
    identity: Identity,
    method: &'static str,
    path: &'static str,
    /// "" when the request has no `MCP-Protocol-Version` header.
    protocol_version: &'static str,
    request_id: &'static str,
    body: &'static str,
}

const CALL: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_projects","arguments":{}}}"#;

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "plain_ascii",
            about: "a plain ASCII identity on a tools/call",
            identity: Identity::example("acme"),
            method: "POST",
            path: "/mcp",
            protocol_version: "2025-06-18",
            request_id: "req-plain-1",
            body: CALL,
        },
        Case {
            name: "unicode_identity",
            about: "non-ASCII values, quotes, a backslash, a literal % and spaces at the ends: JSON strings as they are, nothing percent-encoded",
            identity: Identity {
                tenant_id: "Ünïcode 租户 \"quoted\" \\".into(),
                user_id: " zoë@example.com ".into(),
                scopes: vec!["mcp:read".into(), "100%".into()],
                data_scope: "team:ré\u{1F600}d".into(),
                tier: Tier::Free,
            },
            method: "POST",
            path: "/mcp",
            protocol_version: "2025-11-25",
            request_id: "req-unicode-1",
            body: r#"{"jsonrpc":"2.0","id":"é","method":"tools/call","params":{"name":"search_docs","arguments":{"query":"café"}}}"#,
        },
        Case {
            name: "empty_scopes_and_data_scope",
            about: "no scopes and no data scope: both claims present and empty",
            identity: Identity {
                tenant_id: "globex".into(),
                user_id: "svc-reporting".into(),
                scopes: Vec::new(),
                data_scope: String::new(),
                tier: Tier::Enterprise,
            },
            method: "POST",
            path: "/mcp",
            protocol_version: "2026-07-28",
            request_id: "req-empty-1",
            body: r#"{"jsonrpc":"2.0","id":1,"method":"server/discover"}"#,
        },
        Case {
            name: "empty_mcp_pv",
            about: "a GET without MCP-Protocol-Version: mcp_pv is \"\", body_sha256 the digest of the empty body",
            identity: Identity::example("acme"),
            method: "GET",
            path: "/mcp",
            protocol_version: "",
            request_id: "req-get-1",
            body: "",
        },
        Case {
            name: "query_in_path",
            about: "a path with a query string (htp is path and query as forwarded) and a JSON-RPC batch (MCP 2025-03-26)",
            identity: Identity::example("initech"),
            method: "POST",
            path: "/mcp?session=abc&q=caf%C3%A9",
            protocol_version: "2025-03-26",
            request_id: "req-query-1",
            body: r#"[{"jsonrpc":"2.0","id":1,"method":"tools/list"},{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"list_projects","arguments":{}}}]"#,
        },
    ]
}

/// The `x-mcp-identity` value a check's request carries.
enum Token {
    /// The vector's own token.
    Signed,
    /// The vector's claims signed by an edge configured with other names.
    SignedAs {
        issuer: &'static str,
        audience: &'static str,
    },
    /// The vector's header and signature over its payload with these claims changed.
    Tampered(&'static [(&'static str, &'static str)]),
    /// A token made by hand: this `alg`, the vector's payload less `drop`, signed with the
    /// vector's secret (HS256) or not at all (any other `alg`).
    Forged {
        alg: &'static str,
        drop: &'static [&'static str],
    },
    /// No `x-mcp-identity`.
    Absent,
    /// No `x-mcp-identity`, but the header set of trust contract v2.
    ContractV2,
}

/// What every verifier must answer.
enum Expect {
    Accepted,
    /// The reason's name, and the binding claim that differs (for `mismatch`).
    Refused(&'static str, Option<&'static str>),
}

/// A request a service receives.
struct Check {
    name: &'static str,
    about: &'static str,
    vector: &'static str,
    token: Token,
    /// The verifier's secret and the names it expects (`iss`, `aud`).
    secret: &'static str,
    issuer: &'static str,
    audience: &'static str,
    /// What differs in the request from the vector's.
    method: Option<&'static str>,
    path: Option<&'static str>,
    /// `Some("")`: the header removed.
    protocol_version: Option<&'static str>,
    body: Option<&'static str>,
    /// Seconds after the signing time at which the service verifies.
    now_offset: i64,
    expect: Expect,
}

impl Check {
    fn accept(vector: &'static str) -> Self {
        Self {
            name: vector,
            about: "as the filter sent it, five seconds later",
            vector,
            token: Token::Signed,
            secret: SECRET,
            issuer: DEFAULT_ISSUER,
            audience: DEFAULT_AUDIENCE,
            method: None,
            path: None,
            protocol_version: None,
            body: None,
            now_offset: 5,
            expect: Expect::Accepted,
        }
    }

    /// The plain vector with one change, refused for `error`.
    fn refused(name: &'static str, about: &'static str, error: &'static str) -> Self {
        Self {
            name,
            about,
            expect: Expect::Refused(error, None),
            ..Self::accept("plain_ascii")
        }
    }

    /// The plain vector with one change to the request, refused as a mismatch of `claim`.
    fn mismatch(name: &'static str, about: &'static str, claim: &'static str) -> Self {
        Self {
            expect: Expect::Refused("mismatch", Some(claim)),
            ..Self::refused(name, about, "mismatch")
        }
    }
}

const INVALID: &str = "invalid_token";

fn checks(cases: &[Case]) -> Vec<Check> {
    let window = (LIFETIME_SECS + MAX_CLOCK_SKEW_SECS) as i64;
    let skew = MAX_CLOCK_SKEW_SECS as i64;
    let mut checks: Vec<Check> = cases.iter().map(|c| Check::accept(c.name)).collect();
    checks.extend([
        Check {
            name: "late_within_skew",
            about: "verified one second before exp plus the clock skew",
            now_offset: window - 1,
            ..Check::accept("plain_ascii")
        },
        Check {
            name: "early_within_skew",
            about: "verified by a clock exactly the allowed skew behind the edge's",
            now_offset: -skew,
            ..Check::accept("plain_ascii")
        },
        Check {
            name: "configured_names",
            about: "an edge and a service configured with names of their own (assertion.issuer, assertion.audience)",
            token: Token::SignedAs { issuer: "edge-eu-1", audience: "billing-mcp" },
            issuer: "edge-eu-1",
            audience: "billing-mcp",
            ..Check::accept("plain_ascii")
        },
        Check {
            secret: WRONG_SECRET,
            ..Check::refused("wrong_secret", "verified with another secret", INVALID)
        },
        Check {
            now_offset: window + 1,
            ..Check::refused("expired", "verified one second after exp plus the clock skew", INVALID)
        },
        Check {
            now_offset: -skew - 1,
            ..Check::refused("future_iat", "iat further in the verifier's future than the clock skew", INVALID)
        },
        Check {
            token: Token::SignedAs { issuer: "another-edge", audience: DEFAULT_AUDIENCE },
            ..Check::refused("wrong_issuer", "signed by an edge named otherwise (iss)", INVALID)
        },
        Check {
            token: Token::SignedAs { issuer: DEFAULT_ISSUER, audience: "another-backend" },
            ..Check::refused("wrong_audience", "signed for another upstream (aud)", INVALID)
        },
        Check {
            token: Token::Tampered(&[("tenant_id", "globex")]),
            ..Check::refused("tenant_changed", "another tenant in the payload under the same signature", INVALID)
        },
        Check {
            token: Token::Forged { alg: "none", drop: &[] },
            ..Check::refused("alg_none", "the vector's payload with alg none and no signature", INVALID)
        },
        Check {
            token: Token::Forged { alg: "HS256", drop: &["exp"] },
            ..Check::refused("missing_exp", "signed with the right secret but without exp", INVALID)
        },
        Check {
            token: Token::Forged { alg: "HS256", drop: &["body_sha256"] },
            ..Check::refused("missing_binding_claim", "signed with the right secret but without body_sha256", INVALID)
        },
        Check {
            body: Some(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_project","arguments":{}}}"#),
            ..Check::mismatch("body_changed", "another body under the same assertion", "body_sha256")
        },
        Check {
            path: Some("/admin"),
            ..Check::mismatch("path_changed", "the same assertion on another path", "htp")
        },
        Check {
            vector: "query_in_path",
            path: Some("/mcp?session=abd&q=caf%C3%A9"),
            ..Check::mismatch("query_changed", "the same assertion with another query string", "htp")
        },
        Check {
            method: Some("PUT"),
            ..Check::mismatch("method_changed", "the same assertion on another method", "htm")
        },
        Check {
            protocol_version: Some("2025-03-26"),
            ..Check::mismatch("protocol_version_changed", "the same assertion under another MCP-Protocol-Version", "mcp_pv")
        },
        Check {
            protocol_version: Some(""),
            ..Check::mismatch("protocol_version_removed", "the same assertion without its MCP-Protocol-Version header", "mcp_pv")
        },
        Check {
            token: Token::Absent,
            ..Check::refused("missing_header", "no x-mcp-identity", "missing_header")
        },
        Check {
            token: Token::ContractV2,
            ..Check::refused("v2_headers", "trust contract v2's headers (x-mcp-gateway-signature) and no x-mcp-identity: named as an edge older than v3", "contract_v2")
        },
    ]);
    checks
}

fn identity_json(identity: &Identity) -> Value {
    json!({
        "tenant_id": identity.tenant_id,
        "user_id": identity.user_id,
        "scopes": identity.scopes,
        "data_scope": identity.data_scope,
        "tier": identity.tier.name(),
    })
}

/// `<header>.<payload>.<HMAC-SHA256 with secret>` (or an empty signature when `secret` is None).
fn compact(header: &Value, payload: &Value, secret: Option<&str>) -> Result<String> {
    let signed = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(payload.to_string())
    );
    let signature = match secret {
        Some(secret) => {
            let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
                .context("an HMAC key of any length")?;
            mac.update(signed.as_bytes());
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        }
        None => String::new(),
    };
    Ok(format!("{signed}.{signature}"))
}

/// The vector's token, made by the contract's signer.
fn sign(case: &Case, issuer: &str, audience: &str) -> Result<String> {
    let key = GatewayKey::new(SECRET.as_bytes()).context("the vectors' secret")?;
    let digest = body_digest(case.body.as_bytes());
    let claims = IdentityClaims::new(&case.identity)
        .map_err(|e| anyhow!("the identity of {}: {e}", case.name))?;
    AssertionSigner::new(&key, issuer, audience)
        .sign(
            &claims,
            &Binding {
                method: case.method,
                path: case.path,
                protocol_version: case.protocol_version,
                request_id: case.request_id,
                issued_at: SIGNED_AT,
                body_digest: &digest,
            },
        )
        .map_err(|e| anyhow!("signing {}: {e}", case.name))
}

/// The `x-mcp-identity` value (if any) and the other trusted headers of a check's request.
fn token_headers(token: &Token, case: &Case, signed: &str) -> Result<Map<String, Value>> {
    let payload = || decode_unverified(signed).context("the vector's payload");
    let value = match token {
        Token::Signed => Some(signed.to_string()),
        Token::SignedAs { issuer, audience } => Some(sign(case, issuer, audience)?),
        Token::Tampered(changes) => {
            let mut payload = payload()?;
            for (claim, value) in *changes {
                payload[*claim] = json!(value);
            }
            let mut parts = signed.split('.');
            let (header, _, signature) = (parts.next(), parts.next(), parts.next());
            Some(format!(
                "{}.{}.{}",
                header.context("a header")?,
                URL_SAFE_NO_PAD.encode(payload.to_string()),
                signature.context("a signature")?
            ))
        }
        Token::Forged { alg, drop } => {
            let mut payload = payload()?;
            for claim in *drop {
                payload.as_object_mut().context("an object")?.remove(*claim);
            }
            let secret = (*alg == "HS256").then_some(SECRET);
            Some(compact(
                &json!({"alg": alg, "typ": "JWT"}),
                &payload,
                secret,
            )?)
        }
        Token::Absent | Token::ContractV2 => None,
    };
    let mut set = Map::new();
    if let Some(value) = value {
        set.insert(HEADER.into(), value.into());
    }
    if matches!(token, Token::ContractV2) {
        for (name, value) in [
            ("x-mcp-tenant-id", case.identity.tenant_id.as_str()),
            ("x-mcp-user-id", case.identity.user_id.as_str()),
            ("x-mcp-request-id", case.request_id),
            ("x-mcp-gateway-time", "1767225600"),
            (
                headers::V2_SIGNATURE,
                "Hw6s3bZ1Y0mZ2cV2rO4cJ3Q5a8kR1uW7nT9xE2pL4fA",
            ),
        ] {
            set.insert(name.into(), value.into());
        }
    }
    Ok(set)
}

/// The vectors document, every token made by the contract.
pub fn vectors() -> Result<Value> {
    let cases = cases();
    let mut vectors = Vec::new();
    let mut signed = Vec::new();
    for case in &cases {
        let token = sign(case, DEFAULT_ISSUER, DEFAULT_AUDIENCE)?;
        vectors.push(json!({
            "name": case.name,
            "about": case.about,
            "secret": SECRET,
            "issuer": DEFAULT_ISSUER,
            "audience": DEFAULT_AUDIENCE,
            "identity": identity_json(&case.identity),
            "request_id": case.request_id,
            "method": case.method,
            "path": case.path,
            "protocol_version": case.protocol_version,
            "body": case.body,
            "issued_at": SIGNED_AT,
            "body_sha256": body_digest(case.body.as_bytes()),
            "token": token,
            "payload": decode_unverified(&token).context("the payload decodes")?,
        }));
        signed.push(token);
    }
    let mut out_checks = Vec::new();
    for check in checks(&cases) {
        let index = cases
            .iter()
            .position(|c| c.name == check.vector)
            .with_context(|| format!("check {} names no vector", check.name))?;
        let case = &cases[index];
        let mut request_headers = token_headers(&check.token, case, &signed[index])?;
        let protocol_version = check.protocol_version.unwrap_or(case.protocol_version);
        if !protocol_version.is_empty() {
            request_headers.insert(PROTOCOL_VERSION_HEADER.into(), protocol_version.into());
        }
        let now = SIGNED_AT
            .checked_add_signed(check.now_offset)
            .context("now out of range")?;
        let expect = match check.expect {
            Expect::Accepted => json!({
                "ok": true,
                "identity": identity_json(&case.identity),
                "request_id": case.request_id,
            }),
            Expect::Refused(error, claim) => json!({"ok": false, "error": error, "claim": claim}),
        };
        out_checks.push(json!({
            "name": check.name,
            "about": check.about,
            "vector": check.vector,
            "secret": check.secret,
            "issuer": check.issuer,
            "audience": check.audience,
            "method": check.method.unwrap_or(case.method),
            "path": check.path.unwrap_or(case.path),
            "headers": request_headers,
            "body": check.body.unwrap_or(case.body),
            "now": now,
            "expect": expect,
        }));
    }
    Ok(json!({
        "about": "Identity assertion (x-mcp-identity, trust contract v3) test vectors, generated from contract/ by `cargo xtask assertion-vectors`; see docs/trusting-the-edge.md. Strings are UTF-8; a secret is the UTF-8 bytes of its string. A check is a request a service receives (its verifier configured with secret, issuer and audience, its clock at now) and the verdict it must give.",
        "verdicts": {
            "ok": "accepted: the identity and request_id (the jti) to return",
            "invalid_token": "the JWT library refuses it (signature, alg, iss, aud, exp, iat, a missing claim)",
            "mismatch": "a verified token whose binding claim (claim: htm, htp, mcp_pv or body_sha256) differs from the request",
            "missing_header": "no x-mcp-identity",
            "contract_v2": "no x-mcp-identity but x-mcp-gateway-signature: an edge older than v3",
        },
        "header": HEADER,
        "jose_header": serde_json::from_str::<Value>(JOSE_HEADER)?,
        "lifetime_secs": LIFETIME_SECS,
        "max_clock_skew_secs": MAX_CLOCK_SKEW_SECS,
        "vectors": vectors,
        "checks": out_checks,
    }))
}

/// docs/assertion-vectors.json as it must be.
pub fn render() -> Result<Generated> {
    let mut text = serde_json::to_string_pretty(&vectors()?)?;
    text.push('\n');
    Ok(Generated {
        path: ASSERTION_VECTORS_JSON,
        text,
    })
}
