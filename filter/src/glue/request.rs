//! One HTTP request: hands what Envoy gives to the request's [`Gate`] and carries out its [`Output`].
//! No decision is taken here.
//!
//! [`RequestContext`] is the SDK's HTTP context (Envoy's callbacks); [`EdgeRequest`] carries out
//! the steps. A request that waits for the worker's JWKS fetch leaves its gate with the worker;
//! when the fetch ends, the root carries it on ([`EdgeRequest::resumed`], with the request as
//! Envoy's effective context) — and relays the answers of the calls it dispatched for it.

use std::cell::{Cell, OnceCell, RefCell};
use std::rc::{Rc, Weak};
use std::time::Duration;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, BufferType, MapType};

use crate::gate::{Counter, Denial, Gate, Host, Output, ResponseBody, Step};
use crate::introspection::IntrospectionCall;
use crate::jwks_waiters::Join;
use crate::rate_limit::SharedStore;
use crate::rate_limit::global::GlobalCall;
use crate::rate_limit::{rls_proto, streams};

use super::worker::Relayed;
use super::{HostShared, Worker, client_ip, unix_now_nanos};

/// The host as the gate sees it; the client address is read at most once, and only if asked; the
/// clock at most once per callback (a host call each time otherwise).
struct EnvoyHost {
    client_ip: OnceCell<Option<String>>,
    now_nanos: Cell<Option<u128>>,
}

impl EnvoyHost {
    /// A new callback from Envoy: time has moved on.
    fn new_callback(&self) {
        self.now_nanos.set(None);
    }
}

impl Host for EnvoyHost {
    fn now_nanos(&self) -> u128 {
        match self.now_nanos.get() {
            Some(now) => now,
            None => {
                let now = unix_now_nanos();
                self.now_nanos.set(Some(now));
                now
            }
        }
    }
    fn client_ip(&self) -> Option<String> {
        self.client_ip.get_or_init(client_ip).clone()
    }
    fn shared(&self) -> &dyn SharedStore {
        &HostShared
    }
}

impl EnvoyHost {
    fn new() -> Self {
        Self {
            client_ip: OnceCell::new(),
            now_nanos: Cell::new(None),
        }
    }
}

/// One request's steps, carried out in its own callbacks or, once it waited for keys, in the
/// root's. Its host calls act on Envoy's effective context, which is the request in both cases.
/// (It implements the SDK's context traits only for their host-call helpers: [`RequestContext`]
/// receives the callbacks.)
pub(super) struct EdgeRequest {
    /// Envoy's id of the request's HTTP context.
    id: u32,
    /// `None` only if the configuration was refused: then every request is refused.
    worker: Option<Rc<RefCell<Worker>>>,
    /// Shared with the worker while the request waits for keys (weakly: a request that went away
    /// is not resumed).
    gate: Rc<RefCell<Gate>>,
    host: EnvoyHost,
    /// Carried on in a root callback: the answers of calls dispatched now come to the root, which
    /// relays them by token ([`Worker::relayed`]).
    in_root: bool,
}

impl Context for EdgeRequest {}
impl HttpContext for EdgeRequest {}

impl EdgeRequest {
    /// A request that waited, carried on from a root callback: `None` if it is gone. Makes it
    /// Envoy's effective context (the root sets itself back when done).
    pub(super) fn resumed(
        id: u32,
        worker: &Rc<RefCell<Worker>>,
        gate: &Weak<RefCell<Gate>>,
    ) -> Option<Self> {
        let gate = gate.upgrade()?;
        hostcalls::set_effective_context(id).ok()?;
        Some(Self {
            id,
            worker: Some(Rc::clone(worker)),
            gate,
            host: EnvoyHost::new(),
            in_root: true,
        })
    }

    /// The JWKS fetch this request waited for has ended: judge it, resume it if it goes on.
    pub(super) fn keys_ended(&mut self) {
        let Some(w) = self.worker.clone() else { return };
        let out = self
            .gate
            .borrow_mut()
            .on_keys(&mut w.borrow_mut().state, &self.host);
        if self.apply(out) == Action::Continue {
            self.resume_http_request();
        }
    }

    /// The introspection endpoint answered: judge, resume if the request goes on.
    pub(super) fn introspected(&mut self, status: Option<&str>, body: &[u8]) {
        if !self.gate.borrow().awaiting_introspection() {
            return;
        }
        if self.introspection_answer(status, body) == Action::Continue {
            self.resume_http_request();
        }
    }

