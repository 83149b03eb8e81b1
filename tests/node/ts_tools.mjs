// What the TypeScript SDK servers of the e2e tests share (ts_server.mjs and paged_server.mjs,
// stateless; ts_stateful_server.mjs, stateful): how they listen, and their tools: `echo` (returns its text), `shout` (upper-cases it), `purge`
// (says it purged) and `hidden` (not in the edge's tool_scopes: never listed nor forwarded).
import http from "node:http";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { z } from "zod";

export const text = { text: z.string().max(200) };
export const reply = (s) => ({ content: [{ type: "text", text: s }] });

/** Registers the shared tools on an McpServer. */
export function registerTools(mcp) {
  mcp.registerTool("echo", { description: "Echo the text.", inputSchema: text }, ({ text }) => reply(text));
  mcp.registerTool("shout", { description: "Upper-case the text.", inputSchema: text }, ({ text }) =>
    reply(text.toUpperCase()),
  );
  mcp.registerTool("purge", { description: "Pretend to purge." }, () => reply("purged"));
  mcp.registerTool("hidden", { description: "Never reachable through the edge." }, () => reply("hidden"));
  return mcp;
}

/** Serves `handle(req, res)` on `--listen HOST:PORT`; prints "listening on HOST:PORT" once ready. */
export function serve(handle) {
  const listenArg = process.argv[process.argv.indexOf("--listen") + 1] ?? "127.0.0.1:0";
  const [host, port] = listenArg.split(":");
  const httpServer = http.createServer(async (req, res) => {
    if (new URL(req.url, "http://x").pathname !== "/mcp") {
      res.writeHead(404).end();
      return;
    }
    try {
      await handle(req, res);
    } catch (err) {
      console.error("request failed:", err);
      if (!res.headersSent) res.writeHead(500).end();
    }
  });
  httpServer.listen(Number(port), host, () => {
    const a = httpServer.address();
    console.log(`listening on ${a.address}:${a.port}`);
  });
}

/** Serves a fresh McpServer from `makeServer()` per request on a stateless transport, as the SDK's
 * stateless example does (see `serve` for the address). */
export function serveStateless(makeServer) {
  serve(async (req, res) => {
    const mcp = makeServer();
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
    res.on("close", () => {
      transport.close();
      mcp.close();
    });
    await mcp.connect(transport);
    await transport.handleRequest(req, res);
  });
}
