//! Sizes both sides enforce, so the edge never forwards what the backend would refuse.

/// The body cap when none is configured (bytes), at the edge and at the backend.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
/// The largest body cap either side accepts in its configuration (bytes).
pub const MAX_BODY_BYTES_CEILING: usize = 16 * 1024 * 1024;

/// Claim sizes: a token whose claim is longer is invalid; a header longer is malformed.
pub const MAX_TENANT_ID_BYTES: usize = 128;
pub const MAX_SUB_BYTES: usize = 256;
pub const MAX_DATA_SCOPE_BYTES: usize = 256;
pub const MAX_SCOPE_BYTES: usize = 1024;
pub const MAX_ALLOWED_TOOLS: usize = 256;

/// The most messages one JSON-RPC batch (MCP 2025-03-26) may hold. The backend refuses a larger
/// batch whole (JSON-RPC -32600) before running any of it: each element is a tool call, and the
/// body cap alone would let a small body carry hundreds of thousands of them.
pub const MAX_BATCH_ELEMENTS: usize = 100;

/// The longest string JSON-RPC `id` either side accepts (bytes); integer ids are any i64/u64.
/// An id is echoed in every answer, keys the backend's exactly-once bookkeeping (held in memory
/// and in the store for the replay window) and identifies the call's usage event: unbounded, a
/// body-sized id would be copied into each of them.
pub const MAX_JSONRPC_ID_BYTES: usize = 128;

/// The most bytes of results one JSON-RPC batch's answer carries, by default. A batch of 100 small
/// requests can ask for far more than it sends (100 full pages of large tasks are hundreds of MB);
/// an element whose answer does not fit in what is left gets a short JSON-RPC error instead, and
/// the elements after it are not run.
pub const DEFAULT_MAX_BATCH_ANSWER_BYTES: usize = 16 * 1024 * 1024;
