// The desktop window's way in: it loads the page from the API's own address (as a
// browser does) and is told `window.__CLAWDOCK__ = {url, token}` for that origin, so
// no token in the address. The API here is a small scripted one, so the test controls
// timing the real server cannot: a log that keeps growing (scrolling rules, copy) and
// an event stream that drops. The page's files are the real `clawdock serve`'s,
// passed through with their headers (its Content-Security-Policy included).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startServer, launchBrowser, cleanup, sleep, pageErrors } from './lib/harness.mjs';

const TOKEN = 'window-test-token';
const AGENT = {
  id: '00000000-0000-4000-8000-000000000001', name: 'streamer', status: 'running', port: 26999,
  activity: null, ready: true, gatewayUrl: 'ws://127.0.0.1:26999', createdAt: '2026-11-28T12:00:00Z',
};
const STATUS = { available: true, machineInitialized: true, machineRunning: true, needsSetup: false, state: 'ready', mode: 'native', podmanVersion: '4.3.1' };

/**
 * A scripted API: serves the real server's page and files (`pages`), records
 * requests, streams logs, lets the test end /events.
 */
function mockApi(pages) {
  const seen = [];
  const eventStreams = new Set();
  let snapshotAgent = AGENT;
  let meta = null;
  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url, 'http://x');
    seen.push({ method: req.method, path: url.pathname, search: url.search, origin: req.headers.origin, auth: req.headers.authorization });
    const cors = {};
    if (url.pathname === '/' || url.pathname.startsWith('/ui/')) {
      const upstream = await fetch(pages.url + url.pathname);
      const headers = {};
      for (const name of ['content-type', 'content-security-policy', 'cache-control', 'x-content-type-options']) {
        const v = upstream.headers.get(name);
        if (v) headers[name] = v;
      }
      res.writeHead(upstream.status, headers);
      return res.end(Buffer.from(await upstream.arrayBuffer()));
    }
    if (req.headers.authorization !== `Bearer ${TOKEN}`) {
      res.writeHead(401, { ...cors, 'Content-Type': 'application/json' });
      return res.end(JSON.stringify({ error: 'Missing or wrong API token.' }));
    }
    const sse = () => res.writeHead(200, { ...cors, 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' });
    const send = (data) => res.write(`data: ${JSON.stringify(data)}\n\n`);
    if (url.pathname === '/events') {
      sse();
      if (!meta) meta = await pages.meta();
      send({ type: 'snapshot', status: STATUS, agents: [snapshotAgent], meta });
      eventStreams.add(res);
      req.on('close', () => eventStreams.delete(res));
      return undefined;
    }
    if (url.pathname === `/agents/${AGENT.id}/logs`) {
      sse();
      const container = url.searchParams.get('source') === 'container';
      const prefix = container ? 'container says' : '[12:00:00] line';
      for (let i = 1; i <= 200; i += 1) send(`${prefix} ${i}`);
      let n = 200;
      const timer = setInterval(() => { n += 1; send(`${prefix} ${n}`); }, 100);
      req.on('close', () => clearInterval(timer));
      return undefined;
    }
    res.writeHead(404, { ...cors, 'Content-Type': 'application/json' });
    return res.end(JSON.stringify({ error: 'Not found.' }));
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({
    url: `http://127.0.0.1:${server.address().port}`,
    seen,
    /** Ends every open /events stream; the next snapshot carries `agent`. */
    dropEvents(agent) {
      snapshotAgent = agent;
      for (const res of eventStreams) res.end();
    },
    close: () => new Promise((r) => { server.closeAllConnections(); server.close(r); }),
  })));
}

let api;
let server;
let browser;

before(async () => {
  [server, browser] = await Promise.all([
    startServer({ label: 'window', portBase: 26400 }),
    launchBrowser(),
  ]);
  api = await mockApi({
    url: server.url,
    meta: async () => (await fetch(`${server.url}/meta`, { headers: { Authorization: `Bearer ${server.token}` } })).json(),
  });
});

after(async () => {
  await cleanup();
  await api?.close();
});

const logMetrics = (page) => page.locator('#panel .log').evaluate((el) => ({
  top: el.scrollTop,
  gap: el.scrollHeight - el.scrollTop - el.clientHeight,
  lines: el.childElementCount,
}));

/**
 * A page as the desktop window opens one: what its boot script does
 * (src-tauri/src/desktop/mod.rs), the API's address and token for the API's own
 * origin only.
 */
