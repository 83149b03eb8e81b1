//! `cargo xtask signature-vectors`: writes docs/signature-vectors.json, test vectors for the gateway
//! signature made by the contract itself, so a server behind the edge written in another language
//! (docs/verify/) checks the same bytes the filter signs and the backend verifies.
//!
//! Each vector is a request the filter let through: its inputs (secret, method, path,
//! `MCP-Protocol-Version`, body, signing time), the canonical string and the headers
//! [`vouch_headers_with`] sets. Each check is a request a server receives, with the verdict
//! [`verify_vouched`] gives: the identity, or the reason it is refused. The file is written
//! through [`crate::sync_config`]'s generated-file mechanism, and xtask/tests/signature_vectors.rs
//! fails when the committed file is not what the contract makes now.

use std::collections::BTreeMap;

use anyhow::{Context as _, Result};
use mcp_edge_contract::{
    ContractError, GatewayKey, HeaderError, Identity, MAX_GATEWAY_CLOCK_SKEW_SECS, MIN_SECRET_LEN,
    RequestFacts, RequestLine, Tier, body_digest, canonical_string, headers, verify_vouched,
    vouch_headers_with,
};
use serde_json::{Value, json};

use crate::sync_config::Generated;

pub const SIGNATURE_VECTORS_JSON: &str = "docs/signature-vectors.json";

/// The gateway secret of every vector (the UTF-8 bytes of this string, as the edge reads
/// `MCP_EDGE_GATEWAY_SECRET`).
const SECRET: &str = "test-vector-gateway-secret-0123456789";
/// A secret of the right length that is not the one the vectors were signed with.
const WRONG_SECRET: &str = "test-vector-other-secret-0123456789ab";
/// 2026-01-01T00:00:00Z: when every vector is signed.
const SIGNED_AT: u64 = 1_767_225_600;

/// A request the filter vouches for.
struct Case {
    name: &'static str,
    about: &'static str,
    identity: Identity,
    method: &'static str,
    path: &'static str,
    protocol_version: &'static str,
    request_id: &'static str,
    body: &'static str,
}

