// Verifies the identity assertion the mcp-edge gateway puts on every request it lets through
// (`x-mcp-identity`, trust contract v3: a JWT signed HS256 with the gateway secret) and returns
// the identity the edge vouches for. Copy this file; it needs `jose` (`npm install jose`).
// docs/trusting-the-edge.md explains the contract; docs/assertion-vectors.json holds the test
// vectors it passes (xtask/tests/assertion_vectors.rs).
import { createHash } from "node:crypto";
import { errors, jwtVerify } from "jose";

export const ISSUER = "mcp-edge"; // the edge's `assertion` names by default
export const AUDIENCE = "mcp-edge-backend";
export const CLOCK_SKEW_SECS = 30;
const CLAIMS = ["iss", "aud", "iat", "exp", "jti", "sub", "tenant_id", "scope", "data_scope", "tier"];
const BINDING = ["htm", "htp", "mcp_pv", "body_sha256"];

/** A refusal (answer 401). `error`: invalid_token, mismatch (`claim` names the binding claim that
 * differs from the request), missing_header or contract_v2 (an edge older than v3). */
export class IdentityError extends Error {
  constructor(error, why, claim = null) {
    super(`${error}: ${why}`);
    this.error = error;
    this.claim = claim;
  }
}

/**
 * `headers`: lower-case names to one value each (node:http's `req.headers`); `path`: path and
 * query as received (`req.url`); `body`: the raw bytes; `now`: unix seconds (default: the clock).
 * Resolves to tenant_id, user_id, scopes, data_scope, tier and request_id (the `jti`: run each at
 * most once). Rejects with IdentityError.
 */
export async function verifyIdentity({ secret, headers, method, path, body, issuer = ISSUER, audience = AUDIENCE, now }) {
  const token = headers["x-mcp-identity"];
  if (token === undefined) {
    if (headers["x-mcp-gateway-signature"] !== undefined)
      throw new IdentityError("contract_v2", "x-mcp-gateway-signature is trust contract v2; this service verifies v3 (x-mcp-identity): upgrade the edge");
    throw new IdentityError("missing_header", "no x-mcp-identity");
  }
  let claims;
  try {
    ({ payload: claims } = await jwtVerify(token, new TextEncoder().encode(secret), {
      algorithms: ["HS256"], issuer, audience, clockTolerance: CLOCK_SKEW_SECS, maxTokenAge: 30,
      requiredClaims: [...CLAIMS, ...BINDING], currentDate: now === undefined ? undefined : new Date(now * 1000),
    }));
  } catch (e) {
    if (e instanceof errors.JOSEError) throw new IdentityError("invalid_token", e.message);
    throw e;
  }
  const digest = createHash("sha256").update(body).digest("base64url");
  const received = [method, path, headers["mcp-protocol-version"] ?? "", digest];
  BINDING.forEach((claim, i) => {
    if (claims[claim] !== received[i]) throw new IdentityError("mismatch", `claim ${claim} does not match the request`, claim);
  });
  return {
    tenant_id: claims.tenant_id,
    user_id: claims.sub,
    scopes: claims.scope === "" ? [] : claims.scope.split(" "),
    data_scope: claims.data_scope,
    tier: claims.tier,
    request_id: claims.jti,
  };
}
