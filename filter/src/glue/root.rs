//! The root context of one worker: configuration, the JWKS fetched on a timer, and the worker's
//! gathered counts handed to Envoy on the same timer (`stats_flush_ms`).

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::ContextType;

use crate::config::{EdgeConfig, JwksSource, parse_config};
use crate::gate::WorkerState;
use crate::rate_limit::{SlotSecret, streams};

use super::{EdgeRequest, HostShared, Worker, unix_now, unix_now_nanos};

/// The root context of one worker.
#[derive(Default)]
pub(super) struct EdgeRoot {
    worker: Option<Rc<RefCell<Worker>>>,
    jwks_call: Option<u32>,
    /// Whether the tick period is the steady one (keys are in, or none are fetched).
    slow_ticks: bool,
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

impl Context for EdgeRoot {
    fn on_http_call_response(&mut self, token: u32, _: usize, body_size: usize, _: usize) {
        if self.jwks_call != Some(token) {
            return;
        }
        self.jwks_call = None;
        let status = self.get_http_call_response_header(":status");
        let body = self.get_http_call_response_body(0, body_size);
        if let Some(w) = &self.worker {
            w.borrow_mut().install_keys(status, body, unix_now());
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
        let remote = matches!(config.jwks_source, JwksSource::Remote(_));
        let steady = steady_tick(&config);
        let secret = SlotSecret::shared(&HostShared, super::random_bytes());
        let mut state = WorkerState::new(config, secret);
        let random = super::random_bytes();
        state.stream_holder.copy_from_slice(&random[..8]);
        streams::heartbeat(&HostShared, &state.stream_holder, unix_now_ms());
        self.worker = Some(Rc::new(RefCell::new(Worker::new(state))));
        if remote {
            // Tick fast until the first keys are in, then at the steady period.
            self.set_tick_period(Duration::from_millis(100));
        } else {
            self.slow_ticks = true;
            self.set_tick_period(steady);
        }
        true
    }

    fn on_tick(&mut self) {
        let Some(w) = self.worker.clone() else { return };
        let now_ms = unix_now_ms();
        let now = now_ms / 1000;
        let mut w = w.borrow_mut();
        w.flush_counts_if_due(now_ms);
        streams::heartbeat(&HostShared, &w.state.stream_holder, now_ms);
        if w.state.keys.keys().is_some() && !self.slow_ticks {
            self.slow_ticks = true;
            self.set_tick_period(steady_tick(&w.state.config));
        }
        let config = w.state.config.clone();
        if self.jwks_call.is_none() && w.state.keys.refresh_due(&config, now) {
            self.jwks_call = w.start_fetch(self, now);
        }
    }

    fn create_http_context(&self, _: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(EdgeRequest::new(self.worker.clone())))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
