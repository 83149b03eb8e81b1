//! JSON-RPC error codes a client can get from the edge or the backend, in one place.
//!
//! Our own codes lie in the implementation-defined range and avoid the ones SDKs use (the
//! TypeScript SDK uses -32000 and -32001). docs/errors.md explains each to people.

/// JSON-RPC: the body is not JSON.
pub const PARSE_ERROR: i32 = -32700;
/// JSON-RPC: not a valid request object (also a body the backend will not buffer).
pub const INVALID_REQUEST: i32 = -32600;
/// `Mcp-Method` / `Mcp-Name` disagree with the body (MCP 2026-07-28).
pub const HEADER_MISMATCH: i32 = -32020;
/// MCP: an `MCP-Protocol-Version` the server does not implement; `error.data` lists the
/// supported ones (`UnsupportedProtocolVersionError`, MCP 2026-07-28).
pub const UNSUPPORTED_PROTOCOL_VERSION: i32 = -32022;
/// No usable token (edge), or no valid gateway signature (backend).
pub const UNAUTHORIZED: i32 = -32040;
/// The token may not call this tool or method.
pub const FORBIDDEN: i32 = -32041;
/// The token lacks a scope the call needs (step-up).
pub const INSUFFICIENT_SCOPE: i32 = -32042;
/// The tenant is over its rate.
pub const RATE_LIMITED: i32 = -32043;
/// `Origin` present and not allowed.
pub const ORIGIN_REFUSED: i32 = -32044;
/// Body too large, not identity-encoded or not JSON.
pub const PAYLOAD_REJECTED: i32 = -32045;
/// The edge does not serve this request (path, HTTP method, internal failure).
pub const NOT_SERVED: i32 = -32046;
/// The edge cannot decide now (no keys, bad configuration).
pub const UNAVAILABLE: i32 = -32047;
/// The tenant's daily quota is used up.
pub const QUOTA_EXHAUSTED: i32 = -32050;
/// The usage store is down and the plan does not allow calls without it.
pub const QUOTA_UNAVAILABLE: i32 = -32051;
/// The usage outbox cannot record the call (disk full or unwritable): billable calls are refused.
pub const METERING_UNAVAILABLE: i32 = -32052;
/// This request (gateway request id and JSON-RPC id) was already received; it does not run twice.
pub const REQUEST_REPLAYED: i32 = -32053;
/// The backend is at capacity and shed the request (HTTP 503, `Retry-After`).
pub const OVERLOADED: i32 = -32054;
/// A storage cap (projects per tenant, tasks per project) is reached; nothing was created.
pub const LIMIT_REACHED: i32 = -32055;
/// The project storage did not answer within its per-step deadline.
pub const STORAGE_DEADLINE: i32 = -32056;
/// `Mcp-Session-Id` unknown to the edge: bare, tampered with, or bound to another tenant or user
/// (HTTP 404, as MCP answers an unknown session: the client starts a new one with `initialize`).
pub const SESSION_NOT_FOUND: i32 = -32057;
/// A batch element's answer did not fit in the batch's answer limit (`data.ran` says whether the
/// call ran); the call is to be sent again on its own or with a smaller page.
pub const BATCH_ANSWER_FULL: i32 = -32058;
