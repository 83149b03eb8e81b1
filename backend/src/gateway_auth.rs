//! The gateway check on `/mcp`: the mcp-edge identity assertion (`x-mcp-identity`, trust contract
//! v3), verified by the `mcp-edge-trust` crate's tower layer, then the [`TenantContext`] built from
//! it.
//!
//! [`layers`] gives the two in the order they run: the trust layer buffers the body (the assertion
//! binds it), verifies the JWS, its names and times and the request binding, and answers anything
//! else 401 with a JSON-RPC error; [`tenant_context`] turns the verified caller into the
//! [`TenantContext`] tools read, and names it in the request's log span. The backend never reads
//! tenant identity from anywhere else. Any other Rust service behind the edge links the same crate.

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
pub use mcp_edge_trust::{DEFAULT_AUDIENCE, DEFAULT_ISSUER, PROTOCOL_VERSION, Trust, Vouched};

use crate::jsonrpc_error::{GATEWAY_AUTH_FAILED, error_response};
use crate::tenant::TenantContext;

/// The axum middleware after the trust layer: the verified caller becomes the request's
/// [`TenantContext`]. Without one (the layer is missing) the request is refused: fail closed.
pub async fn tenant_context(mut request: Request, next: Next) -> Response {
    let Some(vouched) = request.extensions_mut().remove::<Vouched>() else {
        tracing::error!("no verified caller on /mcp: the trust layer is not installed");
        return error_response(
            StatusCode::UNAUTHORIZED,
            GATEWAY_AUTH_FAILED,
            "request not authenticated by the mcp-edge gateway",
        );
    };
    let span = tracing::Span::current();
    span.record("tenant_id", vouched.identity.tenant_id.as_str());
    span.record("request_id", vouched.request_id.as_str());
    request
        .extensions_mut()
        .insert(TenantContext::from(vouched));
    next.run(request).await
}

#[cfg(test)]
pub(crate) mod signed_requests {
    //! Builds requests carrying an assertion made the way the filter makes it.
    use std::sync::Arc;

    use mcp_edge_contract::{
        AssertionSigner, Binding, GatewayKey, Identity, IdentityClaims, body_digest, headers,
    };

    use super::*;

    pub const SECRET: &[u8] = b"test-secret-test-secret-test-secret!";
    pub const NOW: u64 = 1_700_000_000;

    pub fn trust() -> Trust {
        Trust::new(SECRET, DEFAULT_ISSUER, DEFAULT_AUDIENCE)
            .expect("secret long enough")
            .with_clock(Arc::new(|| NOW))
    }

    /// A POST to `path` for `tenant` with `body`, signed at `time`.
    pub fn signed_request(
        tenant: &str,
        path: &str,
        body: &str,
        time: u64,
    ) -> axum::http::request::Builder {
        let identity = Identity {
            user_id: "user-1".into(),
            ..Identity::example(tenant)
        };
        let digest = body_digest(body.as_bytes());
        let key = GatewayKey::new(SECRET).expect("secret long enough");
        let token = AssertionSigner::new(&key, DEFAULT_ISSUER, DEFAULT_AUDIENCE)
            .sign(
                &IdentityClaims::new(&identity).expect("signable"),
                &Binding {
                    method: "POST",
                    path,
                    protocol_version: "",
                    request_id: "req-1",
                    issued_at: time,
                    body_digest: &digest,
                },
            )
            .expect("signable request");
        axum::http::Request::builder()
            .method("POST")
            .uri(path)
            .header(headers::IDENTITY, token)
    }
}

#[cfg(test)]
mod tests {
    use super::signed_requests::*;
    use super::*;
    use axum::Router;
    use axum::body::{Body, Bytes};
    use axum::routing::post;
    use http_body_util::BodyExt as _;
    use tower::ServiceExt as _;

    /// A router whose handler echoes the tenant it was given; `with_trust` false leaves the
    /// trust layer out (a misassembled app).
    fn router(with_trust: bool) -> Router {
        let router = Router::new()
            .route(
                "/mcp",
                post(
                    |axum::Extension(t): axum::Extension<TenantContext>, body: Bytes| async move {
                        format!("{}|{}|{}", t.tenant_id, t.request_id, body.len())
                    },
                ),
            )
            .route_layer(axum::middleware::from_fn(tenant_context));
        if with_trust {
            router.route_layer(trust().layer())
        } else {
            router
        }
    }

    async fn call(router: Router, request: Request) -> (StatusCode, String) {
        let response = router.oneshot(request).await.expect("infallible");
        let status = response.status();
        let body = response.into_body().collect().await.expect("body");
        (
            status,
            String::from_utf8_lossy(&body.to_bytes()).into_owned(),
        )
    }

    #[tokio::test]
    async fn a_verified_request_reaches_the_tool_with_its_tenant() {
        let request = signed_request("acme", "/mcp", "{\"a\":1}", NOW)
            .body(Body::from("{\"a\":1}"))
            .unwrap();
        assert_eq!(
            call(router(true), request).await,
            (StatusCode::OK, "acme|req-1|7".into())
        );
    }

    #[tokio::test]
    async fn tampering_or_no_layer_is_refused() {
        let tampered = signed_request("acme", "/mcp", "{\"a\":1}", NOW)
            .body(Body::from("{\"a\":2}"))
            .unwrap();
        let (status, body) = call(router(true), tampered).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(body.contains("body_sha256"), "{body}");
        assert!(body.contains(&GATEWAY_AUTH_FAILED.to_string()), "{body}");

        let fine = signed_request("acme", "/mcp", "{}", NOW)
            .body(Body::from("{}"))
            .unwrap();
        let (status, body) = call(router(false), fine).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    }
}
