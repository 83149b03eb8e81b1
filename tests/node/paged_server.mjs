// The official MCP TypeScript SDK's Streamable HTTP server in stateless mode with ts_server.mjs's
// tools (ts_tools.mjs), answering `tools/list` one tool per page: each page but the last has a
// `nextCursor` (the index of the next tool), as the MCP specification's pagination allows. The SDK
// lists every tool in one page; the tests (tests/tool_scopes.rs) need a server that does not.
//
// Usage: node paged_server.mjs --listen 127.0.0.1:0. Prints "listening on HOST:PORT" once ready.
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { ErrorCode, McpError } from "@modelcontextprotocol/sdk/types.js";
import { registerTools, serveStateless } from "./ts_tools.mjs";

serveStateless(() => {
  const mcp = registerTools(new McpServer({ name: "ts-sdk-paged", version: "1.0.0" }));
  // The SDK has no paging hook: wrap the tools/list handler it registered.
  const list = mcp.server._requestHandlers.get("tools/list");
  mcp.server._requestHandlers.set("tools/list", async (request, extra) => {
    const { tools } = await list(request, extra);
    const cursor = request.params?.cursor;
    const start = cursor === undefined ? 0 : Number(cursor);
    if (!Number.isInteger(start) || start < 0 || start >= tools.length) {
      throw new McpError(ErrorCode.InvalidParams, `unknown cursor ${JSON.stringify(cursor)}`);
    }
    const next = start + 1;
    return { tools: tools.slice(start, next), ...(next < tools.length ? { nextCursor: String(next) } : {}) };
  });
  return mcp;
});
