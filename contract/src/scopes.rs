//! The OAuth scope names the edge and the backend agree on.

/// Read-only tools.
pub const READ: &str = "mcp:read";
/// Tools that write.
pub const WRITE: &str = "mcp:write";
/// Destructive tools.
pub const ADMIN: &str = "mcp:admin";
