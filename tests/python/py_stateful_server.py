"""The official MCP Python SDK's Streamable HTTP server (`MCPServer`, SDK 2.3.0) in stateful mode
(session ids, SSE responses, a GET stream per session): a third-party MCP server put behind the edge
with `stateful_upstream: true` by tests/python_server.rs.

Usage: MCP_EDGE_GATEWAY_SECRET=... .venv/bin/python py_stateful_server.py --listen 127.0.0.1:0.
Prints "listening on HOST:PORT" once ready. Every request must carry the edge's gateway signature
(docs/verify/verify_gateway_asgi.py); anything else gets 401 and -32040. Tools: edge_tools.py, and
`announce`, which sends `notifications/tools/list_changed` on the session's GET stream (not the
stream of the call) and then answers."""

from edge_tools import register_tools, serve
from mcp.server.mcpserver import Context, MCPServer

mcp = register_tools(MCPServer("py-sdk-stateful", version="1.0.0"))


@mcp.tool(description="Notify the session's GET stream.")
async def announce(ctx: Context) -> str:
    await ctx.session.send_tool_list_changed()
    return "announced"


if __name__ == "__main__":
    serve(mcp, stateless_http=False)
