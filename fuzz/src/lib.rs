//! The bodies of the fuzz targets, as plain functions over bytes.
//!
//! The cargo-fuzz binaries in `fuzz_targets/` call these; so does the stable replay test
//! (`filter/tests/fuzz_corpus.rs`, which includes this file as a module), running every file of
//! `fuzz/corpus/<target>/` through the same logic. Each function panics when an invariant breaks.
//!
//! Several inputs carry more than one value: a NUL byte separates them ([`Fields`]). JSON text
//! never holds a raw NUL, so the separator never cuts a JSON value a target wants whole.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use base64::Engine as _;
use base64::alphabet;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE_NO_PAD};
use mcp_edge_contract::{
    AssertionSigner, AssertionVerifier, Binding, GatewayKey, Identity, IdentityClaims, RequestLine,
    Tier, body_digest,
};
use mcp_edge_filter::bearer::{MAX_TOKEN_BYTES, extract_bearer};
use mcp_edge_filter::config::{EdgeConfig, parse_config};
use mcp_edge_filter::gate::{Admitted, RoutingHeaders, describe_body, judge_body};
use mcp_edge_filter::jsonrpc::{Message, Payload, parse_payload};
use mcp_edge_filter::keys::{Algorithm, KeySet};
use mcp_edge_filter::policy::PayloadVerdict;
use mcp_edge_filter::protocol::ProtocolVersion;
use mcp_edge_filter::routing_headers::KeptRouting;
use mcp_edge_filter::strict_json::parse_strict;
use mcp_edge_filter::tenant::{TenantContext, tenant_context_from_claims};
use mcp_edge_filter::token::{TokenPolicy, verify_bearer};
use mcp_edge_filter::tools_list::{SseFilter, filter_response, filter_sse};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// A target's body: panics when an invariant breaks.
pub type Target = fn(&[u8]);

/// Every target by name, as `cargo fuzz run <name>` and `fuzz/corpus/<name>/` know it.
pub const TARGETS: [(&str, Target); 7] = [
    ("strict_json", strict_json),
    ("policy", policy),
    ("jwks", jwks),
    ("jwt", jwt),
    ("tools_list", tools_list),
    ("sse_stream", sse_stream),
    ("signature", signature),
];

/// NUL-separated fields of a fuzz input.
struct Fields<'a>(&'a [u8]);

impl<'a> Fields<'a> {
    /// The next byte (0 once the input is used up).
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }

    /// The bytes up to the next NUL (or the end).
    fn field(&mut self) -> &'a [u8] {
        match self.0.iter().position(|b| *b == 0) {
            Some(i) => {
                let (f, rest) = self.0.split_at(i);
                self.0 = &rest[1..];
                f
            }
            None => std::mem::take(&mut self.0),
        }
    }

    fn text(&mut self) -> String {
        String::from_utf8_lossy(self.field()).into_owned()
    }

    /// Whatever is left.
    fn rest(self) -> &'a [u8] {
        self.0
    }
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

// ---------------------------------------------------------------------------------------------
// 1. The strict JSON reader and the JSON-RPC reader.

