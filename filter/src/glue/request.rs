//! One HTTP request: collect what Envoy gives, judge it with `gate`, vouch, filter the response.

use mcp_edge_contract::codes;
use std::cell::RefCell;
use std::rc::Rc;
use std::time::UNIX_EPOCH;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;

use crate::gate::{
    self, Admitted, BodySummary, CompleteRequest, HeadVerdict, KeyState, Outcome, RequestHead,
    RoutingHeaders,
};
use crate::reply::{self, Reply};
use crate::request_id::new_request_id;
use mcp_edge_contract::headers;

use super::{HostShared, Worker, client_ip, unix_now, unix_now_ms};

#[derive(Default)]
enum Phase {
    #[default]
    Start,
    AwaitingKeys(u32),
    Authenticated(Admitted),
    /// Forwarded; `tools/list` responses are filtered for this tenant.
    Forwarded(
        Box<Admitted>,
        Vec<serde_json::Value>,
        Option<gate::RateState>,
    ),
    Done,
}

/// One request.
#[derive(Default)]
pub(super) struct EdgeRequest {
    /// `None` only if the configuration was refused: then every request is refused.
    worker: Option<Rc<RefCell<Worker>>>,
    phase: Phase,
    method: String,
    path: String,
    request_id: String,
    authorization: Vec<Vec<u8>>,
    /// Request headers the decisions read, by name.
    head_headers: Vec<(&'static str, Vec<u8>)>,
    body_size: usize,
    /// Content type of a `tools/list` response being filtered.
    response_content_type: Option<String>,
    /// The complete body, once it has arrived.
    body: Option<Vec<u8>>,
}

impl EdgeRequest {
    /// A new request of the worker (`None` if its configuration was refused).
    pub(super) fn new(worker: Option<Rc<RefCell<Worker>>>) -> Self {
        Self {
            worker,
            ..Self::default()
        }
    }
}

impl EdgeRequest {
    /// The request's `Origin` when it is an allowed one.
    fn cors_origin(&self) -> Option<String> {
        let w = self.worker.as_ref()?;
        crate::cors::allowed_origin(&w.borrow().config, self.header("origin")).map(str::to_string)
    }

    fn respond(&mut self, mut reply: Reply, outcome: Outcome) -> Action {
        if let Some(w) = &self.worker {
            w.borrow_mut().count(outcome);
        }
        // A browser must be able to read the refusal (and its WWW-Authenticate) too.
        if let Some(origin) = self.cors_origin()
            && reply.header("access-control-allow-origin").is_none()
        {
            reply.headers.extend(crate::cors::response_headers(&origin));
        }
        log::info!(
            "mcp-edge: request_id={} {} {} -> {} ({})",
            self.request_id,
            self.method,
            self.path,
            reply.status,
            outcome.stat_name()
        );
        let headers: Vec<(&str, &str)> = reply
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        self.record_for_access_log(None, outcome, None);
        self.send_http_response(reply.status, headers, Some(&reply.body));
        self.phase = Phase::Done;
        Action::Pause
    }

    /// Puts tenant, method, tool and outcome into filter state (`wasm.mcp_edge.*`) for the access log.
    fn record_for_access_log(
        &self,
        tenant: Option<&str>,
        outcome: Outcome,
        summary: Option<&BodySummary>,
    ) {
        let set = |key: &str, value: &str| {
            let _ = hostcalls::set_property(vec![key], Some(value.as_bytes()));
        };
        if let Some(t) = tenant {
            set("mcp_edge.tenant", t);
        }
        if let Some(s) = summary {
            set("mcp_edge.method", &s.method);
            if let Some(tool) = &s.tool {
                set("mcp_edge.tool", tool);
            }
        }
        set("mcp_edge.outcome", &outcome.stat_name());
    }

    fn header(&self, name: &str) -> Option<&[u8]> {
        self.head_headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_slice())
    }

