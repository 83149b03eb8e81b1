//! A recording upstream: a mock backend (named as such) that stores every request Envoy forwards
//! and answers with an empty JSON-RPC result. It lets a test assert what crossed the edge, and that
//! nothing did when the edge denied. A test can ask it to answer late or with another status
//! ([`DELAY_HEADER`], [`STATUS_HEADER`]).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anyhow::Result;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;

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
) -> impl IntoResponse {
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
    (
        status,
        [("content-type", "application/json")],
        serde_json::json!({"jsonrpc": "2.0", "id": id, "result": {}}).to_string(),
    )
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
