"""An ASGI middleware that lets only requests vouched for by the mcp-edge gateway reach the app it
wraps (e.g. the official MCP Python SDK's `MCPServer.streamable_http_app()`), and hands the app the
identity the edge vouched for as `scope["mcp_edge_identity"]` (the dict `verify_identity` returns).
Copy it beside verify_identity.py. docs/trusting-the-edge.md explains it; tests/python_server.rs
runs it behind the edge."""

import json
import os

from verify_identity import AUDIENCE, ISSUER, IdentityError, verify_identity


class VerifyIdentity:
    def __init__(self, app, secret=None, issuer=None, audience=None):
        env = os.environ.get
        self.app = app
        self.secret = secret or env("MCP_EDGE_GATEWAY_SECRET")
        self.issuer = issuer or env("MCP_EDGE_ASSERTION_ISSUER", ISSUER)
        self.audience = audience or env("MCP_EDGE_ASSERTION_AUDIENCE", AUDIENCE)
        if not self.secret:
            raise ValueError("no gateway secret (MCP_EDGE_GATEWAY_SECRET)")

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        # body_sha256 is over the exact bytes received: read them all before anything parses them.
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
        headers = {}
        for raw_name, raw_value in scope["headers"]:
            headers.setdefault(raw_name.decode("latin-1"), []).append(raw_value.decode("latin-1"))
        path = scope["raw_path"].decode("latin-1")
        if scope["query_string"]:
            path += "?" + scope["query_string"].decode("latin-1")
        try:
            if len(headers.get("x-mcp-identity", [])) > 1:
                raise IdentityError("repeated_header", "x-mcp-identity is repeated")
            one = {name: values[0] for name, values in headers.items()}
            identity = verify_identity(
                self.secret, one, scope["method"], path, body, self.issuer, self.audience
            )
        except IdentityError as e:
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
