"""The official MCP Python SDK's Streamable HTTP server (`MCPServer`, SDK 2.3.0) in stateful mode
(session ids, SSE responses, a GET stream per session): a third-party MCP server put behind the edge
with `stateful_upstream: true` by tests/python_server.rs.

Usage: MCP_EDGE_GATEWAY_SECRET=... .venv/bin/python py_stateful_server.py --listen 127.0.0.1:0.
Prints "listening on HOST:PORT" once ready. Every request must carry the edge's identity assertion
(x-mcp-identity, docs/verify/verify_identity_asgi.py); anything else gets 401 and -32040. Tools:
edge_tools.py, and `announce`, which sends `notifications/tools/list_changed` on the session's GET
stream (not the stream of the call) and then answers.

Resumability: the SDK's `EventStore` interface, implemented by one in-memory store for every
session (as the MCP conformance suite's "everything" server keeps one global store), so a `GET`
with `Last-Event-ID` replays a stream, even another session's: what the edge must bind to the
caller."""

from edge_tools import register_tools, serve
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.streamable_http import EventCallback, EventMessage, EventStore

mcp = register_tools(MCPServer("py-sdk-stateful", version="1.0.0"))


@mcp.tool(description="Notify the session's GET stream.")
async def announce(ctx: Context) -> str:
    await ctx.session.send_tool_list_changed()
    return "announced"


class SharedEventStore(EventStore):
    """Every stream's events in order, ids `<stream id>_<n>`."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, object]] = []

    async def store_event(self, stream_id, message):
        event_id = f"{stream_id}_{len(self.events)}"
        self.events.append((event_id, stream_id, message))
        return event_id

    async def replay_events_after(self, last_event_id, send_callback: EventCallback):
        at = next((i for i, (e, _, _) in enumerate(self.events) if e == last_event_id), None)
        if at is None:
            return None
        stream_id = self.events[at][1]
        for event_id, sid, message in self.events[at + 1 :]:
            if sid == stream_id and message is not None:
                await send_callback(EventMessage(message, event_id))
        return stream_id


if __name__ == "__main__":
    serve(mcp, stateless_http=False, event_store=SharedEventStore())
