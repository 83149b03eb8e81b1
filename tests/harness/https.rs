//! An HTTPS client for the TLS tests that shows what a TLS test must see: which ALPN protocol was
//! negotiated, which certificate the server presented, and whether the handshake itself was
//! refused (a backend demanding a client certificate refuses there, not with a status).
//!
//! One request per connection, so every request makes a fresh handshake (a rotated certificate is
//! seen at once). rustls with the ring provider, configured explicitly: the other tests' reqwest
//! clients stay plain HTTP and need no process-wide TLS provider.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::TlsConnector;

/// Whole requests and handshakes are bounded by this.
const DEADLINE: Duration = Duration::from_secs(20);

/// Who the client is and what it trusts.
#[derive(Clone)]
pub struct HttpsClient {
    config: Arc<rustls::ClientConfig>,
}

/// A request: `method` on `path` of `authority` (a name the server's certificate must carry;
/// the TCP connection goes to `addr`).
pub struct HttpsRequest<'a> {
    pub addr: SocketAddr,
    pub server_name: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    pub headers: Vec<(&'a str, String)>,
    pub body: String,
}

/// What came back.
#[derive(Debug)]
pub struct HttpsAnswer {
    /// The ALPN protocol the handshake chose (`h2`, `http/1.1`), if any.
    pub alpn: Option<String>,
    /// The leaf certificate the server presented (DER).
    pub server_cert: Vec<u8>,
    pub status: u16,
    pub version: http::Version,
    pub headers: http::HeaderMap,
    pub body: String,
}

impl HttpsAnswer {
    pub fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    }

    pub fn json(&self) -> Result<serde_json::Value> {
        serde_json::from_str(&self.body).with_context(|| format!("not JSON: {}", self.body))
    }
}

/// The ring provider, named once (rustls deprecates it for lacking post-quantum key exchange;
/// the tests need none).
#[allow(deprecated)]
pub fn ring_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The certificates of a PEM text.
pub fn certs_of(pem: &str) -> Result<Vec<CertificateDer<'static>>> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .context("parsing PEM certificates")
}

impl HttpsClient {
    /// Trusts the CA in `ca_pem`; offers `alpn` (e.g. `["h2", "http/1.1"]`); presents
    /// `client` (certificate chain PEM, key PEM) when given.
    pub fn new(ca_pem: &str, alpn: &[&str], client: Option<(&str, &str)>) -> Result<Self> {
        let mut roots = RootCertStore::empty();
        for ca in certs_of(ca_pem)? {
            roots.add(ca)?;
        }
        let builder = rustls::ClientConfig::builder_with_provider(ring_provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots);
        let mut config = match client {
            Some((chain, key)) => builder.with_client_auth_cert(
                certs_of(chain)?,
                PrivateKeyDer::from_pem_slice(key.as_bytes()).context("the client key")?,
            )?,
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
        Ok(Self {
            config: Arc::new(config),
        })
    }

    /// Sends `req` on a new connection.
    pub fn send(&self, req: &HttpsRequest<'_>) -> Result<HttpsAnswer> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async {
            tokio::time::timeout(DEADLINE, self.send_async(req))
                .await
                .context("the HTTPS request timed out")?
        })
    }

    async fn send_async(&self, req: &HttpsRequest<'_>) -> Result<HttpsAnswer> {
        let tcp = tokio::net::TcpStream::connect(req.addr).await?;
        let name = ServerName::try_from(req.server_name.to_string())?;
        let tls = TlsConnector::from(self.config.clone())
            .connect(name, tcp)
            .await
            .context("TLS handshake")?;
        let (_, session) = tls.get_ref();
        let alpn = session
            .alpn_protocol()
            .map(|p| String::from_utf8_lossy(p).into_owned());
        let server_cert = session
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| c.as_ref().to_vec())
            .unwrap_or_default();
        let h2 = alpn.as_deref() == Some("h2");
        let authority = format!("{}:{}", req.server_name, req.addr.port());
        // HTTP/2 carries scheme and authority as pseudo-headers (an absolute URI); HTTP/1.1 the
        // path alone and a Host header.
        let mut builder = if h2 {
            http::Request::builder().uri(format!("https://{authority}{}", req.path))
        } else {
            http::Request::builder()
                .uri(req.path)
                .header("host", authority.as_str())
        }
        .method(req.method);
        for (name, value) in &req.headers {
            builder = builder.header(*name, value.as_str());
        }
        let request = builder.body(Full::new(Bytes::from(req.body.clone())))?;
        let io = TokioIo::new(tls);
        let response = if h2 {
            let (mut send, conn) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await?;
            tokio::spawn(conn);
            send.send_request(request).await?
        } else {
            let (mut send, conn) = hyper::client::conn::http1::handshake(io).await?;
            tokio::spawn(conn);
            send.send_request(request).await?
        };
        let status = response.status().as_u16();
        let version = response.version();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await?.to_bytes();
        Ok(HttpsAnswer {
            alpn,
            server_cert,
            status,
            version,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }
}
