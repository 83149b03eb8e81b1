//! Tokens shaped as Auth0, Okta, Microsoft Entra ID, Keycloak and Google document them (header
//! fields in their order, issuer and audience forms, claim types), signed byte for byte with an RSA
//! key, through the real configuration parser and `verify_bearer`: the edge reads the right tenant,
//! user, scopes and tier with each provider's preset, and refuses what must be refused.

use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jwt_simple::prelude::*;
use mcp_edge_filter::config::{EdgeConfig, parse_config};
use mcp_edge_filter::tenant::Tier;
use mcp_edge_filter::token::{TokenError, VerifiedToken, verify_bearer};
use rsa::signature::{SignatureEncoding, Signer};
use serde_json::{Value, json};

const NOW: u64 = 1_800_000_000;
const KID: &str = "nOo3ZDrODXEK1jKWhXslHR_KXEg";

/// The provider's signing key: jwt-simple makes it, the rsa crate signs exact header bytes.
struct Idp {
    jwk: Value,
    signer: rsa::pkcs1v15::SigningKey<rsa::sha2::Sha256>,
}

fn idp() -> &'static Idp {
    static IDP: OnceLock<Idp> = OnceLock::new();
    IDP.get_or_init(|| {
        use rsa::pkcs8::DecodePrivateKey;
        let pair = RS256KeyPair::generate(2048).unwrap().with_key_id(KID);
        let private = rsa::PrivateKey::from_pkcs8_der(&pair.to_der().unwrap()).unwrap();
        let mut jwk: Value = serde_json::from_str(&pair.public_key().to_jwk()).unwrap();
        jwk["use"] = json!("sig");
        Idp {
            jwk,
            signer: rsa::pkcs1v15::SigningKey::new(private),
        }
    })
}

/// A JWS with exactly this header and payload, RS256-signed.
fn sign(header: Value, payload: Value) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(payload.to_string())
    );
    let signature = idp().signer.sign(input.as_bytes()).to_vec();
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

/// The plugin configuration with the provider's issuer, audience and `claims`, and its JWKS inline.
fn edge(issuers: Value, audiences: Value, more: Value) -> EdgeConfig {
    let mut cfg = json!({
        "resource": "https://mcp.example.com/mcp",
        "issuers": issuers,
        "audiences": audiences,
        "jwks": {"inline": {"keys": [idp().jwk.clone()]}},
        "gateway_secret": {"inline": "0123456789abcdef0123456789abcdef"},
        "prm": {"authorization_servers": ["https://idp.example"], "scopes_supported": ["mcp:read", "mcp:write"]},
        "tool_scopes": {"list_projects": "mcp:read"}
    });
    for (k, v) in more.as_object().unwrap() {
        cfg[k] = v.clone();
    }
    parse_config(cfg.to_string().as_bytes(), &|_| None).unwrap_or_else(|e| panic!("{e}"))
}

fn verify(cfg: &EdgeConfig, token: &str) -> Result<VerifiedToken, TokenError> {
    let keys = cfg.inline_keys.as_ref().expect("inline keys");
    verify_bearer(token, keys, &cfg.prepared.token_policy, NOW)
}

fn invalid_claim(r: Result<VerifiedToken, TokenError>) -> String {
    match r {
        Err(TokenError::InvalidClaim(c)) => format!("{} {}", c.claim, c.problem),
        other => panic!("expected an invalid claim, got {other:?}"),
    }
}

fn without(mut v: Value, claim: &str) -> Value {
    v.as_object_mut().unwrap().remove(claim);
    v
}

// Auth0 ----------------------------------------------------------------------------------------

const AUTH0_ISS: &str = "https://my-domain.auth0.com/";
const API: &str = "https://mcp.example.com/mcp";

