// The official MCP TypeScript SDK client, driven by the end-to-end tests.
//
// Connects to MCP_URL over Streamable HTTP with `Authorization: Bearer $MCP_TOKEN`, lists the
// tools, calls each tool in MCP_CALLS (a JSON array of {name, arguments}) in order, and prints one
// JSON object on stdout: {serverInfo, tools, results} or, on failure, {error, code}.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const url = new URL(process.env.MCP_URL);
const headers = process.env.MCP_TOKEN ? { Authorization: `Bearer ${process.env.MCP_TOKEN}` } : {};
const calls = JSON.parse(process.env.MCP_CALLS ?? "[]");

const client = new Client({ name: "mcp-edge-e2e", version: "0.1.0" });
const transport = new StreamableHTTPClientTransport(url, { requestInit: { headers } });
try {
  await client.connect(transport);
  const { tools } = await client.listTools();
  const results = [];
  for (const call of calls) {
    results.push(await client.callTool({ name: call.name, arguments: call.arguments ?? {} }));
  }
  console.log(JSON.stringify({ serverInfo: client.getServerVersion(), tools, results }));
  await client.close();
} catch (err) {
  console.log(JSON.stringify({ error: String(err?.message ?? err), code: err?.code ?? null }));
  process.exitCode = 1;
}
