// The OAuth 2.1 / OpenID Connect authorization server of the local stack, docker-compose and the
// end-to-end tests: oidc-provider with resource indicators (RFC 8707) issuing RS256 JWT access
// tokens whose `aud` is the MCP resource and which carry mcp-edge's claims (tenant_id, scope,
// data_scope, rate_limit_tier, allowed_tools), authorization code + PKCE (S256, always required),
// open dynamic client registration, Client ID Metadata Documents, refresh tokens and
// client_credentials for the service clients of directory.json.
// Resources named with --opaque-resource get opaque access tokens instead of JWTs (for resource
// servers that introspect, RFC 7662); token introspection is open to the resource servers of
// directory.json (client_secret_basic), and answers with the same claims a JWT would carry.
//
//   node authz/server.mjs [--port 9100] [--host 127.0.0.1] [--issuer URL] [--resource URI]...
//                         [--opaque-resource URI]...
//                         [--key-file .local/authz/keys.json] [--directory authz/directory.json]
//                         [--tls-cert cert.pem --tls-key key.pem]
//   node authz/server.mjs --rotate [--key-file …]   adds a new signing key in front and exits
//
// Every option also comes from the environment: AUTHZ_PORT, AUTHZ_HOST, AUTHZ_ISSUER,
// AUTHZ_RESOURCES and AUTHZ_OPAQUE_RESOURCES (comma separated), AUTHZ_KEY_FILE, AUTHZ_DIRECTORY,
// AUTHZ_TLS_CERT and AUTHZ_TLS_KEY. With a certificate and key (PEM) it serves https only, as every
// real identity provider does (the issuer URL should then be https too).
// AUTHZ_TEST_MODE=1 (tests only, off by default) logs in the user named by `login_hint` and
// consents without a page, and serves POST /test/rotate-keys (a new key in front, the old one
// stays published) and GET /test/introspections (how many introspection requests it received).
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import Provider, { errors } from 'oidc-provider';
// The provider's own in-memory store, made once: a test-mode key rotation builds a new Provider,
// and clients, grants and sessions must survive that (by default each Provider gets a new store).
import { createMemoryAdapter } from 'oidc-provider/lib/adapters/memory_adapter.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const OIDC_SCOPES = ['openid', 'offline_access'];

const { values: args } = parseArgs({
  options: {
    port: { type: 'string', default: process.env.AUTHZ_PORT ?? '9100' },
    host: { type: 'string', default: process.env.AUTHZ_HOST ?? '127.0.0.1' },
    issuer: { type: 'string', default: process.env.AUTHZ_ISSUER },
    resource: { type: 'string', multiple: true },
    'opaque-resource': { type: 'string', multiple: true },
    'key-file': {
      type: 'string',
      default: process.env.AUTHZ_KEY_FILE ?? path.join(here, '..', '.local', 'authz', 'keys.json'),
    },
    directory: {
      type: 'string',
      default: process.env.AUTHZ_DIRECTORY ?? path.join(here, 'directory.json'),
    },
    rotate: { type: 'boolean', default: false },
    'tls-cert': { type: 'string', default: process.env.AUTHZ_TLS_CERT },
    'tls-key': { type: 'string', default: process.env.AUTHZ_TLS_KEY },
  },
});
const testMode = process.env.AUTHZ_TEST_MODE === '1';
const port = Number.parseInt(args.port, 10);
const issuer = args.issuer ?? `http://127.0.0.1:${port}`;
const resources = args.resource
  ?? (process.env.AUTHZ_RESOURCES ?? 'http://127.0.0.1:8080/mcp').split(',').map((r) => r.trim()).filter(Boolean);
// Resources whose access tokens are opaque (introspected), not JWTs; also accepted as resources.
const opaqueResources = args['opaque-resource']
  ?? (process.env.AUTHZ_OPAQUE_RESOURCES ?? '').split(',').map((r) => r.trim()).filter(Boolean);
resources.push(...opaqueResources.filter((r) => !resources.includes(r)));
const keyFile = args['key-file'];

// --- signing keys -------------------------------------------------------------------------------

