// The seed design, measured by scripts/bench.sh beside mcp-edge + backend: one Node process with
// express, jsonwebtoken and the MCP TypeScript SDK (Streamable HTTP, stateless: a new server and
// transport per request, as the SDK's stateless example does) that checks the bearer token (issuer,
// audience, exp, signature against the JWKS), the tenant, the tool's scope and `allowed_tools`
// itself, then serves list_projects, create_project and create_task from an in-memory store per
// tenant, with the backend's shapes (camelCase records, `prj_`/`tsk_` ids, millisecond RFC 3339
// times) so both sides answer the same bytes for the same data. scripts/bench.sh seeds both sides
// the same way, through these tools (20 projects), before every measured run. No token cache:
// jsonwebtoken verifies every request. For the benchmark only.
//
// Environment: BENCH_NODE_PORT, BENCH_JWKS_FILE, BENCH_ISSUER, BENCH_AUDIENCE.
import { createPublicKey, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";

import express from "express";
import jwt from "jsonwebtoken";
import { z } from "zod";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";

const port = Number(process.env.BENCH_NODE_PORT ?? 18083);
const issuer = process.env.BENCH_ISSUER;
const audience = process.env.BENCH_AUDIENCE;
const jwks = JSON.parse(readFileSync(process.env.BENCH_JWKS_FILE, "utf8"));
const keys = new Map(jwks.keys.map((jwk) => [jwk.kid, createPublicKey({ key: jwk, format: "jwk" })]));
// The scope each served tool needs (envoy.yaml's tool_scopes for it).
const toolScopes = { list_projects: "mcp:read", create_project: "mcp:write", create_task: "mcp:write" };

// tenant id -> { projects: [project], tasks: Map(project id -> [task]) }; oldest first.
const tenants = new Map();
function tenantStore(tenantId) {
  let store = tenants.get(tenantId);
  if (!store) {
    store = { projects: [], tasks: new Map() };
    tenants.set(tenantId, store);
  }
  return store;
}
const newId = (prefix) => `${prefix}_${randomBytes(16).toString("hex")}`;
const toolResult = (result) => ({ content: [{ type: "text", text: JSON.stringify(result) }], structuredContent: result });
const toolError = (message) => ({ content: [{ type: "text", text: message }], isError: true });

function rpcError(res, status, code, message, id = null) {
  res.status(status).json({ jsonrpc: "2.0", id, error: { code, message } });
}

/** The verified claims, or an error response sent. */
function authenticate(req, res) {
  const header = req.get("authorization") ?? "";
  const token = header.startsWith("Bearer ") ? header.slice(7) : null;
  const decoded = token && jwt.decode(token, { complete: true });
  const key = decoded && keys.get(decoded.header.kid);
  if (!key) {
    res.set("www-authenticate", 'Bearer error="invalid_token"');
    rpcError(res, 401, -32001, "a valid bearer token is required");
    return null;
  }
  try {
    const claims = jwt.verify(token, key, {
      algorithms: ["RS256", "ES256"],
      issuer,
      audience,
      clockTolerance: 30,
    });
    if (typeof claims.exp !== "number" || typeof claims.tenant_id !== "string" || !claims.tenant_id) {
      throw new Error("exp and tenant_id are required");
    }
    return claims;
  } catch (e) {
    res.set("www-authenticate", 'Bearer error="invalid_token"');
    rpcError(res, 401, -32001, `invalid token: ${e.message}`);
    return null;
  }
}

/** Whether the claims may send this JSON-RPC message; sends the refusal when not. */
function authorize(claims, message, res) {
  if (message?.method !== "tools/call") return true;
  const tool = message.params?.name;
  const scope = toolScopes[tool];
  const scopes = String(claims.scope ?? "").split(" ");
  const allowed = claims.allowed_tools;
  if (!scope || (Array.isArray(allowed) && !allowed.includes(tool))) {
    rpcError(res, 403, -32041, `the tool ${JSON.stringify(tool)} is not allowed`, message.id ?? null);
    return false;
  }
  if (!scopes.includes(scope)) {
    res.set("www-authenticate", `Bearer error="insufficient_scope", scope="${scope}"`);
    rpcError(res, 403, -32042, `the tool needs the scope ${scope}`, message.id ?? null);
    return false;
  }
  return true;
}

/** An MCP server for one request, serving the caller's tenant. */
function mcpServer(claims) {
  const store = tenantStore(claims.tenant_id);
  const projectShape = z.object({
    id: z.string(),
    name: z.string(),
    description: z.string().optional(),
    archived: z.boolean(),
    createdAt: z.string(),
    createdBy: z.string(),
  });
  const server = new McpServer({ name: "node-seed", version: "0.1.0" });
  server.registerTool(
    "list_projects",
    {
      description: "Projects of your organisation, oldest first.",
      inputSchema: {
        cursor: z.string().max(64).optional(),
        limit: z.number().int().min(1).max(100).optional(),
        include_archived: z.boolean().optional(),
      },
      outputSchema: { projects: z.array(projectShape) },
    },
    async ({ limit, include_archived: includeArchived }) => {
      const visible = store.projects.filter((p) => includeArchived || !p.archived);
      return toolResult({ projects: visible.slice(0, limit ?? 20) });
    },
  );
  server.registerTool(
    "create_project",
    {
      description: "Create a new project in your organisation.",
      inputSchema: { name: z.string().min(1).max(200), description: z.string().max(2000).optional() },
      outputSchema: { project: projectShape },
    },
    async ({ name, description }) => {
      const project = { id: newId("prj"), name: name.trim() };
      if (description) project.description = description;
      Object.assign(project, { archived: false, createdAt: new Date().toISOString(), createdBy: claims.sub });
      store.projects.push(project);
      store.tasks.set(project.id, []);
      return toolResult({ project });
    },
  );
  server.registerTool(
    "create_task",
    {
      description: "Add a task to a project (status todo).",
      inputSchema: {
        project_id: z.string().max(64),
        title: z.string().min(1).max(200),
        description: z.string().max(5000).optional(),
        assignee_email: z.string().email().max(254).optional(),
        priority: z.enum(["low", "medium", "high", "urgent"]).optional(),
        due_date: z.string().regex(/^[0-9]{4}-[0-9]{2}-[0-9]{2}$/).optional(),
      },
      outputSchema: { task: z.object({ id: z.string(), projectId: z.string(), title: z.string() }).passthrough() },
    },
    async (input) => {
      const project = store.projects.find((p) => p.id === input.project_id);
      if (!project || project.archived) return toolError(`no open project ${input.project_id}: list projects to find one`);
      const now = new Date().toISOString();
      const task = { id: newId("tsk"), projectId: project.id, title: input.title.trim() };
      if (input.description) task.description = input.description;
      Object.assign(task, { status: "todo", priority: input.priority ?? "medium" });
      if (input.assignee_email) task.assigneeEmail = input.assignee_email.toLowerCase();
      if (input.due_date) task.dueDate = input.due_date;
      Object.assign(task, { createdAt: now, updatedAt: now, createdBy: claims.sub });
      store.tasks.get(project.id).push(task);
      return toolResult({ task });
    },
  );
  return server;
}

const app = express();
app.use(express.json({ limit: "1mb" }));
app.post("/mcp", async (req, res) => {
  const claims = authenticate(req, res);
  if (!claims) return;
  const messages = Array.isArray(req.body) ? req.body : [req.body];
  if (!messages.every((m) => authorize(claims, m, res))) return;
  const server = mcpServer(claims);
  const transport = new StreamableHTTPServerTransport({
    sessionIdGenerator: undefined,
    enableJsonResponse: true,
  });
  res.on("close", () => {
    transport.close();
    server.close();
  });
  try {
    await server.connect(transport);
    await transport.handleRequest(req, res, req.body);
  } catch (e) {
    if (!res.headersSent) rpcError(res, 500, -32603, `internal error: ${e.message}`);
  }
});

app.listen(port, "127.0.0.1", () => console.log(`node-seed listening on 127.0.0.1:${port}`));