/// One vector per situation a verifier must get right; between them every protocol version the
/// edge accepts (filter/src/protocol.rs) and a request without the header.
fn cases() -> Vec<Case> {
    let call = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_projects","arguments":{}}}"#;
    vec![
        Case {
            name: "plain_ascii",
            about: "plain ASCII identity: every value travels as it is",
            identity: Identity::example("acme"),
            method: "POST",
            path: "/mcp",
            protocol_version: "2025-06-18",
            request_id: "req-plain-1",
            body: call,
        },
        Case {
            name: "unicode_percent_encoded",
            about: "non-ASCII values, a literal %, spaces at the ends: percent-encoded on the wire, signed in wire form",
            identity: Identity {
                tenant_id: "Ünïcode 租户".into(),
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
            about: "no scopes and no data scope: both headers present and empty",
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
            name: "batch_body",
            about: "a JSON-RPC batch (MCP 2025-03-26): the digest covers the whole body",
            identity: Identity::example("initech"),
            method: "POST",
            path: "/mcp",
            protocol_version: "2025-03-26",
            request_id: "req-batch-1",
            body: r#"[{"jsonrpc":"2.0","id":1,"method":"tools/list"},{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"list_projects","arguments":{}}}]"#,
        },
        Case {
            name: "oldest_protocol_query_string",
            about: "MCP 2024-11-05, and a path with a query string: the path is signed as sent upstream",
            identity: Identity::example("umbrella"),
            method: "POST",
            path: "/mcp?session=abc",
            protocol_version: "2024-11-05",
            request_id: "req-old-1",
            body: r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2024-11-05","capabilities":{},"clientInfo":{"name":"c","version":"1"}}}"#,
        },
        Case {
            name: "get_without_protocol_header",
            about: "a GET without MCP-Protocol-Version: an empty line for the version, the digest of the empty body",
            identity: Identity::example("acme"),
            method: "GET",
            path: "/mcp",
            protocol_version: "",
            request_id: "req-get-1",
            body: "",
        },
    ]
}

/// A request a server receives, derived from a vector by one change (or none).
struct Check {
    name: &'static str,
    about: &'static str,
    vector: &'static str,
    secret: &'static str,
    /// Headers replaced (`Some`) or removed (`None`).
    header_changes: Vec<(&'static str, Option<&'static str>)>,
    path: Option<&'static str>,
    protocol_version: Option<&'static str>,
    body: Option<&'static str>,
    /// Seconds after the signing time at which the server verifies.
    now_offset: i64,
}

impl Check {
    fn accept(vector: &'static str) -> Self {
        Self {
            name: vector,
            about: "as the filter sent it, five seconds later: accepted",
            vector,
            secret: SECRET,
            header_changes: Vec::new(),
            path: None,
            protocol_version: None,
            body: None,
            now_offset: 5,
        }
    }

    fn changed(name: &'static str, about: &'static str) -> Self {
        Self {
            name,
            about,
            ..Self::accept("plain_ascii")
        }
    }
}

fn checks(cases: &[Case]) -> Vec<Check> {
    let skew = MAX_GATEWAY_CLOCK_SKEW_SECS as i64;
    let mut checks: Vec<Check> = cases.iter().map(|c| Check::accept(c.name)).collect();
    checks.extend([
        Check {
            now_offset: skew,
            ..Check::changed("at_the_window_edge", "verified exactly at the clock-skew limit: accepted")
        },
        Check {
            body: Some(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_project","arguments":{}}}"#),
            ..Check::changed("tampered_body", "another body under the same headers")
        },
        Check {
            header_changes: vec![(headers::TENANT_ID, Some("globex"))],
            ..Check::changed("tampered_tenant", "another tenant under the same signature")
        },
        Check {
            header_changes: vec![(headers::SCOPES, Some("mcp:read mcp:write mcp:admin"))],
            ..Check::changed("tampered_scopes", "a scope added under the same signature")
        },
        Check {
            path: Some("/admin"),
            ..Check::changed("tampered_path", "the same headers on another path")
        },
        Check {
            protocol_version: Some("2025-03-26"),
            ..Check::changed("tampered_protocol_version", "the same headers under another MCP-Protocol-Version")
        },
        Check {
            now_offset: skew + 1,
            ..Check::changed("stale_time", "verified one second past the clock-skew limit")
        },
        Check {
            now_offset: -skew - 1,
            ..Check::changed("future_time", "signed further in the future than the clock-skew limit")
        },
        Check {
            secret: WRONG_SECRET,
            ..Check::changed("wrong_secret", "verified with another secret")
        },
        Check {
            secret: "too-short",
            ..Check::changed("short_secret", "a secret under the minimum length is refused, not used")
        },
        Check {
            header_changes: vec![(headers::GATEWAY_SIGNATURE, None)],
            ..Check::changed("missing_signature", "no signature header")
        },
        Check {
            header_changes: vec![(headers::DATA_SCOPE, None)],
            ..Check::changed("missing_data_scope", "an identity header absent (an empty one must be present)")
        },
        Check {
            header_changes: vec![(headers::TENANT_ID, Some("%61cme"))],
            ..Check::changed("non_canonical_encoding", "a percent-encoding the edge never writes (a for %61)")
        },
        Check {
            header_changes: vec![(headers::SCOPES, Some("mcp:read  mcp:write"))],
            ..Check::changed("scopes_double_space", "scopes not joined by single spaces")
        },
        Check {
            header_changes: vec![(headers::TIER, Some("platinum"))],
            ..Check::changed("unknown_tier", "a tier that does not exist")
        },
        Check {
            header_changes: vec![(headers::GATEWAY_TIME, Some("+1767225600"))],
            ..Check::changed("time_not_digits", "a signing time that is not plain decimal digits")
        },
        Check {
            header_changes: vec![(headers::REQUEST_ID, Some("req\t1"))],
            ..Check::changed("control_character_in_request_id", "a control character would make the canonical string ambiguous")
        },
    ]);
    checks
}

/// The stable name of a verdict, shared by the vectors and the verifiers in docs/verify/.
fn verdict(result: Result<mcp_edge_contract::Vouched, ContractError>) -> Value {
    match result {
        Ok(vouched) => json!({
            "ok": true,
            "identity": identity_json(&vouched.identity),
            "request_id": vouched.request_id,
        }),
        Err(e) => {
            let (error, field) = match e {
                ContractError::Header(HeaderError::Missing(name)) => ("missing_header", Some(name)),
                ContractError::Header(HeaderError::Malformed(name)) => {
                    ("malformed_header", Some(name))
                }
                ContractError::Stale { .. } => ("stale", None),
                ContractError::BadSignature => ("bad_signature", None),
                ContractError::SecretTooShort => ("secret_too_short", None),
                ContractError::ControlCharacter(name) => ("control_character", Some(name)),
            };
            json!({"ok": false, "error": error, "field": field})
        }
    }
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

/// The vectors document, every value computed by the contract.
pub fn vectors() -> Result<Value> {
    let key = GatewayKey::new(SECRET.as_bytes()).context("the vectors' secret")?;
    let cases = cases();
    let mut vectors = Vec::new();
    let mut sent: BTreeMap<&str, (&Case, BTreeMap<&'static str, String>)> = BTreeMap::new();
    for case in &cases {
        let digest = body_digest(case.body.as_bytes());
        let facts = RequestFacts {
            method: case.method,
            path: case.path,
            protocol_version: case.protocol_version,
            request_id: case.request_id,
            gateway_time: SIGNED_AT,
            body_digest: &digest,
        };
        let canonical = canonical_string(&case.identity, &facts)
            .with_context(|| format!("canonical string of {}", case.name))?;
        let set: BTreeMap<&'static str, String> = vouch_headers_with(&key, &case.identity, &facts)
            .with_context(|| format!("vouching for {}", case.name))?
            .into_iter()
            .collect();
        vectors.push(json!({
            "name": case.name,
            "about": case.about,
            "secret": SECRET,
            "method": case.method,
            "path": case.path,
            "protocol_version": case.protocol_version,
            "body": case.body,
            "gateway_time": SIGNED_AT,
            "identity": identity_json(&case.identity),
            "request_id": case.request_id,
            "body_digest": digest,
            "canonical_string": canonical,
            "headers": set,
        }));
        sent.insert(case.name, (case, set));
    }
    let mut out_checks = Vec::new();
    for check in checks(&cases) {
        let (case, set) = sent
            .get(check.vector)
            .with_context(|| format!("check {} names no vector", check.name))?;
        let mut received = set.clone();
        for (name, value) in &check.header_changes {
            match value {
                Some(v) => received.insert(name, (*v).to_string()),
                None => received.remove(name),
            };
        }
        let path = check.path.unwrap_or(case.path);
        let protocol_version = check.protocol_version.unwrap_or(case.protocol_version);
        let body = check.body.unwrap_or(case.body);
        let now = SIGNED_AT
            .checked_add_signed(check.now_offset)
            .context("now out of range")?;
        let line = RequestLine {
            method: case.method,
            path,
            protocol_version,
        };
        let header = |name: &'static str| received.get(name).map(String::as_str);
        let result = verify_vouched(check.secret.as_bytes(), header, &line, body.as_bytes(), now);
        out_checks.push(json!({
            "name": check.name,
            "about": check.about,
            "vector": check.vector,
            "secret": check.secret,
            "method": case.method,
            "path": path,
            "protocol_version": protocol_version,
            "body": body,
            "headers": received,
            "now": now,
            "expect": verdict(result),
        }));
    }
    Ok(json!({
        "about": "Gateway signature test vectors, generated from contract/ by `cargo xtask signature-vectors`; see docs/trusting-the-edge.md. Strings are UTF-8; the secret is the UTF-8 bytes of its string.",
        "canonical_version": "mcp-edge-gateway-v2",
        "max_clock_skew_secs": MAX_GATEWAY_CLOCK_SKEW_SECS,
        "min_secret_bytes": MIN_SECRET_LEN,
        "vectors": vectors,
        "checks": out_checks,
    }))
}

/// docs/signature-vectors.json as it must be.
pub fn render() -> Result<Generated> {
    let mut text = serde_json::to_string_pretty(&vectors()?)?;
    text.push('\n');
    Ok(Generated {
        path: SIGNATURE_VECTORS_JSON,
        text,
    })
}
