//! Why a request was refused, and the answer the client gets: an HTTP status and a JSON-RPC
//! error body (code -32040 for anything about the assertion), in the shape MCP clients read.

use bytes::Bytes;
use http::{Response, StatusCode, header};
use mcp_edge_contract::{AssertionError, codes, headers};

/// Why a request was refused. The message is safe to show to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// No `x-mcp-identity` header.
    Missing,
    /// Contract v2 headers (`x-mcp-gateway-signature`) and no assertion: an older edge.
    ContractV2,
    /// `x-mcp-identity` more than once.
    Repeated,
    /// A header the verification reads is not valid UTF-8.
    NotUtf8(&'static str),
    /// The assertion itself was refused.
    Assertion(AssertionError),
    /// The body is over the cap (bytes).
    TooLarge(usize),
    /// The body could not be read.
    BodyUnreadable,
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Missing => write!(f, "missing {}", headers::IDENTITY),
            Self::ContractV2 => write!(
                f,
                "trust contract v2 headers ({}) are no longer accepted: this service verifies \
                 contract v3 ({}); upgrade the mcp-edge filter",
                headers::V2_SIGNATURE,
                headers::IDENTITY
            ),
            Self::Repeated => write!(f, "{} is repeated", headers::IDENTITY),
            Self::NotUtf8(name) => write!(f, "{name} is not valid UTF-8"),
            Self::Assertion(e) => e.fmt(f),
            Self::TooLarge(max) => write!(f, "request body exceeds {max} bytes"),
            Self::BodyUnreadable => f.write_str("request body could not be read"),
        }
    }
}

impl std::error::Error for Rejection {}

impl Rejection {
    /// 413 for a body over the cap, 400 for an unreadable one, 401 for everything else.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BodyUnreadable => StatusCode::BAD_REQUEST,
            _ => StatusCode::UNAUTHORIZED,
        }
    }

    /// The JSON-RPC error code: -32600 for the body, -32040 for the assertion.
    pub fn code(&self) -> i32 {
        match self {
            Self::TooLarge(_) | Self::BodyUnreadable => codes::INVALID_REQUEST,
            _ => codes::UNAUTHORIZED,
        }
    }

    /// The message a client sees.
    pub fn message(&self) -> String {
        match self {
            Self::TooLarge(_) | Self::BodyUnreadable => self.to_string(),
            _ => format!(
                "request not authenticated by the mcp-edge gateway ({self}); send it through the gateway"
            ),
        }
    }

    /// The whole answer: status, `content-type: application/json`, a JSON-RPC error with id null.
    pub fn into_response<B: From<Bytes>>(self) -> Response<B> {
        let body = serde_json::json!({
            "jsonrpc": "2.0",
            "id": null,
            "error": { "code": self.code(), "message": self.message() },
        });
        let mut response = Response::new(B::from(Bytes::from(body.to_string())));
        *response.status_mut() = self.status();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        response
    }
}