async function windowPage() {
  const page = await browser.context.newPage();
  page.errors = [];
  page.on('pageerror', (e) => page.errors.push(e));
  await page.addInitScript(({ url, token }) => {
    if (location.origin === url) window.__CLAWDOCK__ = { url, token };
  }, { url: api.url, token: TOKEN });
  return page;
}

test('the window path: injected API address, logs that follow and keep your place, copy, reconnect', async () => {
  await browser.context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: api.url });
  const page = await windowPage();
  // No token in the address: the injected one is used, same-origin, with the bearer header.
  const response = await page.goto(`${api.url}/#logs/${AGENT.id}`);
  assert.match(response.headers()['content-security-policy'], /connect-src 'self';/, 'the API’s own policy');

  const panel = page.locator('#panel');
  await panel.locator('.log').getByText('[12:00:00] line 200', { exact: true }).waitFor();
  const events = api.seen.find((r) => r.path === '/events' && r.method === 'GET');
  assert.equal(events.auth, `Bearer ${TOKEN}`);
  assert.ok(!api.seen.some((r) => r.method === 'OPTIONS'), 'same origin: no preflight');

  // Following: stays at the bottom as lines arrive.
  await panel.locator('.log').getByText('[12:00:00] line 210', { exact: true }).waitFor();
  let m = await logMetrics(page);
  assert.ok(m.gap < 24, `at the bottom while following (gap ${m.gap})`);

  // Scrolled up: the view stays put, and offers a way back down.
  await panel.locator('.log').evaluate((el) => { el.scrollTop = 200; el.dispatchEvent(new Event('scroll')); });
  await sleep(800);
  m = await logMetrics(page);
  assert.equal(m.top, 200, 'the reader’s place is kept');
  const jump = panel.getByRole('button', { name: 'New lines' });
  await jump.waitFor();
  await jump.click();
  await sleep(300);
  m = await logMetrics(page);
  assert.ok(m.gap < 24, 'back at the bottom after "New lines"');
  assert.equal(await jump.isVisible(), false);

  // Copy all.
  await panel.getByRole('button', { name: 'Copy all' }).click();
  await panel.getByRole('button', { name: 'Copied' }).waitFor();
  const copied = await page.evaluate(() => navigator.clipboard.readText());
  const copiedLines = copied.split('\n');
  assert.equal(copiedLines[0], '[12:00:00] line 1');
  assert.ok(copiedLines.length >= 210, `copied ${copiedLines.length} lines`);

  // The container's own output.
  await panel.getByText('Container output').click();
  await panel.locator('.log').getByText('container says 200', { exact: true }).waitFor();
  assert.equal(await panel.locator('.log').getByText('[12:00:00] line 1', { exact: true }).count(), 0);
  assert.ok(api.seen.some((r) => r.path.endsWith('/logs') && r.search.includes('source=container')));
  await page.keyboard.press('Escape');
  await panel.waitFor({ state: 'hidden' });

  // The event stream drops: the page reconnects by itself and takes the new snapshot.
  const before = api.seen.filter((r) => r.path === '/events' && r.method === 'GET').length;
  api.dropEvents({ ...AGENT, status: 'stopped', gatewayUrl: undefined });
  await page.locator('li.agent .badge', { hasText: 'Stopped' }).waitFor({ timeout: 10000 });
  const after = api.seen.filter((r) => r.path === '/events' && r.method === 'GET').length;
  assert.equal(after, before + 1, 'one reconnect');
  assert.equal(await page.locator('#conn-pill').isVisible(), false);
  assert.deepEqual(pageErrors(page), []);
  await page.close();
});

test('a module whose fetch fails is fetched again: the page still gets its state', async () => {
  // What a change of the host's network does to requests waiting for a connection
  // (net::ERR_NETWORK_CHANGED): here the first fetch of a module two levels down fails.
  const page = await windowPage();
  let failed = 0;
  await page.route(`${api.url}/ui/dom.js`, (route) => {
    if (failed++ === 0) return route.abort('failed');
    return route.continue();
  });
  await page.goto(`${api.url}/`);
  await page.locator('li.agent .agent-name', { hasText: AGENT.name }).waitFor({ timeout: 10000 });
  assert.equal(failed, 2, 'dom.js fetched once more after its failure');
  assert.equal(await page.evaluate(() => document.getElementById('new-agent').disabled), false);
  assert.deepEqual(pageErrors(page), []);
  await page.close();
});