/// Same value, numbers compared as `f64` when either is a float (serde_json without
/// `float_roundtrip` may read a printed float back one ulp off).
fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
            match (x.as_f64(), y.as_f64()) {
                (Some(x), Some(y)) => x == y || (x - y).abs() <= x.abs().max(y.abs()) * 1e-15,
                _ => false,
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same_json(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}

/// `strict_json`: the strict reader accepts a subset of what serde_json accepts, reads it as the
/// same value, refuses the rest only for duplicate keys, and what it accepts prints back to text
/// it accepts again. `parse_payload` fails as a parse error exactly when the strict reader fails,
/// and what it returns is well-formed JSON-RPC.
pub fn strict_json(data: &[u8]) {
    let strict = parse_strict(data);
    let lenient = serde_json::from_slice::<Value>(data);
    match (&strict, &lenient) {
        (Ok(s), Ok(l)) => assert_eq!(s, l, "strict and lenient readings differ"),
        (Ok(_), Err(e)) => panic!("strict reader accepts what serde_json refuses ({e})"),
        (Err(e), Ok(_)) => assert!(
            e.0.contains("duplicate key") || data.starts_with(BOM),
            "strict reader refuses valid JSON without duplicate keys: {e}"
        ),
        (Err(_), Err(_)) => {}
    }
    if let Ok(v) = &strict {
        let printed = serde_json::to_vec(v).expect("a Value prints");
        let again = parse_strict(&printed).expect("printed JSON is strict JSON again");
        assert!(same_json(v, &again), "round trip changed the value");
    }

    let payload = parse_payload(data);
    assert_eq!(describe_body(data).is_some(), payload.is_ok());
    match payload {
        Err(e) => {
            let parse_error = e.code == mcp_edge_contract::codes::PARSE_ERROR;
            assert_eq!(parse_error, strict.is_err(), "{e:?}");
            assert!(parse_error || e.code == mcp_edge_contract::codes::INVALID_REQUEST);
        }
        Ok(payload) => {
            let Ok(value) = strict else {
                panic!("parse_payload accepted what parse_strict refused")
            };
            let objects: Vec<&Value> = match (&payload, &value) {
                (Payload::Single(_), v) => vec![v],
                (Payload::Batch(ms), Value::Array(items)) => {
                    assert_eq!(ms.len(), items.len());
                    assert!(!ms.is_empty(), "an empty batch was accepted");
                    items.iter().collect()
                }
                _ => panic!("a batch that is not an array, or the other way round"),
            };
            for (m, v) in payload.messages().iter().zip(objects) {
                check_message(m, v);
            }
        }
    }
}

/// A parsed message says what its JSON object says.
fn check_message(m: &Message, v: &Value) {
    assert_eq!(v["jsonrpc"], "2.0");
    if let Some(id) = m.id() {
        assert_eq!(Some(id), v.get("id"));
        assert!(id.is_string() || id.is_i64() || id.is_u64(), "bad id {id}");
    } else {
        assert!(v.get("id").is_none());
    }
    assert_eq!(m.method(), v.get("method").and_then(Value::as_str));
    if let Some(params) = m.params() {
        assert_eq!(Some(&Value::Object(params.clone())), v.get("params"));
    }
    match m.tool_name() {
        Some(name) => {
            assert_eq!(m.method(), Some("tools/call"));
            assert_eq!(v["params"]["name"].as_str(), Some(name));
        }
        // A notification has no tool name to judge: the policy refuses a tools/call without one.
        None => assert!(
            m.method() != Some("tools/call")
                || m.id().is_none()
                || !v["params"]["name"].is_string()
        ),
    }
    if m.method().is_none() {
        assert!(v.get("result").is_some() != v.get("error").is_some());
    }
}

// ---------------------------------------------------------------------------------------------
// 2. The policy decision on arbitrary claims and bodies.

/// The configuration the policy target judges with: the demo tools, and two extra methods.
fn policy_config() -> &'static EdgeConfig {
    static CFG: OnceLock<EdgeConfig> = OnceLock::new();
    CFG.get_or_init(|| {
        let cfg = serde_json::json!({
            "resource": "https://mcp.example/mcp",
            "issuers": ["https://as.example"],
            "jwks": {"remote": {"cluster": "c", "path": "/jwks", "authority": "as"}},
            "gateway_secret": {"inline": "0123456789abcdef0123456789abcdef"},
            "prm": {"authorization_servers": ["https://as.example"],
                    "scopes_supported": ["mcp:read", "mcp:write", "mcp:admin"]},
            "tool_scopes": {"list_projects": "mcp:read", "get_project": "mcp:read",
                            "create_project": "mcp:write", "delete_project": "mcp:admin"},
            "method_scopes": {"completion/complete": "mcp:read", "logging/setLevel": ""}
        });
        parse_config(cfg.to_string().as_bytes(), &|_| None).expect("fuzz config is valid")
    })
}

const VERSIONS: [ProtocolVersion; 5] = [
    ProtocolVersion::V2024_11_05,
    ProtocolVersion::V2025_03_26,
    ProtocolVersion::V2025_06_18,
    ProtocolVersion::V2025_11_25,
    ProtocolVersion::V2026_07_28,
];

