// The MCP project's reference "everything" server (`@modelcontextprotocol/server-everything` from
// npm, its Streamable HTTP transport, unchanged): a third-party MCP server whose tools carry
// annotations, some listed only to clients that declare sampling, elicitation or roots. Stateful
// (sessions), answers POSTs as SSE streams. tests/tool_scopes.rs generates the edge's tool_scopes
// from it with `cargo xtask tool-scopes` and calls its tools through the edge.
//
// Usage: PORT=<port> node everything_server.mjs. The package listens on every interface at $PORT
// and logs "... listening on port <port>"; the test harness picks the port and waits for it
// (`Upstream::NodeOnPort`).
await import("@modelcontextprotocol/server-everything/dist/transports/streamableHttp.js");
