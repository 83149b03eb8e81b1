//! Criterion benchmarks of the filter's pure core, run natively (`cargo bench -p mcp-edge-filter`):
//! what each step of a request costs before wasm and the host add theirs. `scripts/bench.sh`
//! measures the filter inside Envoy; these say which part of that is the work itself.
//!
//! - token verification per algorithm (RS256, ES256, EdDSA), as on a token-cache miss;
//! - a token-cache hit;
//! - the claims → TenantContext step of a verification, with the default claim mapping and with
//!   the Entra preset's (a tier map over an array of roles, a scope prefix);
//! - the JSON-RPC body: strict parse, and the policy's judgement of it;
//! - the rate limit: the bucket arithmetic, and a whole slot update against an in-memory store
//!   with Envoy's shared-data semantics (compare-and-swap);
//! - the gateway signature: the `x-mcp-*` headers and their HMAC.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use mcp_edge_contract::{
    AssertionSigner, Binding, GatewayKey, Identity, IdentityClaims, body_digest,
};
use mcp_edge_filter::claim_mapping::{ClaimMapping, ClaimPath, Source};
use mcp_edge_filter::jsonrpc::parse_payload;
use mcp_edge_filter::policy::{PayloadVerdict, ToolPolicy};
use mcp_edge_filter::rate_limit::testing::MemoryShared;
use mcp_edge_filter::rate_limit::{Limit, SlotSecret, SlotTable};
use mcp_edge_filter::tenant::{TenantContext, Tier, tenant_context};
use mcp_edge_filter::token::verify_bearer;
use mcp_edge_filter::token_cache::TokenCache;
use serde_json::json;

const NOW: u64 = 1_800_000_000;
const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

#[allow(dead_code)] // the V8 timings use all of it
mod fixtures;
use fixtures::{BODY, token_policy, tokens_of_each_algorithm};

fn verification(c: &mut Criterion) {
    let policy = token_policy();
    let (keys, tokens) = tokens_of_each_algorithm(NOW);
    let mut group = c.benchmark_group("verify_bearer");
    for (alg, token) in &tokens {
        assert!(verify_bearer(token, &keys, &policy, NOW).is_ok());
        group.bench_function(*alg, |b| {
            b.iter(|| verify_bearer(black_box(token), &keys, &policy, NOW))
        });
    }
    group.finish();

    let verified = verify_bearer(&tokens[0].1, &keys, &policy, NOW).expect("verified");
    let mut cache = TokenCache::new(1024, 30, [5; 16]);
    cache.insert(cache.key_of(&tokens[0].1), verified, NOW);
    c.bench_function("token_cache/hit", |b| {
        // As the gate does: hash the token, then look it up.
        b.iter(|| {
            cache
                .get(&cache.key_of(black_box(&tokens[0].1)), NOW)
                .is_some()
        })
    });
}

fn claim_mapping(c: &mut Criterion) {
    let default_claims = json!({"sub": "user_1", "tenant_id": "acme", "scope": "mcp:read mcp:write",
                                "rate_limit_tier": "pro", "data_scope": "team:engineering"});
    let entra_claims = json!({"sub": "pairwise", "oid": "690222be-ff1a-4d56-abd1-7e4f7d38e474",
                              "tid": "72f988bf-86f1-41af-91ab-2d7cd011db47", "scp": "mcp:read mcp:write",
                              "roles": ["Reports.Read", "MCP.Pro"], "ver": "2.0"});
    let entra = ClaimMapping {
        tenant: Source::Claim(ClaimPath::name("tid")),
        user: ClaimPath::name("oid"),
        scopes: Source::Claim(ClaimPath::name("scp")),
        scope_prefix: Some("api://6e74172b-be56-4843-9ff4-e66a39bb12e3/".into()),
        tier: Source::Claim(ClaimPath::name("roles")),
        tier_map: Some([("MCP.Pro".to_string(), Tier::Pro)].into()),
        ..ClaimMapping::default()
    };
    let cases = [
        ("default", ClaimMapping::default(), default_claims),
        ("entra", entra, entra_claims),
    ];
    let mut group = c.benchmark_group("tenant_context");
    for (name, mapping, claims) in &cases {
        let claims = claims.as_object().expect("an object");
        assert!(tenant_context(mapping, claims).is_ok());
        group.bench_function(*name, |b| {
            b.iter(|| tenant_context(mapping, black_box(claims)))
        });
    }
    group.finish();
}

