//! The JSON-RPC errors of metering, with messages an agent can repeat to a person.
//!
//! Codes (our implementation-defined range, clear of the SDKs' -32000/-32001 and of the gateway's
//! -32040): [`QUOTA_EXHAUSTED`] -32050, [`QUOTA_UNAVAILABLE`] -32051, [`METERING_UNAVAILABLE`]
//! -32052 and [`REQUEST_REPLAYED`] -32053. rmcp answers them with HTTP 200, like every JSON-RPC
//! error of a tool call.

use chrono::{DateTime, Utc};
use mcp_edge_contract::limits::MAX_JSONRPC_ID_BYTES;
use rmcp::ErrorData;
use rmcp::model::ErrorCode;

use super::day::{next_reset, rfc3339_seconds, seconds_until};
use super::plan::Tier;

/// The usage outbox cannot record the call; billable calls are refused (fail closed).
pub use mcp_edge_contract::codes::METERING_UNAVAILABLE;
/// The tenant's daily quota of billable calls is used up; the call did not run.
pub use mcp_edge_contract::codes::QUOTA_EXHAUSTED;
/// The daily quota could not be checked (usage store down) and the tier fails closed; the call did
/// not run.
pub use mcp_edge_contract::codes::QUOTA_UNAVAILABLE;
/// The call was already received; it does not run twice.
pub use mcp_edge_contract::codes::REQUEST_REPLAYED;

/// The message of [`QUOTA_EXHAUSTED`].
pub fn exhausted_message(tier: Tier, limit: u64, now: DateTime<Utc>) -> String {
    let reset = next_reset(now);
    format!(
        "Daily quota exhausted: the {tier} plan allows {limit} billable tool calls per UTC day and \
all {limit} have been used today. The quota resets at {at} (in {secs} seconds). Upgrade the plan for \
a higher limit, or wait until then; tools that are not billable, such as get_usage, still work.",
        tier = tier.name(),
        at = rfc3339_seconds(reset),
        secs = seconds_until(now, reset),
    )
}

pub fn exhausted(tier: Tier, limit: u64, used: u64, now: DateTime<Utc>) -> ErrorData {
    let reset = next_reset(now);
    ErrorData::new(
        ErrorCode(QUOTA_EXHAUSTED),
        exhausted_message(tier, limit, now),
        Some(serde_json::json!({
            "tier": tier.name(),
            "limit": limit,
            "used": used,
            "resetsAt": rfc3339_seconds(reset),
            "retryAfterSeconds": seconds_until(now, reset),
        })),
    )
}

pub fn unavailable(tier: Tier) -> ErrorData {
    ErrorData::new(
        ErrorCode(QUOTA_UNAVAILABLE),
        format!(
            "The daily quota of the {} plan cannot be checked right now because the usage store is \
unavailable, so this billable call was not run. Try again in a minute; tools that are not billable \
still work.",
            tier.name()
        ),
        Some(serde_json::json!({ "tier": tier.name(), "reason": "usage store unavailable" })),
    )
}

/// The outbox cannot record usage (disk full or unwritable).
pub fn metering_unavailable(tier: Tier) -> ErrorData {
    ErrorData::new(
        ErrorCode(METERING_UNAVAILABLE),
        "This billable call was not run because the server cannot record usage right now (its \
usage log is full or unwritable). It recovers on its own; try again in a minute. Tools that are not \
billable still work.",
        Some(serde_json::json!({ "tier": tier.name(), "reason": "usage outbox unwritable" })),
    )
}

/// The call `call_id` of request `request_id` was received before.
pub fn replayed(request_id: &str, call_id: &str) -> ErrorData {
    ErrorData::new(
        ErrorCode(REQUEST_REPLAYED),
        format!(
            "This request was already received (request id {request_id}, id {call_id}) and is not \
run twice. Send a new request to call the tool again."
        ),
        Some(serde_json::json!({ "requestId": request_id, "id": call_id })),
    )
}

/// A JSON-RPC id longer than the contract allows; the call did not run.
pub fn id_too_long() -> ErrorData {
    ErrorData::invalid_request(
        format!(
            "Invalid Request: a request id must be an integer or a string of at most {MAX_JSONRPC_ID_BYTES} \
bytes. Send the call again with a shorter id."
        ),
        None,
    )
}

/// `get_usage` could not read the counter.
pub fn usage_unavailable(tier: Tier) -> ErrorData {
    ErrorData::new(
        ErrorCode(QUOTA_UNAVAILABLE),
        "Today's usage cannot be read right now because the usage store is unavailable. Try again \
in a minute.",
        Some(serde_json::json!({ "tier": tier.name(), "reason": "usage store unavailable" })),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exhausted_names_limit_tier_and_reset() {
        let now = DateTime::parse_from_rfc3339("2026-11-27T23:00:00Z")
            .expect("time")
            .with_timezone(&Utc);
        let e = exhausted(Tier::Free, 100, 100, now);
        assert_eq!(e.code.0, -32050);
        assert_eq!(
            e.message,
            "Daily quota exhausted: the free plan allows 100 billable tool calls per UTC day and all \
100 have been used today. The quota resets at 2026-11-28T00:00:00Z (in 3600 seconds). Upgrade the \
plan for a higher limit, or wait until then; tools that are not billable, such as get_usage, still \
work."
        );
        let data = e.data.expect("data");
        assert_eq!(data["resetsAt"], "2026-11-28T00:00:00Z");
        assert_eq!(data["retryAfterSeconds"], 3600);
        assert_eq!(unavailable(Tier::Free).code.0, -32051);
        assert!(unavailable(Tier::Free).message.contains("free plan"));
    }
}
