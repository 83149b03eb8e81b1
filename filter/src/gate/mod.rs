//! The request's journey through the edge, start to end, as one state machine over plain values.
//!
//! The proxy-wasm glue creates one [`Gate`] per request and feeds it what Envoy hands over; each
//! step returns an [`Output`]: what to do with the request (continue, wait, fetch keys, answer
//! locally), headers to remove or set, counters to bump and access-log properties. The gate decides;
//! the glue only carries it out. Everything here runs under `cargo test`.
//!
//! 1. [`Gate::on_request_headers`]: drop inbound `x-mcp-*` headers, route ([`routing`]: metadata,
//!    path, CORS preflight, method, `Origin`), authenticate ([`authenticate`]), check transport.
//! 2. [`Gate::on_keys`]: after a JWKS fetch the head asked for, authenticate again.
//!    [`Gate::on_introspection`]: after asking the introspection endpoint about an opaque token.
//! 3. [`Gate::on_request_body`] / [`Gate::on_body`]: size cap, then the JSON-RPC verdict ([`body`]),
//!    the tenant's rate ([`admission`]) and the identity assertion ([`vouch`]). The body is not
//!    kept after the verdict.
//!    With `global_rate_limit` configured, the rate limit service is asked next ([`global`]) and
//!    [`Gate::on_global_answer`] forwards or answers.
//! 4. [`Gate::on_response_headers`] / [`Gate::on_response_body`] / [`Gate::on_response_trailers`]:
//!    CORS and RateLimit headers, and the rewrite of every tool list on any answer, with a
//!    stream's event ids bound to the caller ([`response`]).
//!
//! Every refusal is a typed [`Denial`]; [`denial`] maps it to the reply and the stat name.

mod admission;
mod authenticate;
mod body;
mod counter;
mod denial;
mod exchange;
mod global;
mod response;
mod routing;
mod streams;
mod vouch;

pub use admission::{RateState, admit};
pub use authenticate::{AddressBudget, KeyAccess, NotAuthenticated, authenticate, introspected};
pub use body::{BodySummary, RoutingHeaders, describe_body, judge_body};
pub use counter::Counter;
pub use denial::{Denial, Outcome};
pub use exchange::{Host, Output, RequestHead, ResponseBody, Step, WorkerState};
pub use routing::{
    Route, check_last_event_id, check_session_id, check_session_method, check_transport, route,
};

use std::rc::Rc;

use mcp_edge_contract::headers;

use crate::caller::Caller;
use crate::config::EdgeConfig;
use crate::protocol::ProtocolVersion;
use crate::reply::Reply;
use crate::request_id::new_request_id;
use crate::routing_headers::KeptRouting;
use crate::tenant::TenantContext;
use crate::token_cache::TokenKey;

use exchange::access_log;
pub(crate) use exchange::{address_table, tenant_table};

/// An authenticated request, waiting for its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admitted {
    /// The caller, shared with the token cache (it dereferences to the [`TenantContext`]).
    pub tenant: Rc<Caller>,
    pub version: ProtocolVersion,
}

/// A request let through; its response may be rewritten for its tenant.
#[derive(Debug)]
struct Forwarded {
    tenant: Rc<Caller>,
    tools_list_ids: Vec<serde_json::Value>,
    rate: RateState,
    /// `RateLimit`/`RateLimit-Policy` of the global limit, answered instead of the local bucket's.
    global_headers: Vec<(String, String)>,
}

#[derive(Debug, Default)]
enum Phase {
    #[default]
    Start,
    AwaitingKeys,
    /// Asked the introspection endpoint about the opaque token cached (if active) under this key.
    AwaitingIntrospection(TokenKey),
    Authenticated(Box<Admitted>),
    Forwarded(Box<Forwarded>),
    /// Admitted here, waiting for the global rate limit service's answer.
    AwaitingGlobal(Box<global::AwaitingGlobal>),
    /// Answered locally.
    Done,
}

/// The request headers the gate reads, by name.
const READ_HEADERS: [&str; 9] = [
    "authorization",
    "origin",
    "content-type",
    "content-encoding",
    "mcp-protocol-version",
    "mcp-method",
    "mcp-name",
    "mcp-session-id",
    "last-event-id",
];

