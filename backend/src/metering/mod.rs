//! Metering: the daily quota per tenant and tier, and a usage event per successful billable call.
//!
//! Every `tools/call` is first [`Metering::claim`]ed: a call (gateway request id + JSON-RPC id)
//! runs at most once within the signature window ([`recent`], shared through Redis when there is
//! one), so a replayed signed request is refused with -32053. A billable call (see
//! [`crate::tools::is_billable`]) then [`Metering::admit`]s: one atomic, idempotent check-and-count
//! against the tenant's counter for the UTC day ([`day`], [`plan`]), keyed by the call so a
//! reservation is never counted twice. Over the limit it fails with -32050 ([`errors`]) and the
//! business call does not run. Then:
//! - the call succeeded → [`Metering::settle`] commits its [`UsageEvent`] to the durable
//!   [`Outbox`] (group commit) *before* the result is returned; the [`delivery`] task moves it to
//!   the Redis stream afterwards. If the outbox cannot take it the caller gets -32052 instead of
//!   the result, and while the outbox is unwritable, or its writer thread is gone or stuck,
//!   billable calls are refused up front (fail closed) and `/readyz` fails until it recovers;
//! - the call failed (JSON-RPC error or `isError: true`) → the reservation is refunded: only
//!   successful calls count and are billed. While a failing call holds its reservation a
//!   concurrent call may be refused at the limit; the quota is never exceeded.
//!
//! When the usage store is unreachable, each tier fails closed (error -32051) or open, per
//! [`DownPolicy`]: the call runs, counted in this process, which stops the tenant at its quota
//! ([`fail_open`]); its event counts it in the store when delivered, and until all such events of
//! a day counter are, that counter stays counted in this process, then is reconciled before the
//! store grants from it again. After a failure the
//! request path skips the store for a second ([`breaker`]) instead of waiting out its timeout.

pub mod breaker;
pub mod counters;
pub mod day;
pub mod delivery;
pub mod errors;
pub mod event;
pub mod export_record;
pub mod fail_open;
pub mod keys;
pub mod memory_meter;
pub mod meter_store;
pub mod outbox;
pub mod plan;
pub mod recent;
pub mod redis_meter;
pub mod report;
pub mod usage_stream;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use mcp_edge_contract::limits::MAX_JSONRPC_ID_BYTES;
use rmcp::ErrorData;
use serde::{Deserialize, Serialize};

use crate::tenant::TenantContext;

pub use counters::MeteringCounts;
pub use delivery::DeliveryTask;
pub use event::{SpoolRecord, UsageEvent, call_key};
pub use fail_open::FailOpenStats;
pub use memory_meter::MemoryMeter;
pub use meter_store::{MeterError, MeterStore, Reservation};
pub use outbox::{Outbox, OutboxStats};
pub use plan::{DailyQuota, DownPolicy, QuotaLimits, Tier, WhenDown};
pub use recent::RecentCalls;
pub use redis_meter::{RedisMeter, USAGE_STREAM};

/// The current time; replaceable in tests.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// Quota configuration.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MeteringConfig {
    pub limits: QuotaLimits,
    pub when_down: DownPolicy,
}

/// What [`Metering::admit`] let through.
#[derive(Debug)]
#[must_use = "settle the admission after the call"]
pub struct Admission {
    /// The call's event id ([`event::call_key`]), which also keys its reservation.
    call: String,
    /// The JSON-RPC id.
    call_id: String,
    /// When it was admitted: its event carries this time, so a call is billed on the day it was
    /// counted even when it ends after midnight.
    at: DateTime<Utc>,
    /// The day counter of the call.
    day_key: String,
    /// Whether the store counted it; not when it ran while the store was down (fail open).
    counted: bool,
}

/// Today's quota of a tenant, as `get_usage` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageToday {
    /// The plan the quota comes from: free, pro or enterprise.
    pub tier: String,
    /// Billable calls allowed per UTC day; null when unlimited.
    pub limit: Option<u64>,
    /// Billable calls counted today.
    pub used: u64,
    /// Billable calls left today; null when unlimited.
    pub remaining: Option<u64>,
    /// When the quota resets: the next midnight UTC, RFC 3339.
    pub resets_at: String,
    /// Seconds from now until `resetsAt`.
    pub resets_in_seconds: u64,
}

/// The metering service; cheap to clone.
#[derive(Clone)]
pub struct Metering {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn MeterStore>,
    config: MeteringConfig,
    clock: Clock,
    outbox: Outbox,
    recent: RecentCalls,
    breaker: breaker::Breaker,
    fail_open: Arc<fail_open::FailOpen>,
    counters: Arc<counters::MeteringCounters>,
}

