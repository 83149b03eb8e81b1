//! Load shedding for the MCP endpoint: at most [`Shedder::max_in_flight`] requests are served at
//! once; one more is answered at once with 503, `Retry-After: 1` and JSON-RPC error -32054 rather
//! than queued, so an overloaded backend stays responsive and clients (or Envoy's retry policy)
//! back off. A request is never cancelled once it runs: a billable call either finishes, with its
//! usage event recorded, or never starts.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use http_body_util::BodyExt as _;
use tokio::sync::Semaphore;

use crate::jsonrpc_error::error_response;

/// The server is at capacity; retry shortly.
pub use mcp_edge_contract::codes::OVERLOADED;

/// Requests served at once by default.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 1024;

#[derive(Debug, Clone)]
pub struct Shedder {
    permits: Arc<Semaphore>,
    max_in_flight: usize,
    /// Requests shed since the start.
    shed: Arc<AtomicU64>,
}

impl Default for Shedder {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_IN_FLIGHT)
    }
}

impl Shedder {
    pub fn new(max_in_flight: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(max_in_flight)),
            max_in_flight,
            shed: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Requests shed (answered -32054) since the start.
    pub fn shed_count(&self) -> u64 {
        self.shed.load(Ordering::Relaxed)
    }

    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight
    }
}

/// The middleware: serve within the limit, shed beyond it.
pub async fn shed(State(shedder): State<Shedder>, request: Request, next: Next) -> Response {
    let Ok(permit) = shedder.permits.clone().try_acquire_owned() else {
        shedder.shed.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            max_in_flight = shedder.max_in_flight,
            "overloaded; shedding a request"
        );
        return overloaded();
    };
    // The permit goes with the body: a streamed answer (a batch) is still being served.
    next.run(request).await.map(|body| {
        Body::new(body.map_frame(move |frame| {
            let _held = &permit;
            frame
        }))
    })
}

fn overloaded() -> Response {
    let mut response = error_response(
        StatusCode::SERVICE_UNAVAILABLE,
        OVERLOADED,
        "The server is at capacity and did not run this request. Retry in a second.",
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::routing::get;
    use tower::ServiceExt as _;

    #[tokio::test]
    async fn sheds_beyond_the_limit_with_503_and_retry_after() {
        let shedder = Shedder::new(1);
        let (entered, wait) = (
            Arc::new(tokio::sync::Notify::new()),
            Arc::new(tokio::sync::Notify::new()),
        );
        let (e, w) = (entered.clone(), wait.clone());
        let counted = shedder.clone();
        let app = Router::new()
            .route(
                "/",
                get(move || async move {
                    e.notify_one();
                    w.notified().await;
                    "done"
                }),
            )
            .layer(axum::middleware::from_fn_with_state(shedder, shed));
        let request = || {
            Request::builder()
                .uri("/")
                .body(Body::empty())
                .expect("request")
        };
        let first = tokio::spawn(app.clone().oneshot(request()));
        entered.notified().await;
        let shed = app.clone().oneshot(request()).await.expect("infallible");
        assert_eq!(shed.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(shed.headers()[header::RETRY_AFTER], "1");
        assert_eq!(counted.shed_count(), 1);
        wait.notify_one();
        let served = first.await.expect("task").expect("infallible");
        assert_eq!(served.status(), StatusCode::OK);
        drop(served); // its body held the place
        let again = app.oneshot(request());
        wait.notify_one();
        assert_eq!(again.await.expect("infallible").status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn a_streamed_answer_holds_its_place_until_its_body_is_done() {
        let shedder = Shedder::new(1);
        let app = Router::new()
            .route(
                "/",
                get(|| async {
                    Body::from_stream(futures_util::stream::pending::<
                        Result<axum::body::Bytes, std::convert::Infallible>,
                    >())
                }),
            )
            .layer(axum::middleware::from_fn_with_state(shedder, shed));
        let request = || {
            Request::builder()
                .uri("/")
                .body(Body::empty())
                .expect("request")
        };
        let streaming = app.clone().oneshot(request()).await.expect("infallible");
        assert_eq!(streaming.status(), StatusCode::OK);
        let shed = app.clone().oneshot(request()).await.expect("infallible");
        assert_eq!(shed.status(), StatusCode::SERVICE_UNAVAILABLE);
        drop(streaming);
        let served = app.oneshot(request()).await.expect("infallible");
        assert_eq!(served.status(), StatusCode::OK);
    }
}