/// Of [`READ_HEADERS`], those the steps after authentication read (the body's verdict, the
/// signature, the answer's CORS headers); the others are dropped once the caller is known.
/// (`Mcp-Method` and `Mcp-Name` are kept as [`KeptRouting`] then: bounded whatever their length).
const READ_AFTER_AUTHENTICATION: [&str; 2] = ["origin", "mcp-protocol-version"];

/// One request at the edge.
#[derive(Debug, Default)]
pub struct Gate {
    phase: Phase,
    method: String,
    /// `:path` with query, until the request is forwarded or answered.
    path: String,
    request_id: String,
    /// The headers of [`READ_HEADERS`] (several for `authorization`), up to Envoy's header cap
    /// (32 KiB); after authentication only [`READ_AFTER_AUTHENTICATION`], and none once the
    /// request is forwarded or answered: a stream may be held open long after its verdict.
    headers: Vec<(&'static str, Vec<u8>)>,
    /// The request's allowed `Origin` (one of the configured ones), kept for the answer's CORS
    /// headers once `headers` are dropped.
    cors_origin: Option<String>,
    /// `Mcp-Method` / `Mcp-Name`, from authentication to the body's verdict.
    routing: KeptRouting,
    body_size: usize,
    body_complete: bool,
    /// The upstream's own session id, checked out of the client's bound `Mcp-Session-Id`.
    upstream_session: Option<String>,
    /// The upstream's own event id, checked out of the client's bound `Last-Event-ID`.
    upstream_last_event_id: Option<String>,
    /// How the response body is judged (chosen from the response head).
    response_judge: Option<response::ResponseJudge>,
    /// The tenant whose long-lived stream this request holds a place for (given back when the
    /// request ends: [`Gate::take_stream_place`]).
    stream_place: Option<String>,
}

impl Gate {
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_slice())
    }

    fn head(&self) -> RequestHead<'_> {
        RequestHead {
            method: &self.method,
            path: &self.path,
            authorization: self
                .headers
                .iter()
                .filter(|(n, _)| *n == "authorization")
                .map(|(_, v)| v.as_slice())
                .collect(),
            origin: self.header("origin"),
            content_type: self.header("content-type"),
            content_encoding: self.header("content-encoding"),
            protocol_version: self.header("mcp-protocol-version"),
        }
    }

    /// The request's `Origin` when it is an allowed one (read from the headers still held).
    fn allowed_origin(&self, cfg: &EdgeConfig) -> Option<&str> {
        crate::cors::allowed_origin(cfg, self.header("origin"))
    }

    /// Whether a JWKS fetch started for this request has not been answered yet.
    pub fn awaiting_keys(&self) -> bool {
        matches!(self.phase, Phase::AwaitingKeys)
    }

    /// Whether an introspection call started for this request has not been answered yet.
    pub fn awaiting_introspection(&self) -> bool {
        matches!(self.phase, Phase::AwaitingIntrospection(_))
    }

    /// The edge's own id for this request.
    pub fn request_id(&self) -> &str {
        &self.request_id
    }

    /// Step 1: the request head. `headers` are all request headers, pseudo-headers included.
    pub fn on_request_headers(
        &mut self,
        w: &mut WorkerState,
        host: &dyn Host,
        headers: Vec<(String, Vec<u8>)>,
        end_of_stream: bool,
    ) -> Output {
        self.request_id = new_request_id(host.now_nanos());
        let mut removed = Vec::new();
        for (name, value) in headers {
            // Nobody outside may speak for a tenant: drop every inbound x-mcp-* header.
            if headers::is_trusted(&name) {
                removed.push(name);
            } else if name == ":path" {
                self.path = String::from_utf8(value).unwrap_or_default();
            } else if name == ":method" {
                self.method = String::from_utf8(value).unwrap_or_default();
            } else if let Some(known) = READ_HEADERS.iter().find(|k| name.eq_ignore_ascii_case(k)) {
                self.headers.push((known, value));
            }
        }
        self.body_complete = end_of_stream;
        let mut out = self.judge_head(w, host, true);
        out.remove_request_headers.splice(0..0, removed);
        if w.config.access_log_properties {
            out.log_properties
                .insert(0, ("mcp_edge.request_id", self.request_id.clone()));
        }
        out
    }

    /// Step 2: the JWKS fetch asked for has been answered (and installed).
    pub fn on_keys(&mut self, w: &mut WorkerState, host: &dyn Host) -> Output {
        if !matches!(self.phase, Phase::AwaitingKeys) {
            return Output::step(Step::Continue);
        }
        self.judge_head(w, host, false)
    }

    /// Step 2, opaque tokens: the introspection endpoint's answer (`status` `None`: no answer).
    pub fn on_introspection(
        &mut self,
        w: &mut WorkerState,
        host: &dyn Host,
        status: Option<&str>,
        body: &[u8],
    ) -> Output {
        let Phase::AwaitingIntrospection(cache_key) = std::mem::take(&mut self.phase) else {
            return Output::step(Step::Continue);
        };
        let cfg = Rc::clone(&w.config);
        let budget = AddressBudget {
            host,
            secret: &w.slot_secret,
        };
        let now = host.now_secs();
        match introspected(&cfg, (status, body), cache_key, &mut w.cache, &budget, now) {
            Ok(tenant) => self.authenticated(&cfg, tenant),
            Err(d) => self.deny(Some(&cfg), d, None),
        }
    }

    fn judge_head(&mut self, w: &mut WorkerState, host: &dyn Host, may_refetch: bool) -> Output {
        let cfg = Rc::clone(&w.config);
        let head = self.head();
        match route(&cfg, &head) {
            Route::Served(reply, outcome) => return self.answer(&cfg, reply, outcome, None),
            Route::Denied(denial) => return self.deny(Some(&cfg), denial, None),
            Route::Mcp => {}
        }
        let now = host.now_secs();
        let keys = KeyAccess {
            keys: w.keys.keys(),
            may_refetch: may_refetch && w.keys.may_refetch(&cfg, now),
        };
        let budget = AddressBudget {
            host,
            secret: &w.slot_secret,
        };
        let tenant =
            match authenticate(&cfg, &head.authorization, &keys, &mut w.cache, &budget, now) {
                Ok(tenant) => tenant,
                Err(NotAuthenticated::FetchKeys) => {
                    self.phase = Phase::AwaitingKeys;
                    return Output::step(Step::FetchKeys);
                }
                Err(NotAuthenticated::Introspect(call, cache_key)) => {
                    self.phase = Phase::AwaitingIntrospection(cache_key);
                    return Output::step(Step::Introspect(call));
                }
                Err(NotAuthenticated::Denied(d)) => return self.deny(Some(&cfg), d, None),
            };
        self.authenticated(&cfg, tenant)
    }

    /// The caller is known: check the transport and the session, then wait for (or read) the body.
    fn authenticated(&mut self, cfg: &EdgeConfig, tenant: Rc<Caller>) -> Output {
        let head = self.head();
        let last_event_ids = self
            .headers
            .iter()
            .filter(|(n, _)| *n == "last-event-id")
            .map(|(_, v)| v.as_slice());
        let checked = check_transport(&head).and_then(|version| {
            check_session_method(cfg, head.method, version)?;
            let sid = check_session_id(cfg, &tenant, self.header("mcp-session-id"))?;
            let event = check_last_event_id(cfg, &tenant, last_event_ids)?;
            Ok((version, sid, event))
        });
        match checked {
            Ok((version, sid, event)) => {
                self.upstream_session = sid;
                self.upstream_last_event_id = event;
                self.routing = KeptRouting::new(self.header("mcp-method"), self.header("mcp-name"));
                self.headers
                    .retain(|(name, _)| READ_AFTER_AUTHENTICATION.contains(name));
                self.phase = Phase::Authenticated(Box::new(Admitted { tenant, version }));
                Output::step(if self.body_complete {
                    Step::ReadBody
                } else {
                    Step::WaitForBody
                })
            }
            Err(d) => self.deny(Some(cfg), d, Some(&tenant)),
        }
    }

    /// Step 2, when no fetch could be started: judge without keys (fails closed).
    pub fn on_keys_unavailable(&mut self, w: &mut WorkerState, host: &dyn Host) -> Output {
        self.judge_head(w, host, false)
    }

    /// Step 3: body data arrived; `buffered` is the size of everything buffered so far.
    pub fn on_request_body(&mut self, cfg: &EdgeConfig, buffered: usize, end: bool) -> Output {
        if matches!(self.phase, Phase::Done | Phase::Forwarded(_)) {
            return Output::step(Step::Continue);
        }
        if matches!(self.phase, Phase::AwaitingGlobal(_)) {
            return Output::step(Step::WaitForBody);
        }
        self.body_size = buffered;
        if buffered > cfg.max_body_bytes {
            return self.deny(Some(cfg), Denial::BodyTooLarge, None);
        }
        self.body_complete = end;
        let ready = end && matches!(self.phase, Phase::Authenticated(_));
        Output::step(if ready {
            Step::ReadBody
        } else {
            Step::WaitForBody
        })
    }

    /// Step 3, trailers: the body is complete.
    pub fn on_request_trailers(&mut self, cfg: &EdgeConfig) -> Output {
        let size = self.body_size;
        self.on_request_body(cfg, size, true)
    }

    /// The size of the buffered body, for [`Step::ReadBody`].
    pub fn body_size(&self) -> usize {
        self.body_size
    }

    /// Step 3: the complete body of an authenticated request — charge, judge, admit, vouch.
    pub fn on_body(&mut self, w: &WorkerState, host: &dyn Host, body: &[u8]) -> Output {
        let Phase::Authenticated(admitted) = std::mem::take(&mut self.phase) else {
            return Output::step(Step::Continue);
        };
        let cfg = &w.config;
        let tenant = &admitted.tenant;
        let charge = |cost| {
            admit(
                cfg,
                host.shared(),
                &w.slot_secret,
                tenant,
                cost,
                host.now_ms(),
            )
        };
        let mut summary = None;
        let verdict = (|| {
            // Every request that reaches body work costs a token, before anything is parsed.
            let mut rate = charge(1)?;
            let judged = self.judge(cfg, &admitted, body)?;
            if judged.cost > 1 {
                // A batch costs its length.
                rate = charge(judged.cost - 1)?;
            }
            let protocol_version = self.header("mcp-protocol-version").unwrap_or_default();
            let req = vouch::CompleteRequest {
                method: &self.method,
                path: &self.path,
                // Judged by `check_transport`: a known version, so ASCII.
                protocol_version: std::str::from_utf8(protocol_version).unwrap_or_default(),
                request_id: &self.request_id,
                body,
            };
            let trusted = vouch::vouch(cfg, tenant, &req, host.now_secs())?;
            let place = streams::take_place(w, host, tenant, &self.method, &judged.method)?;
            summary = Some(judged);
            Ok((trusted, rate, place))
        })();
        let limited = matches!(verdict, Err(Denial::RateLimited { .. }));
        let rate_counter = Counter::RateLimit {
            tier: tenant.tier,
            limited,
        };
        let mut out = match (verdict, summary) {
            (Ok((trusted, rate, place)), Some(summary)) => {
                self.stream_place = place;
                let mut out = Output::step(Step::Continue);
                out.remove_request_headers.push("authorization".into());
                out.add_request_headers = vec![trusted];
                if let Some(sid) = self.upstream_session.take() {
                    out.set_request_headers.push(("mcp-session-id", sid));
                }
                if let Some(event) = self.upstream_last_event_id.take() {
                    out.set_request_headers.push(("last-event-id", event));
                }
                out.counters.push(Counter::Outcome(Outcome::Allowed));
                if cfg.access_log_properties {
                    out.log_properties = access_log(tenant, Outcome::Allowed, Some(&summary));
                }
                let global = cfg
                    .global_rate_limit
                    .as_ref()
                    .map(|g| global::call(g, tenant, &summary));
                let forwarded = Box::new(Forwarded {
                    tenant: admitted.tenant,
                    tools_list_ids: summary.tools_list_ids,
                    rate,
                    global_headers: Vec::new(),
                });
                match global {
                    Some(call) => {
                        self.phase = Phase::AwaitingGlobal(Box::new(global::AwaitingGlobal {
                            forward: out,
                            forwarded,
                        }));
                        Output::step(Step::CheckGlobal(call))
                    }
                    None => {
                        self.forward(cfg, forwarded);
                        out
                    }
                }
            }
            (Err(d), _) if cfg.access_log_properties => {
                self.deny(Some(cfg), d, Some(tenant)).described(body)
            }
            (Err(d), _) => self.deny(Some(cfg), d, Some(tenant)),
            (Ok(_), None) => self.deny(Some(cfg), Denial::CannotVouch, Some(tenant)),
        };
        out.counters.insert(0, rate_counter);
        out
    }

    /// The tenant whose stream place this request holds, once: the glue gives it back when the
    /// request ends ([`crate::rate_limit::streams::release`]).
    pub fn take_stream_place(&mut self) -> Option<String> {
        self.stream_place.take()
    }

    /// The verdict on the body: JSON-RPC for a POST; a GET or DELETE carries none to judge.
    fn judge(
        &self,
        cfg: &EdgeConfig,
        admitted: &Admitted,
        body: &[u8],
    ) -> Result<BodySummary, Denial> {
        if self.method != "POST" {
            return Ok(BodySummary {
                method: self.method.clone(),
                cost: 1,
                ..BodySummary::default()
            });
        }
        let routing = RoutingHeaders {
            names: &self.routing,
            protocol_version: self.header("mcp-protocol-version"),
        };
        judge_body(cfg, admitted, &routing, body)
    }

    /// Step 4: the response head (`header` reads a response header, `:status` included;
    /// `no_body`: the head ends the response). Returns the headers to set (an empty value removes
    /// one); [`Self::holds_response_head`] then says whether the head waits for the body.
    pub fn on_response_headers(
        &mut self,
        cfg: &EdgeConfig,
        no_body: bool,
        header: impl Fn(&str) -> Option<Vec<u8>>,
    ) -> Vec<(String, String)> {
        let Phase::Forwarded(f) = &self.phase else {
            return Vec::new();
        };
        let origin = self.cors_origin.as_deref();
        // A list can come on any answer; a tools/list answered with success must be readable.
        let tools_list_ok = !f.tools_list_ids.is_empty()
            && header(":status").is_some_and(|s| s.first() == Some(&b'2'));
        let ct = header("content-type").unwrap_or_default();
        let judge = response::ResponseJudge::for_response(
            cfg,
            &String::from_utf8_lossy(&ct),
            tools_list_ok,
            no_body,
        );
        let mut set = response::response_headers(origin, &f.rate, &judge);
        global::use_global_headers(&mut set, &f.global_headers);
        if cfg.stateful_upstream
            && let Some(sid) = header("mcp-session-id")
        {
            set.push(response::bind_session(cfg, &f.tenant, &sid));
        }
        self.response_judge = Some(judge);
        set
    }

    /// Whether the response head must wait until the body is judged (its length may change).
    pub fn holds_response_head(&self) -> bool {
        self.response_judge
            .as_ref()
            .is_some_and(response::ResponseJudge::holds_head)
    }

    /// Step 4: response body data. `read` returns the buffered body once it is complete, or, for
    /// an event stream, the chunk that just arrived (which the result replaces).
    pub fn on_response_body(
        &mut self,
        cfg: &EdgeConfig,
        end: bool,
        read: impl FnOnce() -> Vec<u8>,
    ) -> ResponseBody {
        let (Phase::Forwarded(f), Some(judge)) = (&self.phase, &mut self.response_judge) else {
            return ResponseBody::Continue;
        };
        match judge {
            response::ResponseJudge::Pass => ResponseBody::Continue,
            response::ResponseJudge::Streamed(stream) => {
                ResponseBody::Replace(stream.push(cfg, &f.tenant, &f.tools_list_ids, &read(), end))
            }
            response::ResponseJudge::Whole { .. } if !end => ResponseBody::Wait,
            response::ResponseJudge::Whole { content_type } => {
                let body = read();
                match response::rewrite_whole(
                    cfg,
                    &f.tenant,
                    content_type,
                    &f.tools_list_ids,
                    &body,
                ) {
                    Some(body) => ResponseBody::ReplaceWhole(body),
                    None => ResponseBody::Continue,
                }
            }
        }
    }

    /// Step 4, trailers: the body is complete. A whole body is judged now (with trailers, the
    /// last body chunk does not end the stream); an event stream's unfinished last event, which
    /// clients drop, is not sent.
    pub fn on_response_trailers(
        &mut self,
        cfg: &EdgeConfig,
        read: impl FnOnce() -> Vec<u8>,
    ) -> ResponseBody {
        if matches!(
            self.response_judge,
            Some(response::ResponseJudge::Streamed(_))
        ) {
            return ResponseBody::Continue;
        }
        self.on_response_body(cfg, true, read)
    }

    /// A local answer that is not a denial (metadata, preflight).
    fn answer(
        &mut self,
        cfg: &EdgeConfig,
        mut reply: Reply,
        outcome: Outcome,
        tenant: Option<&TenantContext>,
    ) -> Output {
        // A browser must be able to read the answer (and its WWW-Authenticate) too.
        if let Some(origin) = self.allowed_origin(cfg)
            && reply.header("access-control-allow-origin").is_none()
        {
            reply.headers.extend(crate::cors::response_headers(origin));
        }
        let line = format!(
            "mcp-edge: request_id={} {} {} -> {} ({})",
            self.request_id,
            self.method,
            self.path,
            reply.status,
            outcome.stat_name()
        );
        let mut out = Output::step(Step::Respond(reply));
        out.counters.push(Counter::Outcome(outcome));
        if cfg.access_log_properties {
            out.log_properties = tenant.map_or_else(
                || vec![("mcp_edge.outcome", outcome.stat_name())],
                |t| access_log(t, outcome, None),
            );
        }
        out.log_line = Some(line);
        self.phase = Phase::Done;
        self.release_head(cfg);
        out
    }

    /// Lets the request through: from here on its answer needs only the caller and the origin.
    fn forward(&mut self, cfg: &EdgeConfig, forwarded: Box<Forwarded>) {
        self.phase = Phase::Forwarded(forwarded);
        self.release_head(cfg);
    }

    /// Drops the copied request head (path and headers, up to 32 KiB) once the verdict is given,
    /// keeping only the allowed `Origin`: a stream can be held open long after it (an answer
    /// streamed for minutes, a client that never reads), and wasm memory never shrinks.
    fn release_head(&mut self, cfg: &EdgeConfig) {
        self.cors_origin = self.allowed_origin(cfg).map(str::to_owned);
        self.headers = Vec::new();
        self.path = String::new();
        self.routing = KeptRouting::NONE;
    }

    /// What this request still holds of its head (bytes), for tests.
    #[cfg(test)]
    fn head_bytes(&self) -> usize {
        self.path.capacity()
            + self.method.capacity()
            + self
                .headers
                .iter()
                .map(|(_, v)| v.capacity())
                .sum::<usize>()
            + self.cors_origin.as_ref().map_or(0, String::capacity)
    }

    /// Refuses the request (`cfg` is `None` when the configuration was refused).
    pub fn deny(
        &mut self,
        cfg: Option<&EdgeConfig>,
        denial: Denial,
        tenant: Option<&TenantContext>,
    ) -> Output {
        let reply = denial.reply(cfg);
        match cfg {
            Some(cfg) => self.answer(cfg, reply, denial.outcome(), tenant),
            None => {
                let mut out = Output::step(Step::Respond(reply));
                out.counters.push(Counter::Outcome(denial.outcome()));
                self.phase = Phase::Done;
                out
            }
        }
    }
}

#[cfg(test)]
mod tests;
