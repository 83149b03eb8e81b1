"""The official MCP Python SDK's Streamable HTTP server (`MCPServer`, SDK 2.3.0) in stateless mode
with JSON responses: a third-party MCP server put behind the edge by tests/python_server.rs.

Usage: MCP_EDGE_GATEWAY_SECRET=... .venv/bin/python py_server.py --listen 127.0.0.1:0. Prints
"listening on HOST:PORT" once ready. Every request must carry the edge's identity assertion
(x-mcp-identity, docs/verify/verify_identity_asgi.py); anything else gets 401 and -32040.
Tools: edge_tools.py."""

from edge_tools import register_tools, serve
from mcp.server.mcpserver import MCPServer

if __name__ == "__main__":
    mcp = register_tools(MCPServer("py-sdk-stateless", version="1.0.0"))
    serve(mcp, stateless_http=True, json_response=True)
