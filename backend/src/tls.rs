//! TLS on the MCP listener, with client certificates required (mutual TLS): the edge → backend
//! link for deployments where that hop crosses a network the operator does not own.
//!
//! The identity assertion (`x-mcp-identity`) is still verified on every request: mTLS says the
//! connection comes from an Envoy holding a certificate of the configured CA, the assertion says
//! which tenant that Envoy vouches for. Neither replaces the other.
//!
//! [`TlsListener`] plugs into `axum::serve` as a [`Listener`]: a background task accepts TCP
//! connections and runs each handshake in its own task (bounded by [`HANDSHAKE_TIMEOUT`]), so one
//! slow or hostile peer never holds up the others; `accept` hands out finished handshakes only.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::serve::Listener;
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// A handshake not finished within this is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Finished handshakes waiting for `accept`; past this, new ones wait for room.
const READY_QUEUE: usize = 128;

/// The files of the listener's TLS: its certificate chain and key, and the CA whose certificates
/// clients must present.
#[derive(Debug, Clone)]
pub struct TlsFiles<'a> {
    pub cert_chain: &'a Path,
    pub key: &'a Path,
    pub client_ca: &'a Path,
}

/// The server configuration: TLS 1.2 and 1.3, ALPN h2 and http/1.1, a client certificate signed by
/// `client_ca` required on every connection.
pub fn server_config(files: &TlsFiles<'_>) -> anyhow::Result<rustls::ServerConfig> {
    // ring rather than aws-lc-rs: aws-lc-sys needs cmake or clang to build, which a plain Rust
    // toolchain (and this repository's CI machine) lacks. rustls 0.23.48 deprecates ring's
    // provider because it offers no post-quantum key exchange (X25519MLKEM768); X25519 and the
    // NIST curves remain, for a hop between the operator's own Envoy and backend.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(files.cert_chain)
        .with_context(|| format!("reading {}", files.cert_chain.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("parsing the certificates of {}", files.cert_chain.display()))?;
    anyhow::ensure!(
        !chain.is_empty(),
        "{} holds no certificate",
        files.cert_chain.display()
    );
    let key = PrivateKeyDer::from_pem_file(files.key)
        .with_context(|| format!("reading the private key {}", files.key.display()))?;
    let mut roots = RootCertStore::empty();
    for ca in CertificateDer::pem_file_iter(files.client_ca)
        .with_context(|| format!("reading {}", files.client_ca.display()))?
    {
        let ca = ca.with_context(|| {
            format!("parsing the certificates of {}", files.client_ca.display())
        })?;
        roots
            .add(ca)
            .with_context(|| format!("a CA certificate of {}", files.client_ca.display()))?;
    }
    anyhow::ensure!(
        !roots.is_empty(),
        "{} holds no CA certificate",
        files.client_ca.display()
    );
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .context("building the client certificate verifier")?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .context("the certificate does not match its key")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// A TCP listener whose connections are served once their TLS handshake has finished.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local_addr: SocketAddr,
}

impl TlsListener {
    /// Starts accepting on `listener` (handshakes run in the background from now on).
    pub fn new(listener: TcpListener, config: rustls::ServerConfig) -> std::io::Result<Self> {
        let local_addr = listener.local_addr()?;
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let (tx, ready) = mpsc::channel(READY_QUEUE);
        tokio::spawn(accept_loop(listener, acceptor, tx));
        Ok(Self { ready, local_addr })
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    ready: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: wait, as axum's own listener does.
                tracing::warn!(error = %e, "accepting a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if ready.is_closed() {
            return;
        }
        let acceptor = acceptor.clone();
        let ready = ready.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => {
                    // The server has stopped if nobody receives: the connection just closes.
                    let _ = ready.send((tls, peer)).await;
                }
                Ok(Err(e)) => tracing::warn!(%peer, error = %e, "TLS handshake refused"),
                Err(_) => tracing::warn!(%peer, "TLS handshake timed out"),
            }
        });
    }
}

impl Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(accepted) => accepted,
            // The accept loop only ends when this listener is gone; never resolve otherwise.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local_addr)
    }
}