    fn judge(&mut self, may_refetch_if_due: bool) -> Action {
        let Some(w) = self.worker.clone() else {
            let r = reply::jsonrpc_error(
                503,
                codes::UNAVAILABLE,
                "The MCP edge is misconfigured.",
                vec![],
            );
            return self.respond(r, Outcome::InternalError);
        };
        let now = unix_now();
        let verdict = {
            let mut guard = w.borrow_mut();
            let worker = &mut *guard;
            let may_refetch = may_refetch_if_due
                && gate::refetch_allowed(
                    &worker.config,
                    worker.keys.is_some(),
                    worker.last_fetch_started,
                    worker.fetches_in_flight,
                    now,
                );
            let head = RequestHead {
                method: &self.method,
                path: &self.path,
                authorization: self.authorization.iter().map(Vec::as_slice).collect(),
                origin: self.header("origin"),
                content_type: self.header("content-type"),
                content_encoding: self.header("content-encoding"),
                protocol_version: self.header("mcp-protocol-version"),
            };
            let keys = KeyState {
                keys: worker.keys.as_ref(),
                may_refetch,
            };
            let ip = client_ip();
            let limiter = gate::AddressLimiter {
                store: &HostShared,
                client_ip: ip.as_deref(),
                now_ms: unix_now_ms(),
            };
            gate::judge_head(
                &worker.config,
                &head,
                &keys,
                &mut worker.cache,
                &limiter,
                now,
            )
        };
        match verdict {
            HeadVerdict::Respond(reply, outcome) => self.respond(reply, outcome),
            HeadVerdict::FetchKeys => match w.borrow_mut().start_fetch(self, now) {
                Some(token) => {
                    self.phase = Phase::AwaitingKeys(token);
                    Action::Pause
                }
                None => self.judge(false),
            },
            HeadVerdict::Authenticated(admitted) => {
                self.phase = Phase::Authenticated(admitted);
                self.finish_if_complete()
            }
        }
    }

    /// Judges the body and vouches for an authenticated request once its body is complete.
    fn finish_if_complete(&mut self) -> Action {
        let (Phase::Authenticated(admitted), Some(body)) = (&self.phase, &self.body) else {
            return Action::Pause;
        };
        let Some(w) = self.worker.clone() else {
            return Action::Pause;
        };
        let config = w.borrow().config.clone();
        let judged = if self.method == "POST" {
            let routing = RoutingHeaders {
                mcp_method: self.header("mcp-method"),
                mcp_name: self.header("mcp-name"),
            };
            gate::judge_body(&config, admitted, &routing, body)
        } else {
            Ok(BodySummary {
                method: self.method.clone(),
                ..BodySummary::default()
            })
        };
        let req = CompleteRequest {
            method: &self.method,
            path: &self.path,
            request_id: &self.request_id,
            body,
        };
        let tier = admitted.tenant.tier.name();
        let verdict = judged.and_then(|summary| {
            let rate = gate::admit(
                &config,
                &HostShared,
                &admitted.tenant,
                summary.cost,
                unix_now_ms(),
            );
            w.borrow_mut().count_name(format!(
                "mcp_edge.ratelimit.{tier}.{}",
                if rate.is_ok() { "admitted" } else { "limited" }
            ));
            let rate = rate?;
            gate::vouch(&config, &admitted.tenant, &req, unix_now()).map(|h| (summary, h, rate))
        });
        match verdict {
            Ok((summary, headers, rate)) => {
                self.set_http_request_header("authorization", None);
                for (name, value) in headers {
                    self.set_http_request_header(name, Some(&value));
                }
                w.borrow_mut().count(Outcome::Allowed);
                self.record_for_access_log(
                    Some(&admitted.tenant.tenant_id),
                    Outcome::Allowed,
                    Some(&summary),
                );
                let admitted = Box::new(admitted.clone());
                self.phase = Phase::Forwarded(admitted, summary.tools_list_ids, Some(rate));
                Action::Continue
            }
            Err((reply, outcome)) => {
                let described = gate::describe_body(body);
                self.record_for_access_log(
                    Some(&admitted.tenant.tenant_id),
                    outcome,
                    described.as_ref(),
                );
                self.respond(reply, outcome)
            }
        }
    }

    fn body_complete(&mut self) -> Action {
        self.body = Some(
            self.get_http_request_body(0, self.body_size)
                .unwrap_or_default(),
        );
        match self.phase {
            Phase::Authenticated(_) => self.finish_if_complete(),
            _ => Action::Pause,
        }
    }

    fn max_body_bytes(&self) -> usize {
        self.worker
            .as_ref()
            .map_or(0, |w| w.borrow().config.max_body_bytes)
    }
}

