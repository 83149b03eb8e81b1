//! CORS for browser-based MCP clients, from the `allowed_origins` of the plugin configuration.
//!
//! A browser may call the MCP endpoint only from an allowed origin: its preflight (`OPTIONS`) is
//! answered here, and every answer to it (allowed or refused) names the origin and exposes the
//! headers a client needs to read, above all `WWW-Authenticate`, which starts OAuth discovery.

use crate::config::EdgeConfig;

const ALLOW_METHODS: &str = "GET, POST, DELETE";
const ALLOW_HEADERS: &str = "authorization, content-type, accept, mcp-protocol-version, mcp-session-id, mcp-method, mcp-name, last-event-id";
const EXPOSE_HEADERS: &str = "www-authenticate, mcp-session-id, mcp-protocol-version, ratelimit, ratelimit-policy, retry-after";

/// The allowed origin of a request, as sent (`None`: no `Origin`, or one not allowed).
pub fn allowed_origin<'a>(cfg: &EdgeConfig, origin: Option<&'a [u8]>) -> Option<&'a str> {
    let o = std::str::from_utf8(origin?).ok()?;
    cfg.allowed_origins
        .contains(o.trim_end_matches('/'))
        .then_some(o)
}

/// Headers for any answer to a request from `origin` (an allowed one).
pub fn response_headers(origin: &str) -> Vec<(String, String)> {
    vec![
        ("access-control-allow-origin".into(), origin.to_string()),
        (
            "access-control-expose-headers".into(),
            EXPOSE_HEADERS.into(),
        ),
        ("vary".into(), "Origin".into()),
    ]
}

/// Headers for the answer to a preflight from `origin` (an allowed one).
pub fn preflight_headers(origin: &str) -> Vec<(String, String)> {
    let mut h = response_headers(origin);
    h.push(("access-control-allow-methods".into(), ALLOW_METHODS.into()));
    h.push(("access-control-allow-headers".into(), ALLOW_HEADERS.into()));
    h.push(("access-control-max-age".into(), "600".into()));
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_config;
    use serde_json::json;

    fn cfg() -> EdgeConfig {
        let v = json!({
            "resource": "https://mcp.example/mcp",
            "issuers": ["https://as"],
            "jwks": {"remote": {"cluster": "c", "path": "/jwks", "authority": "as"}},
            "gateway_secret": {"inline": "0123456789abcdef0123456789abcdef"},
            "prm": {"authorization_servers": ["https://as"], "scopes_supported": ["mcp:read", "mcp:write"]},
            "tool_scopes": {},
            "allowed_origins": ["http://localhost:6274"]
        });
        parse_config(v.to_string().as_bytes(), &|_| None).unwrap()
    }

    #[test]
    fn only_allowed_origins_get_cors_headers() {
        let c = cfg();
        assert_eq!(
            allowed_origin(&c, Some(b"http://localhost:6274")),
            Some("http://localhost:6274")
        );
        assert_eq!(allowed_origin(&c, Some(b"https://evil.example")), None);
        assert_eq!(allowed_origin(&c, Some(b"\xff")), None);
        assert_eq!(allowed_origin(&c, None), None);
        let h = preflight_headers("http://localhost:6274");
        let get = |n: &str| h.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        assert_eq!(
            get("access-control-allow-origin"),
            Some("http://localhost:6274")
        );
        assert!(
            get("access-control-allow-headers")
                .unwrap()
                .contains("authorization")
        );
        assert!(
            get("access-control-expose-headers")
                .unwrap()
                .contains("www-authenticate")
        );
    }
}