/// The RFC 9068 access token profile (`typ: at+jwt`, `client_id`), with Organizations (`org_id`),
/// RBAC (`permissions`) and a namespaced custom claim set by an Action.
#[test]
fn auth0_rfc9068_profile_with_organizations() {
    let cfg = edge(
        json!([AUTH0_ISS]),
        json!([API]),
        json!({
            "required_typ": "at+jwt",
            "claims": {"preset": "auth0", "tier": "https://mcp.example.com/tier"}
        }),
    );
    let payload = json!({
        "iss": AUTH0_ISS, "sub": "auth0|123456",
        "aud": [API, "https://my-domain.auth0.com/userinfo"],
        "client_id": "my_client_id", "exp": NOW + 86400, "iat": NOW, "jti": "73WakrfVbNJBaAmhQtEeDv",
        "scope": "openid profile mcp:read mcp:write", "org_id": "org_9ybsU1dN2dKfDkBi",
        "permissions": ["mcp:read", "mcp:write"], "https://mcp.example.com/tier": "pro"
    });
    let header = json!({"alg": "RS256", "typ": "at+jwt", "kid": KID});
    let v = verify(&cfg, &sign(header.clone(), payload.clone())).unwrap();
    assert_eq!(v.tenant.tenant_id, "org_9ybsU1dN2dKfDkBi");
    assert_eq!(v.tenant.user_id, "auth0|123456");
    assert_eq!(
        v.tenant.scopes,
        ["openid", "profile", "mcp:read", "mcp:write"]
    );
    assert_eq!(v.tenant.tier, Tier::Pro);
    // A user who signed in outside any organization has no tenant: refused, not defaulted.
    assert_eq!(
        invalid_claim(verify(
            &cfg,
            &sign(header, without(payload.clone(), "org_id"))
        )),
        "org_id is required"
    );
    // The default profile's `typ: JWT` is refused when at+jwt is required.
    let header = json!({"alg": "RS256", "typ": "JWT", "kid": KID});
    assert_eq!(
        verify(&cfg, &sign(header, payload)),
        Err(TokenError::WrongType)
    );
}

/// The default Auth0 token profile (`typ: JWT`, `azp`), tenant in a namespaced custom claim.
#[test]
fn auth0_token_profile_with_a_namespaced_tenant() {
    let cfg = edge(
        json!([AUTH0_ISS]),
        json!([API]),
        json!({"claims": {"preset": "auth0", "tenant": "https://mcp.example.com/tenant_id"}}),
    );
    let payload = json!({
        "iss": AUTH0_ISS, "sub": "auth0|123456",
        "aud": [API, "https://my-domain.auth0.com/userinfo"], "azp": "my_client_id",
        "exp": NOW + 86400, "iat": NOW, "scope": "openid mcp:read",
        "https://mcp.example.com/tenant_id": "acme"
    });
    let v = verify(
        &cfg,
        &sign(json!({"alg": "RS256", "typ": "JWT", "kid": KID}), payload),
    )
    .unwrap();
    assert_eq!(v.tenant.tenant_id, "acme");
    assert_eq!(v.tenant.scopes, ["openid", "mcp:read"]);
    assert_eq!(v.tenant.tier, Tier::Free);
    // The Auth0 issuer ends with a slash; without it the issuer is another one.
    let other = edge(
        json!(["https://my-domain.auth0.com"]),
        json!([API]),
        json!({"claims": {"preset": "auth0"}}),
    );
    let t = sign(
        json!({"alg": "RS256", "typ": "JWT", "kid": KID}),
        json!({"iss": AUTH0_ISS, "sub": "s", "aud": API, "exp": NOW + 60, "org_id": "o"}),
    );
    assert_eq!(verify(&other, &t), Err(TokenError::WrongIssuer));
}

// Okta -----------------------------------------------------------------------------------------