/// Claims as jwt-simple hands them over: `sub` apart (it must be a string), the rest custom.
fn tenant_from_claims(claims: &[u8]) -> Option<TenantContext> {
    let Ok(Value::Object(mut custom)) = serde_json::from_slice::<Value>(claims) else {
        return None;
    };
    let sub = match custom.remove("sub") {
        None => None,
        Some(Value::String(s)) => Some(s),
        Some(_) => return None,
    };
    tenant_context_from_claims(sub.as_deref(), &custom).ok()
}

/// `policy`: input = flags, claims JSON, NUL, `Mcp-Method`, NUL, `Mcp-Name`, NUL, body.
/// Never panics; an allowed body never holds a `tools/call` of a tool `may_call` refuses (read
/// back by a plain serde_json reader too), nor a method the policy does not serve, nor a batch
/// where the version forbids one; a refusal is a JSON-RPC error body.
pub fn policy(data: &[u8]) {
    let cfg = policy_config();
    let mut f = Fields(data);
    let flags = f.byte();
    let claims = f.field();
    let mcp_method = f.field();
    let mcp_name = f.field();
    let body = f.rest();
    let Some(tenant) = tenant_from_claims(claims) else {
        return;
    };
    let version = VERSIONS[usize::from(flags % 5)];
    let mcp_method = (flags & 0x10 != 0).then_some(mcp_method);
    let names = KeptRouting::new(mcp_method, (flags & 0x20 != 0).then_some(mcp_name));
    let routing = RoutingHeaders {
        names: &names,
        protocol_version: (flags & 0x40 != 0).then_some(version.as_str().as_bytes()),
    };
    let admitted = Admitted {
        tenant: mcp_edge_filter::caller::Caller::new(tenant),
        version,
    };
    let tenant = &admitted.tenant;
    match judge_body(cfg, &admitted, &routing, body) {
        Ok(summary) => {
            let payload = parse_payload(body).expect("an allowed body parses");
            assert_eq!(cfg.policy.judge(tenant, &payload), PayloadVerdict::Allow);
            assert!(!payload.is_batch() || version.allows_batches());
            if names.mcp_method.is_some() || names.mcp_name.is_some() {
                assert!(!payload.is_batch());
            }
            if let Some(m) = mcp_method {
                assert_eq!(Some(m), payload.messages()[0].method().map(str::as_bytes));
            }
            // From 2026-07-28 on a request needs Mcp-Method, and a client sends no responses.
            if version.is_stateless() {
                let m = &payload.messages()[0];
                assert!(m.id().is_none() || mcp_method.is_some());
                assert!(m.method().is_some());
            }
            for m in payload.messages() {
                if m.method() == Some("tools/call") {
                    let tool = m.tool_name().expect("an allowed tools/call names its tool");
                    assert!(cfg.policy.may_call(tenant, tool), "allowed {tool}");
                }
            }
            let requests = payload
                .messages()
                .iter()
                .filter(|m| m.method().is_some())
                .count();
            assert_eq!(summary.cost, (requests as u64).max(1));
            // What a plain reader sees in the bytes that go upstream.
            let naive: Value = serde_json::from_slice(body).expect("allowed body is JSON");
            let messages = match &naive {
                Value::Array(items) => items.iter().collect(),
                other => vec![other],
            };
            for m in messages {
                naive_check(cfg, tenant, m);
            }
        }
        Err(denial) => {
            let reply = denial.reply(Some(cfg));
            assert!(matches!(reply.status, 400 | 403), "{}", reply.status);
            assert!(!denial.outcome().stat_name().is_empty());
            let body: Value = serde_json::from_slice(&reply.body).expect("error body is JSON");
            let errors = match &body {
                Value::Array(items) => items.iter().collect(),
                other => vec![other],
            };
            for e in errors {
                assert_eq!(e["jsonrpc"], "2.0");
                assert!(e["error"]["code"].is_i64() && e["error"]["message"].is_string());
            }
        }
    }
}

