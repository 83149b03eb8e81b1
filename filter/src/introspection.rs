//! Opaque access tokens (RFC 7662): the introspection request the edge sends, and the answer → the
//! caller's [`TenantContext`] or a refusal. Pure values, so all of it runs under `cargo test`; the
//! glue only dispatches the request and hands the answer back.
//!
//! An active answer gets the checks a JWT gets where RFC 7662 has the field: `exp` required and not
//! past (with the configured leeway), `nbf` not in the future, `iss` one of `issuers` when the answer
//! names one, `aud` required and one of `audiences`. The tenant, user, scopes, … come from the
//! answer's members through the same claim mapping as a JWT's claims; `sub` defaults to `client_id`
//! (a client-credentials token has no user, and RFC 7662 makes `sub` optional).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value};

use crate::config::Introspection;
use crate::tenant::tenant_context;
use crate::token::{TokenError, TokenPolicy, VerifiedToken};

/// Whether a bearer token has the shape of a JWS compact serialization (three base64url parts);
/// anything else is an opaque token.
pub fn looks_like_jwt(token: &str) -> bool {
    let parts: Vec<&str> = token.split('.').collect();
    parts.len() == 3
        && parts[..2].iter().all(|p| !p.is_empty())
        && parts.iter().all(|p| {
            p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// An HTTP call to the introspection endpoint, ready to dispatch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntrospectionCall {
    pub cluster: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub timeout_ms: u64,
}

/// RFC 6749 §2.3.1's form encoding of client credentials, before they are joined for Basic auth.
fn form_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(char::from(b))
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The POST that asks about `token`, authenticated with HTTP Basic (client_secret_basic).
pub fn request(cfg: &Introspection, token: &str) -> IntrospectionCall {
    let credentials = format!(
        "{}:{}",
        form_encode(&cfg.client_id),
        form_encode(&cfg.client_secret)
    );
    let body = format!("token={}&token_type_hint=access_token", form_encode(token));
    IntrospectionCall {
        cluster: cfg.cluster.clone(),
        headers: vec![
            (":method".into(), "POST".into()),
            (":path".into(), cfg.path.clone()),
            (":authority".into(), cfg.authority.clone()),
            (
                "content-type".into(),
                "application/x-www-form-urlencoded".into(),
            ),
            ("accept".into(), "application/json".into()),
            (
                "authorization".into(),
                format!("Basic {}", STANDARD.encode(credentials)),
            ),
        ],
        body: body.into_bytes(),
        timeout_ms: cfg.timeout_ms,
    }
}

/// A number of seconds as RFC 7662 sends it (an integer; a float is truncated).
fn seconds(answer: &Map<String, Value>, name: &str) -> Result<Option<u64>, TokenError> {
    match answer.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
            .map(Some)
            .ok_or(TokenError::IntrospectionFailed),
        Some(_) => Err(TokenError::IntrospectionFailed),
    }
}

/// Judges the endpoint's answer (`status` is the `:status` header, `None` on a timeout or reset).
pub fn judge_answer(
    status: Option<&str>,
    body: &[u8],
    policy: &TokenPolicy,
    now: u64,
) -> Result<VerifiedToken, TokenError> {
    if status != Some("200") {
        return Err(TokenError::IntrospectionFailed);
    }
    let Ok(Value::Object(mut answer)) = serde_json::from_slice::<Value>(body) else {
        return Err(TokenError::IntrospectionFailed);
    };
    match answer.get("active") {
        Some(Value::Bool(true)) => {}
        Some(Value::Bool(false)) => return Err(TokenError::Inactive),
        _ => return Err(TokenError::IntrospectionFailed),
    }
    let expires_at = seconds(&answer, "exp")?.ok_or(TokenError::MissingExpiry)?;
    if now > expires_at.saturating_add(policy.leeway_seconds) {
        return Err(TokenError::Expired);
    }
    if let Some(nbf) = seconds(&answer, "nbf")?
        && nbf > now.saturating_add(policy.leeway_seconds)
    {
        return Err(TokenError::NotYetValid);
    }
    match answer.get("iss") {
        None => {}
        Some(Value::String(iss)) if policy.issuers.contains(iss) => {}
        Some(_) => return Err(TokenError::WrongIssuer),
    }
    let for_us = match answer.get("aud") {
        Some(Value::String(aud)) => policy.audiences.contains(aud),
        Some(Value::Array(auds)) => auds
            .iter()
            .any(|a| a.as_str().is_some_and(|a| policy.audiences.contains(a))),
        _ => false,
    };
    if !for_us {
        return Err(TokenError::WrongAudience);
    }
    if !answer.contains_key("sub")
        && let Some(client) = answer.get("client_id").cloned()
    {
        answer.insert("sub".into(), client);
    }
    let tenant = tenant_context(&policy.claims, &answer).map_err(TokenError::InvalidClaim)?;
    Ok(VerifiedToken { tenant, expires_at })
}

/// Until when an active answer may be served from the cache: the token's `exp`, and no longer
/// than `max_cache_seconds` from now.
pub fn cache_until(verified: &VerifiedToken, cfg: &Introspection, now: u64) -> u64 {
    verified
        .expires_at
        .min(now.saturating_add(cfg.max_cache_seconds))
}

/// The token shape used by the tests of this module and the gate's: an opaque random string.
#[cfg(test)]
pub(crate) fn opaque_token(seed: u8) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([seed; 32])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenant::Tier;
    use serde_json::json;

    const NOW: u64 = 1_800_000_000;

    fn cfg() -> Introspection {
        Introspection {
            cluster: "authz".into(),
            path: "/token/introspection".into(),
            authority: "127.0.0.1:9100".into(),
            client_id: "mcp-edge".into(),
            client_secret: "s3cret:with space".into(),
            timeout_ms: 1500,
            max_cache_seconds: 60,
        }
    }

    fn policy() -> TokenPolicy {
        TokenPolicy {
            issuers: ["http://127.0.0.1:9100".to_string()].into(),
            audiences: ["http://127.0.0.1:8080/mcp".to_string()].into(),
            leeway_seconds: 30,
            ..TokenPolicy::default()
        }
    }

    /// What authz/ (oidc-provider) answers for a client-credentials token of the demo directory.
    fn active() -> Value {
        json!({"active": true, "tenant_id": "acme", "rate_limit_tier": "pro",
               "data_scope": "team:engineering", "allowed_tools": ["list_projects"],
               "client_id": "acme-reporting-agent", "exp": NOW + 3000, "iat": NOW - 600,
               "iss": "http://127.0.0.1:9100", "aud": "http://127.0.0.1:8080/mcp",
               "scope": "mcp:read mcp:write", "token_type": "Bearer"})
    }

    type Edit = fn(&mut Map<String, Value>);

    fn judge(answer: &Value) -> Result<VerifiedToken, TokenError> {
        judge_answer(Some("200"), answer.to_string().as_bytes(), &policy(), NOW)
    }

    fn edited(edit: impl FnOnce(&mut Map<String, Value>)) -> Value {
        let mut a = active();
        if let Value::Object(m) = &mut a {
            edit(m);
        }
        a
    }

    #[test]
    fn jwts_and_opaque_tokens_are_told_apart() {
        assert!(looks_like_jwt("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"));
        assert!(looks_like_jwt("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."));
        assert!(!looks_like_jwt(&opaque_token(7)));
        assert!(!looks_like_jwt(
            "cvRiSc1R1skgG4wNvd1JdOGgXYVsB4XTI0psVB99ThX"
        ));
        assert!(!looks_like_jwt("a.b"));
        assert!(!looks_like_jwt("a.b.c.d.e"), "JWE is not accepted as a JWT");
        assert!(!looks_like_jwt("a+b.c.d"));
    }

    #[test]
    fn request_is_a_basic_authenticated_form_post() {
        let call = request(&cfg(), "tok+en/=");
        assert_eq!(call.cluster, "authz");
        assert_eq!(call.timeout_ms, 1500);
        assert_eq!(
            call.body,
            b"token=tok%2Ben%2F%3D&token_type_hint=access_token"
        );
        let header = |n: &str| {
            call.headers
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(header(":method").as_deref(), Some("POST"));
        assert_eq!(header(":path").as_deref(), Some("/token/introspection"));
        assert_eq!(
            header("content-type").as_deref(),
            Some("application/x-www-form-urlencoded")
        );
        let basic = header("authorization").expect("authorization");
        let decoded = STANDARD
            .decode(basic.strip_prefix("Basic ").expect("Basic"))
            .expect("base64");
        // RFC 6749 §2.3.1: id and secret form-encoded before joining (':' and ' ' escaped).
        assert_eq!(decoded, b"mcp-edge:s3cret%3Awith+space");
    }

    #[test]
    fn an_active_answer_becomes_the_tenant_with_client_id_as_user() {
        let v = judge(&active()).expect("active");
        assert_eq!(v.expires_at, NOW + 3000);
        assert_eq!(v.tenant.tenant_id, "acme");
        assert_eq!(v.tenant.user_id, "acme-reporting-agent");
        assert_eq!(v.tenant.tier, Tier::Pro);
        assert!(v.tenant.scopes.iter().any(|s| s == "mcp:write"));
        assert_eq!(
            v.tenant.allowed_tools,
            Some(vec!["list_projects".to_string()])
        );
        let with_sub = judge(&edited(|m| {
            m.insert("sub".into(), json!("alice"));
        }))
        .expect("active");
        assert_eq!(with_sub.tenant.user_id, "alice");
        let aud_list = edited(|m| {
            m.insert("aud".into(), json!(["other", "http://127.0.0.1:8080/mcp"]));
        });
        assert!(judge(&aud_list).is_ok());
    }

    #[test]
    fn inactive_failed_and_foreign_answers_are_refused() {
        assert_eq!(judge(&json!({"active": false})), Err(TokenError::Inactive));
        let failed = Err(TokenError::IntrospectionFailed);
        let body = active().to_string();
        assert_eq!(
            judge_answer(Some("401"), body.as_bytes(), &policy(), NOW),
            failed
        );
        assert_eq!(judge_answer(None, b"", &policy(), NOW), failed, "timeout");
        assert_eq!(judge_answer(Some("200"), b"<html>", &policy(), NOW), failed);
        assert_eq!(judge(&json!({"active": "true"})), failed);
        assert_eq!(judge(&json!([1])), failed);
        let cases: [(Edit, TokenError); 7] = [
            (
                |m| {
                    m.remove("exp");
                },
                TokenError::MissingExpiry,
            ),
            (
                |m| {
                    m.insert("exp".into(), json!(NOW - 31));
                },
                TokenError::Expired,
            ),
            (
                |m| {
                    m.insert("exp".into(), json!("soon"));
                },
                TokenError::IntrospectionFailed,
            ),
            (
                |m| {
                    m.insert("nbf".into(), json!(NOW + 31));
                },
                TokenError::NotYetValid,
            ),
            (
                |m| {
                    m.insert("iss".into(), json!("https://evil"));
                },
                TokenError::WrongIssuer,
            ),
            (
                |m| {
                    m.insert("aud".into(), json!("http://127.0.0.1:8080/other"));
                },
                TokenError::WrongAudience,
            ),
            (
                |m| {
                    m.remove("aud");
                },
                TokenError::WrongAudience,
            ),
        ];
        for (edit, want) in cases {
            assert_eq!(judge(&edited(edit)), Err(want));
        }
        let no_tenant = edited(|m| {
            m.remove("tenant_id");
        });
        assert!(matches!(
            judge(&no_tenant),
            Err(TokenError::InvalidClaim(_))
        ));
        // Without `iss` the answer is taken as the configured endpoint's (RFC 7662 makes it optional).
        assert!(
            judge(&edited(|m| {
                m.remove("iss");
            }))
            .is_ok()
        );
    }

    #[test]
    fn cache_lasts_until_exp_or_the_maximum() {
        let v = judge(&active()).expect("active");
        assert_eq!(cache_until(&v, &cfg(), NOW), NOW + 60);
        let short = VerifiedToken {
            expires_at: NOW + 10,
            ..v
        };
        assert_eq!(cache_until(&short, &cfg(), NOW), NOW + 10);
    }
}