    /// The global rate limit service answered (`body` when its status is OK): resume if the
    /// request goes on.
    pub(super) fn global_answered(&mut self, status_code: Option<u32>, body: Option<Vec<u8>>) {
        if self.global_answer(status_code, body) == Action::Continue {
            self.resume_http_request();
        }
    }

    /// A call dispatched in a root callback is answered to the root: it relays it here.
    fn relay_answer(&self, token: u32) {
        if let (true, Some(w)) = (self.in_root, &self.worker) {
            let relayed = Relayed {
                id: self.id,
                gate: Rc::downgrade(&self.gate),
            };
            w.borrow_mut().relayed.insert(token, relayed);
        }
    }

    /// Carries out a step's output; returns what Envoy should do with the request.
    fn apply(&mut self, out: Output) -> Action {
        for name in &out.remove_request_headers {
            self.set_http_request_header(name, None);
        }
        for (name, value) in &out.add_request_headers {
            self.add_http_request_header(name, value);
        }
        for (name, value) in &out.set_request_headers {
            self.set_http_request_header(name, Some(value));
        }
        if let Some(w) = &self.worker {
            let mut w = w.borrow_mut();
            for counter in out.counters {
                w.count(counter);
            }
        }
        for (key, value) in &out.log_properties {
            let _ = hostcalls::set_property(vec![key], Some(value.as_bytes()));
        }
        if let Some(line) = &out.log_line {
            log::info!("{line}");
        }
        match out.step {
            Step::Continue => Action::Continue,
            Step::WaitForBody => Action::Pause,
            Step::ReadBody => {
                let size = self.gate.borrow().body_size();
                let body = self.get_http_request_body(0, size).unwrap_or_default();
                let mut gate = self.gate.borrow_mut();
                let out = match &self.worker {
                    Some(w) => gate.on_body(&w.borrow().state, &self.host, &body),
                    None => gate.deny(None, Denial::Misconfigured, None),
                };
                drop((gate, body));
                self.apply(out)
            }
            Step::WaitForKeys => self.wait_for_keys(),
            Step::CheckGlobal(call) => self.check_global(&call),
            Step::Introspect(call) => self.introspect(&call),
            Step::Respond(reply) => {
                let headers: Vec<(&str, &str)> = reply
                    .headers
                    .iter()
                    .map(|(n, v)| (n.as_str(), v.as_str()))
                    .collect();
                self.send_http_response(reply.status, headers, Some(&reply.body));
                Action::Pause
            }
        }
    }

    /// Carries out the gate's verdict on response body data (`body_size`: the bytes it judged).
    fn carry_out(&mut self, verdict: ResponseBody, body_size: usize) -> Action {
        match verdict {
            ResponseBody::Continue => Action::Continue,
            ResponseBody::Wait => Action::Pause,
            ResponseBody::Replace(body) => {
                self.set_http_response_body(0, body_size, &body);
                Action::Continue
            }
            ResponseBody::ReplaceWhole(body) => {
                self.set_http_response_body(0, body_size, &body);
                self.set_http_response_header("content-length", Some(&body.len().to_string()));
                Action::Continue
            }
        }
    }

    /// Asks the global rate limit service; the answer comes to `on_grpc_call_response`, within
    /// the call's timeout (Envoy ends the call then).
    fn check_global(&mut self, call: &GlobalCall) -> Action {
        let first = self
            .worker
            .as_ref()
            .is_some_and(|w| !std::mem::replace(&mut w.borrow_mut().global_called, true));
        let timeout = Duration::from_millis(call.timeout_ms(first));
        let metadata: Vec<(&str, &[u8])> = call
            .authorization
            .iter()
            .map(|a| ("authorization", a.as_bytes()))
            .collect();
        let sent = self.dispatch_grpc_call(
            &call.upstream,
            rls_proto::SERVICE,
            rls_proto::METHOD,
            metadata,
            Some(&call.message),
            timeout,
        );
        if let Ok(token) = sent {
            self.relay_answer(token);
            return Action::Pause;
        }
        self.global_answer(None, None)
    }

