//! The whole request path for a test binary: Redis, the token issuer, the backend, the recording
//! upstream and Envoy loading the real `.wasm`, each on a free loopback port, all stopped (by pid)
//! when the stack is dropped. The issuer is the dev issuer (default) or, with
//! [`StackOptions::authz`], the real OAuth authorization server (`authz/server.mjs`, test mode).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context as _, Result};
use jwt_simple::prelude::*;
use serde_json::{Map, Value};
use xtask::{DevKeys, TokenSpec, claims_for};

use crate::envoy::{EnvoyPorts, derive_config, with_batched_spans, with_route_timeout};
use crate::procs::{Proc, cargo_bin, envoy_command, filter_wasm, free_port, node_bin, python_bin};
use crate::recorder::{self, Recorder};

const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The worker threads (`--concurrency`) of every Envoy a stack starts: each runs its own wasm VM.
pub const ENVOY_WORKERS: u8 = 2;

/// The shared secret of a test's rate limit service (`RATELIMIT_SHARED_SECRET`), which every Envoy
/// of a stack holds as `MCP_EDGE_RATELIMIT_SECRET` (the filter sends it when its
/// `global_rate_limit.secret_env` names that variable).
pub const RATELIMIT_SECRET: &str = "e2e-ratelimit-secret-0123456789abcdef";

