//! Where metering keeps a tenant's daily counter: under the tenant's key prefix
//! ([`crate::keyspace`]), beside but apart from the project store's keys.
//!
//! A counter and the per-call markers a script touches with it share one Redis Cluster hash tag,
//! the tenant's prefix in braces (`{mcp-edge:tenant:4:acme}:quota:…`), so every metering script
//! runs on one slot. A tenant id holding `}` ends the tag early, the same way for all of its keys.

use chrono::NaiveDate;

use crate::keyspace::tenant_prefix;

/// The counter of the tenant's billable calls on one UTC day (the daily quota).
pub fn quota_day(tenant_id: &str, day: NaiveDate) -> String {
    format!(
        "{{{}}}:quota:{}",
        tenant_prefix(tenant_id),
        day.format("%Y-%m-%d")
    )
}

/// The marker that the call `event_id` is counted on the day counter `quota_key` (same hash tag).
pub fn reserved(quota_key: &str, event_id: &str) -> String {
    format!("{quota_key}:reserved:{event_id}")
}

/// The marker that the call `call` (`<request id>/<JSON-RPC id>`) of the tenant has been received.
pub fn request_once(tenant_id: &str, call: &str) -> String {
    format!("{}:request-once:{call}", tenant_prefix(tenant_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape() {
        let day = NaiveDate::from_ymd_opt(2026, 11, 27).expect("date");
        assert_eq!(
            quota_day("acme", day),
            "{mcp-edge:tenant:4:acme}:quota:2026-11-27"
        );
        assert_eq!(
            reserved(&quota_day("acme", day), "r/1"),
            "{mcp-edge:tenant:4:acme}:quota:2026-11-27:reserved:r/1"
        );
    }
}