fn tenant() -> TenantContext {
    TenantContext {
        identity: Identity::example("tenant-bench"),
        allowed_tools: Some(vec!["list_projects".into(), "get_project".into()]),
    }
}

fn tool_policy() -> ToolPolicy {
    let scopes = [
        ("archive_project", "mcp:write"),
        ("assign_task", "mcp:write"),
        ("create_project", "mcp:write"),
        ("create_task", "mcp:write"),
        ("delete_project", "mcp:admin"),
        ("get_analytics", "mcp:read"),
        ("get_project", "mcp:read"),
        ("get_usage", "mcp:read"),
        ("list_projects", "mcp:read"),
        ("list_tasks", "mcp:read"),
        ("update_task", "mcp:write"),
    ];
    ToolPolicy {
        tool_scopes: scopes
            .iter()
            .map(|(t, s)| (t.to_string(), s.to_string()))
            .collect(),
        method_scopes: Default::default(),
    }
}

fn json_rpc(c: &mut Criterion) {
    let (policy, tenant) = (tool_policy(), tenant());
    c.bench_function("jsonrpc/parse", |b| {
        b.iter(|| parse_payload(black_box(BODY)))
    });
    let payload = parse_payload(BODY).expect("a valid body");
    assert_eq!(policy.judge(&tenant, &payload), PayloadVerdict::Allow);
    c.bench_function("policy/judge", |b| {
        b.iter(|| policy.judge(&tenant, black_box(&payload)))
    });
    c.bench_function("jsonrpc/parse_and_judge", |b| {
        b.iter(|| parse_payload(black_box(BODY)).map(|p| policy.judge(&tenant, &p)))
    });
}

fn rate_limit(c: &mut Criterion) {
    let limit = Limit {
        capacity: 1_000_000_000,
        per_minute: 1_000_000_000,
    };
    let (state, _) = limit.take(None, 1, 0);
    c.bench_function("bucket/take", |b| {
        b.iter(|| limit.take(black_box(Some(state)), 1, 1_000))
    });
    let store = MemoryShared::default();
    let secret = SlotSecret([7; 16]);
    let table = SlotTable {
        namespace: "mcp_edge.rl.tenant",
        slots: 4096,
        probes: 4,
        secret: &secret,
    };
    let mut now_ms = NOW * 1000;
    c.bench_function("bucket/slot_update", |b| {
        b.iter(|| {
            now_ms += 1;
            table.update(&store, b"tenant-bench", &limit, now_ms, |s| {
                let (next, decision) = limit.take(s, 1, now_ms);
                (Some(next), decision)
            })
        })
    });
}

fn signature(c: &mut Criterion) {
    let identity = Identity::example("tenant-bench");
    let digest = body_digest(BODY);
    let binding = Binding {
        method: "POST",
        path: "/mcp",
        protocol_version: "2025-06-18",
        request_id: "0123456789abcdef0123456789abcdef",
        issued_at: NOW,
        body_digest: &digest,
    };
    c.bench_function("signature/body_digest", |b| {
        b.iter(|| body_digest(black_box(BODY)))
    });
    // As the gate does: the signer (JOSE header, iss, aud fed to the HMAC) is made once per
    // configuration, the identity claims once per cached caller.
    let key = GatewayKey::new(SECRET).expect("key");
    let signer = AssertionSigner::new(&key, "mcp-edge", "mcp-edge-backend");
    let claims = IdentityClaims::new(&identity).expect("signable");
    c.bench_function("assertion/sign", |b| {
        b.iter(|| signer.sign(&claims, black_box(&binding)))
    });
}

criterion_group!(
    core,
    verification,
    claim_mapping,
    json_rpc,
    rate_limit,
    signature
);
criterion_main!(core);
