//! Auth0 access tokens (the RFC 9068 profile: `typ: at+jwt`) through real Envoy and the real
//! .wasm, with the `auth0` claims preset: the organization (`org_id`) is the tenant, the tier a
//! namespaced custom claim an Auth0 Action sets. The tokens are signed by the stack's issuer key,
//! which stands in for the Auth0 tenant's (its JWKS is what the filter fetches); issuer, audience,
//! header and claims are Auth0's.

use anyhow::{Result, ensure};
use mcp_edge_contract::Tier;
use mcp_edge_tests::idp::{backend_call, forwarded_call, provider_claims, refused};
use mcp_edge_tests::runner::Case;
use mcp_edge_tests::stack::Stack;
use serde_json::{Value, json};

const ISSUER: &str = "https://my-domain.auth0.com/";
const TIER_CLAIM: &str = "https://mcp.example.com/tier";
const ORG: &str = "org_9ybsU1dN2dKfDkBi";

/// The plugin configuration an Auth0 deployment pastes (docs/identity-providers.md); the audience
/// is the API identifier, here the resource URI (the default).
fn overrides() -> Value {
    json!({
        "issuers": [ISSUER],
        "required_typ": "at+jwt",
        "claims": {"preset": "auth0", "tier": TIER_CLAIM}
    })
}

/// An access token of the RFC 9068 profile with Organizations and RBAC, as Auth0 issues it.
fn token(s: &Stack, typ: &str, org: Option<&str>) -> Result<String> {
    let mut custom = json!({
        "client_id": "my_client_id", "jti": "73WakrfVbNJBaAmhQtEeDv",
        "scope": "openid profile mcp:read mcp:write", "permissions": ["mcp:read", "mcp:write"],
        TIER_CLAIM: "pro"
    });
    if let Some(org) = org {
        custom["org_id"] = json!(org);
    }
    let audiences = [s.mcp_url.as_str(), "https://my-domain.auth0.com/userinfo"];
    let claims = provider_claims(ISSUER, &audiences, "auth0|123456", custom)?;
    s.sign_rs256_typed(typ, claims)
}

fn the_organization_reaches_the_backend(s: &Stack) -> Result<()> {
    let t = token(s, "at+jwt", Some(ORG))?;
    let got = forwarded_call(s, &t, "auth0-identity")?;
    let id = got.vouched(&s.secret)?.identity;
    ensure!(
        id.tenant_id == ORG
            && id.user_id == "auth0|123456"
            && id.scopes == ["openid", "profile", "mcp:read", "mcp:write"]
            && id.tier == Tier::Pro,
        "{id:?}"
    );
    backend_call(s, &t)
}

fn a_token_of_the_default_profile_is_refused(s: &Stack) -> Result<()> {
    let t = token(s, "JWT", Some(ORG))?;
    let (status, challenge, body) = refused(s, &t, "list_projects", "auth0-typ")?;
    ensure!(status == 401, "{status} {body}");
    ensure!(challenge.contains("typ"), "challenge: {challenge}");
    Ok(())
}

fn a_user_outside_any_organization_is_refused(s: &Stack) -> Result<()> {
    let t = token(s, "at+jwt", None)?;
    let (status, challenge, body) = refused(s, &t, "list_projects", "auth0-no-org")?;
    ensure!(status == 401, "{status} {body}");
    ensure!(challenge.contains("`org_id`"), "challenge: {challenge}");
    Ok(())
}

const CASES: &[Case] = mcp_edge_tests::cases![
    the_organization_reaches_the_backend,
    a_token_of_the_default_profile_is_refused,
    a_user_outside_any_organization_is_refused,
];

fn main() {
    mcp_edge_tests::runner::run_with(&overrides(), CASES);
}
