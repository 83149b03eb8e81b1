//! JSON-RPC batches (MCP 2025-03-26), which rmcp's Streamable HTTP server cannot parse: it reads
//! one message per POST.
//!
//! Under 2025-03-26 (`MCP-Protocol-Version` absent or `2025-03-26`) the edge judges a batch element
//! by element, charges its length against the tenant's rate and forwards it; this layer serves it.
//! It sits behind [`crate::gateway_auth`], whose assertion binds the whole batch body, so the
//! batch is verified once and then split ([`split`]): each element is sent to rmcp on its own,
//! with the request's headers and verified tenant, as if it were a single-message POST, and goes
//! through `call_tool` and metering like any other call. The answers ([`answer`]) are streamed in
//! the batch's order as one JSON array, each sent as soon as it is ready (never the whole array in
//! memory); notifications and responses get none, and a batch with nothing to answer gets 202 with
//! no body. Elements run one after the other, at most [`MAX_BATCH_ELEMENTS`] of them.
//!
//! A batch's answer is capped ([`BatchLimits`], 16 MiB by default): 100 small requests can ask for
//! hundreds of MB. The element whose answer would pass the cap is answered with a short error
//! (-32058, `data.ran: true`: it did run), and the calls after it are not run (`ran: false`).
//!
//! Any other request passes through untouched: a batch under a later version, which forbids
//! batches, is refused by rmcp exactly as before.

pub mod answer;
pub mod split;

use std::convert::Infallible;

use axum::body::{Body, Bytes, to_bytes};
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use mcp_edge_contract::codes::BATCH_ANSWER_FULL;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tracing::Instrument as _;

use crate::gateway_auth::PROTOCOL_VERSION;
use crate::jsonrpc_error::{INVALID_REQUEST, error_object, error_response};
pub use mcp_edge_contract::limits::DEFAULT_MAX_BATCH_ANSWER_BYTES;
pub use split::{BatchRefusal, Element, MAX_BATCH_ELEMENTS};

/// The one protocol version whose batches the backend serves (also what an absent header means).
pub const BATCH_PROTOCOL_VERSION: &str = "2025-03-26";

/// How much a batch's answer may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    /// The most bytes of results in one batch's answer (`--max-batch-answer-bytes`).
    pub max_answer_bytes: usize,
}

impl Default for BatchLimits {
    fn default() -> Self {
        Self {
            max_answer_bytes: DEFAULT_MAX_BATCH_ANSWER_BYTES,
        }
    }
}

/// The axum middleware: `axum::middleware::from_fn_with_state(limits, serve_batches)`, inside
/// the gateway check.
pub async fn serve_batches(
    State(limits): State<BatchLimits>,
    request: Request,
    next: Next,
) -> Response {
    if !may_batch(&request) {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    // Already buffered (and capped) by the gateway check: this only takes the bytes back.
    let body = match to_bytes(body, mcp_edge_contract::limits::MAX_BODY_BYTES_CEILING).await {
        Ok(body) => body,
        Err(_) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                INVALID_REQUEST,
                "request body could not be read",
            );
        }
    };
    if !is_array(&body) {
        return next.run(Request::from_parts(parts, Body::from(body))).await;
    }
    match split::split(&body) {
        Ok(elements) => {
            let jobs = elements
                .into_iter()
                .filter_map(|e| Job::of(&body, e))
                .collect();
            serve(parts, jobs, next, limits).await
        }
        Err(refusal) => {
            tracing::info!(reason = %refusal, "refused a batch");
            error_response(
                StatusCode::BAD_REQUEST,
                refusal.code(),
                &refusal.to_string(),
            )
        }
    }
}

/// A POST speaking 2025-03-26, the one version whose batches are served.
fn may_batch(request: &Request) -> bool {
    request.method() == Method::POST
        && request
            .headers()
            .get(PROTOCOL_VERSION)
            .is_none_or(|v| v.as_bytes() == BATCH_PROTOCOL_VERSION.as_bytes())
}

