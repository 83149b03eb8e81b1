//! CORS for browser-based MCP clients, from the `allowed_origins` of the plugin configuration.
//!
//! A browser may call the MCP endpoint only from an allowed origin: its preflight (`OPTIONS`) is
//! answered here, and every answer to it (allowed or refused) names the origin and exposes the
//! headers a client needs to read, above all `WWW-Authenticate`, which starts OAuth discovery.
//! The resource's own origin is always allowed: a page served from it is same-origin, and MCP's
//! DNS-rebinding rule refuses foreign origins, not the server's own.

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

/// The origin a browser sends for pages at `origin` (`scheme://authority` of an http(s) URI):
/// scheme and host in lower case, the scheme's default port left out (RFC 6454).
pub fn browser_origin(origin: &str) -> String {
    let lower = origin.to_ascii_lowercase();
    let default_port = if lower.starts_with("https://") {
        ":443"
    } else {
        ":80"
    };
    match lower.strip_suffix(default_port) {
        Some(without) if !without.ends_with(':') => without.to_string(),
        _ => lower,
    }
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

    fn config_json() -> serde_json::Value {
        json!({
            "resource": "https://mcp.example/mcp",
            "issuers": ["https://as"],
            "jwks": {"remote": {"cluster": "c", "path": "/jwks", "authority": "as"}},
            "gateway_secret": {"inline": "0123456789abcdef0123456789abcdef"},
            "prm": {"authorization_servers": ["https://as"], "scopes_supported": ["mcp:read", "mcp:write"]},
            "tool_scopes": {},
            "allowed_origins": ["http://localhost:6274"]
        })
    }

    fn cfg() -> EdgeConfig {
        parse_config(config_json().to_string().as_bytes(), &|_| None).unwrap()
    }

    fn cfg_for(resource: &str) -> EdgeConfig {
        let mut v = config_json();
        v["resource"] = json!(resource);
        parse_config(v.to_string().as_bytes(), &|_| None).unwrap()
    }

    #[test]
    fn the_resources_own_origin_is_allowed_and_no_other() {
        for (resource, own) in [
            ("https://mcp.example/mcp", "https://mcp.example"),
            ("https://MCP.Example:443/mcp", "https://mcp.example"),
            ("http://127.0.0.1:8080/mcp", "http://127.0.0.1:8080"),
            ("http://mcp.example:80/x/mcp", "http://mcp.example"),
        ] {
            let c = cfg_for(resource);
            assert_eq!(
                allowed_origin(&c, Some(own.as_bytes())),
                Some(own),
                "{resource}"
            );
            for other in [
                "https://evil.example",
                "http://127.0.0.1:8081",
                "https://mcp.example:8443",
                "http://localhost:8080",
            ] {
                if other != own {
                    assert_eq!(allowed_origin(&c, Some(other.as_bytes())), None, "{other}");
                }
            }
            assert_eq!(
                allowed_origin(&c, Some(b"http://localhost:6274")),
                Some("http://localhost:6274"),
                "the listed origins as before"
            );
        }
        assert_eq!(browser_origin("http://a:8080"), "http://a:8080");
        assert_eq!(browser_origin("https://a:80"), "https://a:80");
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