/// One message of an allowed body, as a lenient reader that trusts nothing else sees it.
fn naive_check(cfg: &EdgeConfig, tenant: &TenantContext, m: &Value) {
    let Some(method) = m.get("method") else {
        return; // a response
    };
    let method = method.as_str().expect("allowed method is a string");
    let scope = |s: &str| tenant.has_scope(s);
    if method != "tools/call"
        && let Some(configured) = cfg.policy.method_scopes.get(method)
    {
        if let Some(s) = configured {
            assert!(scope(s), "{method} without {s}");
        }
        return;
    }
    let resource_uris = m["params"]["notifications"]["resourceSubscriptions"]
        .as_array()
        .is_some_and(|uris| !uris.is_empty());
    match method {
        "tools/call" => {
            let tool = m["params"]["name"]
                .as_str()
                .expect("allowed call has a name");
            assert!(cfg.policy.may_call(tenant, tool), "allowed call of {tool}");
        }
        "initialize" | "server/discover" | "ping" | "tools/list" | "logging/setLevel" => {}
        _ if method.starts_with("tasks/") => {}
        "subscriptions/listen" => {
            assert!(
                !resource_uris || scope("mcp:read"),
                "{method} without mcp:read"
            );
        }
        _ if method.starts_with("notifications/") => {}
        _ if method.starts_with("resources/")
            || method.starts_with("prompts/")
            || method == "completion/complete" =>
        {
            assert!(scope("mcp:read"), "{method} without mcp:read");
        }
        _ => panic!("allowed a method the policy does not serve: {method}"),
    }
}

// ---------------------------------------------------------------------------------------------
// 3. JWKS documents and bearer tokens.

const ALGORITHMS: [Algorithm; 4] = [
    Algorithm::Rs256,
    Algorithm::Es256,
    Algorithm::EdDsa,
    Algorithm::Hs256,
];

/// `jwks`: input = a byte choosing the allowed algorithms, then a JWKS document. Never panics; a
/// parsed set is not empty and holds no key for an algorithm that is not allowed.
pub fn jwks(data: &[u8]) {
    let mut f = Fields(data);
    let bits = f.byte();
    let doc = f.rest();
    let mut allowed: BTreeSet<Algorithm> = ALGORITHMS
        .iter()
        .enumerate()
        .filter(|(i, _)| bits & (1 << i) != 0)
        .map(|(_, a)| *a)
        .collect();
    if allowed.is_empty() {
        allowed = ALGORITHMS[..3].iter().copied().collect();
    }
    match KeySet::from_jwks(doc, &allowed) {
        Ok(set) => {
            assert!(!set.is_empty());
            assert!(doc.len() <= mcp_edge_filter::keys::MAX_JWKS_BYTES);
            for alg in ALGORITHMS {
                if !allowed.contains(&alg) {
                    assert_eq!(set.candidates(None, alg).count(), 0, "{alg:?} not allowed");
                }
            }
        }
        Err(e) => assert!(!e.is_empty()),
    }
}

/// Public keys made for these targets only (RSA 2048, P-256, Ed25519; private halves discarded).
const FIXED_JWKS: &str = r#"{"keys": [
 {"kty": "RSA", "kid": "rsa-1", "alg": "RS256", "use": "sig", "n": "54P3CsUohLd-PWlBjOqvksr-Gl-_aw1llfoPzUIJdmlFKy0bWFOQqAs4QfE_GFPzdUiVy_svl0smV4tr32zDZJpewcVIqyEQ3qC0g2U46S87r12x7R-cPejES0iOjLSv-fpmdfUvNXF0XCoqU2lCoI0IWRlJ3gtQmMh1hI5PWmpYsq33RvU1E3epA0hOeGFzVJzcYKAqtd9chfEmujR7odHSF8gEt-nC0oBN03wLUG_4GexIUD8XHBjgAB6z8OpND1uSu8if7nOrj93rcvCenYeDUTRVT-rxoYGssZTgzh41f8I3gYbCluIOIWFs7BfjBaMSYRHL9pBicfntH0OoIQ", "e": "AQAB"},
 {"kty": "EC", "kid": "ec-1", "crv": "P-256", "x": "JxeVML8p9gHPLWuAYnzHRTelTKiLj9-VhT4Jfh7-97Y", "y": "j-8nGiwUC0kKljOTXc1txgPJP378mdmVq3OsgedqXTU"},
 {"kty": "OKP", "kid": "ed-1", "crv": "Ed25519", "x": "AtUiTvznP-c7QOP-K1NUiJOxHEdFU946QssahHuPgRc"},
 {"kty": "oct", "kid": "hs-1", "k": "ZnV6ei1obWFjLWtleS1mdXp6LWhtYWMta2V5LWZ1enotaG1hYw"}
]}"#;