/// Whether a body is a JSON array (its first non-whitespace byte opens one).
fn is_array(body: &[u8]) -> bool {
    body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[')
}

/// What is to be done with one element, owning its bytes (a slice of the body, not a copy).
enum Job {
    /// Run and answer with `id`.
    Call { id: Value, raw: Bytes },
    /// Run, never answered.
    Notify { raw: Bytes },
    /// Answered with an invalid-request error, not run.
    Invalid { id: Value },
}

impl Job {
    /// The job of an element of `body`; none for a response (accepted and dropped).
    fn of(body: &Bytes, element: Element<'_>) -> Option<Self> {
        match element {
            Element::Request { id, raw, .. } => Some(Self::Call {
                id,
                raw: body.slice_ref(raw.get().as_bytes()),
            }),
            Element::Notification { raw } => Some(Self::Notify {
                raw: body.slice_ref(raw.get().as_bytes()),
            }),
            Element::Response => None,
            Element::Invalid { id } => Some(Self::Invalid { id }),
        }
    }

    fn is_answered(&self) -> bool {
        !matches!(self, Self::Notify { .. })
    }
}

/// Runs the jobs in order. With nothing to answer: 202 once all ran. Otherwise 200 at once, and
/// the array streamed element by element as each answer is ready, within `limits`.
async fn serve(parts: Parts, jobs: Vec<Job>, next: Next, limits: BatchLimits) -> Response {
    tracing::debug!(elements = jobs.len(), "serving a batch");
    if !jobs.iter().any(Job::is_answered) {
        for job in jobs {
            if let Job::Notify { raw } = job {
                notify(&parts, raw, &next).await;
            }
        }
        return StatusCode::ACCEPTED.into_response();
    }
    // One answer waits at most: the array goes out as fast as the client reads it. The task runs
    // the elements on even when the client is gone, up to the element in hand (a call is never
    // cut short); the later ones then do not run.
    let (sender, receiver) = mpsc::channel::<Bytes>(1);
    let writer = AnswerWriter {
        sender,
        budget: limits.max_answer_bytes,
        used: 0,
        full: false,
    };
    tokio::spawn(
        writer
            .run(parts, jobs, next)
            .instrument(tracing::Span::current()),
    );
    let chunks = futures_util::stream::unfold(receiver, |mut receiver| async move {
        let chunk = receiver.recv().await?;
        Some((Ok::<_, Infallible>(chunk), receiver))
    });
    let mut response = Body::from_stream(chunks).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Writes a batch's answer array, one chunk per answer, keeping its results within the budget.
struct AnswerWriter {
    sender: mpsc::Sender<Bytes>,
    /// The most bytes of answers (results; a short error for each element that does not fit).
    budget: usize,
    /// Bytes of answers sent so far.
    used: usize,
    /// An answer did not fit: later calls are not run.
    full: bool,
}

impl AnswerWriter {
    async fn run(mut self, parts: Parts, jobs: Vec<Job>, next: Next) {
        let mut first = true;
        for job in jobs {
            let answer = match job {
                Job::Notify { raw } => {
                    notify(&parts, raw, &next).await;
                    continue;
                }
                Job::Invalid { id } => error_object(
                    &id,
                    INVALID_REQUEST,
                    "Invalid Request: this batch element is not a JSON-RPC request, notification or response",
                )
                .to_string()
                .into_bytes(),
                Job::Call { id, .. } if self.full => self.not_run(&id),
                Job::Call { id, raw } => self.call(&parts, &id, raw, &next).await,
            };
            let mut chunk = Vec::with_capacity(2 + answer.len());
            chunk.push(if first { b'[' } else { b',' });
            first = false;
            chunk.extend_from_slice(&answer);
            self.used += answer.len();
            if self.sender.send(Bytes::from(chunk)).await.is_err() {
                tracing::info!("the client left before the batch's answer was complete");
                return;
            }
        }
        let _ = self.sender.send(Bytes::from_static(b"]")).await;
    }

    /// Runs one call; its answer, or an error when the answer does not fit in what is left.
    async fn call(&mut self, parts: &Parts, id: &Value, raw: Bytes, next: &Next) -> Vec<u8> {
        let response = next.clone().run(single(parts, raw)).await;
        let left = self.budget.saturating_sub(self.used);
        let fitted = answer::answer_within(id, response, left)
            .await
            .ok()
            .map(|answer| answer.to_string().into_bytes())
            .filter(|bytes| bytes.len() <= left);
        match fitted {
            Some(bytes) => bytes,
            None => {
                self.full = true;
                tracing::warn!(
                    max_answer_bytes = self.budget,
                    "a batch element's answer did not fit in the batch's answer limit"
                );
                self.refusal(
                    id,
                    true,
                    "this call ran, but its answer does not fit in what is left of the batch's \
answer limit; its effects stand. Call it again on its own, or ask for a smaller page (limit)",
                )
            }
        }
    }

    /// The answer to a call not run because an earlier answer filled the batch.
    fn not_run(&self, id: &Value) -> Vec<u8> {
        self.refusal(
            id,
            false,
            "this call was not run: the batch's answer reached its size limit before it; send it \
again in another request",
        )
    }

    fn refusal(&self, id: &Value, ran: bool, message: &str) -> Vec<u8> {
        json!({
            "jsonrpc": "2.0",
            "id": id,
            "error": {
                "code": BATCH_ANSWER_FULL,
                "message": message,
                "data": { "ran": ran, "maxAnswerBytes": self.budget },
            },
        })
        .to_string()
        .into_bytes()
    }
}

/// Runs a notification; it gets no answer.
async fn notify(parts: &Parts, raw: Bytes, next: &Next) {
    let response = next.clone().run(single(parts, raw)).await;
    if response.status() != StatusCode::ACCEPTED {
        tracing::debug!(status = %response.status(), "a notification in a batch was not accepted");
    }
}

/// The single-message POST of one element: the batch's head (headers, verified tenant), the
/// element's own bytes and length.
fn single(parts: &Parts, element: Bytes) -> Request {
    let mut parts = parts.clone();
    parts
        .headers
        .insert(header::CONTENT_LENGTH, HeaderValue::from(element.len()));
    Request::from_parts(parts, Body::from(element))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(version: Option<&str>) -> Request {
        let mut builder = Request::builder().method("POST").uri("/mcp");
        if let Some(v) = version {
            builder = builder.header(PROTOCOL_VERSION, v);
        }
        builder.body(Body::empty()).expect("request")
    }

    #[test]
    fn only_2025_03_26_posts_may_batch() {
        assert!(may_batch(&post(None)));
        assert!(may_batch(&post(Some("2025-03-26"))));
        for later in ["2025-06-18", "2025-11-25", "2026-07-28", "2024-11-05", ""] {
            assert!(!may_batch(&post(Some(later))), "{later}");
        }
        let get = Request::builder()
            .method("GET")
            .uri("/mcp")
            .body(Body::empty())
            .expect("request");
        assert!(!may_batch(&get));
    }

    #[test]
    fn arrays_are_told_by_their_first_byte() {
        assert!(is_array(b"[]"));
        assert!(is_array(b" \r\n\t[1]"));
        assert!(!is_array(b"{\"a\":[1]}"));
        assert!(!is_array(b""));
        assert!(!is_array(b"  "));
    }
}
