"""What both Python SDK servers of the e2e tests share (py_server.py, stateless;
py_stateful_server.py, stateful): their tools, the identity check in front of them (docs/verify/
verify_identity_asgi.py), how they listen.

Tools, as tests/node/ts_tools.mjs: `echo` (returns its text), `shout` (upper-cases it), `purge`
(says it purged) and `hidden` (not in the edge's tool_scopes: never listed nor forwarded); plus
`whoami`, which answers with the tenant and user the edge vouched for. Their MCP annotations say
what they do: `echo` and `whoami` read only, `shout` writes without destroying, `purge` is
destructive, `hidden` says nothing (tests/tool_scopes.rs generates the edge's policy from them)."""

import argparse
import socket
import sys
from pathlib import Path
from typing import Annotated

import uvicorn
from mcp.server.mcpserver import Context, MCPServer
from mcp.types import ToolAnnotations
from mcp.server.transport_security import TransportSecuritySettings
from pydantic import Field

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "docs" / "verify"))
from verify_identity_asgi import VerifyIdentity  # noqa: E402  (the verifier lives in docs/verify)

Text = Annotated[str, Field(max_length=200)]
READ_ONLY = ToolAnnotations(read_only_hint=True)

# The SDK refuses (421) a `Host` it does not know, and the edge forwards the client's: name the
# public host the edge is reached by (here a made-up one the tests send) beside the loopback ones.
PUBLIC_HOST = "mcp.example.com"
TRANSPORT_SECURITY = TransportSecuritySettings(
    enable_dns_rebinding_protection=True,
    allowed_hosts=["127.0.0.1:*", "localhost:*", PUBLIC_HOST],
    allowed_origins=["http://127.0.0.1:*", "http://localhost:*", f"https://{PUBLIC_HOST}"],
)


def register_tools(mcp: MCPServer) -> MCPServer:
    """Registers the shared tools on `mcp`."""

    @mcp.tool(description="Echo the text.", annotations=READ_ONLY)
    def echo(text: Text) -> str:
        return text

    @mcp.tool(
        description="Upper-case the text.",
        annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False),
    )
    def shout(text: Text) -> str:
        return text.upper()

    @mcp.tool(description="Pretend to purge.", annotations=ToolAnnotations(destructive_hint=True))
    def purge() -> str:
        return "purged"

    @mcp.tool(description="Never reachable through the edge.")
    def hidden() -> str:
        return "hidden"

    @mcp.tool(description="Who the edge says is calling.", annotations=READ_ONLY)
    def whoami(ctx: Context) -> str:
        identity = ctx.request_context.request.scope["mcp_edge_identity"]
        return f"tenant={identity['tenant_id']} user={identity['user_id']}"

    return mcp


def serve(mcp: MCPServer, **app_options) -> None:
    """Serves `mcp`'s Streamable HTTP app at /mcp behind the identity check, on `--listen HOST:PORT`;
    prints "listening on HOST:PORT" once the port is bound."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--listen", default="127.0.0.1:0")
    host, port = parser.parse_args().listen.rsplit(":", 1)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, int(port)))
    sdk_app = mcp.streamable_http_app(transport_security=TRANSPORT_SECURITY, **app_options)
    app = VerifyIdentity(sdk_app)
    bound_host, bound_port = sock.getsockname()
    print(f"listening on {bound_host}:{bound_port}", flush=True)
    uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on")).run(sockets=[sock])