/// An Okta custom authorization server's access token: a header of `kid` and `alg` only (no
/// `typ`), `ver: 1`, `jti` "AT.…", `cid`, `uid`, scopes as the array `scp`; the tenant is a custom
/// claim the operator adds to the authorization server.
#[test]
fn okta_custom_authorization_server() {
    let iss = "https://dev-133337.okta.com/oauth2/default";
    let cfg = edge(
        json!([iss]),
        json!(["api://default"]),
        json!({"claims": {"preset": "okta"}}),
    );
    let payload = json!({
        "ver": 1, "jti": "AT.MNAoEQ_jbKqoinrQo1D0XKjMX28U5d7ZszBceot7-Ts", "iss": iss,
        "aud": "api://default", "sub": "ada@example.com", "iat": NOW, "exp": NOW + 3600,
        "cid": "0oa1b2c3d4", "uid": "00u1a2b3c4", "scp": ["openid", "mcp:read", "mcp:write"],
        "auth_time": NOW - 60, "tenant_id": "acme"
    });
    let header = json!({"kid": KID, "alg": "RS256"});
    let v = verify(&cfg, &sign(header.clone(), payload.clone())).unwrap();
    assert_eq!(v.tenant.tenant_id, "acme");
    assert_eq!(v.tenant.user_id, "ada@example.com");
    assert_eq!(v.tenant.scopes, ["openid", "mcp:read", "mcp:write"]);
    // An array with something other than scope names is invalid, not empty.
    let mut bad = payload.clone();
    bad["scp"] = json!(["mcp:read", 7]);
    assert_eq!(
        invalid_claim(verify(&cfg, &sign(header.clone(), bad))),
        "scp must be an array of scope names"
    );
    // With `user: uid`, the stable Okta user id instead of the login.
    let by_uid = edge(
        json!([iss]),
        json!(["api://default"]),
        json!({"claims": {"preset": "okta", "user": "uid"}}),
    );
    assert_eq!(
        verify(&by_uid, &sign(header, payload))
            .unwrap()
            .tenant
            .user_id,
        "00u1a2b3c4"
    );
}

// Microsoft Entra ID ---------------------------------------------------------------------------

const TID: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const APP: &str = "6e74172b-be56-4843-9ff4-e66a39bb12e3";

fn entra() -> EdgeConfig {
    edge(
        json!([format!("https://login.microsoftonline.com/{TID}/v2.0")]),
        json!([APP]),
        json!({"claims": {
            "preset": "entra",
            "scope_prefix": format!("api://{APP}/"),
            "tier_by_tenant": {TID: "pro"}
        }}),
    )
}

fn entra_payload() -> Value {
    json!({
        "aud": APP, "iss": format!("https://login.microsoftonline.com/{TID}/v2.0"),
        "iat": NOW - 5, "nbf": NOW - 5, "exp": NOW + 3600,
        "aio": "AWQAm/8TAAAA", "azp": "04b07795-8ddb-461a-bbee-02f9e1bf7b46", "azpacr": "0",
        "name": "Ada Lovelace", "oid": "690222be-ff1a-4d56-abd1-7e4f7d38e474",
        "preferred_username": "ada@contoso.com", "rh": "0.AAAA", "roles": ["MCP.Enterprise"],
        "scp": "mcp:read mcp:write", "sub": "pairwise-sub-for-this-app", "tid": TID,
        "uti": "fqiBqXLPj0eQa82S-IYFAA", "ver": "2.0"
    })
}

/// A v2.0 delegated (user) token: `typ: JWT`, `kid`; tenant `tid`, user `oid`, `scp` a string of
/// scope values without the `api://` application URI, app roles in `roles`.
#[test]
fn entra_v2_user_token() {
    let cfg = entra();
    let header = json!({"typ": "JWT", "alg": "RS256", "kid": KID});
    let v = verify(&cfg, &sign(header.clone(), entra_payload())).unwrap();
    assert_eq!(v.tenant.tenant_id, TID);
    assert_eq!(v.tenant.user_id, "690222be-ff1a-4d56-abd1-7e4f7d38e474");
    assert_eq!(
        v.tenant.scopes,
        [
            format!("api://{APP}/mcp:read"),
            format!("api://{APP}/mcp:write")
        ]
    );
    // The tier is the operator's (`tier_by_tenant`): the `MCP.Enterprise` app role the customer's
    // own directory assigned counts for nothing.
    assert_eq!(v.tenant.tier, Tier::Pro);
    // A v1.0 header also carries `x5t` (the same thumbprint as `kid`): it changes nothing.
    let header = json!({"typ": "JWT", "alg": "RS256", "x5t": KID, "kid": KID});
    assert_eq!(
        verify(&cfg, &sign(header, entra_payload())).unwrap().tenant,
        v.tenant
    );
    // Another directory's token (its own issuer) is refused even with this app as audience.
    let mut other = entra_payload();
    other["iss"] =
        json!("https://login.microsoftonline.com/00000000-0000-0000-0000-000000000001/v2.0");
    assert_eq!(
        verify(
            &cfg,
            &sign(json!({"typ": "JWT", "alg": "RS256", "kid": KID}), other)
        ),
        Err(TokenError::WrongIssuer)
    );
}

