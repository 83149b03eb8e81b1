//! Microsoft Entra ID v2 access tokens through real Envoy and the real .wasm, with the `entra`
//! claims preset: the directory (`tid`) is the tenant, `oid` the user, `scp` (scope values without
//! the application ID URI, which `scope_prefix` puts back) the scopes — or, for app-only tokens
//! (`idtyp: app`), their app roles (`"scopes": ["scp", "roles"]`). The tier is the operator's, by
//! directory (`tier_by_tenant`): app roles are assigned in the customer's own directory. The
//! tokens are signed by the stack's issuer key, which stands in for Entra's (its JWKS is what the
//! filter fetches); issuer, audience and claims are Entra's.

use anyhow::{Result, ensure};
use mcp_edge_contract::Tier;
use mcp_edge_tests::client::http;
use mcp_edge_tests::idp::{backend_call, forwarded_call, provider_claims, refused};
use mcp_edge_tests::runner::Case;
use mcp_edge_tests::stack::Stack;
use serde_json::{Value, json};

const TID: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const APP: &str = "6e74172b-be56-4843-9ff4-e66a39bb12e3";
const OID: &str = "690222be-ff1a-4d56-abd1-7e4f7d38e474";

fn issuer() -> String {
    format!("https://login.microsoftonline.com/{TID}/v2.0")
}

fn scope(value: &str) -> String {
    format!("api://{APP}/{value}")
}

/// The plugin configuration an Entra deployment pastes (docs/identity-providers.md).
fn overrides() -> Value {
    json!({
        "issuers": [issuer()],
        "audiences": [APP],
        "claims": {
            "preset": "entra",
            "scopes": ["scp", "roles"],
            "scope_prefix": scope(""),
            "tier_by_tenant": {TID: "pro"}
        },
        "prm": {
            "authorization_servers": [format!("https://login.microsoftonline.com/{TID}/v2.0")],
            "scopes_supported": [scope("mcp:read"), scope("mcp:write")]
        },
        "challenge_scopes": [scope("mcp:read")],
        "tool_scopes": {"list_projects": scope("mcp:read"), "create_project": scope("mcp:write")}
    })
}

/// A v2.0 delegated token as Entra issues it (`typ: JWT`, `ver: 2.0`, `scp` a string).
fn token(s: &Stack, scp: &str, drop: &[&str]) -> Result<String> {
    let mut custom = json!({
        "aio": "AWQAm/8TAAAA",
        "azp": "04b07795-8ddb-461a-bbee-02f9e1bf7b46", "azpacr": "0", "name": "Ada Lovelace",
        "oid": OID, "preferred_username": "ada@contoso.com", "rh": "0.AAAA",
        "roles": ["MCP.Enterprise"], "scp": scp, "tid": TID, "uti": "fqiBqXLPj0eQa82S-IYFAA",
        "ver": "2.0"
    });
    if let Some(c) = custom.as_object_mut() {
        for claim in drop {
            c.remove(*claim);
        }
    }
    let claims = provider_claims(&issuer(), &[APP], "pairwise-sub-for-this-app", custom)?;
    s.sign_rs256_typed("JWT", claims)
}

/// A v2.0 app-only token (client credentials): no `scp`, the application permissions granted to
/// the calling service principal in `roles`, `oid` the service principal, `idtyp: app`.
fn app_only_token(s: &Stack, roles: &[&str]) -> Result<String> {
    let custom = json!({
        "aio": "k2BgYPi", "azp": "0a3b2d1c-4f5e-6a7b-8c9d-0e1f2a3b4c5d", "azpacr": "1",
        "idtyp": "app", "oid": "5d1c7e2a-9b3f-4c8d-a6e0-f1b2c3d4e5f6", "rh": "0.AAAA",
        "roles": roles, "tid": TID, "uti": "Xq3kT1mJ0EyZ", "ver": "2.0"
    });
    let claims = provider_claims(
        &issuer(),
        &[APP],
        "5d1c7e2a-9b3f-4c8d-a6e0-f1b2c3d4e5f6",
        custom,
    )?;
    s.sign_rs256_typed("JWT", claims)
}