impl std::fmt::Debug for Metering {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metering")
            .field("store", &self.inner.store.kind())
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl Metering {
    /// Starts metering over `store`, with `outbox` for usage events; delivers what the outbox
    /// holds right away. Needs a Tokio runtime. Stop it with [`DeliveryTask::shutdown`].
    pub fn start(
        store: Arc<dyn MeterStore>,
        config: MeteringConfig,
        outbox: Outbox,
    ) -> (Self, DeliveryTask) {
        Self::start_with(
            store,
            config,
            outbox,
            Arc::new(Utc::now),
            delivery::RETRY_INTERVAL,
        )
    }

    /// [`Metering::start`] with another clock and delivery retry interval (tests).
    pub fn start_with(
        store: Arc<dyn MeterStore>,
        config: MeteringConfig,
        outbox: Outbox,
        clock: Clock,
        retry: Duration,
    ) -> (Self, DeliveryTask) {
        let counters = Arc::new(counters::MeteringCounters::default());
        let fail_open = Arc::new(fail_open::FailOpen::default());
        let task = delivery::start(
            store.clone(),
            outbox.clone(),
            retry,
            counters.clone(),
            fail_open.clone(),
        );
        let metering = Self {
            inner: Arc::new(Inner {
                store,
                config,
                clock,
                outbox,
                recent: RecentCalls::new(),
                breaker: breaker::Breaker::default(),
                fail_open,
                counters,
            }),
        };
        (metering, task)
    }

    /// In-process metering with the default quotas (tests, development). The task runs until the
    /// runtime ends.
    pub fn in_memory() -> Self {
        let (metering, _task) = Self::start(
            Arc::new(MemoryMeter::new()),
            MeteringConfig::default(),
            Outbox::memory(),
        );
        metering
    }

    fn now(&self) -> DateTime<Utc> {
        (self.inner.clock)()
    }

    /// The outbox's group-commit counters.
    pub fn outbox_stats(&self) -> OutboxStats {
        self.inner.outbox.stats()
    }

    /// Refusals and deliveries since the start.
    pub fn counts(&self) -> MeteringCounts {
        self.inner.counters.snapshot()
    }

    /// `Ok` when billable calls can be recorded (the outbox writer runs, is not stuck, and its
    /// disk takes commits); else why not. The readiness check (`/readyz`) reports it.
    pub fn ready(&self) -> Result<(), outbox::OutboxError> {
        self.inner.outbox.ready()
    }

    /// Whether the outbox writer thread runs, and is not stuck.
    pub fn outbox_writer_state(&self) -> outbox::WriterState {
        self.inner.outbox.writer_state()
    }

    /// Events waiting in the outbox for delivery.
    pub fn outbox_backlog(&self) -> u64 {
        self.inner.outbox.backlog()
    }

    /// Records that the call `call_id` of this request runs now; an error if it was received
    /// before within the signature window (here, or on any backend sharing the usage store).
    /// A string id longer than the contract's cap is refused (-32600) before it is kept anywhere.
    pub async fn claim(&self, tenant: &TenantContext, call_id: &str) -> Result<(), ErrorData> {
        if call_id.len() > MAX_JSONRPC_ID_BYTES {
            return Err(errors::id_too_long());
        }
        let call = event::call_key(&tenant.request_id, call_id);
        let replayed = || {
            self.inner.counters.replay_refused();
            errors::replayed(&tenant.request_id, call_id)
        };
        if !self.inner.recent.first_time(&call, Instant::now()) {
            return Err(replayed());
        }
        let key = keys::request_once(&tenant.tenant_id, &call);
        let ttl = recent::REPLAY_WINDOW.as_secs();
        let store = &self.inner.store;
        match self.inner.breaker.call(store.claim_once(&key, ttl)).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(replayed()),
            Err(e) => {
                tracing::warn!(error = %e, "request ids unshared (store down); checked in this process only");
                Ok(())
            }
        }
    }

