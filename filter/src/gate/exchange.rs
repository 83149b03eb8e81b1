//! What passes between the glue and the [`Gate`](super::Gate): the host it asks for time, the
//! client address and shared counters; the worker state it reads; the [`Output`] of each step.

use std::rc::Rc;

use crate::config::EdgeConfig;
use crate::introspection::IntrospectionCall;
use crate::jwks::{Installed, KeyStore};
use crate::rate_limit::global::GlobalCall;
use crate::rate_limit::{SharedStore, SlotSecret, SlotTable};
use crate::reply::Reply;
use crate::tenant::TenantContext;
use crate::token_cache::{DEFAULT_CAPACITY, TokenCache};

use super::{BodySummary, Counter, Outcome, describe_body};

/// What the gate needs from the host besides the request itself.
pub trait Host {
    /// Nanoseconds since the Unix epoch.
    fn now_nanos(&self) -> u128;
    /// The client's IP address (without port), when known. Asked only on a token-cache miss.
    fn client_ip(&self) -> Option<String>;
    /// Counters shared by every worker of this Envoy.
    fn shared(&self) -> &dyn SharedStore;

    fn now_ms(&self) -> u64 {
        u64::try_from(self.now_nanos() / 1_000_000).unwrap_or(u64::MAX)
    }
    fn now_secs(&self) -> u64 {
        u64::try_from(self.now_nanos() / 1_000_000_000).unwrap_or(u64::MAX)
    }
}

/// What the requests of one worker share: configuration, signing keys, verified tokens.
pub struct WorkerState {
    pub config: Rc<EdgeConfig>,
    /// Keys the shared-data slot hash (the same for every worker of this Envoy).
    pub slot_secret: SlotSecret,
    pub keys: KeyStore,
    pub cache: TokenCache,
    /// This VM's identity in the shared counts of long-lived streams (random; set by the root).
    pub stream_holder: crate::rate_limit::streams::Holder,
}

impl WorkerState {
    pub fn new(config: EdgeConfig, slot_secret: SlotSecret) -> Self {
        Self {
            slot_secret,
            keys: KeyStore::new(&config),
            cache: TokenCache::new(
                DEFAULT_CAPACITY,
                config.leeway_seconds,
                slot_secret.derive("mcp_edge.token_cache"),
            )
            .with_max_age(config.token_cache_max_seconds),
            stream_holder: [0; 8],
            config: Rc::new(config),
        }
    }

    /// Installs a JWKS answer; tokens verified with keys that are gone are forgotten.
    pub fn install_keys(&mut self, status: Option<&str>, body: &[u8], now: u64) -> Installed {
        let installed = self.keys.install(&self.config, status, body, now);
        if matches!(installed, Installed::Changed(_)) {
            self.cache.clear();
        }
        installed
    }
}

/// What the glue does with the request after a step.
#[derive(Debug, PartialEq)]
pub enum Step {
    /// Let the request (or response) go on.
    Continue,
    /// Hold it; more body is coming.
    WaitForBody,
    /// The whole body is buffered: read it and call [`Gate::on_body`].
    ReadBody,
    /// Wait for the worker's JWKS fetch ([`crate::jwks::KeyStore::join`]; the root starts it if
    /// none runs), then call [`Gate::on_keys`] when it ends — or [`Gate::on_keys_unavailable`] at
    /// once if too many wait.
    WaitForKeys,
    /// Answer locally with this reply.
    Respond(Reply),
    /// Ask the global rate limit service, then call [`Gate::on_global_answer`].
    CheckGlobal(GlobalCall),
    /// Ask the introspection endpoint about an opaque token, then call
    /// [`Gate::on_introspection`] (also when the call cannot be sent).
    Introspect(IntrospectionCall),
}

/// The result of one step.
#[derive(Debug)]
pub struct Output {
    pub step: Step,
    /// Request headers to remove, before those to add and set.
    pub remove_request_headers: Vec<String>,
    /// Request headers to add: the signed `x-mcp-*` ones, whose inbound copies the gate removed
    /// with the request head, so there is none to replace (adding spares Envoy a lookup each).
    pub add_request_headers: Vec<(&'static str, String)>,
    /// Request headers to set, replacing any value they have.
    pub set_request_headers: Vec<(&'static str, String)>,
    /// Counters to increment by one.
    pub counters: Vec<Counter>,
    /// Filter state for the access log (`mcp_edge.*`).
    pub log_properties: Vec<(&'static str, String)>,
    /// A line for Envoy's log.
    pub log_line: Option<String>,
}

impl Output {
    pub(super) fn step(step: Step) -> Self {
        Self {
            step,
            remove_request_headers: Vec::new(),
            add_request_headers: Vec::new(),
            set_request_headers: Vec::new(),
            counters: Vec::new(),
            log_properties: Vec::new(),
            log_line: None,
        }
    }
}

/// What the glue gives the gate of the request head, and of its answer.
#[derive(Debug, Clone, Default)]
pub struct RequestHead<'a> {
    pub method: &'a str,
    /// `:path`, with query.
    pub path: &'a str,
    pub authorization: Vec<&'a [u8]>,
    pub origin: Option<&'a [u8]>,
    pub content_type: Option<&'a [u8]>,
    pub content_encoding: Option<&'a [u8]>,
    pub protocol_version: Option<&'a [u8]>,
}

impl Output {
    /// The names of the counters to bump, for tests.
    #[cfg(test)]
    pub(super) fn counter_names(&self) -> Vec<String> {
        self.counters.iter().map(|c| c.name()).collect()
    }

    /// Adds what a refused body asked for to the access log.
    pub(super) fn described(mut self, body: &[u8]) -> Self {
        if let Some(s) = describe_body(body) {
            self.log_properties.push(("mcp_edge.method", s.method));
            if let Some(tool) = s.tool {
                self.log_properties.push(("mcp_edge.tool", tool));
            }
        }
        self
    }
}

/// What to do with response body data.
#[derive(Debug, PartialEq, Eq)]
pub enum ResponseBody {
    Continue,
    /// Hold it (and the head); more body is coming.
    Wait,
    /// Send these bytes in place of the chunk that just arrived.
    Replace(Vec<u8>),
    /// Send this body in place of the whole buffered one, with a `Content-Length` of its length
    /// (the head was held: [`super::Gate::holds_response_head`]).
    ReplaceWhole(Vec<u8>),
}

/// Tenant, method, tool and outcome for the access log.
pub(super) fn access_log(
    tenant: &TenantContext,
    outcome: Outcome,
    summary: Option<&BodySummary>,
) -> Vec<(&'static str, String)> {
    let mut props = vec![("mcp_edge.tenant", tenant.tenant_id.clone())];
    if let Some(s) = summary {
        props.push(("mcp_edge.method", s.method.clone()));
        if let Some(tool) = &s.tool {
            props.push(("mcp_edge.tool", tool.clone()));
        }
    }
    props.push(("mcp_edge.outcome", outcome.stat_name()));
    props
}

pub(crate) fn address_table<'a>(cfg: &EdgeConfig, secret: &'a SlotSecret) -> SlotTable<'a> {
    SlotTable {
        namespace: "mcp_edge.addr",
        slots: cfg.rate_limit_slots,
        probes: 8,
        secret,
    }
}

pub(crate) fn tenant_table<'a>(cfg: &EdgeConfig, secret: &'a SlotSecret) -> SlotTable<'a> {
    SlotTable {
        namespace: "mcp_edge.tenant",
        slots: cfg.rate_limit_slots,
        probes: 8,
        secret,
    }
}