impl Context for EdgeRequest {
    fn on_http_call_response(&mut self, token: u32, _: usize, body_size: usize, _: usize) {
        if !matches!(self.phase, Phase::AwaitingKeys(t) if t == token) {
            return;
        }
        let status = self.get_http_call_response_header(":status");
        let body = self.get_http_call_response_body(0, body_size);
        if let Some(w) = &self.worker {
            w.borrow_mut().install_keys(status, body, unix_now());
        }
        self.phase = Phase::Start;
        if self.judge(false) == Action::Continue {
            self.resume_http_request();
        }
    }
}

impl HttpContext for EdgeRequest {
    fn on_http_request_headers(&mut self, _: usize, end_of_stream: bool) -> Action {
        let text = |v: Option<Vec<u8>>| {
            v.and_then(|b| String::from_utf8(b).ok())
                .unwrap_or_default()
        };
        self.method = text(self.get_http_request_header_bytes(":method"));
        self.path = text(self.get_http_request_header_bytes(":path"));
        let now_nanos = hostcalls::get_current_time()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        self.request_id = new_request_id(now_nanos);
        let _ = hostcalls::set_property(
            vec!["mcp_edge.request_id"],
            Some(self.request_id.as_bytes()),
        );
        // Nobody outside may speak for a tenant: drop every inbound x-mcp-* header.
        const READ: [&str; 6] = [
            "origin",
            "content-type",
            "content-encoding",
            "mcp-protocol-version",
            "mcp-method",
            "mcp-name",
        ];
        for (name, value) in self.get_http_request_headers_bytes() {
            if headers::is_trusted(&name) {
                self.set_http_request_header(&name, None);
            } else if name.eq_ignore_ascii_case("authorization") {
                self.authorization.push(value);
            } else if let Some(known) = READ.iter().find(|k| name.eq_ignore_ascii_case(k)) {
                self.head_headers.push((known, value));
            }
        }
        if end_of_stream {
            self.body = Some(Vec::new());
        }
        self.judge(true)
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if matches!(self.phase, Phase::Done | Phase::Forwarded(..)) {
            return Action::Continue;
        }
        self.body_size = body_size;
        if body_size > self.max_body_bytes() {
            let (reply, outcome) = match self.worker.clone() {
                Some(w) => gate::body_too_large(&w.borrow().config),
                None => (
                    reply::jsonrpc_error(
                        413,
                        codes::PAYLOAD_REJECTED,
                        "Request body too large.",
                        vec![],
                    ),
                    Outcome::BodyTooLarge,
                ),
            };
            return self.respond(reply, outcome);
        }
        if !end_of_stream {
            return Action::Pause;
        }
        self.body_complete()
    }

    fn on_http_request_trailers(&mut self, _: usize) -> Action {
        if matches!(self.phase, Phase::Done | Phase::Forwarded(..)) {
            return Action::Continue;
        }
        self.body_complete()
    }

    fn on_http_response_headers(&mut self, _: usize, _: bool) -> Action {
        if !matches!(self.phase, Phase::Forwarded(..)) {
            return Action::Continue;
        }
        if let Some(origin) = self.cors_origin() {
            for (name, value) in crate::cors::response_headers(&origin) {
                self.set_http_response_header(&name, Some(&value));
            }
        }
        let Phase::Forwarded(_, ids, rate) = &self.phase else {
            return Action::Continue;
        };
        // Let agents pace themselves.
        if let Some(rate) = rate {
            for (name, value) in rate.headers() {
                self.set_http_response_header(name, Some(&value));
            }
        }
        if ids.is_empty() {
            return Action::Continue;
        }
        let content_type = self
            .get_http_response_header_bytes("content-type")
            .map(|v| String::from_utf8_lossy(&v).into_owned())
            .unwrap_or_default();
        // The body is rewritten: its length changes.
        self.set_http_response_header("content-length", None);
        self.response_content_type = Some(content_type);
        Action::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let (Phase::Forwarded(admitted, ids, _), Some(content_type)) =
            (&self.phase, &self.response_content_type)
        else {
            return Action::Continue;
        };
        if !end_of_stream {
            return Action::Pause;
        }
        let Some(w) = self.worker.clone() else {
            return Action::Continue;
        };
        let body = self
            .get_http_response_body(0, body_size)
            .unwrap_or_default();
        let rewritten = gate::rewrite_tools_list(
            &w.borrow().config,
            &admitted.tenant,
            content_type,
            ids,
            &body,
        );
        self.set_http_response_body(0, body_size, &rewritten);
        Action::Continue
    }
}
