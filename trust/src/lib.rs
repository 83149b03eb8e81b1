//! Verify the mcp-edge identity assertion in any Rust HTTP service.
//!
//! The mcp-edge filter sets one header on every request it lets through, `x-mcp-identity`: a
//! compact JWS (HS256 with the gateway secret) naming the tenant, the user, the scopes, the data
//! scope and the tier, bound to the request's method, path, `MCP-Protocol-Version` and body
//! (trust contract v3, see the `mcp-edge-contract` crate). A service behind the edge links this
//! crate and either
//! - wraps its routes in [`TrustLayer`] (a tower `Layer`): a verified request goes on with its
//!   body buffered and a [`Vouched`] in its extensions; anything else is answered 401 (413 for a
//!   body over the cap) with a JSON-RPC error body; or
//! - calls [`Trust::verify_parts`] itself with the request head and the whole body.
//!
//! What stays with the service: running each `jti` ([`Vouched::request_id`]) at most once, and
//! keying every query by [`Vouched::identity`]'s tenant, never by tool input.

mod layer;
mod rejection;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::request::Parts;
use http_body::Body;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use mcp_edge_contract::headers;

pub use layer::{TrustLayer, VerifyAssertion};
pub use mcp_edge_contract::assertion::{DEFAULT_AUDIENCE, DEFAULT_ISSUER};
pub use mcp_edge_contract::{AssertionError, Identity, SecretTooShort, Tier, Vouched};
pub use rejection::Rejection;

/// The MCP header the assertion binds besides the request line.
pub const PROTOCOL_VERSION: &str = "mcp-protocol-version";

/// The largest body buffered unless configured otherwise (bytes): the filter's default cap.
pub const DEFAULT_MAX_BODY_BYTES: usize = mcp_edge_contract::limits::DEFAULT_MAX_BODY_BYTES;

/// Unix seconds now; replaceable in tests.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// What verification needs: the secret and the two names (as the edge is configured), the body
/// cap and a clock.
#[derive(Clone)]
pub struct Trust {
    verifier: mcp_edge_contract::AssertionVerifier,
    max_body_bytes: usize,
    clock: Clock,
}

impl std::fmt::Debug for Trust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trust")
            .field("verifier", &self.verifier)
            .field("max_body_bytes", &self.max_body_bytes)
            .finish_non_exhaustive()
    }
}

impl Trust {
    /// `issuer` is the edge's configured name, `audience` this service's; the secret is the
    /// gateway secret (at least [`mcp_edge_contract::MIN_SECRET_LEN`] bytes).
    pub fn new(secret: &[u8], issuer: &str, audience: &str) -> Result<Self, SecretTooShort> {
        Ok(Self {
            verifier: mcp_edge_contract::AssertionVerifier::new(secret, issuer, audience)?,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            clock: Arc::new(system_now),
        })
    }

    /// Buffer bodies up to `bytes` (at most the contract's ceiling); keep it equal to the
    /// filter's `max_body_bytes`.
    pub fn with_max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = bytes.clamp(1, mcp_edge_contract::limits::MAX_BODY_BYTES_CEILING);
        self
    }

    /// Use another clock (tests).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The tower layer that verifies every request it wraps.
    pub fn layer(self) -> TrustLayer {
        TrustLayer::new(self)
    }

    /// The plain function: verifies the request head `parts` and its whole `body`.
    pub fn verify_parts(&self, parts: &Parts, body: &[u8]) -> Result<Vouched, Rejection> {
        let token = assertion_header(parts)?;
        let protocol_version = match parts.headers.get(PROTOCOL_VERSION) {
            Some(v) => v
                .to_str()
                .map_err(|_| Rejection::NotUtf8(PROTOCOL_VERSION))?,
            None => "",
        };
        let line = mcp_edge_contract::RequestLine {
            method: parts.method.as_str(),
            path: parts.uri.path_and_query().map_or("/", |pq| pq.as_str()),
            protocol_version,
        };
        self.verifier
            .verify(token, &line, body, (self.clock)())
            .map_err(Rejection::Assertion)
    }

    /// Buffers the body (up to the cap) and verifies; returns the head, the body and who.
    pub async fn verify_request<B>(
        &self,
        request: http::Request<B>,
    ) -> Result<(Parts, Bytes, Vouched), Rejection>
    where
        B: Body,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let (parts, body) = request.into_parts();
        // Refuse early: no assertion, or a declared length over the cap.
        assertion_header(&parts)?;
        if let Some(len) = parts
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            && len > self.max_body_bytes as u64
        {
            return Err(Rejection::TooLarge(self.max_body_bytes));
        }
        let body = match Limited::new(body, self.max_body_bytes).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(err) if err.downcast_ref::<LengthLimitError>().is_some() => {
                return Err(Rejection::TooLarge(self.max_body_bytes));
            }
            Err(_) => return Err(Rejection::BodyUnreadable),
        };
        let vouched = self.verify_parts(&parts, &body)?;
        Ok((parts, body, vouched))
    }
}

/// The one `x-mcp-identity` value; a v2 header set is named as such.
fn assertion_header(parts: &Parts) -> Result<&str, Rejection> {
    let mut values = parts.headers.get_all(headers::IDENTITY).iter();
    let Some(value) = values.next() else {
        return Err(if parts.headers.contains_key(headers::V2_SIGNATURE) {
            Rejection::ContractV2
        } else {
            Rejection::Missing
        });
    };
    if values.next().is_some() {
        return Err(Rejection::Repeated);
    }
    value
        .to_str()
        .map_err(|_| Rejection::NotUtf8(headers::IDENTITY))
}

fn system_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;
