// The page never polls: once loaded, an idle page holds one open /events request and,
// while the agents page shows a running agent, one open /agents/stats stream, and
// makes no other request. The stats stream closes when the page is hidden.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launchBrowser, openApp, cleanup, agentName, waitForBadge, sleep, pageErrors } from './lib/harness.mjs';

let server;
let browser;

before(async () => {
  [server, browser] = await Promise.all([
    startServer({ label: 'idle', portBase: 26100 }),
    launchBrowser(),
  ]);
});

after(cleanup);

test('an idle page makes no request on a timer', async () => {
  const name = agentName('idle');
  await server.api('POST', '/agents/create', { name });
  const requests = [];
  // Answered requests: one that failed because the host's network changed (Podman
  // starting the container) and was made again is not a repeat.
  browser.context.on('response', (r) => requests.push(`${r.request().method()} ${new URL(r.url()).pathname}`));
  const page = await openApp(browser, server);
  await waitForBadge(page, name, 'Running', 60000);
  // Let the gateway's `ready` event and any late asset settle.
  await sleep(1500);
  const before = requests.length;
  await sleep(10000);
  const during = requests.slice(before);
  assert.deepEqual(during, [], `requests while idle: ${during.join(', ')}`);

  // Over the whole visit: each asset once, one /events stream, one stats stream.
  assert.equal(requests.filter((r) => r === 'GET /events').length, 1, requests.join(', '));
  assert.equal(requests.filter((r) => r === 'GET /agents/stats').length, 1, requests.join(', '));
  assert.equal(new Set(requests).size, requests.length, `a request was repeated: ${requests.join(', ')}`);

  // Hidden, the page closes its stats stream (the server stops sampling) and opens
  // nothing else; shown again, it opens exactly one stream again.
  const closed = page.waitForEvent('requestfailed', { predicate: (r) => r.url().endsWith('/agents/stats'), timeout: 5000 });
  const setHidden = (hidden) => page.evaluate((h) => {
    Object.defineProperty(document, 'hidden', { configurable: true, get: () => h });
    document.dispatchEvent(new Event('visibilitychange'));
  }, hidden);
  await setHidden(true);
  await closed;
  const hiddenAt = requests.length;
  await sleep(3000);
  assert.deepEqual(requests.slice(hiddenAt), [], 'nothing while hidden');
  await setHidden(false);
  await sleep(3000);
  assert.deepEqual(requests.slice(hiddenAt), ['GET /agents/stats'], 'one stream again once visible');
  assert.deepEqual(pageErrors(page), []);
  await page.close();
});