/// An app-only token (client credentials, `idtyp: app`): no `scp`, the application's roles, which
/// are not scopes unless `scopes` lists `roles`, and never a tier.
#[test]
fn entra_v2_app_token() {
    let cfg = entra();
    let header = json!({"typ": "JWT", "alg": "RS256", "kid": KID});
    let mut payload = without(entra_payload(), "scp");
    payload["roles"] = json!(["MCP.Pro", "Reports.Read"]);
    payload["idtyp"] = json!("app");
    let v = verify(&cfg, &sign(header.clone(), payload.clone())).unwrap();
    assert!(v.tenant.scopes.is_empty());
    assert_eq!(v.tenant.tier, Tier::Pro);
    payload["roles"] = json!(["MCP.Enterprise"]);
    assert_eq!(
        verify(&cfg, &sign(header.clone(), payload.clone()))
            .unwrap()
            .tenant
            .tier,
        Tier::Pro,
        "a role the customer assigns does not raise the tier"
    );
    // `oid` is required: a token without it is refused, not read as `sub`.
    assert_eq!(
        invalid_claim(verify(&cfg, &sign(header, without(payload, "oid")))),
        "oid is required"
    );
}

// Keycloak -------------------------------------------------------------------------------------

fn keycloak_payload(iss: &str) -> Value {
    json!({
        "exp": NOW + 300, "iat": NOW, "auth_time": NOW - 10,
        "jti": "onrtac:7c2fb0c1-2a4b-4fd8-a2a4-0d5d8e8a8f11", "iss": iss,
        "aud": ["mcp-edge", "account"], "sub": "f1c4f64e-2c0c-4cda-8c9f-9f3f8f3a2b0e",
        "typ": "Bearer", "azp": "mcp-client", "sid": "4c0a3a8a-3a47-4f2f-8e89-9e5f9b0a0a0a",
        "acr": "1", "allowed-origins": ["https://app.example.com"],
        "realm_access": {"roles": ["default-roles-acme", "offline_access", "mcp-enterprise"]},
        "resource_access": {"account": {"roles": ["manage-account", "view-profile"]}},
        "scope": "openid email profile mcp:read", "email_verified": true,
        "preferred_username": "ada", "tenant_id": "acme"
    })
}

