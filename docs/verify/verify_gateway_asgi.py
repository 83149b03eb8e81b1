"""An ASGI middleware that lets only requests signed by the mcp-edge gateway reach the app it wraps
(e.g. the official MCP Python SDK's `MCPServer.streamable_http_app()`), and hands the app the
identity the edge vouched for as `scope["mcp_edge_identity"]` (the dict `verify_gateway` returns).
Copy it beside verify_gateway.py; standard library only. docs/trusting-the-edge.md explains it;
tests/python_server.rs runs it behind the edge."""

import json
import os

from verify_gateway import GatewayError, verify_gateway


class VerifyGateway:
    def __init__(self, app, secret=None):
        self.app = app
        self.secret = secret if secret is not None else os.environ["MCP_EDGE_GATEWAY_SECRET"]

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        # The digest is over the exact bytes received: read them all before anything parses them.
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
        headers, repeated = {}, None
        for raw_name, raw_value in scope["headers"]:
            name = raw_name.decode("latin-1")
            if name.startswith("x-mcp-") and name in headers:
                repeated = name
            headers[name] = raw_value.decode("latin-1")
        path = scope["raw_path"].decode("latin-1")
        if scope["query_string"]:
            path += "?" + scope["query_string"].decode("latin-1")
        try:
            if repeated:
                raise GatewayError("repeated_header", repeated)
            version = headers.get("mcp-protocol-version", "")
            identity = verify_gateway(self.secret, headers, scope["method"], path, version, body)
        except GatewayError as e:
            error = {"code": -32040, "message": f"not authenticated by the gateway ({e})"}
            body = json.dumps({"jsonrpc": "2.0", "id": None, "error": error}).encode()
            headers = [(b"content-type", b"application/json")]
            await send({"type": "http.response.start", "status": 401, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        delivered = False

        async def replay():
            # The body once, then whatever the client sends next (a disconnect).
            nonlocal delivered
            if delivered:
                return await receive()
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(dict(scope, mcp_edge_identity=identity), replay, send)
