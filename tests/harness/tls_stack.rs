//! The request path with TLS on every hop, as `envoy.tls.yaml` runs it: Envoy's listener over
//! TLS (certificate from file-based SDS), the OAuth authorization server (`authz/server.mjs`)
//! serving https only, the backend requiring Envoy's client certificate (mutual TLS). The
//! certificates are made for the run under its temporary directory by `xtask::dev_certs` (a
//! throwaway CA); nothing private is committed. Everything is stopped by pid on drop.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, Result};
use serde_json::Value as Json;
use serde_yaml::Value;
use xtask::dev_certs::{DEV_TLS_HOST, DevCa, DevTlsFiles};
use xtask::tls_envoy::{TlsLayout, tls_envoy_config};

use crate::envoy::{EnvoyPorts, derive_config};
use crate::https::{HttpsAnswer, HttpsClient, HttpsRequest};
use crate::procs::{Proc, cargo_bin, envoy_command, filter_wasm, free_port, node_bin};

const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The service client of authz/directory.json and its demo secret (tenant acme).
const SERVICE_CLIENT: &str = crate::stack::SERVICE_CLIENT;
const SERVICE_SECRET: &str = crate::stack::SERVICE_SECRET;

/// One Envoy of a [`TlsStack`].
pub struct TlsEnvoy {
    pub proc: Proc,
    pub listener: SocketAddr,
    pub admin_url: String,
    /// `https://localhost:<port>/mcp`: the resource URI.
    pub mcp_url: String,
}

pub struct TlsStack {
    pub files: DevTlsFiles,
    pub ca: DevCa,
    pub backend_addr: SocketAddr,
    /// `https://localhost:<port>`: the authorization server's issuer and base URL.
    pub authz_url: String,
    pub authz_addr: SocketAddr,
    pub secret: String,
    pub envoy: TlsEnvoy,
    ports: EnvoyPorts,
    procs: Vec<Proc>,
    dir: tempfile::TempDir,
}

impl TlsStack {
    pub fn start() -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("mcp-edge-tls-tests-")
            .tempdir()?;
        let logs = dir.path().to_path_buf();
        let (files, ca) = DevTlsFiles::create(&logs.join("tls"))?;
        let secret = format!(
            "tls-e2e-secret-{}-0123456789abcdef0123456789",
            std::process::id()
        );
        let mut procs = Vec::new();

        // The backend, over mutual TLS with the dev CA (memory store).
        let backend_cert = files.backend();
        let mut cmd = Command::new(cargo_bin("mcp-edge-backend")?);
        cmd.args(["--listen", "127.0.0.1:0"])
            .arg("--tls-cert")
            .arg(backend_cert.cert())
            .arg("--tls-key")
            .arg(backend_cert.key())
            .arg("--tls-client-ca")
            .arg(files.ca())
            .env("MCP_EDGE_GATEWAY_SECRET", &secret)
            .env("RUST_LOG", "info");
        let mut backend = Proc::spawn("backend", cmd, &logs)?;
        let backend_addr = backend.wait_for_listening_addr(START_TIMEOUT)?;
        procs.push(backend);

        let listener_port = free_port()?;
        let authz_port = free_port()?;
        let authz_url = format!("https://{DEV_TLS_HOST}:{authz_port}");
        let mcp_url = format!("https://{DEV_TLS_HOST}:{listener_port}/mcp");

        // The authorization server, https only.
        let authz_cert = files.authz();
        let mut cmd = Command::new(node_bin());
        cmd.arg(crate::repo_root().join("authz/server.mjs"))
            .args(["--port", &authz_port.to_string(), "--issuer", &authz_url])
            .args(["--resource", &mcp_url])
            .arg("--key-file")
            .arg(logs.join("authz-keys.json"))
            .arg("--tls-cert")
            .arg(authz_cert.cert())
            .arg("--tls-key")
            .arg(authz_cert.key())
            .env("AUTHZ_TEST_MODE", "1");
        let mut authz = Proc::spawn("authz", cmd, &logs)?;
        authz.wait_for_log("authz listening on https://", START_TIMEOUT)?;
        procs.push(authz);