/// A Keycloak access token: `typ: JWT` header, issuer `…/realms/{realm}`, realm roles under
/// `realm_access.roles` (read by JSON pointer), the tenant from a user-attribute mapper.
#[test]
fn keycloak_realm_roles_and_attribute_mapper() {
    let iss = "https://sso.example.com/realms/acme";
    let cfg = edge(
        json!([iss]),
        json!(["mcp-edge"]),
        // Roles of a realm the operator administers, named explicitly as the tier claim.
        json!({"claims": {"preset": "keycloak", "tier": "/realm_access/roles",
            "tier_map": {"mcp-enterprise": "enterprise", "mcp-pro": "pro"}}}),
    );
    let header = json!({"alg": "RS256", "typ": "JWT", "kid": KID});
    let v = verify(&cfg, &sign(header.clone(), keycloak_payload(iss))).unwrap();
    assert_eq!(v.tenant.tenant_id, "acme");
    assert_eq!(v.tenant.user_id, "f1c4f64e-2c0c-4cda-8c9f-9f3f8f3a2b0e");
    assert_eq!(v.tenant.scopes, ["openid", "email", "profile", "mcp:read"]);
    assert_eq!(v.tenant.tier, Tier::Enterprise);
    // A realm per tenant: the tenant fixed by the configuration of that realm's issuer.
    let per_realm = edge(
        json!([iss]),
        json!(["mcp-edge"]),
        json!({"claims": {"preset": "keycloak", "tenant": {"fixed": "acme-realm"}}}),
    );
    let v = verify(
        &per_realm,
        &sign(header.clone(), without(keycloak_payload(iss), "tenant_id")),
    )
    .unwrap();
    assert_eq!(v.tenant.tenant_id, "acme-realm");
    assert_eq!(
        v.tenant.tier,
        Tier::Free,
        "no tier_map: roles are not tier names"
    );
    // `realm_access.roles` of the wrong type makes the token invalid.
    let mut bad = keycloak_payload(iss);
    bad["realm_access"]["roles"] = json!([1]);
    assert_eq!(
        invalid_claim(verify(&cfg, &sign(header, bad))),
        "/realm_access/roles must be a string or an array of strings"
    );
}

// Google ---------------------------------------------------------------------------------------

const GOOGLE_CLIENT: &str = "1234987819200-abc123def456.apps.googleusercontent.com";

fn google_payload(iss: &str) -> Value {
    json!({
        "iss": iss, "azp": GOOGLE_CLIENT, "aud": GOOGLE_CLIENT, "sub": "110169484474386276334",
        "hd": "example.com", "email": "ada@example.com", "email_verified": true,
        "at_hash": "HK6E_P6Dh8Y93mRNtsDB1Q", "iat": NOW, "exp": NOW + 3600
    })
}

/// A Google ID token (Google's access tokens are opaque): either issuer form, the Workspace
/// domain `hd` as the tenant, no scopes in the token, so the configuration fixes them.
#[test]
fn google_id_token_with_hosted_domain() {
    let cfg = edge(
        json!(["https://accounts.google.com", "accounts.google.com"]),
        json!([GOOGLE_CLIENT]),
        json!({"claims": {"preset": "google", "scopes": {"fixed": "mcp:read"}}}),
    );
    let header = json!({"alg": "RS256", "kid": KID, "typ": "JWT"});
    for iss in ["https://accounts.google.com", "accounts.google.com"] {
        let v = verify(&cfg, &sign(header.clone(), google_payload(iss))).unwrap();
        assert_eq!(v.tenant.tenant_id, "example.com");
        assert_eq!(v.tenant.user_id, "110169484474386276334");
        assert_eq!(v.tenant.scopes, ["mcp:read"]);
    }
    // A consumer account has no `hd`: no tenant, refused.
    assert_eq!(
        invalid_claim(verify(
            &cfg,
            &sign(
                header,
                without(google_payload("https://accounts.google.com"), "hd")
            )
        )),
        "hd is required"
    );
}

// docs/identity-providers.md -------------------------------------------------------------------

/// Every JSON block of the page is a plugin configuration fragment that parses (with the keys and
/// the fields a fragment does not repeat), and each provider has one.
#[test]
fn the_documented_configurations_parse() {
    let page = include_str!("../../docs/identity-providers.md");
    let fragments: Vec<&str> = page
        .split("```json\n")
        .skip(1)
        .filter_map(|rest| rest.split("```").next())
        .collect();
    assert_eq!(fragments.len(), 5, "one configuration per provider");
    let mut presets = Vec::new();
    for fragment in fragments {
        let v: Value = serde_json::from_str(fragment).unwrap_or_else(|e| panic!("{e}: {fragment}"));
        let cfg = edge(v["issuers"].clone(), v["audiences"].clone(), v.clone());
        assert_ne!(
            cfg.prepared.token_policy.claims,
            Default::default(),
            "{fragment}"
        );
        presets.push(v["claims"]["preset"].as_str().unwrap().to_string());
    }
    presets.sort();
    assert_eq!(presets, mcp_edge_filter::config::claims::PRESETS);
}
