//! Long-lived streams at admission: a `GET` (a stateful upstream's SSE stream) or a
//! `subscriptions/listen` takes one of its tenant's places (its tier's `stream_limits`), counted in
//! shared data across the workers ([`crate::rate_limit::streams`]); at the cap it is refused (429).

use crate::rate_limit::streams::{self, NoPlace};
use crate::tenant::TenantContext;

use super::{Denial, Host, WorkerState};

/// Whether a request holds its upstream for as long as the client keeps it open.
pub fn is_long_lived(http_method: &str, rpc_method: &str) -> bool {
    http_method == "GET" || rpc_method == "subscriptions/listen"
}

/// Takes a place for the request's stream if it is a long-lived one: `Some(tenant)` when a place
/// was taken (to give back when the request ends), `None` for any other request.
pub fn take_place(
    w: &WorkerState,
    host: &dyn Host,
    tenant: &TenantContext,
    http_method: &str,
    rpc_method: &str,
) -> Result<Option<String>, Denial> {
    if !is_long_lived(http_method, rpc_method) {
        return Ok(None);
    }
    let tier = tenant.tier;
    let cap = w.config.stream_limits.get(&tier).copied().unwrap_or(1);
    let taken = streams::acquire(
        host.shared(),
        &w.slot_secret,
        &tenant.tenant_id,
        &w.stream_holder,
        cap,
        host.now_ms(),
    );
    match taken {
        Ok(()) => Ok(Some(tenant.tenant_id.clone())),
        Err(NoPlace::AtCap { cap }) => Err(Denial::TooManyStreams { tier, cap }),
        Err(NoPlace::Busy) => Err(Denial::TooManyStreams { tier, cap }),
    }
}