    /// Asks the introspection endpoint; the answer (or Envoy's timeout) comes to
    /// `on_http_call_response`. A call that cannot be sent is an introspection failure (401).
    fn introspect(&mut self, call: &IntrospectionCall) -> Action {
        let headers: Vec<(&str, &str)> = call
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let timeout = Duration::from_millis(call.timeout_ms);
        match self.dispatch_http_call(&call.cluster, headers, Some(&call.body), vec![], timeout) {
            Ok(token) => {
                self.relay_answer(token);
                Action::Pause
            }
            Err(e) => {
                log::warn!(
                    "mcp-edge: cannot call the introspection endpoint on cluster {}: {e:?}",
                    call.cluster
                );
                self.introspection_answer(None, &[])
            }
        }
    }

    /// Hands the introspection endpoint's answer (or its absence) to the gate.
    fn introspection_answer(&mut self, status: Option<&str>, body: &[u8]) -> Action {
        let mut gate = self.gate.borrow_mut();
        let out = match self.worker.clone() {
            Some(w) => gate.on_introspection(&mut w.borrow_mut().state, &self.host, status, body),
            None => gate.deny(None, Denial::Misconfigured, None),
        };
        drop(gate);
        self.apply(out)
    }

    /// Hands the global limit's answer (or its absence) to the gate.
    fn global_answer(&mut self, status: Option<u32>, body: Option<Vec<u8>>) -> Action {
        let mut gate = self.gate.borrow_mut();
        let out = match &self.worker {
            Some(w) => {
                let config = w.borrow().state.config.clone();
                gate.on_global_answer(&config, status, body.as_deref())
            }
            None => gate.deny(None, Denial::Misconfigured, None),
        };
        drop(gate);
        self.apply(out)
    }

    /// Waits for the worker's JWKS fetch (asking the root for one if none runs), or, if too many
    /// wait, is judged at once.
    fn wait_for_keys(&mut self) -> Action {
        let Some(w) = self.worker.clone() else {
            return Action::Pause;
        };
        let now_ms = u64::try_from(unix_now_nanos() / 1_000_000).unwrap_or(u64::MAX);
        let joined = w.borrow_mut().state.keys.join(self.id, now_ms);
        let mut worker = w.borrow_mut();
        match joined {
            Join::Wait { dispatch } => {
                worker.waiting.insert(self.id, Rc::downgrade(&self.gate));
                worker.count(Counter::Jwks("waited"));
                if dispatch {
                    // The root dispatches the fetch, on a tick as soon as can be.
                    worker.tick_hurried = true;
                    let _ = hostcalls::set_tick_period(Duration::from_millis(1));
                }
                Action::Pause
            }
            Join::Full => {
                worker.count(Counter::Jwks("wait_refused"));
                let out = self
                    .gate
                    .borrow_mut()
                    .on_keys_unavailable(&mut worker.state, &self.host);
                drop(worker);
                self.apply(out)
            }
        }
    }
}