/// What a test binary's stack runs. The default is what `Stack::start()` always ran.
#[derive(Debug, Clone, Default)]
pub struct StackOptions {
    /// Start the OAuth authorization server (`authz/server.mjs` with `AUTHZ_TEST_MODE=1`) instead
    /// of the dev issuer.
    pub authz: bool,
    /// Plugin configuration fields to replace (a JSON object, or null; see `derive_config`).
    pub plugin_overrides: Value,
    /// More options for the backend (e.g. `--quota-free 5`).
    pub backend_args: Vec<String>,
    /// Environment variables for the backend (e.g. `OTEL_BSP_SCHEDULE_DELAY`).
    pub backend_env: Vec<(&'static str, String)>,
    /// The MCP server behind the edge: our backend (default) or a third-party one.
    pub upstream: Upstream,
    /// With `authz`: the server issues opaque access tokens (RFC 7662 introspection) for the
    /// stack's MCP resource instead of JWTs.
    pub opaque_tokens: bool,
    /// Where Envoy's `mcp_edge_ratelimit` cluster points (a free port, unused, when `None`).
    pub ratelimit_port: Option<u16>,
    /// Start the global rate limit service (`mcp-edge-ratelimit --memory` with
    /// `ratelimit/limits.yaml` and its metrics listener) and point that cluster at it.
    pub ratelimit_service: bool,
    /// Every route timeout of envoy.yaml that is not `0s` replaced by this (e.g. `"2s"`; see
    /// `envoy::with_route_timeout`).
    pub route_timeout: Option<&'static str>,
    /// Another build of the filter to load instead of the tree's release `.wasm` (a benchmark
    /// comparing an earlier build; tests leave it `None`).
    pub filter_wasm: Option<PathBuf>,
    /// Another `envoy.yaml` to derive the Envoys' configuration from (a benchmark comparing an
    /// earlier build whose access log read other filter state; tests leave it `None`).
    pub envoy_yaml: Option<PathBuf>,
    /// An OTLP/gRPC receiver's port for Envoy's spans: envoy.yaml's tracing stays on, its
    /// `otel_collector` cluster pointing there (`None`: tracing left out; see `EnvoyPorts`).
    pub otel_collector: Option<u16>,
    /// With `otel_collector`: Envoy sends its spans in its default batches (5 spans, or every
    /// 5 s) instead of each as it ends, as a deployment does (the CPU benchmark's tracing row).
    pub batched_spans: bool,
}

/// The MCP server a stack puts behind the edge. A third-party server is a script run with
/// `--listen 127.0.0.1:0` and `MCP_EDGE_GATEWAY_SECRET`, which prints `listening on ADDR` once
/// ready, as the backend does.
#[derive(Debug, Clone, Copy, Default)]
pub enum Upstream {
    /// Our backend (`mcp-edge-backend`).
    #[default]
    Backend,
    /// A script in `tests/node`, run with the repository's Node (`.venv/bin/node`).
    Node(&'static str),
    /// A script in `tests/node` that listens on every interface at the port in `PORT`, as npm
    /// packages' servers do: the harness picks a free port and waits until it accepts connections.
    NodeOnPort(&'static str),
    /// A script in `tests/python`, run with the repository's Python (`.venv/bin/python`, where
    /// scripts/install-deps.sh installs the official MCP Python SDK).
    Python(&'static str),
}

impl Upstream {
    /// The command that starts this upstream, before the arguments every upstream gets.
    fn command(self, redis_url: &str, backend_args: &[String]) -> Result<Command> {
        let (interpreter, dir, script) = match self {
            Self::Backend => {
                let mut cmd = Command::new(cargo_bin("mcp-edge-backend")?);
                cmd.args(["--redis-url", redis_url])
                    .args(backend_args)
                    .env("RUST_LOG", "info");
                return Ok(cmd);
            }
            Self::Node(script) | Self::NodeOnPort(script) => (node_bin(), "tests/node", script),
            Self::Python(script) => (python_bin()?, "tests/python", script),
        };
        let mut cmd = Command::new(interpreter);
        cmd.arg(crate::repo_root().join(dir).join(script));
        Ok(cmd)
    }
}

/// The authorization server of a stack started with [`StackOptions::authz`].
#[derive(Debug, Clone)]
pub struct Authz {
    /// Its issuer URL, `http://127.0.0.1:<port>` (also its base URL).
    pub url: String,
    /// A second resource it issues tokens for, which no Envoy of the stack serves.
    pub other_resource: String,
}

pub struct Stack {
    /// `http://127.0.0.1:<port>/mcp`: Envoy in front of the real backend. Also the resource URI.
    pub mcp_url: String,
    /// Same filter, forwarding to the recording upstream.
    pub recorded_mcp_url: String,
    /// The recording upstream through Envoy without the mcp-edge filter (benchmark baseline).
    pub baseline_mcp_url: String,
    pub envoy_origin: String,
    pub admin_url: String,
    pub issuer: String,
    pub backend_addr: SocketAddr,
    pub redis_url: String,
    pub secret: String,
    pub recorder: Recorder,
    pub key_file: PathBuf,
    /// Set when the stack runs the OAuth authorization server.
    pub authz: Option<Authz>,
    /// The rate limit service's `/metrics` URL, when the stack started it
    /// ([`StackOptions::ratelimit_service`]).
    pub ratelimit_metrics_url: Option<String>,
    keys: Mutex<Option<DevKeys>>,
    /// The ports every Envoy of this stack forwards to (backend, recorder, issuer, rate limit).
    upstream_ports: EnvoyPorts,
    /// The `.wasm` every Envoy of this stack loads.
    filter_wasm: PathBuf,
    /// The `envoy.yaml` every Envoy of this stack's configuration comes from.
    envoy_yaml: PathBuf,
    procs: Mutex<Vec<Proc>>,
    _runtime: tokio::runtime::Runtime,
    dir: tempfile::TempDir,
}

/// The service client of authz/directory.json (tenant acme): its id (also the `sub` of its
/// tokens) and its demo secret.
pub const SERVICE_CLIENT: &str = "acme-reporting-agent";
pub const SERVICE_SECRET: &str = "acme-reporting-agent-demo-secret-0123456789";

impl Authz {
    /// A `client_credentials` token response (the JSON object) for a service client of
    /// authz/directory.json; fails unless the server answers 200.
    pub fn client_credentials(
        &self,
        client_id: &str,
        secret: &str,
        scope: &str,
        resource: Option<&str>,
    ) -> Result<Value> {
        let mut form = vec![("grant_type", "client_credentials"), ("scope", scope)];
        if let Some(r) = resource {
            form.push(("resource", r));
        }
        let resp = crate::client::http()
            .post(format!("{}/token", self.url))
            .basic_auth(client_id, Some(secret))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(crate::client::form_encode(&form))
            .send()?;
        let status = resp.status();
        let body: Value = resp.json()?;
        anyhow::ensure!(status == 200, "token endpoint answered {status}: {body}");
        Ok(body)
    }

    /// How many introspection requests the server has received (test mode).
    pub fn introspections(&self) -> Result<u64> {
        let resp = crate::client::http()
            .get(format!("{}/test/introspections", self.url))
            .send()?;
        let body: Value = resp.json()?;
        body["count"]
            .as_u64()
            .with_context(|| format!("no count in {body}"))
    }

    /// Rotates the server's signing key (test mode): a new key with a new `kid` signs from now
    /// on, the old one stays published. Returns the new `kid`.
    pub fn rotate_keys(&self) -> Result<String> {
        let resp = crate::client::http()
            .post(format!("{}/test/rotate-keys", self.url))
            .send()?;
        let status = resp.status();
        let body: Value = resp.json()?;
        anyhow::ensure!(status == 200, "rotate-keys answered {status}: {body}");
        body["kid"]
            .as_str()
            .map(str::to_string)
            .context("no kid in the rotate-keys answer")
    }
}

impl Stack {
    /// The authorization server; an error for a stack started without one.
    pub fn authz(&self) -> Result<&Authz> {
        self.authz
            .as_ref()
            .context("the stack runs no authorization server")
    }

    pub fn start() -> Result<Self> {
        Self::start_with_plugin_overrides(&Value::Null)
    }

    /// Like [`Stack::start`], with some plugin configuration fields replaced (see `derive_config`).
    pub fn start_with_plugin_overrides(plugin_overrides: &Value) -> Result<Self> {
        Self::start_with(&StackOptions {
            plugin_overrides: plugin_overrides.clone(),
            ..StackOptions::default()
        })
    }

    /// The stack `options` describe.
    pub fn start_with(options: &StackOptions) -> Result<Self> {
        let plugin_overrides = &options.plugin_overrides;
        let dir = tempfile::Builder::new()
            .prefix("mcp-edge-tests-")
            .tempdir()?;
        let logs = dir.path();
        let mut procs = Vec::new();
        let secret = format!(
            "e2e-secret-{}-0123456789abcdef0123456789",
            std::process::id()
        );

        // Redis, with its own dir.
        let redis_port = free_port()?;
        let mut cmd = Command::new("redis-server");
        cmd.args([
            "--port",
            &redis_port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .arg("--dir")
        .arg(logs);
        let mut redis = Proc::spawn("redis", cmd, logs)?;
        redis.wait_for_port(([127, 0, 0, 1], redis_port).into(), START_TIMEOUT)?;
        let redis_url = format!("redis://127.0.0.1:{redis_port}");
        procs.push(redis);

        // The backend (ours, or a third-party server), on a port it picks (or one picked here).
        let mut cmd = options
            .upstream
            .command(&redis_url, &options.backend_args)?;
        cmd.args(["--listen", "127.0.0.1:0"])
            .env("MCP_EDGE_GATEWAY_SECRET", &secret)
            .envs(options.backend_env.iter().map(|(k, v)| (k, v)));
        let port = match options.upstream {
            Upstream::NodeOnPort(_) => Some(free_port()?),
            _ => None,
        };
        if let Some(port) = port {
            cmd.env("PORT", port.to_string());
        }
        let mut backend = Proc::spawn("backend", cmd, logs)?;
        let backend_addr = match port {
            Some(port) => {
                let addr = ([127, 0, 0, 1], port).into();
                backend.wait_for_port(addr, START_TIMEOUT)?;
                addr
            }
            None => backend.wait_for_listening_addr(START_TIMEOUT)?,
        };
        procs.push(backend);

        // Envoy's ports first: the authorization server must know the resource URI.
        let listener_port = free_port()?;
        let recorded_port = free_port()?;
        let mcp_url = format!("http://127.0.0.1:{listener_port}/mcp");

        // The issuer whose JWKS the filter fetches: the dev issuer or the OAuth server.
        let key_file = logs.join("issuer-keys.json");
        let issuer_port = free_port()?;
        let issuer = format!("http://127.0.0.1:{issuer_port}");
        let (keys, authz) = if options.authz {
            let other_resource = format!("http://127.0.0.1:{recorded_port}/other-mcp");
            let mut cmd = Command::new(node_bin());
            cmd.arg(crate::repo_root().join("authz/server.mjs"))
                .args(["--port", &issuer_port.to_string(), "--issuer", &issuer])
                .args(["--resource", &mcp_url, "--resource", &other_resource])
                .arg("--key-file")
                .arg(&key_file)
                .env("AUTHZ_TEST_MODE", "1");
            if options.opaque_tokens {
                cmd.args(["--opaque-resource", &mcp_url]);
            }
            let mut server = Proc::spawn("authz", cmd, logs)?;
            server.wait_for_log("authz listening on", START_TIMEOUT)?;
            procs.push(server);
            let authz = Authz {
                url: issuer.clone(),
                other_resource,
            };
            (None, Some(authz))
        } else {
            let keys = DevKeys::load_or_create(&key_file)?;
            let mut cmd = Command::new(cargo_bin("xtask")?);
            cmd.arg("dev-issuer")
                .args([
                    "--listen",
                    &format!("127.0.0.1:{issuer_port}"),
                    "--issuer",
                    &issuer,
                ])
                .arg("--key-file")
                .arg(&key_file);
            let mut dev_issuer = Proc::spawn("dev-issuer", cmd, logs)?;
            dev_issuer.wait_for_port(([127, 0, 0, 1], issuer_port).into(), START_TIMEOUT)?;
            procs.push(dev_issuer);
            (Some(keys), None)
        };

        // The global rate limit service, when asked for.
        let (ratelimit_port, ratelimit_metrics_url) = if options.ratelimit_service {
            let (port, metrics_port) = (free_port()?, free_port()?);
            let mut cmd = Command::new(cargo_bin("mcp-edge-ratelimit")?);
            cmd.args(["--listen", &format!("127.0.0.1:{port}"), "--memory"])
                .arg("--limits")
                .arg(crate::repo_root().join("ratelimit/limits.yaml"))
                .args(["--metrics-addr", &format!("127.0.0.1:{metrics_port}")])
                .env("RATELIMIT_SHARED_SECRET", RATELIMIT_SECRET);
            let mut service = Proc::spawn("ratelimit", cmd, logs)?;
            service.wait_for_log("listening on", START_TIMEOUT)?;
            procs.push(service);
            (
                Some(port),
                Some(format!("http://127.0.0.1:{metrics_port}/metrics")),
            )
        } else {
            (options.ratelimit_port, None)
        };

        // The recording upstream.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        let (recorder, recorder_addr) = recorder::start(&runtime)?;

        // Envoy with the configuration derived from envoy.yaml.
        let ports = EnvoyPorts {
            listener: listener_port,
            recorded_listener: recorded_port,
            baseline_listener: free_port()?,
            admin: free_port()?,
            backend: backend_addr.port(),
            recorder: recorder_addr.port(),
            issuer: issuer_port,
            ratelimit: match ratelimit_port {
                Some(port) => port,
                None => free_port()?,
            },
            otel_collector: options.otel_collector,
        };
        let wasm = match &options.filter_wasm {
            Some(path) => path.clone(),
            None => filter_wasm()?,
        };
        let envoy_yaml = options
            .envoy_yaml
            .clone()
            .unwrap_or_else(|| crate::repo_root().join("envoy.yaml"));
        procs.push(spawn_envoy(
            "envoy",
            logs,
            &envoy_yaml,
            &ports,
            &wasm,
            plugin_overrides,
            &secret,
            &|config| {
                let config = if options.batched_spans {
                    with_batched_spans(&config)?
                } else {
                    config
                };
                match options.route_timeout {
                    Some(timeout) => with_route_timeout(&config, timeout),
                    None => Ok(config),
                }
            },
        )?);

        let envoy_origin = format!("http://127.0.0.1:{}", ports.listener);
        Ok(Self {
            mcp_url,
            recorded_mcp_url: format!("http://127.0.0.1:{}/mcp", ports.recorded_listener),
            baseline_mcp_url: format!("http://127.0.0.1:{}/mcp", ports.baseline_listener),
            envoy_origin,
            admin_url: format!("http://127.0.0.1:{}", ports.admin),
            issuer,
            backend_addr,
            redis_url,
            secret,
            recorder,
            key_file,
            authz,
            ratelimit_metrics_url,
            keys: Mutex::new(keys),
            upstream_ports: ports,
            filter_wasm: wasm,
            envoy_yaml,
            procs: Mutex::new(procs),
            _runtime: runtime,
            dir,
        })
    }

    /// Starts one more Envoy process named `name` with the same upstreams and `.wasm`, the plugin
    /// configuration of `envoy.yaml` with `plugin_overrides` and the resource of the first Envoy
    /// (so the same tokens are valid). The returned guard stops it (by pid) when dropped, so a
    /// case stops what it started; [`ExtraEnvoy::keep`] leaves it to the stack's end instead.
    pub fn start_envoy(&self, name: &str, plugin_overrides: &Value) -> Result<ExtraEnvoy<'_>> {
        self.start_envoy_edited(name, plugin_overrides, &Ok)
    }

    /// [`Stack::start_envoy`] with the derived configuration (YAML text) changed by `edit` before
    /// Envoy reads it (e.g. a cluster added).
    pub fn start_envoy_edited(
        &self,
        name: &str,
        plugin_overrides: &Value,
        edit: &dyn Fn(String) -> Result<String>,
    ) -> Result<ExtraEnvoy<'_>> {
        let ports = self.spawn_more_envoy(name, plugin_overrides, edit)?;
        Ok(ExtraEnvoy {
            stack: self,
            name: name.to_string(),
            url: format!("http://127.0.0.1:{}/mcp", ports.listener),
            recorded_url: format!("http://127.0.0.1:{}/mcp", ports.recorded_listener),
            admin_url: format!("http://127.0.0.1:{}", ports.admin),
            kept: false,
        })
    }

    fn spawn_more_envoy(
        &self,
        name: &str,
        plugin_overrides: &Value,
        edit: &dyn Fn(String) -> Result<String>,
    ) -> Result<EnvoyPorts> {
        let up = &self.upstream_ports;
        let ports = EnvoyPorts {
            listener: free_port()?,
            recorded_listener: free_port()?,
            baseline_listener: free_port()?,
            admin: free_port()?,
            backend: up.backend,
            recorder: up.recorder,
            issuer: up.issuer,
            ratelimit: up.ratelimit,
            otel_collector: up.otel_collector,
        };
        let mut overrides = plugin_overrides.clone();
        if let Some(o) = overrides.as_object_mut() {
            o.entry("resource")
                .or_insert_with(|| Value::from(self.mcp_url.clone()));
        }
        let envoy = spawn_envoy(
            name,
            self.dir.path(),
            &self.envoy_yaml,
            &ports,
            &self.filter_wasm,
            &overrides,
            &self.secret,
            edit,
        )?;
        self.procs
            .lock()
            .map_err(|_| anyhow::anyhow!("procs lock poisoned"))?
            .push(envoy);
        Ok(ports)
    }

    /// The ports every Envoy of this stack forwards to (backend, recorder, issuer, rate limit).
    pub fn upstream_ports(&self) -> &EnvoyPorts {
        &self.upstream_ports
    }

    /// Stops the server named `name` (by pid), if it runs.
    pub fn stop_one(&self, name: &str) -> Result<()> {
        let mut procs = self
            .procs
            .lock()
            .map_err(|_| anyhow::anyhow!("procs lock poisoned"))?;
        if let Some(i) = procs.iter().position(|p| p.name == name) {
            procs.remove(i).stop();
        }
        Ok(())
    }

    /// The token spec of a well-behaved token for `tenant`.
    pub fn spec(&self, tenant: &str) -> TokenSpec {
        TokenSpec {
            issuer: self.issuer.clone(),
            audience: self.mcp_url.clone(),
            tenant_id: tenant.to_string(),
            sub: format!("user-of-{tenant}"),
            scope: "mcp:read mcp:write".into(),
            tier: "pro".into(),
            data_scope: None,
            allowed_tools: None,
            ttl_seconds: 600,
        }
    }

    /// An RS256 token for `tenant` with these scopes and `allowed_tools` (`None`: no such claim).
    pub fn token_with(
        &self,
        tenant: &str,
        scope: &str,
        allowed: Option<&[&str]>,
    ) -> Result<String> {
        let mut spec = self.spec(tenant);
        spec.scope = scope.to_string();
        spec.allowed_tools = allowed.map(|a| a.iter().map(|t| t.to_string()).collect());
        self.sign("RS256", claims_for(&spec))
    }

    /// Signs arbitrary claims with the issuer's key for `alg`.
    pub fn sign(&self, alg: &str, claims: JWTClaims<Map<String, Value>>) -> Result<String> {
        let keys = self
            .keys
            .lock()
            .map_err(|_| anyhow::anyhow!("keys lock poisoned"))?;
        keys.as_ref()
            .context("this stack runs the OAuth server: it has no dev keys")?
            .sign(alg, claims)
    }

    /// Signs `claims` with the issuer's RS256 key under a header with this `typ` (e.g. `at+jwt`),
    /// as identity providers other than ours shape their tokens.
    pub fn sign_rs256_typed(
        &self,
        typ: &str,
        claims: JWTClaims<Map<String, Value>>,
    ) -> Result<String> {
        let keys = self
            .keys
            .lock()
            .map_err(|_| anyhow::anyhow!("keys lock poisoned"))?;
        let keys = keys
            .as_ref()
            .context("this stack runs the OAuth server: it has no dev keys")?;
        let header = HeaderOptions {
            signature_type: Some(typ.to_string()),
            ..HeaderOptions::default()
        };
        keys.rs256.sign_with_options(claims, &header)
    }

    /// A valid RS256 token for `tenant`.
    pub fn token(&self, tenant: &str) -> Result<String> {
        self.sign("RS256", claims_for(&self.spec(tenant)))
    }

    /// Rotates the issuer's keys: new keys (new `kid`s) are published beside the current ones, as
    /// a real rotation does. Returns the new keys; the stack itself keeps signing with the old ones.
    pub fn rotate_keys(&self, suffix: &str) -> Result<DevKeys> {
        let _guard = self
            .keys
            .lock()
            .map_err(|_| anyhow::anyhow!("keys lock poisoned"))?;
        let fresh = DevKeys::load(&self.key_file)?.rotated(suffix)?;
        fresh.save(&self.key_file)?;
        DevKeys::load(&self.key_file)
    }

    /// Fails if any server has died; used after each test.
    pub fn check_alive(&self) -> Result<()> {
        let mut procs = self
            .procs
            .lock()
            .map_err(|_| anyhow::anyhow!("procs lock poisoned"))?;
        for p in procs.iter_mut() {
            p.check_alive()?;
        }
        Ok(())
    }

    /// The process id of one server (`"envoy"`, `"backend"`, …), while it runs.
    pub fn pid(&self, name: &str) -> Option<u32> {
        self.procs
            .lock()
            .ok()?
            .iter()
            .find(|p| p.name == name)
            .map(Proc::pid)
    }

    /// The tail of one server's log (for failure messages).
    pub fn log_tail(&self, name: &str, lines: usize) -> String {
        self.procs
            .lock()
            .map(|procs| {
                procs
                    .iter()
                    .find(|p| p.name == name)
                    .map(|p| p.log_tail(lines))
                    .unwrap_or_default()
            })
            .unwrap_or_default()
    }

    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Stops every server (Envoy first), by pid.
    pub fn stop(&self) {
        if let Ok(mut procs) = self.procs.lock() {
            while let Some(mut p) = procs.pop() {
                p.stop();
            }
        }
    }
}

/// Envoy (two workers) with the configuration derived from `envoy_yaml` for `ports`, listening
/// on all three listeners when this returns.
#[allow(clippy::too_many_arguments)]
pub fn spawn_envoy(
    name: &str,
    logs: &std::path::Path,
    envoy_yaml: &std::path::Path,
    ports: &EnvoyPorts,
    wasm: &std::path::Path,
    plugin_overrides: &Value,
    secret: &str,
    edit: &dyn Fn(String) -> Result<String>,
) -> Result<Proc> {
    let base = std::fs::read_to_string(envoy_yaml)
        .with_context(|| format!("reading {}", envoy_yaml.display()))?;
    let config = edit(derive_config(&base, ports, wasm, plugin_overrides)?)?;
    let config_path = logs.join(format!("{name}.yaml"));
    std::fs::write(&config_path, config)?;
    let mut cmd = envoy_command(&config_path, ENVOY_WORKERS, "info")?;
    cmd.args(["--file-flush-interval-msec", "200"])
        .env("MCP_EDGE_GATEWAY_SECRET", secret)
        // The rate limit service's shared secret, for a configuration with a global limit.
        .env("MCP_EDGE_RATELIMIT_SECRET", RATELIMIT_SECRET)
        // The introspection client of authz/directory.json (demo credentials), for a plugin
        // configuration with `introspection`; unused otherwise.
        .env("MCP_EDGE_INTROSPECTION_CLIENT_ID", "mcp-edge")
        .env(
            "MCP_EDGE_INTROSPECTION_CLIENT_SECRET",
            "mcp-edge-introspection-demo-secret-0123456789",
        );
    let mut envoy = Proc::spawn(name, cmd, logs)?;
    for port in [
        ports.listener,
        ports.recorded_listener,
        ports.baseline_listener,
    ] {
        envoy.wait_for_port(([127, 0, 0, 1], port).into(), START_TIMEOUT)?;
    }
    Ok(envoy)
}

/// An Envoy started by [`Stack::start_envoy`]: stopped when this guard drops, unless kept.
pub struct ExtraEnvoy<'s> {
    stack: &'s Stack,
    pub name: String,
    /// Its MCP URL in front of the real backend.
    pub url: String,
    /// Its MCP URL in front of the recording upstream (benchmarks: an answer that costs the same
    /// whatever the filter does).
    pub recorded_url: String,
    /// Its admin URL (`http://127.0.0.1:<port>`), for its stats.
    pub admin_url: String,
    kept: bool,
}

impl ExtraEnvoy<'_> {
    /// Leaves the Envoy running until the stack stops (for Envoys a whole binary shares).
    pub fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for ExtraEnvoy<'_> {
    fn drop(&mut self) {
        if !self.kept {
            let _ = self.stack.stop_one(&self.name);
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.stop();
    }
}
