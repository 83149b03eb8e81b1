//! The root context of one worker: configuration, the JWKS fetched on a timer or when a request
//! needs keys (one fetch at a time, always dispatched here so that its answer comes here), the
//! requests waiting for it judged and resumed when it ends, and the worker's gathered counts
//! handed to Envoy on the same timer (`stats_flush_ms`).

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::ContextType;

use crate::config::{EdgeConfig, JwksSource, parse_config};
use crate::gate::WorkerState;
use crate::rate_limit::{SlotSecret, streams};

use super::request::{EdgeRequest, RequestContext};
use super::{HostShared, Worker, unix_now, unix_now_nanos};

/// The tick while a remote JWKS has given no keys yet.
const KEYLESS_TICK: Duration = Duration::from_millis(100);

/// The root context of one worker.
pub(super) struct EdgeRoot {
    /// Envoy's id of this context (the effective context again after resuming requests).
    id: u32,
    worker: Option<Rc<RefCell<Worker>>>,
    jwks_call: Option<u32>,
    /// The tick period last set here (`None`: unknown, a request hurried the timer).
    tick: Option<Duration>,
}

/// The tick once the first keys are in: the stream holder's heartbeat and JWKS refreshes are
/// looked at once a second, counts are handed to Envoy every `stats_flush_ms` (if sooner).
fn steady_tick(config: &EdgeConfig) -> Duration {
    let beat = Duration::from_millis(streams::HEARTBEAT_MS);
    match config.stats_flush_ms {
        0 => beat,
        ms => beat.min(Duration::from_millis(ms)),
    }
}

fn unix_now_ms() -> u64 {
    u64::try_from(unix_now_nanos() / 1_000_000).unwrap_or(u64::MAX)
}

impl EdgeRoot {
    pub(super) fn new(id: u32) -> Self {
        Self {
            id,
            worker: None,
            jwks_call: None,
            tick: None,
        }
    }

    /// Judges and resumes the requests `ids` that waited for keys (gone ones are skipped).
    fn judge_waiters(&self, w: &Rc<RefCell<Worker>>, ids: Vec<u32>) {
        for id in ids {
            let gate = w.borrow_mut().waiting.remove(&id);
            if let Some(mut request) = gate.and_then(|g| EdgeRequest::resumed(id, w, &g)) {
                request.keys_ended();
            }
        }
        let _ = hostcalls::set_effective_context(self.id);
    }

    /// Dispatches the JWKS fetch; if it cannot be, its waiters are judged now.
    fn start_fetch(&mut self, w: &Rc<RefCell<Worker>>, now_ms: u64) {
        let call = w.borrow_mut().start_fetch(self, now_ms);
        self.jwks_call = call;
        if call.is_none() {
            let ids = w.borrow_mut().state.keys.take_waiters();
            self.judge_waiters(w, ids);
        }
    }

    /// Sets the tick period for the worker's state, if it changed.
    fn set_tick(&mut self, w: &mut Worker) {
        if std::mem::take(&mut w.tick_hurried) {
            self.tick = None;
        }
        let remote = matches!(w.state.config.jwks_source, JwksSource::Remote(_));
        let period = if remote && w.state.keys.keys().is_none() {
            KEYLESS_TICK
        } else {
            steady_tick(&w.state.config)
        };
        if self.tick != Some(period) {
            self.tick = Some(period);
            self.set_tick_period(period);
        }
    }
}

impl Context for EdgeRoot {
    fn on_http_call_response(&mut self, token: u32, _: usize, body_size: usize, _: usize) {
        let Some(w) = self.worker.clone() else { return };
        // Read while this is the effective context.
        let status = self.get_http_call_response_header(":status");
        let body = self.get_http_call_response_body(0, body_size);
        if self.jwks_call == Some(token) {
            self.jwks_call = None;
            let ids = {
                let mut w = w.borrow_mut();
                w.install_keys(status, body, unix_now());
                w.state.keys.take_waiters()
            };
            self.judge_waiters(&w, ids);
            return;
        }
        let relayed = w.borrow_mut().relayed.remove(&token);
        if let Some(mut request) = relayed.and_then(|r| EdgeRequest::resumed(r.id, &w, &r.gate)) {
            request.introspected(status.as_deref(), &body.unwrap_or_default());
            let _ = hostcalls::set_effective_context(self.id);
        }
    }

    fn on_grpc_call_response(&mut self, token: u32, status_code: u32, response_size: usize) {
        let Some(w) = self.worker.clone() else { return };
        let body = (status_code == 0)
            .then(|| self.get_grpc_call_response_body(0, response_size))
            .flatten();
        let relayed = w.borrow_mut().relayed.remove(&token);
        if let Some(mut request) = relayed.and_then(|r| EdgeRequest::resumed(r.id, &w, &r.gate)) {
            request.global_answered(Some(status_code), body);
            let _ = hostcalls::set_effective_context(self.id);
        }
    }

    /// The VM is going away: counts not handed over yet are, now.
    fn on_done(&mut self) -> bool {
        if let Some(w) = &self.worker {
            w.borrow_mut().flush_counts();
        }
        true
    }
}

impl RootContext for EdgeRoot {
    fn on_configure(&mut self, _: usize) -> bool {
        let bytes = self.get_plugin_configuration().unwrap_or_default();
        let config = match parse_config(&bytes, &|name| std::env::var(name).ok()) {
            Ok(c) => c,
            Err(e) => {
                log::error!("mcp-edge: {e}");
                self.worker = None;
                return false;
            }
        };
        let secret = SlotSecret::shared(&HostShared, super::random_bytes());
        let mut state = WorkerState::new(config, secret);
        let random = super::random_bytes();
        state.stream_holder.copy_from_slice(&random[..8]);
        streams::heartbeat(&HostShared, &state.stream_holder, unix_now_ms());
        let mut worker = Worker::new(state);
        // Tick fast until the first keys are in, then at the steady period.
        self.tick = None;
        self.set_tick(&mut worker);
        self.worker = Some(Rc::new(RefCell::new(worker)));
        true
    }

    fn on_tick(&mut self) {
        let Some(w) = self.worker.clone() else { return };
        let now_ms = unix_now_ms();
        let (overdue, fetch_due) = {
            let mut w = w.borrow_mut();
            w.flush_counts_if_due(now_ms);
            streams::heartbeat(&HostShared, &w.state.stream_holder, now_ms);
            let config = w.state.config.clone();
            let overdue = w.state.keys.overdue_waiters(&config, now_ms);
            let due = self.jwks_call.is_none() && w.state.keys.fetch_due(&config, now_ms);
            (overdue, due)
        };
        self.judge_waiters(&w, overdue);
        if fetch_due {
            self.start_fetch(&w, now_ms);
        }
        self.set_tick(&mut w.borrow_mut());
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(RequestContext::new(
            context_id,
            self.worker.clone(),
        )))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
