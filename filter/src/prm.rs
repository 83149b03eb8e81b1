//! OAuth 2.0 Protected Resource Metadata (RFC 9728), served by the edge itself.
//!
//! An MCP client that knows only the server's URL gets a 401 whose `WWW-Authenticate` points here;
//! this document tells it which authorization servers issue tokens for this resource.

use serde_json::{Value, json};

use crate::config::{EdgeConfig, split_uri};

pub const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

/// The path-suffixed metadata path for the resource (RFC 9728 §3.1), e.g.
/// `/.well-known/oauth-protected-resource/mcp` for `https://h/mcp`.
pub fn metadata_path(cfg: &EdgeConfig) -> String {
    match split_uri(&cfg.resource) {
        Some((_, "/")) | None => WELL_KNOWN.to_string(),
        Some((_, path)) => format!("{WELL_KNOWN}{path}"),
    }
}

/// The absolute URL put in `WWW-Authenticate: Bearer resource_metadata="…"`.
pub fn metadata_url(cfg: &EdgeConfig) -> String {
    format!("{}{}", cfg.resource_origin, metadata_path(cfg))
}

/// Whether `path` (without query) is one of the paths this document is served at: the bare
/// well-known path and the path-suffixed form for the resource and for every MCP path.
pub fn is_metadata_path(cfg: &EdgeConfig, path: &str) -> bool {
    if path == WELL_KNOWN || path == cfg.prepared.metadata_path {
        return true;
    }
    path.strip_prefix(WELL_KNOWN)
        .is_some_and(|suffix| cfg.mcp_paths.iter().any(|p| p == suffix))
}

/// The metadata document.
pub fn document(cfg: &EdgeConfig) -> Value {
    let mut doc = json!({
        "resource": cfg.resource,
        "authorization_servers": cfg.prm.authorization_servers,
        "scopes_supported": cfg.prm.scopes_supported,
        "bearer_methods_supported": ["header"],
    });
    if let Some(d) = &cfg.prm.resource_documentation {
        doc["resource_documentation"] = json!(d);
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_config;

    fn cfg(resource: &str) -> EdgeConfig {
        let v = json!({
            "resource": resource,
            "issuers": ["https://as"],
            "jwks": {"remote": {"cluster": "c", "path": "/jwks", "authority": "as"}},
            "gateway_secret": {"inline": "0123456789abcdef0123456789abcdef"},
            "prm": {"authorization_servers": ["https://as"], "scopes_supported": ["mcp:read", "mcp:write"],
                    "resource_documentation": "https://docs"},
            "tool_scopes": {}
        });
        parse_config(v.to_string().as_bytes(), &|_| None).unwrap()
    }

    #[test]
    fn paths_and_url() {
        let c = cfg("https://mcp.example.com/mcp");
        assert_eq!(
            metadata_path(&c),
            "/.well-known/oauth-protected-resource/mcp"
        );
        assert_eq!(
            metadata_url(&c),
            "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
        );
        assert!(is_metadata_path(
            &c,
            "/.well-known/oauth-protected-resource"
        ));
        assert!(is_metadata_path(
            &c,
            "/.well-known/oauth-protected-resource/mcp"
        ));
        assert!(!is_metadata_path(
            &c,
            "/.well-known/oauth-protected-resource/other"
        ));
        let root = cfg("https://mcp.example.com");
        assert_eq!(
            metadata_url(&root),
            "https://mcp.example.com/.well-known/oauth-protected-resource"
        );
    }

    #[test]
    fn document_fields() {
        let d = document(&cfg("https://mcp.example.com/mcp"));
        assert_eq!(d["resource"], "https://mcp.example.com/mcp");
        assert_eq!(d["authorization_servers"], json!(["https://as"]));
        assert_eq!(d["scopes_supported"], json!(["mcp:read", "mcp:write"]));
        assert_eq!(d["bearer_methods_supported"], json!(["header"]));
        assert_eq!(d["resource_documentation"], "https://docs");
    }
}
