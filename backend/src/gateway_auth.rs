//! Verifies the gateway signature on every request to the MCP route and builds the [`TenantContext`].
//!
//! The mcp-edge filter is the only writer of `x-mcp-*` headers and signs them, with the method, the
//! path and the body digest, using the shared secret (see the `mcp-edge-contract` crate). This layer
//! buffers the body (it is part of the signature), recomputes the signature, checks freshness and
//! refuses anything else with 401 and a JSON-RPC error body. Only a verified request goes on, rebuilt
//! with the buffered body and a [`TenantContext`] in its extensions. The backend never reads tenant
//! identity from anywhere else.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use mcp_edge_contract::{self as contract, HeaderError, RequestLine, headers};

/// The MCP header the signature covers besides the trusted ones.
pub(crate) const PROTOCOL_VERSION: &str = "mcp-protocol-version";

use crate::jsonrpc_error::{GATEWAY_AUTH_FAILED, INVALID_REQUEST, error_response};
use crate::tenant::TenantContext;

/// The largest request body the backend buffers unless configured otherwise (bytes); the same
/// default as the filter's `max_body_bytes`. Larger ones get 413.
pub const MAX_BODY_BYTES: usize = contract::limits::DEFAULT_MAX_BODY_BYTES;

/// Unix seconds now; replaceable in tests.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// What the layer needs: the shared secret and a clock.
#[derive(Clone)]
pub struct GatewayAuth {
    secret: Arc<[u8]>,
    clock: Clock,
    max_body_bytes: usize,
}

impl std::fmt::Debug for GatewayAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayAuth")
            .field("secret", &"<redacted>")
            .finish_non_exhaustive()
    }
}

impl GatewayAuth {
    /// Fails when the secret is shorter than [`contract::MIN_SECRET_LEN`].
    pub fn new(secret: impl Into<Vec<u8>>) -> Result<Self, contract::ContractError> {
        let secret: Vec<u8> = secret.into();
        if secret.len() < contract::MIN_SECRET_LEN {
            return Err(contract::ContractError::SecretTooShort);
        }
        Ok(Self {
            secret: secret.into(),
            clock: Arc::new(system_now),
            max_body_bytes: MAX_BODY_BYTES,
        })
    }

    /// Buffer bodies up to `bytes` (at most [`contract::limits::MAX_BODY_BYTES_CEILING`]); keep it
    /// equal to the filter's `max_body_bytes`.
    pub fn with_max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = bytes.clamp(1, contract::limits::MAX_BODY_BYTES_CEILING);
        self
    }

    /// Use another clock (this module's tests).
    #[cfg(test)]
    pub(crate) fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }
}

