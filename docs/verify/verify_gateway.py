"""Verifies the mcp-edge gateway signature on a request that reached an MCP server behind the edge,
and returns the identity the edge vouches for. Copy this file; it needs only the standard library.
The contract it implements is contract/src/signature.rs and contract/src/identity.rs
(docs/trusting-the-edge.md); docs/signature-vectors.json holds the test vectors it must pass."""

import base64
import hashlib
import hmac
import re
import time
from typing import Callable, Mapping, Optional, Union

MAX_CLOCK_SKEW_SECS = 30
MIN_SECRET_BYTES = 32
CANONICAL_VERSION = "mcp-edge-gateway-v2"
TIERS = ("free", "pro", "enterprise")
_CONTROL = re.compile("[\u0000-\u001f\u007f-\u009f]")
_HEX2 = re.compile("[0-9A-Fa-f]{2}")


class GatewayError(Exception):
    """A refusal: `error` is a stable name (see the vectors), `field` the header or line at fault."""

    def __init__(self, error: str, field: Optional[str] = None):
        super().__init__(f"{error}: {field}" if field else error)
        self.error = error
        self.field = field


def _is_plain(b: int) -> bool:
    return (0x21 <= b <= 0x7E and b != 0x25) or b == 0x20


def encode_value(value: str) -> str:
    """A value in its wire form: %XX for %, control and non-ASCII bytes, and spaces at the ends."""
    data = value.encode("utf-8")
    out = []
    for i, b in enumerate(data):
        end_space = b == 0x20 and (i == 0 or i == len(data) - 1)
        out.append(chr(b) if _is_plain(b) and not end_space else f"%{b:02X}")
    return "".join(out)


def decode_value(wire: str) -> Optional[str]:
    """The value of a wire form, or None unless it is exactly what encode_value makes of it."""
    data = bytearray()
    i = 0
    while i < len(wire):
        c = ord(wire[i])
        if c == 0x25:
            hex2 = wire[i + 1 : i + 3]
            if not _HEX2.fullmatch(hex2):
                return None
            data.append(int(hex2, 16))
            i += 3
        elif _is_plain(c):
            data.append(c)
            i += 1
        else:
            return None
    try:
        value = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return value if encode_value(value) == wire else None


def verify_gateway(
    secret: Union[str, bytes],
    headers: Union[Mapping[str, str], Callable[[str], Optional[str]]],
    method: str,
    path: str,
    protocol_version: str,
    body: bytes,
    now: Optional[int] = None,
) -> dict:
    """Verifies the trusted headers of a request and returns who is calling.

    `headers` maps lower-case names to the header's one value (or is a function doing so);
    `path` is the path and query as received; `protocol_version` the MCP-Protocol-Version header
    ("" when absent); `body` the raw bytes; `now` unix seconds. Raises GatewayError when the
    request must be refused (answer 401)."""
    lookup = headers if callable(headers) else headers.get
    now = int(time.time()) if now is None else now

    def header(name: str) -> str:
        value = lookup(name)
        if value is None:
            raise GatewayError("missing_header", name)
        return value

    def bounded(name: str, max_bytes: int) -> str:
        value = decode_value(header(name))
        if value is None or len(value.encode("utf-8")) > max_bytes:
            raise GatewayError("malformed_header", name)
        return value

    tenant_id = bounded("x-mcp-tenant-id", 128)
    if tenant_id == "":
        raise GatewayError("malformed_header", "x-mcp-tenant-id")
    tier = header("x-mcp-tier")
    scopes_value = bounded("x-mcp-scopes", 1024)
    scopes = scopes_value.split(" ") if scopes_value else []
    if any(s == "" or re.search("[\t\n\f\r ]", s) for s in scopes):
        raise GatewayError("malformed_header", "x-mcp-scopes")
    user_id = bounded("x-mcp-user-id", 256)
    data_scope = bounded("x-mcp-data-scope", 256)
    if tier not in TIERS:
        raise GatewayError("malformed_header", "x-mcp-tier")
    request_id = header("x-mcp-request-id")
    signed_time = header("x-mcp-gateway-time")
    if not re.fullmatch("[0-9]+", signed_time, flags=re.ASCII) or int(signed_time) >= 2**64:
        raise GatewayError("malformed_header", "x-mcp-gateway-time")
    signature = header("x-mcp-gateway-signature")

    if abs(int(signed_time) - now) > MAX_CLOCK_SKEW_SECS:
        raise GatewayError("stale")
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    if len(key) < MIN_SECRET_BYTES:
        raise GatewayError("secret_too_short")
    digest = base64.urlsafe_b64encode(hashlib.sha256(body).digest()).rstrip(b"=").decode()
    # The signed lines in order; identity values in their wire form, as received.
    lines = [
        ("method", method),
        ("path", path),
        ("protocol_version", protocol_version),
        ("x-mcp-tenant-id", lookup("x-mcp-tenant-id")),
        ("x-mcp-user-id", lookup("x-mcp-user-id")),
        ("x-mcp-scopes", lookup("x-mcp-scopes")),
        ("x-mcp-data-scope", lookup("x-mcp-data-scope")),
        ("x-mcp-tier", tier),
        ("request_id", request_id),
        ("body_digest", digest),
    ]
    for field, value in lines:
        if _CONTROL.search(value):
            raise GatewayError("control_character", field)
    canonical = "\n".join([CANONICAL_VERSION, *(v for _, v in lines[:-1]), signed_time, digest])
    mac = hmac.new(key, canonical.encode("utf-8"), hashlib.sha256).digest()
    expected = base64.urlsafe_b64encode(mac).rstrip(b"=")
    if not hmac.compare_digest(signature.encode("utf-8"), expected):
        raise GatewayError("bad_signature")

    return {
        "tenant_id": tenant_id,
        "user_id": user_id,
        "scopes": scopes,
        "data_scope": data_scope,
        "tier": tier,
        "request_id": request_id,
    }
