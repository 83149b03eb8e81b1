//! A local https stand-in for an identity provider's JWKS endpoint (a mock, named as such: the
//! real Auth0, Okta, Entra, Keycloak and Google cannot be reached from here). It serves one JWKS
//! at one path over TLS with a certificate for the provider's host names from a test CA, and
//! answers 404 elsewhere, so a documented cluster and `jwks.remote` block are exercised as
//! written: SNI, the certificate's name, the path and the Host header.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context as _, Result};
use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject as _;
use tokio_rustls::TlsAcceptor;
use xtask::dev_certs::Leaf;

use crate::https::{certs_of, ring_provider};

/// A running stand-in; it stops with the runtime that runs it.
pub struct JwksStandIn {
    pub addr: SocketAddr,
    hits: Arc<AtomicU64>,
    hosts: Arc<std::sync::Mutex<Vec<String>>>,
}

impl JwksStandIn {
    /// Serves `jwks` at `path` on a free loopback port, with `leaf` as its certificate.
    pub fn start(
        runtime: &tokio::runtime::Runtime,
        leaf: &Leaf,
        path: &str,
        jwks: serde_json::Value,
    ) -> Result<Self> {
        let config = rustls::ServerConfig::builder_with_provider(ring_provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(
                certs_of(&leaf.cert_pem)?,
                PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).context("the leaf key")?,
            )?;
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let port = crate::procs::free_port()?;
        let listener = runtime.block_on(tokio::net::TcpListener::bind(("127.0.0.1", port)))?;
        let addr = listener.local_addr()?;
        let hits = Arc::new(AtomicU64::new(0));
        let hosts = Arc::new(std::sync::Mutex::new(Vec::new()));
        let body = Bytes::from(jwks.to_string());
        let path = path.to_string();
        let (served_hits, served_hosts) = (hits.clone(), hosts.clone());
        runtime.spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let (body, path) = (body.clone(), path.clone());
                let (hits, hosts) = (served_hits.clone(), served_hosts.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let found = req.uri().path() == path && req.method() == hyper::Method::GET;
                        if found {
                            hits.fetch_add(1, Ordering::SeqCst);
                        }
                        if let (Ok(mut seen), Some(host)) = (
                            hosts.lock(),
                            req.headers().get("host").and_then(|h| h.to_str().ok()),
                        ) {
                            seen.push(host.to_string());
                        }
                        let answer = if found {
                            hyper::Response::builder()
                                .header("content-type", "application/json")
                                .body(Full::new(body.clone()))
                        } else {
                            hyper::Response::builder()
                                .status(404)
                                .body(Full::new(Bytes::new()))
                        };
                        async move { answer }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Ok(Self { addr, hits, hosts })
    }

    /// How many times the JWKS was fetched at its path.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::SeqCst)
    }

    /// The `Host` headers of every request so far.
    pub fn hosts(&self) -> Vec<String> {
        self.hosts.lock().map(|h| h.clone()).unwrap_or_default()
    }
}