/// The `k` of the `oct` key above.
const HS_SECRET: &[u8] = b"fuzz-hmac-key-fuzz-hmac-key-fuzz-hmac";

const NOW: u64 = 1_800_000_000;
const ISSUER: &str = "https://as.example";
const AUDIENCE: &str = "https://mcp.example/mcp";

/// The fixed key set and token policy, with or without HS256.
fn jwt_setup(hmac: bool) -> &'static (KeySet, TokenPolicy) {
    static WITH: OnceLock<(KeySet, TokenPolicy)> = OnceLock::new();
    static WITHOUT: OnceLock<(KeySet, TokenPolicy)> = OnceLock::new();
    let init = || {
        let algorithms: BTreeSet<Algorithm> = ALGORITHMS[..if hmac { 4 } else { 3 }]
            .iter()
            .copied()
            .collect();
        let keys = KeySet::from_jwks(FIXED_JWKS.as_bytes(), &algorithms).expect("fixed JWKS");
        assert_eq!(keys.len(), algorithms.len());
        let policy = TokenPolicy {
            issuers: [ISSUER.to_string()].into(),
            audiences: [AUDIENCE.to_string()].into(),
            algorithms,
            leeway_seconds: 30,
            required_typ: None,
            claims: Default::default(),
        };
        (keys, policy)
    };
    if hmac {
        WITH.get_or_init(init)
    } else {
        WITHOUT.get_or_init(init)
    }
}

/// base64url as leniently as a JWT library might read it.
const LENIENT_B64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |b: u8| block.iter().map(|k| k ^ b).collect::<Vec<_>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

/// `jwt`: input = flags, then either a raw token (flags bit 0 clear) or a JOSE header JSON, NUL,
/// a claims JSON that the target signs with the HS256 key. Never panics; a token verifies only
/// when it is signed with a key for its `alg` (here: HS256, and only when HS256 is allowed), and
/// then it is unexpired, from the issuer, for the audience, with a tenant.
pub fn jwt(data: &[u8]) {
    let mut f = Fields(data);
    let flags = f.byte();
    let hmac_allowed = flags & 2 != 0;
    let (keys, policy) = jwt_setup(hmac_allowed);
    let signed_here = flags & 1 != 0;
    let token = if signed_here {
        let header = f.field();
        let claims = f.rest();
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims)
        );
        let sig = URL_SAFE_NO_PAD.encode(hmac_sha256(HS_SECRET, input.as_bytes()));
        format!("{input}.{sig}")
    } else {
        let raw = f.rest();
        if let Ok(t) = extract_bearer(&[raw]) {
            assert!(!t.is_empty() && t.len() <= MAX_TOKEN_BYTES);
        }
        String::from_utf8_lossy(raw).into_owned()
    };
    let Ok(verified) = verify_bearer(&token, keys, policy, NOW) else {
        return;
    };
    let mut parts = token.split('.');
    let mut segment = || -> Result<Value, serde_json::Error> {
        let text = parts.next().expect("a verified token has three parts");
        let bytes = LENIENT_B64.decode(text).expect("segment is base64url");
        serde_json::from_str(&String::from_utf8_lossy(&bytes))
    };
    let header = segment();
    let claims = segment().expect("verified claims are JSON");
    assert!(hmac_allowed, "verified without the HS256 key");
    // serde_json skips members it ignores without checking their UTF-8 or escapes, so jwt-simple
    // accepts a header with, say, a lone surrogate in a member it does not know; such a header
    // is no JSON value here, and only the key says how it was signed.
    if let Ok(header) = header {
        let alg = &header["alg"];
        assert_eq!(alg, "HS256", "verified a token with alg {alg}");
    }
    // jwt-simple reads times as whole seconds (a fraction dropped) into 32.32 fixed point,
    // saturating at 2^32 - 1 (year 2106).
    let secs = |v: &Value| {
        let whole = v.as_u64().or_else(|| v.as_f64().map(|f| f as u64));
        whole.map(|s| s.min(u64::from(u32::MAX)))
    };
    let exp = secs(&claims["exp"]).expect("verified token has a numeric exp");
    assert!(exp + 30 >= NOW, "expired token verified");
    assert_eq!(verified.expires_at, exp);
    if let Some(nbf) = claims.get("nbf") {
        let nbf = secs(nbf).expect("verified token has a numeric nbf");
        assert!(nbf <= NOW + 30, "token not yet valid verified");
    }
    assert_eq!(claims["iss"], ISSUER);
    let aud_ok = match &claims["aud"] {
        Value::String(a) => a == AUDIENCE,
        Value::Array(list) => list.iter().any(|a| a == AUDIENCE),
        _ => false,
    };
    assert!(aud_ok, "verified for audience {}", claims["aud"]);
    assert_eq!(claims["tenant_id"], verified.tenant.tenant_id.as_str());
    assert_eq!(claims["sub"], verified.tenant.user_id.as_str());
    assert!(!verified.tenant.tenant_id.is_empty());
}

