//! One HTTP request: hands what Envoy gives to the request's [`Gate`] and carries out its [`Output`].
//! No decision is taken here.

use std::cell::{Cell, OnceCell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, BufferType, MapType};

use crate::gate::{Denial, Gate, Host, Output, ResponseBody, Step};
use crate::introspection::IntrospectionCall;
use crate::rate_limit::SharedStore;
use crate::rate_limit::global::GlobalCall;
use crate::rate_limit::{rls_proto, streams};

use super::{HostShared, Worker, client_ip, unix_now, unix_now_nanos};

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

/// One request.
pub(super) struct EdgeRequest {
    /// `None` only if the configuration was refused: then every request is refused.
    worker: Option<Rc<RefCell<Worker>>>,
    gate: Gate,
    host: EnvoyHost,
    /// The response body Envoy buffers for this request (as of the last body callback).
    response_body_size: usize,
}

impl EdgeRequest {
    /// A new request of the worker (`None` if its configuration was refused).
    pub(super) fn new(worker: Option<Rc<RefCell<Worker>>>) -> Self {
        Self {
            worker,
            gate: Gate::default(),
            host: EnvoyHost {
                client_ip: OnceCell::new(),
                now_nanos: Cell::new(None),
            },
            response_body_size: 0,
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
                let body = self
                    .get_http_request_body(0, self.gate.body_size())
                    .unwrap_or_default();
                let out = match &self.worker {
                    Some(w) => self.gate.on_body(&w.borrow().state, &self.host, &body),
                    None => self.gate.deny(None, Denial::Misconfigured, None),
                };
                drop(body);
                self.apply(out)
            }
            Step::FetchKeys => self.fetch_keys(),
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
        if sent.is_ok() {
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
            Ok(_) => Action::Pause,
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
        let out = match self.worker.clone() {
            Some(w) => {
                self.gate
                    .on_introspection(&mut w.borrow_mut().state, &self.host, status, body)
            }
            None => self.gate.deny(None, Denial::Misconfigured, None),
        };
        self.apply(out)
    }

    /// Hands the global limit's answer (or its absence) to the gate.
    fn global_answer(&mut self, status: Option<u32>, body: Option<Vec<u8>>) -> Action {
        let out = match &self.worker {
            Some(w) => {
                let config = w.borrow().state.config.clone();
                self.gate.on_global_answer(&config, status, body.as_deref())
            }
            None => self.gate.deny(None, Denial::Misconfigured, None),
        };
        self.apply(out)
    }

    fn fetch_keys(&mut self) -> Action {
        let Some(w) = self.worker.clone() else {
            return Action::Pause;
        };
        let token = w.borrow_mut().start_fetch(self, unix_now());
        if token.is_some() {
            return Action::Pause;
        }
        let out = self
            .gate
            .on_keys_unavailable(&mut w.borrow_mut().state, &self.host);
        self.apply(out)
    }
}

/// The first `size` bytes of the response body Envoy holds for this callback.
fn read_response_body(size: usize) -> Vec<u8> {
    hostcalls::get_buffer(BufferType::HttpResponseBody, 0, size)
        .ok()
        .flatten()
        .unwrap_or_default()
}

impl Drop for EdgeRequest {
    /// A request that goes away while its JWKS fetch runs will never get the answer; a
    /// long-lived stream that ends gives its tenant's place back.
    fn drop(&mut self) {
        let Some(w) = &self.worker else { return };
        let Ok(mut w) = w.try_borrow_mut() else {
            return;
        };
        if self.gate.awaiting_keys() {
            w.state.keys.fetch_abandoned();
        }
        if let Some(tenant) = self.gate.take_stream_place() {
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

impl Context for EdgeRequest {
    fn on_grpc_call_response(&mut self, _: u32, status_code: u32, response_size: usize) {
        self.host.new_callback();
        let body = (status_code == 0)
            .then(|| self.get_grpc_call_response_body(0, response_size))
            .flatten();
        if self.global_answer(Some(status_code), body) == Action::Continue {
            self.resume_http_request();
        }
    }

    fn on_http_call_response(&mut self, _: u32, _: usize, body_size: usize, _: usize) {
        self.host.new_callback();
        let status = self.get_http_call_response_header(":status");
        let body = self.get_http_call_response_body(0, body_size);
        if self.gate.awaiting_introspection() {
            let body = body.unwrap_or_default();
            if self.introspection_answer(status.as_deref(), &body) == Action::Continue {
                self.resume_http_request();
            }
            return;
        }
        let Some(w) = self.worker.clone() else { return };
        w.borrow_mut().install_keys(status, body, unix_now());
        let out = self.gate.on_keys(&mut w.borrow_mut().state, &self.host);
        if self.apply(out) == Action::Continue {
            self.resume_http_request();
        }
    }
}

impl HttpContext for EdgeRequest {
    fn on_http_request_headers(&mut self, _: usize, end_of_stream: bool) -> Action {
        self.host.new_callback();
        let headers = self.get_http_request_headers_bytes();
        let out = match self.worker.clone() {
            Some(w) => {
                let mut w = w.borrow_mut();
                self.gate
                    .on_request_headers(&mut w.state, &self.host, headers, end_of_stream)
            }
            None => self.gate.deny(None, Denial::Misconfigured, None),
        };
        self.apply(out)
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        self.host.new_callback();
        let Some(w) = self.worker.clone() else {
            return Action::Pause;
        };
        let config = w.borrow().state.config.clone();
        let out = self.gate.on_request_body(&config, body_size, end_of_stream);
        self.apply(out)
    }

    fn on_http_request_trailers(&mut self, _: usize) -> Action {
        self.host.new_callback();
        let Some(w) = self.worker.clone() else {
            return Action::Pause;
        };
        let config = w.borrow().state.config.clone();
        let out = self.gate.on_request_trailers(&config);
        self.apply(out)
    }

    fn on_http_response_headers(&mut self, _: usize, end_of_stream: bool) -> Action {
        let Some(w) = self.worker.clone() else {
            return Action::Continue;
        };
        let config = w.borrow().state.config.clone();
        let set = self
            .gate
            .on_response_headers(&config, end_of_stream, |name| {
                hostcalls::get_map_value_bytes(MapType::HttpResponseHeaders, name)
                    .ok()
                    .flatten()
            });
        for (name, value) in set {
            let value = (!value.is_empty()).then_some(value);
            self.set_http_response_header(&name, value.as_deref());
        }
        // A body judged whole holds its head: its length may change (set with the new body).
        if self.gate.holds_response_head() {
            Action::Pause
        } else {
            Action::Continue
        }
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let Some(w) = self.worker.clone() else {
            return Action::Continue;
        };
        let config = w.borrow().state.config.clone();
        // With Continue returned for earlier chunks, the buffered body is this chunk alone: a
        // streamed answer replaces just it (proxy_set_buffer_bytes at 0, body_size). With Pause
        // returned, it is the whole body so far.
        self.response_body_size = body_size;
        let verdict = self
            .gate
            .on_response_body(&config, end_of_stream, || read_response_body(body_size));
        self.carry_out(verdict, body_size)
    }

    fn on_http_response_trailers(&mut self, _: usize) -> Action {
        let Some(w) = self.worker.clone() else {
            return Action::Continue;
        };
        let config = w.borrow().state.config.clone();
        // The body buffered by the last Pause (the trailers end the stream, no body chunk did).
        let size = self.response_body_size;
        let verdict = self
            .gate
            .on_response_trailers(&config, || read_response_body(size));
        self.carry_out(verdict, size)
    }
}
