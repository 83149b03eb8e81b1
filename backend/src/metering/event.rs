//! The usage event of one successful billable call, as the outbox keeps it (JSON) and as it is
//! stored in the Redis stream (flat field/value pairs).

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::day::rfc3339_millis;
use crate::tenant::TenantContext;

/// One billable tool call that succeeded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageEvent {
    /// [`call_key`] of the gateway's request id and the call's JSON-RPC id: the idempotency key
    /// of the stream and of the Stripe export (whose `identifier` holds at most 100 characters).
    /// The request id alone would not do: one HTTP request may carry a batch of calls (protocol
    /// 2025-03-26), each with its own id. The edge makes a fresh, unguessable request id for every
    /// request it lets through.
    pub event_id: String,
    /// The gateway's `x-mcp-request-id`, to correlate with access logs.
    pub request_id: String,
    pub tenant_id: String,
    pub tool: String,
    pub user_id: String,
    /// RFC 3339, UTC, milliseconds.
    pub timestamp: String,
    /// The same instant in unix milliseconds.
    pub timestamp_ms: i64,
    pub billable: bool,
}

/// The stream fields of an event, in this order.
const FIELDS: [&str; 8] = [
    "event_id",
    "request_id",
    "tenant_id",
    "tool",
    "user_id",
    "timestamp",
    "timestamp_ms",
    "billable",
];

/// The key of one call, the JSON-RPC id `call_id` of the request `request_id`: its usage event's
/// id, its reservation and its exactly-once marker. 43 characters (base64url SHA-256) whatever the
/// ids' lengths, so a long id costs no memory or store space per call and fits Stripe's
/// `identifier`; the request id is length-prefixed, so no two pairs share their input.
pub fn call_key(request_id: &str, call_id: &str) -> String {
    let mut hash = Sha256::new();
    hash.update((request_id.len() as u64).to_be_bytes());
    hash.update(request_id.as_bytes());
    hash.update(call_id.as_bytes());
    URL_SAFE_NO_PAD.encode(hash.finalize())
}

impl UsageEvent {
    /// The event of the call `call_id` (its JSON-RPC id) of `tool` by `tenant` at `now`.
    pub fn new(tenant: &TenantContext, tool: &str, call_id: &str, now: DateTime<Utc>) -> Self {
        Self {
            event_id: call_key(&tenant.request_id, call_id),
            request_id: tenant.request_id.clone(),
            tenant_id: tenant.tenant_id.clone(),
            tool: tool.to_owned(),
            user_id: tenant.user_id.clone(),
            timestamp: rfc3339_millis(now),
            timestamp_ms: now.timestamp_millis(),
            billable: true,
        }
    }

    /// Field/value pairs for XADD.
    pub fn to_fields(&self) -> Vec<(&'static str, String)> {
        let values = [
            self.event_id.clone(),
            self.request_id.clone(),
            self.tenant_id.clone(),
            self.tool.clone(),
            self.user_id.clone(),
            self.timestamp.clone(),
            self.timestamp_ms.to_string(),
            self.billable.to_string(),
        ];
        FIELDS.into_iter().zip(values).collect()
    }

    /// The event back from a stream entry's field/value list.
    pub fn from_fields(pairs: &[String]) -> Result<Self, String> {
        let map: HashMap<&str, &str> = pairs
            .chunks_exact(2)
            .map(|kv| (kv[0].as_str(), kv[1].as_str()))
            .collect();
        let get = |name: &str| {
            map.get(name)
                .map(|v| (*v).to_owned())
                .ok_or_else(|| format!("usage event without {name}"))
        };
        Ok(Self {
            event_id: get("event_id")?,
            request_id: get("request_id").unwrap_or_default(),
            tenant_id: get("tenant_id")?,
            tool: get("tool")?,
            user_id: get("user_id").unwrap_or_default(),
            timestamp: get("timestamp")?,
            timestamp_ms: get("timestamp_ms")?
                .parse()
                .map_err(|_| "usage event with a bad timestamp_ms".to_owned())?,
            billable: get("billable")? == "true",
        })
    }
}

/// An outbox entry: the event, and whether its call held a reservation when it ran (a call let
/// through while the quota store was down did not; delivering it counts it unless the store shows
/// that its reservation did run). Informational: delivery decides by the reservation marker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpoolRecord {
    pub event: UsageEvent,
    pub quota_counted: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenant::test_tenant;

    #[test]
    fn fields_round_trip() {
        let now = DateTime::parse_from_rfc3339("2026-11-27T10:00:00.123Z")
            .expect("time")
            .with_timezone(&Utc);
        let e = UsageEvent::new(&test_tenant("acme"), "create_task", "7", now);
        assert_eq!(e.event_id, call_key(&e.request_id, "7"));
        assert_eq!(e.timestamp, "2026-11-27T10:00:00.123Z");
        assert_eq!(e.timestamp_ms, 1_795_773_600_123);
        let flat: Vec<String> = e
            .to_fields()
            .into_iter()
            .flat_map(|(k, v)| [k.to_owned(), v])
            .collect();
        assert_eq!(UsageEvent::from_fields(&flat), Ok(e.clone()));
        assert!(UsageEvent::from_fields(&flat[2..]).is_err());
        let json = serde_json::to_value(&e).expect("json");
        assert_eq!(json["tenant_id"], "acme");
        assert_eq!(json["billable"], true);
        assert_eq!(json["timestamp_ms"], 1_795_773_600_123_i64);
    }
}