/// The first `size` bytes of the response body Envoy holds for this callback.
fn read_response_body(size: usize) -> Vec<u8> {
    hostcalls::get_buffer(BufferType::HttpResponseBody, 0, size)
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// One request as Envoy's HTTP context: its callbacks.
pub(super) struct RequestContext {
    request: EdgeRequest,
    /// The response body Envoy buffers for this request (as of the last body callback).
    response_body_size: usize,
}

impl RequestContext {
    /// A new request (HTTP context `id`) of the worker (`None` if its configuration was refused).
    pub(super) fn new(id: u32, worker: Option<Rc<RefCell<Worker>>>) -> Self {
        Self {
            request: EdgeRequest {
                id,
                worker,
                gate: Rc::default(),
                host: EnvoyHost::new(),
                in_root: false,
            },
            response_body_size: 0,
        }
    }

    /// The request is over: the root neither resumes it nor relays calls to it.
    fn leave_worker(&self) {
        let Some(w) = &self.request.worker else {
            return;
        };
        if let Ok(mut w) = w.try_borrow_mut() {
            w.forget_request(self.request.id);
        }
    }
}

impl Drop for RequestContext {
    /// A request that goes away is forgotten by the worker; a long-lived stream that ends gives
    /// its tenant's place back.
    fn drop(&mut self) {
        self.leave_worker();
        let Some(w) = &self.request.worker else {
            return;
        };
        let Ok(w) = w.try_borrow_mut() else {
            return;
        };
        if let Some(tenant) = self.request.gate.borrow_mut().take_stream_place() {
            let now_ms = u64::try_from(unix_now_nanos() / 1_000_000).unwrap_or(u64::MAX);
            let s = &w.state;
            streams::release(
                &HostShared,
                &s.slot_secret,
                &tenant,
                &s.stream_holder,
                now_ms,
            );
        }
    }
}

impl Context for RequestContext {
    fn on_grpc_call_response(&mut self, _: u32, status_code: u32, response_size: usize) {
        self.request.host.new_callback();
        let body = (status_code == 0)
            .then(|| self.get_grpc_call_response_body(0, response_size))
            .flatten();
        self.request.global_answered(Some(status_code), body);
    }

    fn on_http_call_response(&mut self, _: u32, _: usize, body_size: usize, _: usize) {
        self.request.host.new_callback();
        let status = self.get_http_call_response_header(":status");
        let body = self.get_http_call_response_body(0, body_size);
        self.request
            .introspected(status.as_deref(), &body.unwrap_or_default());
    }

    /// The stream is done (answered, or its client went away): nothing resumes it any more.
    fn on_done(&mut self) -> bool {
        self.leave_worker();
        true
    }
}

impl HttpContext for RequestContext {
    fn on_http_request_headers(&mut self, _: usize, end_of_stream: bool) -> Action {
        self.request.host.new_callback();
        let headers = self.get_http_request_headers_bytes();
        let r = &mut self.request;
        let mut gate = r.gate.borrow_mut();
        let out = match r.worker.clone() {
            Some(w) => {
                let mut w = w.borrow_mut();
                gate.on_request_headers(&mut w.state, &r.host, headers, end_of_stream)
            }
            None => gate.deny(None, Denial::Misconfigured, None),
        };
        drop(gate);
        r.apply(out)
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let r = &mut self.request;
        r.host.new_callback();
        let Some(w) = r.worker.clone() else {
            return Action::Pause;
        };
        let config = w.borrow().state.config.clone();
        let out = r
            .gate
            .borrow_mut()
            .on_request_body(&config, body_size, end_of_stream);
        r.apply(out)
    }

    fn on_http_request_trailers(&mut self, _: usize) -> Action {
        let r = &mut self.request;
        r.host.new_callback();
        let Some(w) = r.worker.clone() else {
            return Action::Pause;
        };
        let config = w.borrow().state.config.clone();
        let out = r.gate.borrow_mut().on_request_trailers(&config);
        r.apply(out)
    }

    fn on_http_response_headers(&mut self, _: usize, end_of_stream: bool) -> Action {
        let Some(w) = self.request.worker.clone() else {
            return Action::Continue;
        };
        let config = w.borrow().state.config.clone();
        let mut gate = self.request.gate.borrow_mut();
        let set = gate.on_response_headers(&config, end_of_stream, |name| {
            hostcalls::get_map_value_bytes(MapType::HttpResponseHeaders, name)
                .ok()
                .flatten()
        });
        for (name, value) in set {
            let value = (!value.is_empty()).then_some(value);
            self.set_http_response_header(&name, value.as_deref());
        }
        // A body judged whole holds its head: its length may change (set with the new body).
        if gate.holds_response_head() {
            Action::Pause
        } else {
            Action::Continue
        }
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let Some(w) = self.request.worker.clone() else {
            return Action::Continue;
        };
        let config = w.borrow().state.config.clone();
        // With Continue returned for earlier chunks, the buffered body is this chunk alone: a
        // streamed answer replaces just it (proxy_set_buffer_bytes at 0, body_size). With Pause
        // returned, it is the whole body so far.
        self.response_body_size = body_size;
        let verdict =
            self.request
                .gate
                .borrow_mut()
                .on_response_body(&config, end_of_stream, || read_response_body(body_size));
        self.request.carry_out(verdict, body_size)
    }

    fn on_http_response_trailers(&mut self, _: usize) -> Action {
        let Some(w) = self.request.worker.clone() else {
            return Action::Continue;
        };
        let config = w.borrow().state.config.clone();
        // The body buffered by the last Pause (the trailers end the stream, no body chunk did).
        let size = self.response_body_size;
        let verdict = self
            .request
            .gate
            .borrow_mut()
            .on_response_trailers(&config, || read_response_body(size));
        self.request.carry_out(verdict, size)
    }
}