fn system_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Why a request was refused. The message is safe to show to the client.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Rejection {
    #[error("missing trusted header {0}")]
    Missing(&'static str),
    #[error("trusted header {0} is repeated")]
    Repeated(String),
    #[error("trusted header {0} is not valid UTF-8")]
    NotUtf8(&'static str),
    #[error("trusted header {0} is malformed")]
    Malformed(&'static str),
    #[error("gateway signature rejected: {0}")]
    Contract(contract::ContractError),
    #[error("request body exceeds {0} bytes")]
    TooLarge(usize),
    #[error("request body could not be read")]
    BodyUnreadable,
}

impl From<contract::ContractError> for Rejection {
    fn from(e: contract::ContractError) -> Self {
        match e {
            contract::ContractError::Header(HeaderError::Missing(name)) => Self::Missing(name),
            contract::ContractError::Header(HeaderError::Malformed(name)) => Self::Malformed(name),
            other => Self::Contract(other),
        }
    }
}

impl Rejection {
    fn into_response(self) -> Response {
        match self {
            Self::TooLarge(_) => error_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                INVALID_REQUEST,
                &self.to_string(),
            ),
            Self::BodyUnreadable => {
                error_response(StatusCode::BAD_REQUEST, INVALID_REQUEST, &self.to_string())
            }
            other => error_response(
                StatusCode::UNAUTHORIZED,
                GATEWAY_AUTH_FAILED,
                &format!(
                    "request not authenticated by the mcp-edge gateway ({other}); send it through the gateway"
                ),
            ),
        }
    }
}

/// The axum middleware: `axum::middleware::from_fn_with_state(gateway_auth, authenticate)`.
pub async fn authenticate(
    State(auth): State<GatewayAuth>,
    request: Request,
    next: Next,
) -> Response {
    match verify_request(&auth, request).await {
        Ok((request, tenant)) => {
            tracing::Span::current().record("tenant_id", tenant.tenant_id.as_str());
            next.run(request).await
        }
        Err(rejection) => {
            tracing::warn!(reason = %rejection, "gateway authentication refused the request");
            rejection.into_response()
        }
    }
}

/// Checks a request and returns it rebuilt, with the body buffered and a [`TenantContext`] in its
/// extensions.
pub async fn verify_request(
    auth: &GatewayAuth,
    request: Request,
) -> Result<(Request, TenantContext), Rejection> {
    let (mut parts, body) = request.into_parts();

    // Every x-mcp-* header must appear at most once: a repeated one means someone other than the
    // filter spoke, or a proxy merged two requests' worth of headers.
    for name in parts.headers.keys() {
        if name.as_str().starts_with(headers::PREFIX)
            && parts.headers.get_all(name).iter().nth(1).is_some()
        {
            return Err(Rejection::Repeated(name.as_str().to_owned()));
        }
    }

    // The value of each trusted header, read once; the contract decodes and verifies them.
    let mut values: Vec<(&'static str, &str)> = Vec::with_capacity(headers::ALL.len());
    for name in headers::ALL {
        let value = parts.headers.get(name).ok_or(Rejection::Missing(name))?;
        values.push((name, value.to_str().map_err(|_| Rejection::NotUtf8(name))?));
    }
    let h = &parts.headers;

    // Refuse early on a declared length over the cap; the limited read below catches the rest.
    if let Some(len) = h
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        && len > auth.max_body_bytes as u64
    {
        return Err(Rejection::TooLarge(auth.max_body_bytes));
    }
    let body: Bytes = match Limited::new(body, auth.max_body_bytes).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(err) if err.downcast_ref::<LengthLimitError>().is_some() => {
            return Err(Rejection::TooLarge(auth.max_body_bytes));
        }
        Err(_) => return Err(Rejection::BodyUnreadable),
    };

    let path = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let header = |name: &'static str| values.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
    let protocol_version = match parts.headers.get(PROTOCOL_VERSION) {
        Some(v) => v
            .to_str()
            .map_err(|_| Rejection::NotUtf8(PROTOCOL_VERSION))?,
        None => "",
    };
    let line = RequestLine {
        method: parts.method.as_str(),
        path,
        protocol_version,
    };
    let vouched = contract::verify_vouched(&auth.secret, header, &line, &body, (auth.clock)())
        .map_err(Rejection::from)?;
    let tenant = TenantContext::from(vouched);
    parts.extensions.insert(tenant.clone());
    Ok((Request::from_parts(parts, Body::from(body)), tenant))
}

#[cfg(test)]
pub(crate) mod signed_requests {
    //! Builds requests signed the way the filter signs them.
    use super::*;
    use mcp_edge_contract::{Identity, RequestFacts};

    pub const SECRET: &[u8] = b"test-secret-test-secret-test-secret!";
    pub const NOW: u64 = 1_700_000_000;

    pub fn auth() -> GatewayAuth {
        GatewayAuth::new(SECRET)
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
        let digest = contract::body_digest(body.as_bytes());
        let facts = RequestFacts {
            method: "POST",
            path,
            protocol_version: "",
            request_id: "req-1",
            gateway_time: time,
            body_digest: &digest,
        };
        let vouched = contract::vouch_headers(SECRET, &identity, &facts).expect("sign");
        let mut builder = axum::http::Request::builder().method("POST").uri(path);
        for (name, value) in vouched {
            builder = builder.header(name, value);
        }
        builder
    }
}

#[cfg(test)]
mod tests {
    use super::signed_requests::*;
    use super::*;
    use axum::Router;
    use axum::routing::post;
    use tower::ServiceExt as _;

    /// A router whose handler echoes the tenant it was given.
    fn router() -> Router {
        Router::new()
            .route(
                "/mcp",
                post(
                    |axum::Extension(t): axum::Extension<TenantContext>, body: Bytes| async move {
                        format!(
                            "{}|{}|{}|{}",
                            t.tenant_id,
                            t.scopes.join(","),
                            t.team().unwrap_or("-"),
                            body.len()
                        )
                    },
                ),
            )
            .route_layer(axum::middleware::from_fn_with_state(auth(), authenticate))
    }

    async fn call(request: Request) -> (StatusCode, String) {
        let response = router().oneshot(request).await.expect("infallible");
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    fn assert_refused(status: StatusCode, body: &str, needle: &str) {
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        let json: serde_json::Value = serde_json::from_str(body).expect("json body");
        assert_eq!(json["jsonrpc"], "2.0");
        assert!(json["id"].is_null());
        assert_eq!(json["error"]["code"], GATEWAY_AUTH_FAILED);
        let message = json["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(needle),
            "{message:?} should mention {needle:?}"
        );
    }

    #[tokio::test]
    async fn accepts_a_correctly_signed_request() {
        let req = signed_request("acme", "/mcp", "{\"a\":1}", NOW)
            .body(Body::from("{\"a\":1}"))
            .unwrap();
        let (status, body) = call(req).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body, "acme|mcp:read,mcp:write|engineering|7");
    }

    #[tokio::test]
    async fn accepts_within_the_skew_window() {
        let req = signed_request("acme", "/mcp", "", NOW - 30)
            .body(Body::empty())
            .unwrap();
        assert_eq!(call(req).await.0, StatusCode::OK);
    }

    #[tokio::test]
    async fn rejects_a_missing_header() {
        for name in [
            headers::TENANT_ID,
            headers::USER_ID,
            headers::SCOPES,
            headers::DATA_SCOPE,
            headers::TIER,
            headers::REQUEST_ID,
            headers::GATEWAY_TIME,
            headers::GATEWAY_SIGNATURE,
        ] {
            let mut req = signed_request("acme", "/mcp", "{}", NOW)
                .body(Body::from("{}"))
                .unwrap();
            req.headers_mut().remove(name);
            let (status, body) = call(req).await;
            assert_refused(status, &body, name);
        }
    }

    #[tokio::test]
    async fn rejects_an_unsigned_request() {
        let req = Request::builder()
            .method("POST")
            .uri("/mcp")
            .body(Body::from("{}"))
            .unwrap();
        let (status, body) = call(req).await;
        assert_refused(status, &body, "missing trusted header");
    }

    #[tokio::test]
    async fn rejects_a_tampered_body() {
        let req = signed_request("acme", "/mcp", "{}", NOW)
            .body(Body::from("{ }"))
            .unwrap();
        let (status, body) = call(req).await;
        assert_refused(status, &body, "does not match");
    }

    #[tokio::test]
    async fn rejects_a_tampered_tenant() {
        let mut req = signed_request("acme", "/mcp", "{}", NOW)
            .body(Body::from("{}"))
            .unwrap();
        req.headers_mut()
            .insert(headers::TENANT_ID, "globex".parse().unwrap());
        let (status, body) = call(req).await;
        assert_refused(status, &body, "does not match");
    }

    #[tokio::test]
    async fn a_unicode_tenant_and_user_arrive_intact() {
        let tenant = "Ünïcode 租户";
        let req = signed_request(tenant, "/mcp", "{}", NOW)
            .body(Body::from("{}"))
            .unwrap();
        assert!(
            req.headers()[headers::TENANT_ID].to_str().is_ok(),
            "ASCII on the wire"
        );
        let (_, got) = verify_request(&auth(), req).await.expect("verified");
        assert_eq!(got.tenant_id, tenant);
    }

    #[tokio::test]
    async fn rejects_another_protocol_version() {
        // Signed with no MCP-Protocol-Version; one added on the way changes what the body means.
        let req = signed_request("acme", "/mcp", "{}", NOW)
            .header("mcp-protocol-version", "2025-03-26")
            .body(Body::from("{}"))
            .unwrap();
        let (status, body) = call(req).await;
        assert_refused(status, &body, "does not match");
    }

    #[tokio::test]
    async fn rejects_another_path() {
        let req = signed_request("acme", "/other", "{}", NOW)
            .uri("/mcp?x=1")
            .body(Body::from("{}"))
            .unwrap();
        let (status, body) = call(req).await;
        assert_refused(status, &body, "does not match");
    }

    #[tokio::test]
    async fn rejects_a_stale_or_future_time() {
        for time in [NOW - 31, NOW + 31, 0] {
            let req = signed_request("acme", "/mcp", "{}", time)
                .body(Body::from("{}"))
                .unwrap();
            let (status, body) = call(req).await;
            assert_refused(status, &body, "from now");
        }
    }

    #[tokio::test]
    async fn rejects_a_malformed_time() {
        for bad in [
            "-1",
            "+5",
            " 1700000000",
            "1.5",
            "",
            "99999999999999999999999",
        ] {
            let mut req = signed_request("acme", "/mcp", "{}", NOW)
                .body(Body::from("{}"))
                .unwrap();
            req.headers_mut()
                .insert(headers::GATEWAY_TIME, bad.parse().unwrap());
            let (status, body) = call(req).await;
            assert_refused(status, &body, headers::GATEWAY_TIME);
        }
    }

    #[tokio::test]
    async fn rejects_a_repeated_header() {
        let mut req = signed_request("acme", "/mcp", "{}", NOW)
            .body(Body::from("{}"))
            .unwrap();
        req.headers_mut()
            .append(headers::TENANT_ID, "acme".parse().unwrap());
        let (status, body) = call(req).await;
        assert_refused(status, &body, "repeated");

        let mut req = signed_request("acme", "/mcp", "{}", NOW)
            .body(Body::from("{}"))
            .unwrap();
        req.headers_mut()
            .append(headers::GATEWAY_SIGNATURE, "x".parse().unwrap());
        let (status, body) = call(req).await;
        assert_refused(status, &body, "repeated");
    }

    #[tokio::test]
    async fn rejects_a_non_utf8_header() {
        let mut req = signed_request("acme", "/mcp", "{}", NOW)
            .body(Body::from("{}"))
            .unwrap();
        req.headers_mut().insert(
            headers::USER_ID,
            axum::http::HeaderValue::from_bytes(b"caf\xe9").unwrap(),
        );
        let (status, body) = call(req).await;
        assert_refused(status, &body, "UTF-8");
    }

    #[tokio::test]
    async fn rejects_a_body_over_the_cap_with_413() {
        let big = "x".repeat(MAX_BODY_BYTES + 1);
        let req = signed_request("acme", "/mcp", &big, NOW)
            .body(Body::from(big.clone()))
            .unwrap();
        assert_eq!(call(req).await.0, StatusCode::PAYLOAD_TOO_LARGE);

        // Without a Content-Length: a streamed body is cut off by the limit too.
        let chunks = futures_chunks(&big);
        let req = signed_request("acme", "/mcp", &big, NOW)
            .body(chunks)
            .unwrap();
        let (status, body) = call(req).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    }

    fn futures_chunks(data: &str) -> Body {
        let chunks: Vec<Result<Bytes, std::io::Error>> = data
            .as_bytes()
            .chunks(64 * 1024)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        Body::from_stream(futures_util::stream::iter(chunks))
    }

    #[test]
    fn a_short_secret_is_refused() {
        assert!(GatewayAuth::new(b"short".to_vec()).is_err());
    }
}
