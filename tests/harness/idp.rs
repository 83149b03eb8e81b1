//! Helpers of the identity-provider tests (`idp_*.rs`): tokens with a provider's claims, signed by
//! the stack's issuer key, and what the edge made of them, on either side of Envoy.

use anyhow::{Context as _, Result, ensure};
use jwt_simple::prelude::*;
use serde_json::{Map, Value, json};

use crate::client::{call_body, header, marker, post_mcp};
use crate::recorder::Recorded;
use crate::stack::Stack;

/// A provider's claims: its issuer, audiences and subject, and every other claim in `custom`
/// (an object), valid for ten minutes from now.
pub fn provider_claims(
    issuer: &str,
    audiences: &[&str],
    subject: &str,
    custom: Value,
) -> Result<JWTClaims<Map<String, Value>>> {
    let custom = match custom {
        Value::Object(map) => map,
        other => anyhow::bail!("custom claims must be an object, not {other}"),
    };
    let claims = Claims::with_custom_claims(custom, Duration::from_secs(600))
        .with_issuer(issuer)
        .with_subject(subject);
    Ok(match audiences {
        [one] => claims.with_audience(*one),
        many => claims.with_audiences(many.iter().map(|a| a.to_string()).collect()),
    })
}

/// Calls `list_projects` through the recording listener with `token` and returns the request the
/// upstream received (the identity headers the edge vouched for).
pub fn forwarded_call(s: &Stack, token: &str, name: &str) -> Result<Recorded> {
    let m = marker(name);
    let resp = post_mcp(&s.recorded_mcp_url, Some(token), &call_body(&m))?;
    let status = resp.status().as_u16();
    ensure!(status == 200, "{name}: {status} {}", resp.text()?);
    let got = s.recorder.with_marker(&m);
    ensure!(got.len() == 1, "{name}: forwarded {} times", got.len());
    Ok(got[0].clone())
}

/// Calls `list_projects` through Envoy on the real backend, which checks the edge's signature
/// over the identity; fails unless the tool ran.
pub fn backend_call(s: &Stack, token: &str) -> Result<()> {
    let resp = post_mcp(&s.mcp_url, Some(token), &call_body(&marker("idp-backend")))?;
    let status = resp.status().as_u16();
    let text = resp.text()?;
    ensure!(status == 200, "backend call: {status} {text}");
    let v: Value = serde_json::from_str(&text).with_context(|| format!("not JSON: {text}"))?;
    ensure!(v["result"]["isError"] == json!(false), "tool failed: {v}");
    Ok(())
}

/// A refused request's status, `WWW-Authenticate` and body; fails if the upstream received it.
pub fn refused(s: &Stack, token: &str, tool: &str, name: &str) -> Result<(u16, String, String)> {
    let m = marker(name);
    let body = json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call",
                      "params": {"name": tool, "arguments": {}, "_meta": {"marker": m}}});
    let resp = post_mcp(&s.recorded_mcp_url, Some(token), &body.to_string())?;
    let status = resp.status().as_u16();
    let challenge = header(&resp, "www-authenticate");
    let text = resp.text()?;
    ensure!(
        s.recorder.with_marker(&m).is_empty(),
        "{name}: the upstream received a refused request"
    );
    Ok((status, challenge, text))
}