fn an_app_only_token_gets_its_roles_as_scopes(s: &Stack) -> Result<()> {
    let t = app_only_token(s, &["mcp:read", "MCP.Pro"])?;
    let id = forwarded_call(s, &t, "entra-app-only")?
        .vouched(&s.secret)?
        .identity;
    ensure!(
        id.scopes == [scope("mcp:read"), scope("MCP.Pro")],
        "scopes: {:?}",
        id.scopes
    );
    ensure!(id.tier == Tier::Pro, "tier: {:?}", id.tier);
    let (status, challenge, body) = refused(s, &t, "create_project", "entra-app-only-write")?;
    ensure!(status == 403, "{status} {body}");
    ensure!(challenge.contains("insufficient_scope"), "{challenge}");
    // A delegated token's roles are never its scopes: `scp` is present, so it alone counts.
    let delegated = token(s, "mcp:read", &[])?;
    let id = forwarded_call(s, &delegated, "entra-delegated-roles")?
        .vouched(&s.secret)?
        .identity;
    ensure!(id.scopes == [scope("mcp:read")], "scopes: {:?}", id.scopes);
    // Nor when `scp` is absent: only `idtyp: app` makes a token app-only.
    let custom = json!({"oid": OID, "roles": ["mcp:read"], "tid": TID, "ver": "2.0"});
    let claims = provider_claims(&issuer(), &[APP], "pairwise-sub-for-this-app", custom)?;
    let no_scp = s.sign_rs256_typed("JWT", claims)?;
    let (status, challenge, body) = refused(s, &no_scp, "list_projects", "entra-no-scp-roles")?;
    ensure!(status == 403, "{status} {body}");
    ensure!(challenge.contains("insufficient_scope"), "{challenge}");
    Ok(())
}

fn the_directory_and_user_reach_the_backend(s: &Stack) -> Result<()> {
    let t = token(s, "mcp:read mcp:write", &[])?;
    let id = forwarded_call(s, &t, "entra-identity")?
        .vouched(&s.secret)?
        .identity;
    ensure!(
        id.tenant_id == TID && id.user_id == OID,
        "tenant and user: {id:?}"
    );
    ensure!(
        id.scopes == [scope("mcp:read"), scope("mcp:write")],
        "scopes: {:?}",
        id.scopes
    );
    // The token's roles say MCP.Enterprise (the customer's admin assigns them): the operator
    // says pro for this directory.
    ensure!(id.tier == Tier::Pro, "tier: {:?}", id.tier);
    backend_call(s, &t)
}

fn step_up_names_the_full_scope(s: &Stack) -> Result<()> {
    let t = token(s, "mcp:read", &[])?;
    let (status, challenge, body) = refused(s, &t, "create_project", "entra-step-up")?;
    ensure!(status == 403, "{status} {body}");
    ensure!(
        challenge.contains("insufficient_scope") && challenge.contains(&scope("mcp:write")),
        "challenge: {challenge}"
    );
    Ok(())
}

fn a_token_without_tid_is_refused(s: &Stack) -> Result<()> {
    let t = token(s, "mcp:read", &["tid"])?;
    let (status, challenge, body) = refused(s, &t, "list_projects", "entra-no-tid")?;
    ensure!(status == 401, "{status} {body}");
    ensure!(
        challenge.contains("invalid_token") && challenge.contains("`tid`"),
        "challenge: {challenge}"
    );
    Ok(())
}

fn tokens_of_the_old_shape_are_refused(s: &Stack) -> Result<()> {
    // The dev issuer's own token: neither Entra's issuer nor its audience.
    let (status, _, body) = refused(s, &s.token("acme")?, "list_projects", "entra-dev-token")?;
    ensure!(status == 401, "{status} {body}");
    Ok(())
}

fn the_metadata_lists_the_entra_scopes(s: &Stack) -> Result<()> {
    let doc: Value = http()
        .get(format!(
            "{}/.well-known/oauth-protected-resource/mcp",
            s.envoy_origin
        ))
        .send()?
        .json()?;
    ensure!(
        doc["scopes_supported"] == json!([scope("mcp:read"), scope("mcp:write")]),
        "{doc}"
    );
    Ok(())
}

const CASES: &[Case] = mcp_edge_tests::cases![
    the_directory_and_user_reach_the_backend,
    an_app_only_token_gets_its_roles_as_scopes,
    step_up_names_the_full_scope,
    a_token_without_tid_is_refused,
    tokens_of_the_old_shape_are_refused,
    the_metadata_lists_the_entra_scopes,
];

fn main() {
    mcp_edge_tests::runner::run_with(&overrides(), CASES);
}
