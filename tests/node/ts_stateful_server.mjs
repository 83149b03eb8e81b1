// The official MCP TypeScript SDK's Streamable HTTP server in stateful mode (sessionIdGenerator
// set): a third-party MCP server (not ours) that keeps sessions, put behind the edge with
// `stateful_upstream: true` by the end-to-end tests (tests/stateful_server.rs).
//
// Usage: MCP_EDGE_GATEWAY_SECRET=... node ts_stateful_server.mjs --listen 127.0.0.1:0. Prints
// "listening on HOST:PORT" once ready. Every request must carry the edge's identity assertion
// (`x-mcp-identity`, verified by docs/verify/verify_identity.mjs; its `iss` and `aud` are
// MCP_EDGE_ASSERTION_ISSUER and MCP_EDGE_ASSERTION_AUDIENCE, by default the edge's defaults):
// anything else gets 401 and -32040, so a client that bypasses the edge is refused. Tools: `echo`, `shout`, `purge`, `hidden` (as ts_server.mjs) and
// `announce`, which sends `notifications/tools/list_changed` on the session's GET stream (not the
// stream of the call) and then answers. A `tools/list` whose `_meta` holds a `progressToken` and
// `"mcp-edge-test/hold": true` first sends a progress notification on its own SSE answer, then
// waits until the tool `release` is called in its session (or 30 s) before it answers: the tests
// see whether the edge passes the notification on while the answer is pending. `release` with
// `wait: true`
// answers only after the released list has been sent: a client that reuses the held list's
// JSON-RPC id for it gets the list on the release's stream (the transport maps a response to the
// stream of the last request with its id).
//
// Resumability: every session's transport keeps its events in ONE InMemoryEventStore (the SDK's
// own, ids aside, as the MCP conformance suite's "everything" server keeps one global store), so a `GET` with
// `Last-Event-ID` replays a stream, even another session's: what the edge must bind to the caller.
import { randomUUID } from "node:crypto";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { InMemoryEventStore } from "@modelcontextprotocol/sdk/examples/shared/inMemoryEventStore.js";
import { z } from "zod";
import { registerTools, reply, serve } from "./ts_tools.mjs";
import { AUDIENCE, ISSUER, IdentityError, verifyIdentity } from "../../docs/verify/verify_identity.mjs";

const secret = process.env.MCP_EDGE_GATEWAY_SECRET;
if (!secret) throw new Error("MCP_EDGE_GATEWAY_SECRET is not set");
const issuer = process.env.MCP_EDGE_ASSERTION_ISSUER || ISSUER;
const audience = process.env.MCP_EDGE_ASSERTION_AUDIENCE || AUDIENCE;

/** The SDK's store with ids that sort in the order the events were stored: its own ids end with
 * the time in ms and a random part, so two events of one millisecond may replay out of order (or
 * not at all after the first). */
class OrderedEventStore extends InMemoryEventStore {
  stored = 0;
  generateEventId(streamId) {
    this.stored += 1;
    return `${streamId}_${String(this.stored).padStart(12, "0")}`;
  }
}

/** Every session's events (see above). */
const eventStore = new OrderedEventStore();

function server() {
  const mcp = new McpServer({ name: "ts-sdk-stateful", version: "1.0.0" });
  /** This session's held tools/list answers, oldest first: `go` lets one answer, `sent` settles
   * once it is sent. */
  const held = [];
  registerTools(mcp);
  mcp.registerTool("announce", { description: "Notify the session's GET stream." }, () => {
    mcp.sendToolListChanged();
    return reply("announced");
  });
  mcp.registerTool(
    "release",
    {
      description: "Let the oldest held tools/list answer go (wait: answer once it is sent).",
      inputSchema: { wait: z.boolean().optional() },
    },
    async ({ wait }) => {
      const entry = held.shift();
      entry?.go();
      if (entry && wait) await entry.sent;
      return reply(entry ? "released" : "nothing held");
    },
  );
  // The SDK has no hook around its own tools/list handler: wrap the registered one.
  const list = mcp.server._requestHandlers.get("tools/list");
  mcp.server._requestHandlers.set("tools/list", async (request, extra) => {
    const meta = request.params?._meta;
    if (meta?.["mcp-edge-test/hold"] && meta.progressToken !== undefined) {
      await extra.sendNotification({
        method: "notifications/progress",
        params: { progressToken: meta.progressToken, progress: 0, message: "listing tools" },
      });
      let answered;
      const sent = new Promise((resolve) => (answered = resolve));
      await new Promise((go) => {
        held.push({ go, sent });
        setTimeout(go, 30_000);
      });
      try {
        return await list(request, extra);
      } finally {
        // The SDK sends the answer in the microtasks after this handler returns; a timer runs
        // only once they are done.
        setTimeout(answered, 0);
      }
    }
    return list(request, extra);
  });
  return mcp;
}

/** The session's transports, by the session id this server issued. */
const transports = new Map();

function jsonError(res, status, code, message) {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify({ jsonrpc: "2.0", id: null, error: { code, message } }));
}

serve(async (req, res) => {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  const body = Buffer.concat(chunks);
  const headers = Object.fromEntries(
    Object.entries(req.headersDistinct).map(([name, values]) => [name, values.length === 1 ? values[0] : values]),
  );
  let identity;
  try {
    if (Array.isArray(headers["x-mcp-identity"])) throw new IdentityError("repeated_header", "x-mcp-identity is repeated");
    identity = await verifyIdentity({ secret, headers, method: req.method, path: req.url, body, issuer, audience });
  } catch (e) {
    if (!(e instanceof IdentityError)) throw e;
    jsonError(res, 401, -32040, `not authenticated by the gateway (${e.message})`);
    return;
  }
  req.auth = { token: "", clientId: identity.user_id, scopes: identity.scopes, extra: identity };
  const parsed = body.length ? JSON.parse(body) : undefined;
  const sid = headers["mcp-session-id"];
  let transport = sid ? transports.get(sid) : undefined;
  if (!transport) {
    if (sid || req.method !== "POST") {
      jsonError(res, 404, -32001, "Session not found");
      return;
    }
    transport = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      eventStore,
      onsessioninitialized: (id) => transports.set(id, transport),
    });
    transport.onclose = () => {
      if (transport.sessionId) transports.delete(transport.sessionId);
    };
    await server().connect(transport);
  }
  await transport.handleRequest(req, res, parsed);
});
