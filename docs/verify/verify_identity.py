"""Verifies the identity assertion the mcp-edge gateway puts on every request it lets through
(`x-mcp-identity`, trust contract v3: a JWT signed HS256 with the gateway secret) and returns the
identity the edge vouches for. Copy this file; it needs PyJWT (`pip install PyJWT`).
docs/trusting-the-edge.md explains the contract; docs/assertion-vectors.json holds the test
vectors it passes (xtask/tests/assertion_vectors.rs)."""

import base64
import hashlib

import jwt

ISSUER, AUDIENCE = "mcp-edge", "mcp-edge-backend"  # the edge's `assertion` names by default
CLOCK_SKEW_SECS = 30
CLAIMS = ["iss", "aud", "iat", "exp", "jti", "sub", "tenant_id", "scope", "data_scope", "tier"]
BINDING = ["htm", "htp", "mcp_pv", "body_sha256"]


class IdentityError(Exception):
    """A refusal (answer 401). `error`: invalid_token, mismatch (`claim` names the binding claim
    that differs from the request), missing_header or contract_v2 (an edge older than v3)."""

    def __init__(self, error, why, claim=None):
        super().__init__(f"{error}: {why}")
        self.error, self.claim = error, claim


def verify_identity(secret, headers, method, path, body, issuer=ISSUER, audience=AUDIENCE):
    """`headers`: lower-case names to one value each; `path`: path and query as received; `body`:
    the raw bytes. Returns tenant_id, user_id, scopes, data_scope, tier and request_id (the `jti`:
    run each at most once). Raises IdentityError."""
    token = headers.get("x-mcp-identity")
    if token is None:
        if "x-mcp-gateway-signature" in headers:
            raise IdentityError("contract_v2", "x-mcp-gateway-signature is trust contract v2; "
                                "this service verifies v3 (x-mcp-identity): upgrade the edge")
        raise IdentityError("missing_header", "no x-mcp-identity")
    try:
        claims = jwt.decode(token, secret, algorithms=["HS256"], issuer=issuer, audience=audience,
                            leeway=CLOCK_SKEW_SECS, options={"require": CLAIMS + BINDING})
    except jwt.InvalidTokenError as e:
        raise IdentityError("invalid_token", str(e)) from e
    digest = base64.urlsafe_b64encode(hashlib.sha256(body).digest()).rstrip(b"=").decode()
    received = [method, path, headers.get("mcp-protocol-version", ""), digest]
    for claim, value in zip(BINDING, received):
        if claims[claim] != value:
            raise IdentityError("mismatch", f"claim {claim} does not match the request", claim)
    return {
        "tenant_id": claims["tenant_id"],
        "user_id": claims["sub"],
        "scopes": claims["scope"].split(),
        "data_scope": claims["data_scope"],
        "tier": claims["tier"],
        "request_id": claims["jti"],
    }
