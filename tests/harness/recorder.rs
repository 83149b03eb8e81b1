//! A recording upstream: a mock backend (named as such) that stores every request Envoy forwards
//! and answers with an empty JSON-RPC result. It lets a test assert what crossed the edge, and that
//! nothing did when the edge denied. A request whose body holds [`ANSWER_WITH_TOOLS`] (or
//! [`ANSWER_WITH_TOOLS_SSE`]) is answered, whatever its method, with a tool list of three tools
//! ([`LISTED_TOOLS`]) as JSON (or as one event of an event stream, with an `id`): a server that
//! lists tools where no `tools/list` asked. With [`ANSWER_WITH_TOOLS_AND_TRAILERS`], the JSON list
//! is followed by a trailer field (announced in `Trailer`; HTTP/1 sends trailers only when the
//! request says `TE: trailers`; Envoy's recorder cluster reads them, `envoy::derive_config`).
//! A test can also ask it to answer late or with another status ([`DELAY_HEADER`],
//! [`STATUS_HEADER`]).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use anyhow::Result;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use http_body::Frame;

/// The marker of a request answered with a tool list as JSON.
pub const ANSWER_WITH_TOOLS: &str = "mcp-edge-test/answer-with-tools";
/// The marker of a request answered with a tool list as an event stream.
pub const ANSWER_WITH_TOOLS_SSE: &str = "mcp-edge-test/sse-answer-with-tools";
/// The marker of a request answered with a tool list as JSON followed by trailers.
pub const ANSWER_WITH_TOOLS_AND_TRAILERS: &str = "mcp-edge-test/answer-with-tools-and-trailers";
/// The marker of a request answered with a JSON result of [`LARGE_ANSWER_BYTES`] of text.
pub const ANSWER_LARGE: &str = "mcp-edge-test/answer-large";
/// Above envoy.yaml's `per_connection_buffer_limit_bytes` (2 MiB).
pub const LARGE_ANSWER_BYTES: usize = 3 << 20;
/// The tools of those lists (tools of envoy.yaml's `tool_scopes`).
pub const LISTED_TOOLS: [&str; 3] = ["list_projects", "create_project", "delete_project"];

/// One request as the upstream received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

impl Recorded {
    /// Every value of a header (names compared case-insensitively).
    pub fn header_values(&self, name: &str) -> Vec<String> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            .collect()
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.header_values(name).into_iter().next()
    }

    /// The identity the edge vouched for: its one `x-mcp-identity` assertion verified as a
    /// backend verifies it (`secret` is the stack's gateway secret, the names envoy.yaml's
    /// defaults), against this request's method, path, protocol version and body, now.
    pub fn vouched(&self, secret: &str) -> Result<mcp_edge_contract::Vouched> {
        use mcp_edge_contract::assertion::{DEFAULT_AUDIENCE, DEFAULT_ISSUER};
        let assertions = self.header_values(mcp_edge_contract::headers::IDENTITY);
        anyhow::ensure!(
            assertions.len() == 1,
            "{} x-mcp-identity headers: {assertions:?}",
            assertions.len()
        );
        let verifier = mcp_edge_contract::AssertionVerifier::new(
            secret.as_bytes(),
            DEFAULT_ISSUER,
            DEFAULT_AUDIENCE,
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        let version = self.header("mcp-protocol-version").unwrap_or_default();
        let line = mcp_edge_contract::RequestLine {
            method: &self.method,
            path: &self.path,
            protocol_version: &version,
        };
        verifier
            .verify(&assertions[0], &line, &self.body, crate::client::now())
            .map_err(|e| anyhow::anyhow!("assertion: {e}"))
    }
}

#[derive(Clone, Default)]
pub struct Recorder {
    requests: Arc<Mutex<Vec<Recorded>>>,
}

impl Recorder {
    /// All recorded requests whose body or path contains `marker`.
    pub fn with_marker(&self, marker: &str) -> Vec<Recorded> {
        let needle = marker.as_bytes();
        self.requests
            .lock()
            .map(|r| {
                r.iter()
                    .filter(|req| {
                        req.body.windows(needle.len()).any(|w| w == needle)
                            || req.path.contains(marker)
                    })
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn count(&self) -> usize {
        self.requests.lock().map(|r| r.len()).unwrap_or(0)
    }
}

/// A request header asking the recorder to wait this many milliseconds before it answers.
pub const DELAY_HEADER: &str = "x-recorder-delay-ms";
/// A request header asking the recorder to answer with this HTTP status.
pub const STATUS_HEADER: &str = "x-recorder-status";

async fn record(
    State(rec): State<Recorder>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let id = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("id").cloned())
        .unwrap_or(serde_json::Value::Null);
    let asked = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
    };
    let delay = asked(DELAY_HEADER);
    let status = asked(STATUS_HEADER)
        .and_then(|s| u16::try_from(s).ok())
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::OK);
    if let Ok(mut r) = rec.requests.lock() {
        r.push(Recorded {
            method: method.to_string(),
            path: uri
                .path_and_query()
                .map(|p| p.to_string())
                .unwrap_or_default(),
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
                .collect(),
            body: body.to_vec(),
        });
    }
    if let Some(ms) = delay {
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
    let has = |marker: &str| body.windows(marker.len()).any(|w| w == marker.as_bytes());
    let tools: Vec<_> = LISTED_TOOLS
        .iter()
        .map(|name| serde_json::json!({"name": name, "inputSchema": {"type": "object"}}))
        .collect();
    let listed = serde_json::json!({"jsonrpc": "2.0", "id": id, "result": {"tools": tools}});
    let json = [("content-type", "application/json")];
    if has(ANSWER_WITH_TOOLS_SSE) {
        let stream = format!("id: up-1\ndata:\n\nid: up-2\ndata: {listed}\n\n");
        return ([("content-type", "text/event-stream")], stream).into_response();
    }
    if has(ANSWER_WITH_TOOLS_AND_TRAILERS) {
        let body = WithTrailers {
            data: Some(Bytes::from(listed.to_string())),
            trailers: Some(HeaderMap::from_iter([(
                axum::http::header::HeaderName::from_static("x-checksum"),
                HeaderValue::from_static("none"),
            )])),
        };
        // hyper sends only the trailer fields the head announces.
        let head = [
            ("content-type", "application/json"),
            ("trailer", "x-checksum"),
        ];
        return (head, Body::new(body)).into_response();
    }
    if has(ANSWER_LARGE) {
        let text = "x".repeat(LARGE_ANSWER_BYTES);
        let big = serde_json::json!({"jsonrpc": "2.0", "id": id,
            "result": {"content": [{"type": "text", "text": text}]}});
        return (json, big.to_string()).into_response();
    }
    if has(ANSWER_WITH_TOOLS) {
        return (json, listed.to_string()).into_response();
    }
    let empty = serde_json::json!({"jsonrpc": "2.0", "id": id, "result": {}});
    (status, json, empty.to_string()).into_response()
}

/// A body of one data frame, then trailers.
struct WithTrailers {
    data: Option<Bytes>,
    trailers: Option<HeaderMap>,
}

impl http_body::Body for WithTrailers {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if let Some(data) = self.data.take() {
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        Poll::Ready(self.trailers.take().map(|t| Ok(Frame::trailers(t))))
    }
}

/// Starts the recorder on a free port in a runtime of its own; returns it and its address.
pub fn start(rt: &tokio::runtime::Runtime) -> Result<(Recorder, SocketAddr)> {
    let rec = Recorder::default();
    let app = Router::new().fallback(record).with_state(rec.clone());
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let addr = listener.local_addr()?;
    rt.spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((rec, addr))
}