        let ports = EnvoyPorts {
            listener: listener_port,
            recorded_listener: free_port()?,
            baseline_listener: free_port()?,
            admin: free_port()?,
            backend: backend_addr.port(),
            // Nothing listens there: these tests use the backend listener only.
            recorder: free_port()?,
            issuer: authz_port,
            ratelimit: free_port()?,
            otel_collector: None,
        };
        let envoy = spawn_tls_envoy("envoy", &logs, &files, &ports, &secret, |_| Ok(()))?;
        Ok(Self {
            files,
            ca,
            backend_addr,
            authz_url,
            authz_addr: ([127, 0, 0, 1], authz_port).into(),
            secret,
            envoy,
            ports,
            procs,
            dir,
        })
    }

    /// Another Envoy with the same upstreams and certificates, its TLS configuration changed by
    /// `edit` first (a wrong CA for the authorization server, say). Stopped when dropped.
    pub fn start_envoy(
        &self,
        name: &str,
        edit: impl FnOnce(&mut Value) -> Result<()>,
    ) -> Result<TlsEnvoy> {
        let ports = EnvoyPorts {
            listener: free_port()?,
            recorded_listener: free_port()?,
            baseline_listener: free_port()?,
            admin: free_port()?,
            ..self.ports.clone()
        };
        spawn_tls_envoy(
            name,
            self.dir.path(),
            &self.files,
            &ports,
            &self.secret,
            edit,
        )
    }

    /// The temporary directory (logs, certificates).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A client trusting the dev CA, offering `alpn`.
    pub fn client(&self, alpn: &[&str]) -> Result<HttpsClient> {
        HttpsClient::new(self.ca.cert_pem(), alpn, None)
    }

    /// A `client_credentials` access token for the stack's resource, fetched over https.
    pub fn token(&self, scope: &str) -> Result<String> {
        let basic = base64_basic(SERVICE_CLIENT, SERVICE_SECRET);
        let form = crate::client::form_encode(&[
            ("grant_type", "client_credentials"),
            ("scope", scope),
            ("resource", &self.envoy.mcp_url),
        ]);
        let answer = self.client(&["http/1.1"])?.send(&HttpsRequest {
            addr: self.authz_addr,
            server_name: DEV_TLS_HOST,
            method: "POST",
            path: "/token",
            headers: vec![
                ("authorization", basic),
                (
                    "content-type",
                    "application/x-www-form-urlencoded".to_string(),
                ),
            ],
            body: form,
        })?;
        anyhow::ensure!(answer.status == 200, "token endpoint: {answer:?}");
        answer.json()?["access_token"]
            .as_str()
            .map(str::to_string)
            .context("no access_token")
    }

    /// A JSON-RPC POST to an Envoy's /mcp over TLS.
    pub fn post_mcp(
        &self,
        envoy: &TlsEnvoy,
        client: &HttpsClient,
        token: Option<&str>,
        body: &str,
    ) -> Result<HttpsAnswer> {
        let mut headers = vec![
            ("content-type", "application/json".to_string()),
            ("accept", "application/json, text/event-stream".to_string()),
        ];
        if let Some(token) = token {
            headers.push(("authorization", format!("Bearer {token}")));
        }
        client.send(&HttpsRequest {
            addr: envoy.listener,
            server_name: DEV_TLS_HOST,
            method: "POST",
            path: "/mcp",
            headers,
            body: body.to_string(),
        })
    }

    /// Stops every process (by pid).
    pub fn stop(&mut self) {
        self.envoy.proc.stop();
        for p in self.procs.iter_mut().rev() {
            p.stop();
        }
    }
}

fn base64_basic(user: &str, password: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// Starts an Envoy from envoy.tls.yaml (derived as `cargo xtask sync-config` derives it, with this
/// run's certificate directory), changed by `edit`, then given the test's ports.
fn spawn_tls_envoy(
    name: &str,
    logs: &Path,
    files: &DevTlsFiles,
    ports: &EnvoyPorts,
    secret: &str,
    edit: impl FnOnce(&mut Value) -> Result<()>,
) -> Result<TlsEnvoy> {
    let base = std::fs::read_to_string(crate::repo_root().join("envoy.yaml"))?;
    let tls = tls_envoy_config(
        &base,
        &TlsLayout {
            dir: files.root.display().to_string(),
        },
    )?;
    let mut doc: Value = serde_yaml::from_str(&tls)?;
    edit(&mut doc)?;
    let config = derive_config(
        &serde_yaml::to_string(&doc)?,
        ports,
        &filter_wasm()?,
        &Json::Null,
    )?;
    let path: PathBuf = logs.join(format!("{name}.yaml"));
    std::fs::write(&path, config)?;
    let mut cmd = envoy_command(&path, crate::stack::ENVOY_WORKERS, "info")?;
    cmd.args(["--file-flush-interval-msec", "200"])
        .env("MCP_EDGE_GATEWAY_SECRET", secret);
    let mut proc = Proc::spawn(name, cmd, logs)?;
    let listener: SocketAddr = ([127, 0, 0, 1], ports.listener).into();
    proc.wait_for_port(listener, START_TIMEOUT)?;
    Ok(TlsEnvoy {
        proc,
        listener,
        admin_url: format!("http://127.0.0.1:{}", ports.admin),
        mcp_url: format!("https://{DEV_TLS_HOST}:{}/mcp", ports.listener),
    })
}
