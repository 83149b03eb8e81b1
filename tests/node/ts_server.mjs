// The official MCP TypeScript SDK's Streamable HTTP server in stateless mode: a third-party MCP
// server (not ours) put behind the edge by the end-to-end tests.
//
// Usage: node ts_server.mjs --listen 127.0.0.1:0. Prints "listening on HOST:PORT" once ready.
// Tools: `echo` (returns its text), `shout` (upper-cases it), `purge` (says it purged) and
// `hidden` (not in the edge's tool_scopes: the edge must never list nor forward it). It trusts
// the edge for authorization and does not check the gateway signature.
import http from "node:http";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { z } from "zod";

const listenArg = process.argv[process.argv.indexOf("--listen") + 1] ?? "127.0.0.1:0";
const [host, port] = listenArg.split(":");

function server() {
  const mcp = new McpServer({ name: "ts-sdk-stateless", version: "1.0.0" });
  const text = { text: z.string().max(200) };
  const reply = (s) => ({ content: [{ type: "text", text: s }] });
  mcp.registerTool("echo", { description: "Echo the text.", inputSchema: text }, ({ text }) => reply(text));
  mcp.registerTool("shout", { description: "Upper-case the text.", inputSchema: text }, ({ text }) =>
    reply(text.toUpperCase()),
  );
  mcp.registerTool("purge", { description: "Pretend to purge." }, () => reply("purged"));
  mcp.registerTool("hidden", { description: "Never reachable through the edge." }, () => reply("hidden"));
  return mcp;
}

// Stateless: a fresh server and transport per request, as the SDK's stateless example does.
const httpServer = http.createServer(async (req, res) => {
  if (new URL(req.url, "http://x").pathname !== "/mcp") {
    res.writeHead(404).end();
    return;
  }
  const mcp = server();
  const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
  res.on("close", () => {
    transport.close();
    mcp.close();
  });
  try {
    await mcp.connect(transport);
    await transport.handleRequest(req, res);
  } catch (err) {
    console.error("request failed:", err);
    if (!res.headersSent) res.writeHead(500).end();
  }
});
httpServer.listen(Number(port), host, () => {
  const a = httpServer.address();
  console.log(`listening on ${a.address}:${a.port}`);
});
