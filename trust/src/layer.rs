//! The tower layer: verify, then hand the inner service the request with its body buffered and
//! the [`Vouched`] caller in its extensions; refuse anything else with [`Rejection`]'s answer.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use tower_layer::Layer;
use tower_service::Service;

use crate::{Trust, Vouched};

/// Wraps a service in [`VerifyAssertion`]. Made by [`Trust::layer`].
#[derive(Clone, Debug)]
pub struct TrustLayer {
    trust: Arc<Trust>,
}

impl TrustLayer {
    pub fn new(trust: Trust) -> Self {
        Self {
            trust: Arc::new(trust),
        }
    }
}

impl<S> Layer<S> for TrustLayer {
    type Service = VerifyAssertion<S>;

    fn layer(&self, inner: S) -> Self::Service {
        VerifyAssertion {
            inner,
            trust: Arc::clone(&self.trust),
        }
    }
}

/// A service whose requests carry a verified assertion; see the crate's documentation.
#[derive(Clone, Debug)]
pub struct VerifyAssertion<S> {
    inner: S,
    trust: Arc<Trust>,
}

impl<S, B, R> Service<Request<B>> for VerifyAssertion<S>
where
    S: Service<Request<B>, Response = Response<R>> + Clone + Send + 'static,
    S::Future: Send,
    B: Body + From<Bytes> + Send + 'static,
    B::Data: Send,
    B::Error: std::error::Error + Send + Sync + 'static,
    R: From<Bytes>,
{
    type Response = Response<R>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<R>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let trust = Arc::clone(&self.trust);
        // The service that was polled ready serves this request; a fresh clone waits for the next.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            match trust.verify_request(request).await {
                Ok((mut parts, body, vouched)) => {
                    parts.extensions.insert::<Vouched>(vouched);
                    inner.call(Request::from_parts(parts, B::from(body))).await
                }
                Err(rejection) => {
                    tracing::warn!(reason = %rejection, "mcp-edge identity assertion refused");
                    Ok(rejection.into_response())
                }
            }
        })
    }
}