function newKey() {
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const kid = `rs256-${new Date().toISOString().replace(/[^0-9]/g, '').slice(0, 14)}-${crypto.randomBytes(4).toString('hex')}`;
  return { ...privateKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' };
}

function saveKeys(keys) {
  fs.mkdirSync(path.dirname(keyFile), { recursive: true });
  const tmp = `${keyFile}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify({ keys }, null, 2), { mode: 0o600 });
  fs.renameSync(tmp, keyFile);
}

function loadKeys() {
  if (!fs.existsSync(keyFile)) saveKeys([newKey()]);
  const { keys } = JSON.parse(fs.readFileSync(keyFile, 'utf8'));
  if (!Array.isArray(keys) || keys.length === 0) throw new Error(`${keyFile} holds no keys`);
  return keys;
}

// A new key in front (oidc-provider signs with the first RS256 key); older ones stay published so
// the tokens they signed keep verifying until they expire. The last three are kept.
function rotateKeys() {
  const keys = [newKey(), ...loadKeys()].slice(0, 3);
  saveKeys(keys);
  return keys;
}

if (args.rotate) {
  const keys = rotateKeys();
  console.log(`signing key is now ${keys[0].kid} (published: ${keys.map((k) => k.kid).join(', ')})`);
  process.exit(0);
}

// --- the directory ------------------------------------------------------------------------------

const directory = JSON.parse(fs.readFileSync(args.directory, 'utf8'));
// The MCP scopes granted: the tool catalogue's, written into the directory by `cargo xtask sync-config`.
const MCP_SCOPES = directory.scopes_supported;
if (!Array.isArray(MCP_SCOPES) || MCP_SCOPES.length === 0 || !MCP_SCOPES.every((s) => typeof s === 'string')) {
  throw new Error(`${args.directory}: scopes_supported must be a non-empty list of scopes`);
}
for (const [name, who] of [...Object.entries(directory.users ?? {}), ...Object.entries(directory.service_clients ?? {})]) {
  if (!directory.tenants?.[who.tenant]) throw new Error(`${args.directory}: ${name} names unknown tenant ${who.tenant}`);
}
// Resource servers (the edge) that may introspect tokens: confidential clients that get no tokens.
const resourceServers = directory.resource_servers ?? {};

// Our claims for a principal of the directory (a user or a service client).
function tenantClaims(who) {
  const claims = {
    tenant_id: who.tenant,
    rate_limit_tier: directory.tenants[who.tenant].rate_limit_tier,
  };
  if (who.data_scope !== undefined) claims.data_scope = who.data_scope;
  if (who.allowed_tools !== undefined) claims.allowed_tools = who.allowed_tools;
  return claims;
}

// --- the provider -------------------------------------------------------------------------------

const cookieKeys = [crypto.randomBytes(32).toString('base64url')];

const sharedAdapter = createMemoryAdapter();

function makeProvider(keys) {
  const serviceClients = Object.entries(directory.service_clients ?? {}).map(([id, c]) => ({
    client_id: id,
    client_secret: c.client_secret,
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    scope: c.scopes.join(' '),
  }));
  const introspectors = Object.entries(resourceServers).map(([id, c]) => ({
    client_id: id,
    client_secret: c.client_secret,
    grant_types: [],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: 'client_secret_basic',
  }));
  const provider = new Provider(issuer, {
    adapter: sharedAdapter,
    clients: [...serviceClients, ...introspectors],
    jwks: { keys },
    cookies: { keys: cookieKeys },
    // Listed here so clients may register and request them; what they grant is access to the
    // resources (getResourceServerInfo below).
    scopes: [...OIDC_SCOPES, ...MCP_SCOPES],
    responseTypes: ['code'],
    claims: { openid: ['sub'] },
    async findAccount(_ctx, sub) {
      if (!directory.users?.[sub]) return undefined;
      return { accountId: sub, async claims() { return { sub }; } };
    },
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    // A registered `scope` caps what a client may ever request (RFC 7591), and MCP clients
    // register with the scope of the first 401 challenge (SDK 1.32.2 does), so a later step-up
    // could never widen it. Only the service clients keep one; a user's scopes are capped per
    // user at consent (finish() below). The hook is oidc-provider's metadata validator, which
    // sees the whole metadata of every client.
    extraClientMetadata: {
      properties: ['mcp_edge_tenant'],
      validator(_ctx, _key, _value, metadata) {
        if (!directory.service_clients?.[metadata.client_id]) delete metadata.scope;
      },
    },
    pkce: { required: () => true },
    // Browser-based public clients (MCP Inspector's web UI) may call the token endpoint from
    // the origin of one of their redirect URIs; nobody else cross-origin.
    clientBasedCORS(_ctx, origin, client) {
      return client.clientAuthMethod === 'none'
        && client.redirectUris.some((uri) => URL.parse(uri)?.origin === origin);
    },
    features: {
      devInteractions: { enabled: false },
      registration: { enabled: true },
      clientCredentials: { enabled: true },
      revocation: { enabled: true },
      // Only the resource servers of the directory may ask what a token is.
      introspection: {
        enabled: true,
        allowedPolicy: async (_ctx, client) => Object.hasOwn(resourceServers, client.clientId),
      },
      clientIdMetadataDocument: { enabled: true, ack: 'draft-02' },
      resourceIndicators: {
        enabled: true,
        defaultResource: async (_ctx, _client, oneOf) => oneOf ?? resources[0],
        useGrantedResource: async () => true,
        async getResourceServerInfo(_ctx, resourceIndicator, client) {
          if (!resources.includes(resourceIndicator)) throw new errors.InvalidTarget();
          // A service client gets at most its directory scopes; users are checked at consent.
          const service = directory.service_clients?.[client.clientId];
          if (opaqueResources.includes(resourceIndicator)) {
            return {
              scope: (service?.scopes ?? MCP_SCOPES).join(' '),
              audience: resourceIndicator,
              accessTokenTTL: 3600,
              accessTokenFormat: 'opaque',
            };
          }
          return {
            scope: (service?.scopes ?? MCP_SCOPES).join(' '),
            audience: resourceIndicator,
            accessTokenTTL: 3600,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'RS256' } },
          };
        },
      },
    },
    async issueRefreshToken(_ctx, client) {
      return client.grantTypeAllowed('refresh_token');
    },
    async extraTokenClaims(_ctx, token) {
      if (token.accountId) {
        const user = directory.users?.[token.accountId];
        return user ? tenantClaims(user) : undefined;
      }
      const service = directory.service_clients?.[token.clientId];
      if (!service) throw new errors.UnauthorizedClient('this client is not a service client of any tenant');
      return tenantClaims(service);
    },
    ttl: {
      AccessToken: 3600,
      ClientCredentials: 3600,
      AuthorizationCode: 60,
      Interaction: 600,
      Session: 86400,
      Grant: 14 * 86400,
      RefreshToken: 14 * 86400,
    },
  });
  // RFC 8414 metadata: the same document as OpenID discovery.
  provider.use(async (ctx, next) => {
    if (ctx.path === '/.well-known/oauth-authorization-server') ctx.path = '/.well-known/openid-configuration';
    await next();
  });
  provider.on('server_error', (_ctx, err) => console.error('server_error', err));
  return provider;
}

let provider = makeProvider(loadKeys());
let handle = provider.callback();

// --- login and consent --------------------------------------------------------------------------

const escape = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

// Logs `accountId` in and grants what the request asked for, if the directory allows it.
async function finish(req, res, details, accountId) {
  const deny = (description) => provider.interactionFinished(
    req, res, { error: 'access_denied', error_description: description }, { mergeWithLastSubmission: false },
  );
  const user = directory.users?.[accountId];
  if (!user) return deny(`unknown user ${accountId}`);
  const { params } = details;
  const requested = String(params.scope ?? '').split(' ').filter(Boolean);
  const wanted = requested.filter((s) => MCP_SCOPES.includes(s));
  const refused = wanted.filter((s) => !user.scopes.includes(s));
  if (refused.length) return deny(`${accountId} may not be granted ${refused.join(' ')}`);
  const resource = [params.resource ?? resources[0]].flat()[0];

  let grant = details.grantId ? await provider.Grant.find(details.grantId) : undefined;
  if (!grant || grant.accountId !== accountId) {
    grant = new provider.Grant({ accountId, clientId: params.client_id });
  }
  // The MCP scopes are in the provider's `scopes` (so clients may register them), which makes
  // oidc-provider want them granted as OpenID scopes too; the token's `scope` comes from the
  // resource scope.
  const oidc = requested.filter((s) => OIDC_SCOPES.includes(s) || wanted.includes(s));
  if (oidc.length) grant.addOIDCScope(oidc.join(' '));
  if (wanted.length) grant.addResourceScope(resource, wanted.join(' '));
  const grantId = await grant.save();
  return provider.interactionFinished(
    req, res, { login: { accountId }, consent: { grantId } }, { mergeWithLastSubmission: false },
  );
}

async function readForm(req) {
  let body = '';
  for await (const chunk of req) {
    body += chunk;
    if (body.length > 10_000) throw new Error('form too large');
  }
  return new URLSearchParams(body);
}

async function interaction(req, res) {
  const details = await provider.interactionDetails(req, res);
  const hint = details.params.login_hint;
  if (req.method === 'POST') {
    const form = await readForm(req);
    if (form.get('decision') !== 'allow') {
      return provider.interactionFinished(req, res, { error: 'access_denied', error_description: 'the user declined' }, { mergeWithLastSubmission: false });
    }
    return finish(req, res, details, form.get('login') ?? '');
  }
  if (testMode && typeof hint === 'string') return finish(req, res, details, hint);
  // A demo page: pick a user of the directory (no password) and allow the requested scopes.
  const users = Object.entries(directory.users ?? {}).map(([id, u]) => `<option value="${escape(id)}"${id === hint ? ' selected' : ''}>${escape(id)} (${escape(u.tenant)}: ${escape(u.scopes.join(' '))})</option>`);
  res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
  res.end(`<!doctype html><meta charset="utf-8"><title>mcp-edge demo login</title>
<h1>mcp-edge demo login</h1>
<p>Client <b>${escape(details.params.client_id)}</b> asks for <b>${escape(details.params.scope ?? '')}</b> on <b>${escape([details.params.resource ?? resources[0]].flat().join(' '))}</b>.</p>
<form method="post"><label>User <select name="login">${users.join('')}</select></label>
<button name="decision" value="allow">Allow</button> <button name="decision" value="deny">Deny</button></form>`);
  return undefined;
}

// --- HTTP ---------------------------------------------------------------------------------------

let introspections = 0;

if (Boolean(args['tls-cert']) !== Boolean(args['tls-key'])) {
  console.error('--tls-cert and --tls-key go together');
  process.exit(2);
}
const tls = args['tls-cert']
  ? { cert: fs.readFileSync(args['tls-cert']), key: fs.readFileSync(args['tls-key']) }
  : null;

const server = (tls ? https.createServer.bind(https, tls) : http.createServer)(async (req, res) => {
  try {
    // Endpoint URLs in the metadata follow the issuer, whatever Host the request came with.
    req.headers.host = new URL(issuer).host;
    const url = new URL(req.url, issuer);
    if (url.pathname === '/token/introspection' && req.method === 'POST') introspections += 1;
    if (testMode && url.pathname === '/test/introspections' && req.method === 'GET') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ count: introspections }));
      return;
    }
    if (url.pathname.startsWith('/interaction/')) {
      await interaction(req, res);
      return;
    }
    if (testMode && url.pathname === '/test/rotate-keys' && req.method === 'POST') {
      // Same storage (the memory adapter is per process), new keystore: sessions, clients and
      // grants survive the swap.
      const keys = rotateKeys();
      provider = makeProvider(keys);
      handle = provider.callback();
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ kid: keys[0].kid, published: keys.map((k) => k.kid) }));
      return;
    }
    handle(req, res);
  } catch (err) {
    console.error('request failed', err);
    if (!res.headersSent) res.writeHead(err.statusCode ?? 500, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: err.error ?? 'server_error', error_description: err.error_description ?? String(err.message ?? err) }));
  }
});

server.listen(port, args.host, () => {
  console.log(`authz listening on ${tls ? 'https' : 'http'}://${args.host}:${server.address().port} issuer=${issuer} resources=${resources.join(',')} opaque=${opaqueResources.join(',')}${testMode ? ' TEST MODE (auto login+consent, /test/rotate-keys)' : ''}`);
});
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => server.close(() => process.exit(0)));
