// The official MCP TypeScript SDK client doing the whole OAuth flow against Envoy, driven by
// tests/oauth_flow.rs.
//
// Starts with no token. The SDK gets the 401, follows `resource_metadata` to the protected
// resource metadata, discovers the authorization server, registers dynamically and starts the
// authorization code flow with PKCE; `redirectToAuthorization` below plays the browser: it follows
// the redirects with plain HTTP requests (adding `login_hint`; the server's test mode logs that user
// in and consents) until the redirect to our redirect URI, whose code is handed to `finishAuth`.
// Then it lists the tools and calls each tool of MCP_CALLS (JSON [{name, arguments}]); a 403
// `insufficient_scope` makes the SDK re-authorize with the wider scope (step-up) and the call is
// retried once.
//
// env: MCP_URL, MCP_LOGIN (the user), MCP_CALLS. Prints one JSON object:
// {tools, results: [{name, result | error, reauthorized}], tokens: [claims…], refreshed: claims of
// a token from the refresh_token grant, http: [events…]}
// or {error, …} on failure.
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError, refreshAuthorization } from '@modelcontextprotocol/sdk/client/auth.js';

const url = new URL(process.env.MCP_URL);
const login = process.env.MCP_LOGIN ?? 'alice';
const calls = JSON.parse(process.env.MCP_CALLS ?? '[]');
// Nothing listens here: the redirect to it is intercepted.
const redirectUrl = 'http://127.0.0.1:1/oauth/callback';

const http = []; // every request the SDK made: method, url, status (and the challenge, if any)
const tokens = []; // the claims of every access token the client received
let pendingCode;

const claimsOf = (jwt) => JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString());

// Plays the user agent of the authorization request: follows redirects, keeps cookies.
async function authorizeInBrowser(authorizationUrl) {
  const jar = new Map();
  let next = new URL(authorizationUrl);
  next.searchParams.set('login_hint', login);
  for (let hop = 0; hop < 12; hop++) {
    if (next.href.startsWith(redirectUrl)) {
      const error = next.searchParams.get('error');
      if (error) throw new Error(`authorization failed: ${error}: ${next.searchParams.get('error_description')}`);
      return next.searchParams.get('code');
    }
    const cookie = [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
    const res = await fetch(next, { redirect: 'manual', headers: cookie ? { cookie } : {} });
    http.push({ method: 'GET', url: `${next.origin}${next.pathname}`, status: res.status, browser: true });
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(';');
      const i = pair.indexOf('=');
      jar.set(pair.slice(0, i), pair.slice(i + 1));
    }
    const location = res.headers.get('location');
    if (res.status < 300 || res.status >= 400 || !location) {
      throw new Error(`authorization stopped at ${next.pathname} with ${res.status}: ${(await res.text()).slice(0, 300)}`);
    }
    next = new URL(location, next);
  }
  throw new Error('too many redirects in the authorization flow');
}

const store = {};
const authProvider = {
  get redirectUrl() { return redirectUrl; },
  get clientMetadata() {
    return {
      client_name: 'mcp-edge e2e (TypeScript SDK)',
      redirect_uris: [redirectUrl],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    };
  },
  clientInformation: () => store.client,
  saveClientInformation: (info) => { store.client = info; },
  tokens: () => store.tokens,
  saveTokens: (t) => {
    store.tokens = t;
    tokens.push({ ...claimsOf(t.access_token), has_refresh_token: Boolean(t.refresh_token) });
  },
  saveCodeVerifier: (v) => { store.verifier = v; },
  codeVerifier: () => store.verifier,
  discoveryState: () => store.discovery,
  saveDiscoveryState: (s) => { store.discovery = s; },
  redirectToAuthorization: async (authorizationUrl) => {
    const u = new URL(authorizationUrl);
    // The step-up challenge names only the missing scope: ask for it and what we already hold.
    if (store.tokens?.scope) {
      const wanted = new Set([...store.tokens.scope.split(' '), ...(u.searchParams.get('scope') ?? '').split(' ')]);
      u.searchParams.set('scope', [...wanted].filter(Boolean).join(' '));
      authorizationUrl = u;
    }
    http.push({ event: 'authorize', scope: u.searchParams.get('scope'), resource: u.searchParams.get('resource'), code_challenge_method: u.searchParams.get('code_challenge_method') });
    pendingCode = await authorizeInBrowser(authorizationUrl);
  },
};

