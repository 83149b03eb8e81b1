//! The HTTP client of the OpenAPI sources: hyper's pooled client over rustls (ring, TLS 1.2+,
//! ALPN h2/http1.1) trusting the system's roots, or only a source's own CA file. It sends one
//! request and reads its answer up to a size cap; it never follows redirects.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// An API's answer, its body read whole (within the cap).
#[derive(Debug)]
pub struct ApiResponse {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

/// Why a request got no answer.
#[derive(Debug)]
pub enum SendError {
    /// No connection, or it broke; the reason, one line.
    Unreachable(String),
    /// The answer passed the cap.
    TooLarge,
}

/// One source's client (connections pooled per host).
#[derive(Clone, Debug)]
pub struct ApiClient {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl ApiClient {
    /// A client trusting the system's roots, or only the certificates of `ca_file` (PEM).
    pub fn new(ca_file: Option<&Path>) -> anyhow::Result<Self> {
        let mut roots = rustls::RootCertStore::empty();
        match ca_file {
            Some(path) => {
                use rustls::pki_types::pem::PemObject as _;
                let certs = rustls::pki_types::CertificateDer::pem_file_iter(path)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
                for cert in certs {
                    let cert = cert.map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
                    roots.add(cert)?;
                }
            }
            None => {
                // Unreadable system certificates are skipped; with none at all, https fails
                // closed (no API is trusted), http still works.
                for cert in rustls_native_certs::load_native_certs().certs {
                    let _ = roots.add(cert);
                }
            }
        }
        // ring, as the backend's own TLS (see tls.rs for why, and the deprecation).
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_all_versions()
            .build();
        Ok(Self {
            client: Client::builder(TokioExecutor::new()).build(connector),
        })
    }

    /// Sends `request` and reads its answer, refusing one longer than `cap` bytes.
    pub async fn send(
        &self,
        request: http::Request<Full<Bytes>>,
        cap: usize,
    ) -> Result<ApiResponse, SendError> {
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| SendError::Unreachable(error_chain(&e)))?;
        let (parts, body) = response.into_parts();
        if parts
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|n| n > cap as u64)
        {
            return Err(SendError::TooLarge);
        }
        let body = Limited::new(body, cap).collect().await.map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                SendError::TooLarge
            } else {
                SendError::Unreachable(e.to_string())
            }
        })?;
        Ok(ApiResponse {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body: body.to_bytes(),
        })
    }
}

/// An error and its causes, one line.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::routing::get;

    async fn serve(app: Router) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}")
    }

    fn get_request(url: String) -> http::Request<Full<Bytes>> {
        http::Request::get(url)
            .body(Full::new(Bytes::new()))
            .expect("request")
    }

    #[tokio::test]
    async fn redirects_are_not_followed_and_answers_are_capped() {
        let app = Router::new()
            .route(
                "/moved",
                get(|| async { (http::StatusCode::FOUND, [("location", "/elsewhere")], "") }),
            )
            .route("/big", get(|| async { "x".repeat(10_000) }))
            .route(
                "/chunked",
                get(|| async {
                    let chunks = (0..10).map(|_| Ok::<_, std::io::Error>("y".repeat(1_000)));
                    axum::body::Body::from_stream(futures_util::stream::iter(chunks))
                }),
            );
        let base = serve(app).await;
        let client = ApiClient::new(None).expect("client");
        let moved = client
            .send(get_request(format!("{base}/moved")), 1_000)
            .await
            .expect("answer");
        assert_eq!(moved.status, 302);
        for path in ["big", "chunked"] {
            let capped = client
                .send(get_request(format!("{base}/{path}")), 9_999)
                .await;
            assert!(
                matches!(capped, Err(SendError::TooLarge)),
                "{path}: {capped:?}"
            );
            let whole = client
                .send(get_request(format!("{base}/{path}")), 10_000)
                .await
                .expect(path);
            assert_eq!(whole.body.len(), 10_000, "{path}");
        }
        // A port this test bound and let go: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        let closed = client
            .send(get_request(format!("http://127.0.0.1:{port}/")), 10)
            .await;
        assert!(
            matches!(closed, Err(SendError::Unreachable(_))),
            "{closed:?}"
        );
    }
}
