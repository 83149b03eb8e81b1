//! What the criterion benches (`core.rs`) and the V8 timings (`examples/core_timings.rs`) share:
//! the benchmark's body, its claims, and one token per algorithm with the keys that verify them.

use jwt_simple::prelude::*;
use mcp_edge_filter::keys::{Algorithm, KeySet};
use mcp_edge_filter::token::TokenPolicy;
use serde_json::{Map, Value, json};

pub const ISSUER: &str = "https://issuer.example";
pub const AUDIENCE: &str = "https://mcp.example/mcp";
/// The body `scripts/bench.sh` sends.
pub const BODY: &[u8] = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_projects","arguments":{"limit":20,"include_archived":false}}}"#;

/// The benchmark tenant's claims, valid for an hour from `now`.
pub fn claims(now: u64) -> JWTClaims<Map<String, Value>> {
    let custom = json!({"tenant_id": "tenant-bench", "scope": "mcp:read mcp:write",
                        "rate_limit_tier": "pro", "allowed_tools": ["list_projects", "get_project"]});
    let mut c = Claims::with_custom_claims(
        custom.as_object().cloned().unwrap_or_default(),
        Duration::from_secs(3600),
    )
    .with_issuer(ISSUER)
    .with_audience(AUDIENCE)
    .with_subject("bench-user");
    c.issued_at = Some(Duration::from_secs(now));
    c.invalid_before = Some(Duration::from_secs(now));
    c.expires_at = Some(Duration::from_secs(now + 3600));
    c
}

pub fn token_policy() -> TokenPolicy {
    TokenPolicy {
        issuers: [ISSUER.to_string()].into(),
        audiences: [AUDIENCE.to_string()].into(),
        algorithms: [Algorithm::Rs256, Algorithm::Es256, Algorithm::EdDsa].into(),
        leeway_seconds: 30,
        required_typ: None,
        claims: Default::default(),
    }
}

/// Fresh RS256, ES256 and EdDSA keys: the key set that verifies them and one token of each.
pub fn tokens_of_each_algorithm(now: u64) -> (KeySet, [(&'static str, String); 3]) {
    let rsa = RS256KeyPair::generate(2048)
        .expect("RSA key")
        .with_key_id("rs");
    let ec = ES256KeyPair::generate().with_key_id("es");
    let ed = Ed25519KeyPair::generate().with_key_id("ed");
    let jwk = |text: String| serde_json::from_str::<Value>(&text).expect("a JWK");
    let jwks = json!({"keys": [jwk(rsa.public_key().to_jwk()), jwk(ec.public_key().to_jwk()),
                                jwk(ed.public_key().to_jwk())]});
    let keys =
        KeySet::from_jwks(jwks.to_string().as_bytes(), &token_policy().algorithms).expect("keys");
    let tokens = [
        ("RS256", rsa.sign(claims(now)).expect("signed")),
        ("ES256", ec.sign(claims(now)).expect("signed")),
        ("EdDSA", ed.sign(claims(now)).expect("signed")),
    ];
    (keys, tokens)
}