    /// Checks and counts one billable call of `tenant`; an error means the call must not run.
    pub async fn admit(
        &self,
        tenant: &TenantContext,
        call_id: &str,
    ) -> Result<Admission, ErrorData> {
        let now = self.now();
        let tier = tenant.tier;
        if let Err(e) = self.inner.outbox.ready() {
            tracing::warn!(
                tier = tier.name(),
                error = %e,
                "usage outbox not ready; refusing a billable call before it runs"
            );
            self.inner.counters.unwritable_refusal();
            return Err(errors::metering_unavailable(tier));
        }
        let limit = self.inner.config.limits.of(tier).limit();
        let key = keys::quota_day(&tenant.tenant_id, day::utc_day(now));
        let call = event::call_key(&tenant.request_id, call_id);
        let admission = |counted| Admission {
            call: call.clone(),
            call_id: call_id.to_owned(),
            at: now,
            day_key: key.clone(),
            counted,
        };
        let store = &self.inner.store;
        let refused = |used| errors::exhausted(tier, limit.unwrap_or(used), used, now);
        let fail_open = &self.inner.fail_open;
        if fail_open.pending(&key) {
            // Calls admitted while the store was down are not all in its counter yet: granting
            // from it would hand their share of the quota out again. Counted here until they are.
            fail_open.admit(&key, limit, tier).map_err(refused)?;
            tracing::info!(
                tier = tier.name(),
                "calls admitted while failing open not yet delivered; counting in this process"
            );
            return Ok(admission(false));
        }
        // After an outage: the counter holds at least what this process knows it reached.
        let floor = fail_open.floor(&key);
        let reserve = async {
            if floor > 0 {
                store.raise_to(&key, floor).await?;
            }
            store.reserve(&key, limit, &call).await
        };
        match self.inner.breaker.call(reserve).await {
            Ok(Reservation::Granted { used }) => {
                self.inner.fail_open.seen(&key, used);
                Ok(admission(true))
            }
            Ok(Reservation::Exhausted { used }) => {
                self.inner.fail_open.seen(&key, used);
                tracing::info!(tier = tier.name(), ?limit, used, "daily quota exhausted");
                Err(refused(used))
            }
            Err(e) => match self.inner.config.when_down.of(tier) {
                WhenDown::Closed => {
                    tracing::warn!(error = %e, tier = tier.name(), "quota unavailable; refusing (fail closed)");
                    Err(errors::unavailable(tier))
                }
                WhenDown::Open => {
                    self.inner
                        .fail_open
                        .admit(&key, limit, tier)
                        .map_err(refused)?;
                    tracing::warn!(error = %e, tier = tier.name(), "quota unavailable; counting in this process (fail open)");
                    Ok(admission(false))
                }
            },
        }
    }

    /// Calls admitted and refused while the quota store was down, and the time spent so.
    pub fn fail_open_stats(&self) -> FailOpenStats {
        self.inner.fail_open.stats()
    }

    /// After the call: a success commits its usage event to the outbox (durable when this returns
    /// `Ok`), a failure gives the reservation back. An error means the event could not be
    /// recorded: the caller must answer with it instead of the result, which is then not billed.
    pub async fn settle(
        &self,
        admission: Admission,
        tenant: &TenantContext,
        tool: &str,
        succeeded: bool,
    ) -> Result<(), ErrorData> {
        if succeeded {
            let record = SpoolRecord {
                event: UsageEvent::new(tenant, tool, &admission.call_id, admission.at),
                quota_counted: admission.counted,
            };
            match self
                .inner
                .outbox
                .append(std::slice::from_ref(&record))
                .await
            {
                Ok(()) => return Ok(()),
                Err(e) => tracing::error!(
                    error = %e,
                    event_id = %record.event.event_id,
                    "usage event not recorded; the call is answered with an error and not billed"
                ),
            }
        }
        if !admission.counted {
            self.inner.fail_open.release(&admission.day_key);
        } else if let Err(e) = self
            .inner
            .store
            .refund(&admission.day_key, &admission.call)
            .await
        {
            tracing::warn!(error = %e, "could not refund the quota of an unbilled call");
        }
        if succeeded {
            Err(errors::metering_unavailable(tenant.tier))
        } else {
            Ok(())
        }
    }

    /// Today's quota of `tenant`.
    pub async fn usage(&self, tenant: &TenantContext) -> Result<UsageToday, ErrorData> {
        let now = self.now();
        let tier = tenant.tier;
        let limit = self.inner.config.limits.of(tier).limit();
        let key = keys::quota_day(&tenant.tenant_id, day::utc_day(now));
        let used = self
            .inner
            .breaker
            .call(self.inner.store.used(&key))
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "usage unavailable");
                errors::usage_unavailable(tier)
            })?;
        let reset = day::next_reset(now);
        Ok(UsageToday {
            tier: tier.name().to_owned(),
            limit,
            used,
            remaining: limit.map(|l| l.saturating_sub(used)),
            resets_at: day::rfc3339_seconds(reset),
            resets_in_seconds: day::seconds_until(now, reset),
        })
    }
}
