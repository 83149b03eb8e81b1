// Verifies the mcp-edge gateway signature on a request that reached an MCP server behind the edge,
// and returns the identity the edge vouches for. Copy this file; it needs only node:crypto.
// The contract it implements is contract/src/signature.rs and contract/src/identity.rs
// (docs/trusting-the-edge.md); docs/signature-vectors.json holds the test vectors it must pass.
import { createHash, createHmac, timingSafeEqual } from "node:crypto";

export const MAX_CLOCK_SKEW_SECS = 30;
export const MIN_SECRET_BYTES = 32;
const CANONICAL_VERSION = "mcp-edge-gateway-v2";
const TIERS = ["free", "pro", "enterprise"];
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

/** A refusal: `error` is a stable name (see the vectors), `field` the header or line at fault. */
export class GatewayError extends Error {
  constructor(error, field = null) {
    super(field ? `${error}: ${field}` : error);
    this.error = error;
    this.field = field;
  }
}

const isPlain = (b) => (b >= 0x21 && b <= 0x7e && b !== 0x25) || b === 0x20;

/** A value in its wire form: `%XX` for `%`, control and non-ASCII bytes, and spaces at the ends. */
export function encodeValue(value) {
  const bytes = Buffer.from(value, "utf8");
  let out = "";
  bytes.forEach((b, i) => {
    const endSpace = b === 0x20 && (i === 0 || i === bytes.length - 1);
    out += isPlain(b) && !endSpace ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, "0")}`;
  });
  return out;
}

/** The value of a wire form, or null unless it is exactly what encodeValue makes of it. */
export function decodeValue(wire) {
  const bytes = [];
  for (let i = 0; i < wire.length; i++) {
    const c = wire.charCodeAt(i);
    if (c === 0x25) {
      const hex = wire.slice(i + 1, i + 3);
      if (!/^[0-9A-Fa-f]{2}$/.test(hex)) return null;
      bytes.push(parseInt(hex, 16));
      i += 2;
    } else if (isPlain(c)) {
      bytes.push(c);
    } else {
      return null;
    }
  }
  let value;
  try {
    value = new TextDecoder("utf-8", { fatal: true }).decode(Uint8Array.from(bytes));
  } catch {
    return null;
  }
  return encodeValue(value) === wire ? value : null;
}

/**
 * Verifies the trusted headers of a request and returns who is calling.
 * `headers`: lower-case names to values, as node:http's `req.headers`; `method`, `path` (path and
 * query as received), `protocolVersion` (the MCP-Protocol-Version header, "" when absent), `body`
 * (the raw bytes, a Buffer or string); `secret` the gateway secret; `now` unix seconds.
 * Throws GatewayError when the request must be refused (answer 401).
 */
export function verifyGateway({ secret, headers, method, path, protocolVersion = "", body, now = Math.floor(Date.now() / 1000) }) {
  const header = (name) => {
    const value = headers[name];
    if (value === undefined) throw new GatewayError("missing_header", name);
    if (typeof value !== "string") throw new GatewayError("malformed_header", name); // repeated
    return value;
  };
  const bounded = (name, maxBytes) => {
    const value = decodeValue(header(name));
    if (value === null || Buffer.byteLength(value, "utf8") > maxBytes) throw new GatewayError("malformed_header", name);
    return value;
  };
  const tenantId = bounded("x-mcp-tenant-id", 128);
  if (tenantId === "") throw new GatewayError("malformed_header", "x-mcp-tenant-id");
  const tier = header("x-mcp-tier");
  const scopesValue = bounded("x-mcp-scopes", 1024);
  const scopes = scopesValue === "" ? [] : scopesValue.split(" ");
  if (scopes.some((s) => s === "" || /[\t\n\f\r ]/.test(s))) throw new GatewayError("malformed_header", "x-mcp-scopes");
  const userId = bounded("x-mcp-user-id", 256);
  const dataScope = bounded("x-mcp-data-scope", 256);
  if (!TIERS.includes(tier)) throw new GatewayError("malformed_header", "x-mcp-tier");
  const requestId = header("x-mcp-request-id");
  const time = header("x-mcp-gateway-time");
  if (!/^[0-9]{1,20}$/.test(time) || BigInt(time) > 2n ** 64n - 1n) throw new GatewayError("malformed_header", "x-mcp-gateway-time");
  const signature = header("x-mcp-gateway-signature");

  const skew = BigInt(time) - BigInt(now);
  if (skew > BigInt(MAX_CLOCK_SKEW_SECS) || skew < -BigInt(MAX_CLOCK_SKEW_SECS)) throw new GatewayError("stale");
  const key = Buffer.from(secret, "utf8");
  if (key.length < MIN_SECRET_BYTES) throw new GatewayError("secret_too_short");
  const digest = createHash("sha256").update(body).digest("base64url");
  // The signed lines in order; identity values in their wire form, as received.
  const lines = [
    ["method", method],
    ["path", path],
    ["protocol_version", protocolVersion],
    ["x-mcp-tenant-id", headers["x-mcp-tenant-id"]],
    ["x-mcp-user-id", headers["x-mcp-user-id"]],
    ["x-mcp-scopes", headers["x-mcp-scopes"]],
    ["x-mcp-data-scope", headers["x-mcp-data-scope"]],
    ["x-mcp-tier", tier],
    ["request_id", requestId],
    ["body_digest", digest],
  ];
  const bad = lines.find(([, v]) => CONTROL.test(v));
  if (bad) throw new GatewayError("control_character", bad[0]);
  const canonical = [CANONICAL_VERSION, ...lines.slice(0, -1).map(([, v]) => v), time, digest].join("\n");
  const expected = Buffer.from(createHmac("sha256", key).update(canonical, "utf8").digest("base64url"));
  const given = Buffer.from(signature);
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw new GatewayError("bad_signature");

  return { tenant_id: tenantId, user_id: userId, scopes, data_scope: dataScope, tier, request_id: requestId };
}
