// Drives the MCP Inspector's web UI in Debian's headless Chromium (playwright-core, never a
// browser of Playwright's own): connect to the edge's /mcp over Streamable HTTP, go through the
// OAuth flow on the authorization server's demo login page, list the tools, call one, and take a
// screenshot at each step. Then, from the same page, the edge's CORS answers as a browser-based
// MCP client meets them. Used by tests/browser_client.rs; prints one JSON object (with `error`
// when a step failed, and the page's text at that moment).
//
// Environment: INSPECTOR_URL (with its session token), MCP_URL, AUTHZ_URL, LOGIN (a demo user),
// CALL_TOOL (a tool without required arguments), EXPECT_TEXT (in the call's result),
// SERVICE_TOKEN (a bearer token for the direct CORS requests), OTHER_ORIGIN_URL (a page of an
// origin the edge does not allow), SCREENSHOTS (a directory); CHROMIUM overrides /usr/bin/chromium.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const inspectorUrl = env('INSPECTOR_URL');
const mcpUrl = env('MCP_URL');
const authzOrigin = new URL(env('AUTHZ_URL')).origin;
const login = env('LOGIN');
const callTool = env('CALL_TOOL');
const expectText = env('EXPECT_TEXT');
const serviceToken = env('SERVICE_TOKEN');
const otherOriginUrl = env('OTHER_ORIGIN_URL');
const shots = env('SCREENSHOTS');
const inspectorOrigin = new URL(inspectorUrl).origin;

// Generous bounds for a busy 2-core machine; a step that passes one fails the test.
const STEP_MS = 60_000;

// The flags that work on this closed network: without the background-networking ones Chromium
// keeps trying services it cannot reach.
const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

const out = { step: 'launch' };
const profile = mkdtempSync(join(tmpdir(), 'mcp-edge-chromium-'));
let context;
let page;

async function shot(name) {
  await page.screenshot({ path: join(shots, name) });
}

try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: CHROMIUM_ARGS,
    viewport: { width: 1280, height: 800 },
  });
  page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(STEP_MS);

  // The authorization request the browser is sent to (by the Inspector, after the edge's 401).
  page.on('request', (request) => {
    const url = new URL(request.url());
    if (url.origin === authzOrigin && url.pathname === '/auth' && !out.authorize) {
      out.authorize = Object.fromEntries(url.searchParams);
    }
  });

  out.step = 'open the Inspector';
  await page.goto(inspectorUrl);
  const toggle = page.getByRole('switch', { name: /Connect or disconnect/ });
  await toggle.waitFor();
  await shot('1-inspector.png');

  out.step = 'connect: the OAuth flow leads to the demo login page';
  await toggle.click({ force: true });
  await page.waitForURL((url) => url.origin === authzOrigin && url.pathname.startsWith('/interaction/'));
  await page.locator('select[name=login]').selectOption(login);
  out.login_page = await page.locator('body').innerText();
  await shot('2-login.png');

  out.step = 'allow: back to the Inspector, connected';
  await page.locator('button[value=allow]').click();
  await page.waitForURL((url) => url.origin === inspectorOrigin);
  await page.getByText('Connected', { exact: true }).first().waitFor();
  await shot('3-connected.png');

  out.step = 'the Tools view lists what the token may call';
  await page.locator('header').getByText('Tools', { exact: true }).click();
  const heading = page.getByText(/^Tools \(\d+\)$/);
  await heading.waitFor();
  const count = Number((await heading.innerText()).match(/\d+/)[0]);
  // The tool list: buttons named by a tool name alone (the UI's other buttons have labels).
  out.tools = await page.$$eval('button', (els) => els
    .filter((e) => !e.getAttribute('aria-label') && /^[a-z][a-z0-9_]*$/.test((e.innerText ?? '').trim()))
    .map((e) => e.innerText.trim()));
  if (out.tools.length !== count) throw new Error(`the heading says ${count} tools, the list has ${out.tools}`);
  await shot('4-tools.png');

  out.step = `call ${callTool}`;
  await page.locator('button').filter({ hasText: new RegExp(`^\\s*${callTool}\\s*$`) }).click();
  const execute = page.getByRole('button', { name: 'Execute Tool' });
  await execute.click();
  await page.getByRole('button', { name: 'Close results' }).waitFor();
  await page.waitForFunction((text) => document.body.innerText.includes(text), expectText);
  await shot('5-result.png');
  // The results panel's text: between its heading and the monitoring sidebar.
  const text = await page.locator('body').innerText();
  const start = text.indexOf('\nResults\n');
  out.result_text = text.slice(start, text.indexOf('\nProtocol\n', start));

  out.step = 'CORS: fetch from the Inspector\'s origin, then from another';
  out.cors = {};
  const sent = [];
  page.on('request', (request) => {
    if (request.url() === mcpUrl) sent.push(request);
  });
  const post = (token) => page.evaluate(async ({ url, token }) => {
    const headers = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
    if (token) headers.authorization = `Bearer ${token}`;
    try {
      const r = await fetch(url, {
        method: 'POST',
        headers,
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list', params: {} }),
      });
      return {
        status: r.status,
        ratelimit_policy: r.headers.get('ratelimit-policy'),
        www_authenticate: r.headers.get('www-authenticate'),
        body: await r.text(),
      };
    } catch (err) {
      return { blocked: true, message: String(err) };
    }
  }, { url: mcpUrl, token });
  out.cors.allowed = await post(serviceToken);
  out.cors.unauthenticated = await post(null);
  const first = sent[0];
  if (!first) throw new Error('the browser sent no request to the edge');
  out.cors.origin_sent = (await first.allHeaders()).origin ?? null;
  await page.goto(otherOriginUrl);
  out.cors.other_origin = await post(serviceToken);
} catch (err) {
  out.error = String(err?.stack ?? err);
  if (page) {
    out.page_url = page.url();
    out.page_text = await page.locator('body').innerText().catch(() => null);
    await shot('failure.png').catch(() => {});
  }
} finally {
  await context?.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
}
console.log(JSON.stringify(out));
