// The official MCP TypeScript SDK's Streamable HTTP server in stateless mode: a third-party MCP
// server (not ours) put behind the edge by the end-to-end tests.
//
// Usage: node ts_server.mjs --listen 127.0.0.1:0. Prints "listening on HOST:PORT" once ready.
// Tools: `echo` (returns its text), `shout` (upper-cases it), `purge` (says it purged) and
// `hidden` (not in the edge's tool_scopes: the edge must never list nor forward it). It trusts
// the edge for authorization and does not check the identity assertion (x-mcp-identity).
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { registerTools, serveStateless } from "./ts_tools.mjs";

// Stateless: a fresh server and transport per request, as the SDK's stateless example does.
serveStateless(() => registerTools(new McpServer({ name: "ts-sdk-stateless", version: "1.0.0" })));