// Logs what the SDK sends and receives (a fetch wrapper the transport uses for everything).
const recordingFetch = async (input, init) => {
  const res = await fetch(input, init);
  const target = new URL(typeof input === 'string' || input instanceof URL ? input : input.url);
  const entry = { method: init?.method ?? 'GET', url: `${target.origin}${target.pathname}`, status: res.status };
  const challenge = res.headers.get('www-authenticate');
  if (challenge) entry.challenge = challenge;
  http.push(entry);
  // SDK 1.32.2 answers a step-up 403 by refreshing first when it holds a refresh token; a refresh
  // cannot widen the scope, so the retried call gets the same 403 and the SDK gives up ("Server
  // returned 403 after trying upscoping"). Dropping the refresh token makes it re-authorize.
  if (res.status === 403 && challenge?.includes('insufficient_scope') && store.tokens?.refresh_token) {
    store.refreshToken = store.tokens.refresh_token;
    store.tokens = { ...store.tokens, refresh_token: undefined };
    http.push({ event: 'dropped_refresh_token_for_step_up' });
  }
  return res;
};

function newTransport() {
  return new StreamableHTTPClientTransport(url, { authProvider, fetch: recordingFetch });
}

// Runs `op`; if it needed an authorization (401 or step-up 403), finishes it and runs `op` again.
async function withAuthorization(transport, op) {
  try {
    return { value: await op(), reauthorized: false };
  } catch (err) {
    if (!(err instanceof UnauthorizedError) || !pendingCode) throw err;
    const code = pendingCode;
    pendingCode = undefined;
    await transport.finishAuth(code);
    return { value: await op(), reauthorized: true };
  }
}

const client = new Client({ name: 'mcp-edge-e2e-oauth', version: '0.1.0' });
try {
  let transport = newTransport();
  try {
    await client.connect(transport);
  } catch (err) {
    if (!(err instanceof UnauthorizedError) || !pendingCode) throw err;
    const code = pendingCode;
    pendingCode = undefined;
    await transport.finishAuth(code);
    transport = newTransport();
    await client.connect(transport);
  }
  const { tools } = await client.listTools();
  const results = [];
  for (const call of calls) {
    try {
      const { value, reauthorized } = await withAuthorization(
        transport, () => client.callTool({ name: call.name, arguments: call.arguments ?? {} }),
      );
      results.push({ name: call.name, result: value, reauthorized });
    } catch (err) {
      results.push({ name: call.name, error: String(err?.message ?? err), code: err?.code ?? null });
    }
  }
  // The refresh token grant, as the SDK does it when an access token expires.
  let refreshed = null;
  const refreshToken = store.tokens?.refresh_token ?? store.refreshToken;
  if (refreshToken) {
    const t = await refreshAuthorization(store.discovery.authorizationServerUrl, {
      metadata: store.discovery.authorizationServerMetadata,
      clientInformation: store.client,
      refreshToken,
      resource: new URL(store.discovery.resourceMetadata.resource),
    });
    refreshed = { ...claimsOf(t.access_token), has_refresh_token: Boolean(t.refresh_token) };
  }
  console.log(JSON.stringify({ tools, results, tokens, refreshed, http }));
  await client.close();
} catch (err) {
  console.log(JSON.stringify({ error: String(err?.message ?? err), code: err?.code ?? null, tokens, http }));
  process.exitCode = 1;
}