// ---------------------------------------------------------------------------------------------
// 4. The tools/list rewriter.

const CONTENT_TYPES: [&str; 4] = [
    "application/json",
    "text/event-stream",
    "text/event-stream; charset=utf-8",
    "Application/JSON ; charset=UTF-8",
];

/// The keep-predicate: never `delete_project`, and about a third of other names by a hash.
fn keep(salt: u8, name: &str) -> bool {
    let hash = name
        .bytes()
        .fold(0x811c_9dc5_u32 ^ u32::from(salt), |h, b| {
            (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
        });
    name != "delete_project" && hash % 3 != 0
}

/// The events of a `text/event-stream` as a client reads them (the WHATWG parsing rules: a BOM
/// is skipped, lines end with CRLF, LF or CR, an empty line dispatches the `data` lines joined by
/// LF, an event cut off by the end of the stream is dropped).
pub fn sse_events(body: &str) -> Vec<String> {
    let mut rest = body.strip_prefix('\u{FEFF}').unwrap_or(body);
    let mut events = Vec::new();
    let mut data = String::new();
    while let Some(end) = rest.find(['\r', '\n']) {
        let line = &rest[..end];
        let skip = if rest[end..].starts_with("\r\n") {
            2
        } else {
            1
        };
        rest = &rest[end + skip..];
        if line.is_empty() {
            if !data.is_empty() {
                data.pop(); // the LF after the last data line
                events.push(std::mem::take(&mut data));
            }
            continue;
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        if field == "data" {
            data.push_str(value);
            data.push('\n');
        }
    }
    events
}

/// The `id` values a client applies (WHATWG: a value with a NUL is ignored), in order.
pub fn sse_ids(body: &str) -> Vec<String> {
    let rest = body.strip_prefix('\u{FEFF}').unwrap_or(body);
    rest.split("\r\n")
        .flat_map(|l| l.split(['\r', '\n']))
        .filter_map(|line| {
            let (field, value) = match line.split_once(':') {
                Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
                None => (line, ""),
            };
            (field == "id" && !value.contains('\0')).then(|| value.to_string())
        })
        .collect()
}

/// What the fuzz targets' edge hands out for an upstream event id.
fn bind_id(id: &str) -> Option<String> {
    Some(format!("{id}.bound"))
}

/// `tools_list`: input = a content-type choice, a predicate salt, a JSON field (once the
/// `tools/list` request ids; every list is filtered now, whatever its id, so it is read and
/// ignored: the corpus keeps its shape), NUL, the response body. When the rewriter accepts a
/// body, no message it emits (read as a client reads JSON or an event stream) lists a tool the
/// predicate refuses.
pub fn tools_list(data: &[u8]) {
    let mut f = Fields(data);
    let choice = f.byte();
    let salt = f.byte();
    let _ids = f.field();
    let content_type = CONTENT_TYPES[usize::from(choice % 4)];
    let body = f.rest();
    let keep = |name: &str| keep(salt, name);
    let Ok(out) = filter_response(content_type, body, &keep, &bind_id) else {
        return;
    };
    let out = out.unwrap_or_else(|| body.to_vec());
    let messages: Vec<Value> = if content_type.starts_with("text/event-stream") {
        let text = String::from_utf8(out).expect("a rewritten stream is UTF-8");
        assert_ids_bound(&text);
        sse_events(&text)
            .iter()
            .filter_map(|d| serde_json::from_str(d).ok())
            .collect()
    } else {
        serde_json::from_slice(&out).into_iter().collect()
    };
    assert_lists_only_kept_tools(&messages, &keep);
}

/// Every event id a client reads from `text` is one the edge bound (or empty: a reset).
fn assert_ids_bound(text: &str) {
    for id in sse_ids(text) {
        assert!(id.is_empty() || id.ends_with(".bound"), "unbound id {id:?}");
    }
}

/// No response among `messages` lists a tool `keep` refuses.
fn assert_lists_only_kept_tools(messages: &[Value], keep: &dyn Fn(&str) -> bool) {
    for m in messages {
        let batch = match m {
            Value::Array(items) => items.iter().collect(),
            other => vec![other],
        };
        for r in batch {
            if let Some(tools) = r["result"]["tools"].as_array() {
                for name in tools.iter().filter_map(|t| t["name"].as_str()) {
                    assert!(keep(name), "refused tool {name:?} in the rewritten list");
                }
            }
        }
    }
}

/// `sse_stream`: input = a predicate salt, a chunk-size byte, a JSON field (read and ignored, as
/// in [`tools_list`]), NUL, an event stream. Fed to [`SseFilter`] in chunks, it gives exactly the
/// bytes (or the refusal) of the whole stream at once, no message lists a tool the predicate
/// refuses, and every event id a client reads is one the edge bound.
pub fn sse_stream(data: &[u8]) {
    let mut f = Fields(data);
    let salt = f.byte();
    let step = usize::from(f.byte() % 32) + 1;
    let _ids = f.field();
    let body = f.rest();
    let keep = |name: &str| keep(salt, name);
    let whole = filter_sse(body, &keep, &bind_id);
    let mut streamed = SseFilter::new(usize::MAX);
    let mut chunks = body.chunks(step).peekable();
    let mut out = Vec::new();
    let mut result = Ok(());
    while let Some(chunk) = chunks.next() {
        match streamed.push(chunk, chunks.peek().is_none(), &keep, &bind_id) {
            Ok(bytes) => out.extend(bytes),
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    if body.is_empty() {
        out = streamed
            .push(b"", true, &keep, &bind_id)
            .expect("an empty stream");
    }
    match (whole, result) {
        (Ok(whole), Ok(())) => assert_eq!(whole, out, "chunks of {step} changed the output"),
        (Err(_), Err(_)) => return,
        (w, r) => panic!("whole {:?} but chunked {r:?}", w.map(|_| ())),
    }
    let text = String::from_utf8(out).expect("a rewritten stream is UTF-8");
    assert_ids_bound(&text);
    let messages: Vec<Value> = sse_events(&text)
        .iter()
        .filter_map(|d| serde_json::from_str(d).ok())
        .collect();
    assert_lists_only_kept_tools(&messages, &keep);
}

// ---------------------------------------------------------------------------------------------
// 5. The identity assertion (trust contract v3).

const GATEWAY_SECRET: &[u8] = b"fuzz-gateway-secret-fuzz-gateway-secret!";

/// The backend's half: the assertion verified against a request line and a body at `now`.
fn backend_verifies(
    token: &str,
    line: &RequestLine<'_>,
    body: &[u8],
    now: u64,
) -> Result<mcp_edge_contract::Vouched, String> {
    AssertionVerifier::new(GATEWAY_SECRET, "fuzz-edge", "fuzz-backend")
        .map_err(|e| e.to_string())?
        .verify(token, line, body, now)
        .map_err(|e| e.to_string())
}

/// The decoded bytes of a compact JWS's third part (its signature).
fn signature_bytes(token: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(token.rsplit('.').next()?).ok()
}

/// `signature`: input = tier, which part to mutate, the byte position and its new value (two
/// bytes), then tenant, user, scopes (0x01 between scopes), data scope, method, path, request id,
/// time (decimal), NUL, body. What the edge's [`AssertionSigner`] makes verifies on the backend's
/// side ([`AssertionVerifier`], jwt-simple) and yields the same identity; with one byte of the
/// assertion, the body, the method or the path changed it does not (a change that leaves the
/// decoded signature as it was, in base64's unused low bits, is the same assertion).
pub fn signature(data: &[u8]) {
    let mut f = Fields(data);
    let tier = Tier::ALL[usize::from(f.byte() % 3)];
    let target = usize::from(f.byte());
    let position = usize::from(u16::from_le_bytes([f.byte(), f.byte()]));
    let replacement = f.byte();
    let identity = Identity {
        tenant_id: f.text(),
        user_id: f.text(),
        scopes: match f.text() {
            s if s.is_empty() => Vec::new(),
            s => s.split('\u{1}').map(str::to_string).collect(),
        },
        data_scope: f.text(),
        tier,
    };
    let (method, path, request_id) = (f.text(), f.text(), f.text());
    let issued_at = f.text().trim().parse::<u64>().unwrap_or(1_800_000_000) % 4_000_000_000;
    let body = f.rest();
    let digest = body_digest(body);
    let Ok(claims) = IdentityClaims::new(&identity) else {
        return;
    };
    let signer = AssertionSigner::new(
        &GatewayKey::new(GATEWAY_SECRET).expect("long enough"),
        "fuzz-edge",
        "fuzz-backend",
    );
    let binding = Binding {
        method: &method,
        path: &path,
        protocol_version: "2025-06-18",
        request_id: &request_id,
        issued_at,
        body_digest: &digest,
    };
    let Ok(token) = signer.sign(&claims, &binding) else {
        return;
    };
    let line = RequestLine {
        method: &method,
        path: &path,
        protocol_version: "2025-06-18",
    };
    match backend_verifies(&token, &line, body, issued_at) {
        Ok(v) => {
            assert_eq!(v.identity, identity, "the backend read another identity");
            assert_eq!(v.request_id, request_id);
        }
        Err(e) => panic!("the edge's assertion does not verify: {e}\n{token}"),
    }

    // One byte changed: of the assertion, the body, the method or the path.
    let (mut token_bytes, mut body, mut method, mut path) = (
        token.clone().into_bytes(),
        body.to_vec(),
        method.into_bytes(),
        path.into_bytes(),
    );
    let part = target % 4;
    let bytes = match part {
        0 => &mut token_bytes,
        1 => &mut body,
        2 => &mut method,
        _ => &mut path,
    };
    if bytes.is_empty() {
        return;
    }
    let at = position % bytes.len();
    if bytes[at] == replacement {
        return;
    }
    bytes[at] = replacement;
    let (Ok(changed), Ok(method), Ok(path)) = (
        String::from_utf8(token_bytes),
        String::from_utf8(method),
        String::from_utf8(path),
    ) else {
        return;
    };
    let line = RequestLine {
        method: &method,
        path: &path,
        protocol_version: "2025-06-18",
    };
    if let Ok(v) = backend_verifies(&changed, &line, &body, issued_at) {
        let same_signature = part == 0
            && changed.rsplit_once('.').map(|(signed, _)| signed)
                == token.rsplit_once('.').map(|(signed, _)| signed)
            && signature_bytes(&changed) == signature_bytes(&token);
        assert!(
            same_signature,
            "a changed part {part} still verifies: {v:?}"
        );
    }
}
