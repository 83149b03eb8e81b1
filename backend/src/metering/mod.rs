//! Metering: the daily quota per tenant and tier, and a usage event per successful billable call.
//!
//! A billable tool call (see [`crate::tools::is_billable`]) first [`Metering::admit`]s: one atomic
//! check-and-count against the tenant's counter for the UTC day ([`day`], [`plan`]). Over the limit
//! it fails with JSON-RPC error -32050 ([`errors`]) and the business call does not run. Then:
//! - the call succeeded → [`Metering::settle`] emits a [`UsageEvent`] through a bounded channel to
//!   a background task ([`emitter`]), which appends it to the Redis stream (or spools it);
//! - the call failed (JSON-RPC error or `isError: true`) → the reservation is refunded: only
//!   successful calls count and are billed. While a failing call holds its reservation a
//!   concurrent call may be refused at the limit; the quota is never exceeded.
//!
//! When the usage store is unreachable, each tier fails closed (error -32051) or open (the call
//! runs uncounted; its event is spooled with `quota_counted: false` and counts towards its day when
//! replayed), per [`DownPolicy`].

pub mod day;
pub mod emitter;
pub mod errors;
pub mod event;
pub mod keys;
pub mod memory_meter;
pub mod meter_store;
pub mod plan;
pub mod redis_meter;
pub mod report;
pub mod spool;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rmcp::ErrorData;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::tenant::TenantContext;

pub use emitter::EmitterTask;
pub use event::{SpoolRecord, UsageEvent};
pub use memory_meter::MemoryMeter;
pub use meter_store::{MeterError, MeterStore, Reservation};
pub use plan::{DailyQuota, DownPolicy, QuotaLimits, Tier, WhenDown};
pub use redis_meter::{RedisMeter, USAGE_STREAM};
pub use spool::Spool;

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
    /// The counter the call was counted in; `None` when it ran uncounted (store down, fail open).
    counted_in: Option<String>,
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
    events: mpsc::Sender<SpoolRecord>,
    spool: Arc<Spool>,
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
    /// Starts metering over `store`, with `spool` for undeliverable events; replays the spool
    /// right away. Needs a Tokio runtime. Stop it with [`EmitterTask::shutdown`].
    pub fn start(
        store: Arc<dyn MeterStore>,
        config: MeteringConfig,
        spool: Spool,
    ) -> (Self, EmitterTask) {
        Self::start_with(
            store,
            config,
            spool,
            Arc::new(Utc::now),
            emitter::RETRY_INTERVAL,
        )
    }

    /// [`Metering::start`] with another clock and spool retry interval (tests).
    pub fn start_with(
        store: Arc<dyn MeterStore>,
        config: MeteringConfig,
        spool: Spool,
        clock: Clock,
        retry: Duration,
    ) -> (Self, EmitterTask) {
        let spool = Arc::new(spool);
        let (events, task) = emitter::start(store.clone(), spool.clone(), retry);
        let metering = Self {
            inner: Arc::new(Inner {
                store,
                config,
                clock,
                events,
                spool,
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
            Spool::memory(),
        );
        metering
    }

    fn now(&self) -> DateTime<Utc> {
        (self.inner.clock)()
    }

    /// Checks and counts one billable call of `tenant`; an error means the call must not run.
    pub async fn admit(&self, tenant: &TenantContext) -> Result<Admission, ErrorData> {
        let now = self.now();
        let tier = tenant.tier;
        let limit = self.inner.config.limits.of(tier).limit();
        let key = keys::quota_day(&tenant.tenant_id, day::utc_day(now));
        match self.inner.store.reserve(&key, limit).await {
            Ok(Reservation::Granted { .. }) => Ok(Admission {
                counted_in: Some(key),
            }),
            Ok(Reservation::Exhausted { used }) => {
                tracing::info!(tier = tier.name(), ?limit, used, "daily quota exhausted");
                Err(errors::exhausted(tier, limit.unwrap_or(used), used, now))
            }
            Err(e) => match self.inner.config.when_down.of(tier) {
                WhenDown::Closed => {
                    tracing::warn!(error = %e, tier = tier.name(), "quota unavailable; refusing (fail closed)");
                    Err(errors::unavailable(tier))
                }
                WhenDown::Open => {
                    tracing::warn!(error = %e, tier = tier.name(), "quota unavailable; allowing uncounted (fail open)");
                    Ok(Admission { counted_in: None })
                }
            },
        }
    }

    /// After the call: a success emits its usage event (without waiting), a failure gives the
    /// reservation back.
    pub async fn settle(
        &self,
        admission: Admission,
        tenant: &TenantContext,
        tool: &str,
        call_id: &str,
        succeeded: bool,
    ) {
        if !succeeded {
            if let Some(key) = admission.counted_in
                && let Err(e) = self.inner.store.refund(&key).await
            {
                tracing::warn!(error = %e, "could not refund the quota of a failed call");
            }
            return;
        }
        let record = SpoolRecord {
            event: UsageEvent::new(tenant, tool, call_id, self.now()),
            quota_counted: admission.counted_in.is_some(),
        };
        match self.inner.events.try_send(record) {
            Ok(()) => {}
            Err(
                mpsc::error::TrySendError::Full(record) | mpsc::error::TrySendError::Closed(record),
            ) => {
                // Never make the answer wait: spool it on a blocking thread.
                let spool = self.inner.spool.clone();
                tokio::spawn(async move { emitter::append(&spool, vec![record]).await });
            }
        }
    }

    /// Today's quota of `tenant`.
    pub async fn usage(&self, tenant: &TenantContext) -> Result<UsageToday, ErrorData> {
        let now = self.now();
        let tier = tenant.tier;
        let limit = self.inner.config.limits.of(tier).limit();
        let key = keys::quota_day(&tenant.tenant_id, day::utc_day(now));
        let used = self.inner.store.used(&key).await.map_err(|e| {
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
