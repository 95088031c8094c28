// Managing an agent from the window (issues 13 and 16) against a real `clawdock
// serve` on real Podman: Settings edits the provider in place (a blank key keeps the
// key), Dashboard opens the route's address, New gateway token makes one, the stats stream shows what a running
// agent costs, Update says "up to date" (test images are localhost/: nothing pulled),
// a create that pulls its image shows the bytes in the agent's row, and Quit stops
// Clawdock from the window.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import {
  startServer, launchBrowser, openApp, cleanup, agentName, agentRow, waitForBadge, pageErrors,
  podman, IMAGE, RUN_DIR, RUN_ID,
} from './lib/harness.mjs';
import { serveRegistry, engineFor } from './lib/registry.mjs';

let server;
let browser;

before(async () => {
  [server, browser] = await Promise.all([
    startServer({ label: 'manage', portBase: 26500 }),
    launchBrowser(),
  ]);
});

after(cleanup);

/** Opens an agent's "More" menu and picks an item. */
async function menuItem(page, name, item) {
  const row = agentRow(page, name);
  await row.locator('details.more > summary').click();
  await row.locator('.menu-items').getByRole('button', { name: item }).click();
}

// Issue 32: the window's backups. "Backups…" downloads the agent's archive (a
// gzip with the manifest in it), lists the snapshot an edit took, and "Put back"
// replaces the agent by it (the key before the edit); "Restore from a backup…"
// makes an agent from the downloaded file.
test('Backups: a download, the snapshot an edit took put back, a restore from the file', async () => {
  const name = agentName('kept');
  const { agent } = await server.api('POST', '/agents/create', { name, providerType: 'openai', apiKey: 'sk-kept-first' });
  const page = await openApp(browser, server);
  const errors = pageErrors(page);
  await waitForBadge(page, name, 'Running', 60000);
  await server.api('PATCH', `/agents/${agent.id}`, { apiKey: 'sk-kept-second' });
  await waitForBadge(page, name, 'Running', 60000);

  await menuItem(page, name, `Backups of ${name}`);
  const dialog = page.locator('#backup-dialog');
  await dialog.getByRole('heading', { name: `Backups of ${name}` }).waitFor();
  await dialog.getByText('A backup holds the agent’s secrets').waitFor();
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    dialog.getByRole('button', { name: 'Download a backup' }).click(),
  ]);
  const file = path.join(RUN_DIR, `${name}.tar.gz`);
  await download.saveAs(file);
  const bytes = fs.readFileSync(file);
  assert.equal(bytes[0], 0x1f, 'a gzip');
  assert.equal(bytes[1], 0x8b, 'a gzip');
  assert.match(download.suggestedFilename(), new RegExp(`^clawdock-${name}-.*\\.tar\\.gz$`));

  const snapshot = dialog.locator('li.snapshot', { hasText: 'before edit' });
  await snapshot.waitFor();
  await snapshot.getByRole('button', { name: 'Put back' }).click();
  await page.locator('.toast', { hasText: `It replaced ${name}` }).waitFor();
  await waitForBadge(page, name, 'Running', 60000);
  const { agents } = await server.api('GET', '/agents');
  const back = agents.find((a) => a.name === name);
  const config = fs.readFileSync(path.join(back.dir, 'config/openclaw.json'), 'utf8');
  assert.match(config, /sk-kept-first/, 'the key before the edit');

  // The downloaded file, once the agent of that name is gone.
  await server.api('DELETE', `/agents/${back.id}`);
  await page.locator('#app-menu > summary').click();
  const [chooser] = await Promise.all([
    page.waitForEvent('filechooser'),
    page.locator('#restore-backup').click(),
  ]);
  await chooser.setFiles(file);
  await page.locator('.toast', { hasText: `${name}: ` }).waitFor();
  await waitForBadge(page, name, 'Running', 60000);
  assert.deepEqual(errors, []);
});

test('Settings changes the provider in place; a blank key keeps the key', async () => {
  const name = agentName('edit');
  const { agent } = await server.api('POST', '/agents/create', { name, providerType: 'openai', apiKey: 'sk-first-key', modelId: 'gpt-4o-mini' });
  const page = await openApp(browser, server);
  await waitForBadge(page, name, 'Running', 60000);

  await menuItem(page, name, `Settings of ${name}`);
  const dialog = page.locator('#settings-dialog');
  await dialog.getByRole('heading', { name: `Settings of ${name}` }).waitFor();
  const provider = dialog.getByLabel('Model provider');
  assert.equal(await provider.inputValue(), 'openai', 'the agent’s provider is chosen');
  await dialog.getByText('Leave empty to keep the agent’s current key.').waitFor();

  // Another provider: its key is asked for, the old one is not kept.
  await provider.selectOption('anthropic');
  await dialog.getByText('The old key is not kept for another provider').waitFor();
  await dialog.getByLabel('API key').fill('sk-ant-second-key');
  await dialog.getByLabel('Model id').fill('claude-test-model');
  await dialog.getByRole('button', { name: 'Save' }).click();
  await dialog.waitFor({ state: 'hidden' });
  await page.locator('.toast', { hasText: `Settings saved. ${name} restarts with them.` }).waitFor();
  await waitForBadge(page, name, 'Running', 60000);
  const after1 = (await server.api('GET', `/agents/${agent.id}`)).agent;
  assert.equal(after1.providerType, 'anthropic');
  const config = () => fs.readFileSync(path.join(after1.dir, 'config/openclaw.json'), 'utf8');
  assert.match(config(), /claude-test-model/);
  assert.match(config(), /sk-ant-second-key/);

  // The same provider, the key left empty: the model changes, the key stays.
  await menuItem(page, name, `Settings of ${name}`);
  await dialog.getByLabel('Model id').fill('claude-other-model');
  assert.equal(await dialog.getByLabel('API key').inputValue(), '');
  await dialog.getByRole('button', { name: 'Save' }).click();
  await dialog.waitFor({ state: 'hidden' });
  await page.waitForFunction(() => !document.querySelector('li.agent[aria-busy="true"]'), null, { timeout: 60000 });
  await waitForBadge(page, name, 'Running', 60000);
  assert.match(config(), /claude-other-model/);
  assert.match(config(), /sk-ant-second-key/, 'the key is kept');
  assert.equal(await page.evaluate(() => document.activeElement && document.activeElement.matches('details.more > summary')), true,
    'focus is back on the menu that opened the dialog');

  // Another custom provider needs its base URL before Save.
  await menuItem(page, name, `Settings of ${name}`);
  await dialog.getByLabel('Model provider').selectOption('custom');
  assert.equal(await dialog.getByRole('button', { name: 'Save' }).isDisabled(), true, 'a new custom provider needs its base URL');
  await page.keyboard.press('Escape');
  await dialog.waitFor({ state: 'hidden' });
  assert.deepEqual(pageErrors(page, [/400/]), []);
  await page.close();
});

test('Dashboard, stats and Update on a running agent', async () => {
  const name = agentName('dash');
  const { agent } = await server.api('POST', '/agents/create', { name });
  const page = await openApp(browser, server);
  await waitForBadge(page, name, 'Running', 60000);
  const row = agentRow(page, name);
  assert.equal(await row.locator('.agent-meta').innerText().then((t) => /ws:\/\//.test(t)), false, 'no bare gateway address');

  // Stats: memory used of the limit and CPU, from /agents/stats.
  await row.locator('.agent-stats', { hasText: /Memory \S+ \S+ of \S+ \S+/ }).waitFor({ timeout: 15000 });
  await row.locator('.agent-stats', { hasText: /CPU \d/ }).waitFor({ timeout: 15000 });

  // Dashboard: a one-time address (POST), no token in it, opened without an opener.
  await page.evaluate(() => { window.open = (...args) => { window.__opened = args; return null; }; });
  await row.getByRole('button', { name: `Open the dashboard of ${name}` }).click();
  const opened = await (await page.waitForFunction(() => window.__opened)).jsonValue();
  const { url } = await server.api('GET', `/agents/${agent.id}/dashboard`);
  const token = url.split('#token=')[1];
  assert.match(opened[0], /^http:\/\/127\.0\.0\.1:\d+\/dashboard\/[0-9a-f]+$/);
  assert.ok(!opened[0].includes(token), 'no gateway token in the opened address');
  assert.deepEqual(opened.slice(1), ['_blank', 'noopener']);
  const visit = await fetch(opened[0], { redirect: 'manual' });
  assert.equal(visit.status, 303);
  assert.equal(visit.headers.get('location'), url);

  // New gateway token (issue 30): asked first, then the container is made again
  // with a new token; the old dashboard address no longer carries it.
  await menuItem(page, name, `New gateway token for ${name}`);
  const confirm = page.locator('#confirm-dialog');
  await confirm.getByText('refuses the old one').waitFor();
  await confirm.getByRole('button', { name: 'Make a new token' }).click();
  await page.locator('.toast', { hasText: `${name} has a new gateway token.` }).waitFor({ timeout: 60000 });
  await waitForBadge(page, name, 'Running', 60000);
  const rotated = (await server.api('GET', `/agents/${agent.id}/dashboard`)).url.split('#token=')[1];
  assert.ok(rotated && rotated !== token, 'a new token');

  // Update: the test image is localhost/, nothing to pull: up to date.
  await menuItem(page, name, `Update ${name}`);
  await page.locator('.toast', { hasText: `${name} is up to date.` }).waitFor({ timeout: 60000 });
  await page.locator('#app-menu > summary').click();
  await page.locator('#app-menu').getByRole('button', { name: 'Update all agents' }).click();
  await page.locator('.toast', { hasText: /up to date/ }).nth(1).waitFor({ timeout: 60000 });

  // Export: the command, the warning about secrets, the JSON download.
  await menuItem(page, name, `Export ${name} for Kubernetes`);
  const exp = page.locator('#export-dialog');
  await exp.getByText(`clawdock agents export ${name} --kubernetes`).waitFor();
  await exp.getByText('These files hold the agent’s secrets').waitFor();
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    exp.getByRole('button', { name: 'Download files (.json)' }).click(),
  ]);
  const body = JSON.parse(fs.readFileSync(await download.path(), 'utf8'));
  assert.ok(body.files['kustomization.yaml'] && body.files['gateway-token']);
  await page.keyboard.press('Escape');

  // Leaving the page closes the stats stream (the server stops sampling).
  const closed = page.waitForEvent('requestfailed', { predicate: (r) => r.url().endsWith('/agents/stats'), timeout: 10000 });
  await page.evaluate(() => { location.hash = 'setup'; });
  await closed;
  assert.deepEqual(pageErrors(page), []);
  await page.close();
});

test('a create that pulls its image shows the bytes in the agent’s row', async () => {
  // No registry here: the image (two random layers on the stand-in gateway) is
  // served by the test's own registry, to an engine service that may pull from it
  // over plain HTTP, at 2 MB/s a blob: Podman counts a blob's bytes once a second,
  // so each layer must take longer than that to be counted. The registry then
  // holds the image's config back 5 s, so the row can be read while the create
  // still runs.
  const built = `localhost/clawdock-ui-pull-${RUN_ID}:latest`;
  const dir = fs.mkdtempSync(path.join(RUN_DIR, 'pull-'));
  fs.writeFileSync(path.join(dir, 'a.bin'), crypto.randomBytes(6_000_000));
  fs.writeFileSync(path.join(dir, 'b.bin'), crypto.randomBytes(3_000_000));
  fs.writeFileSync(path.join(dir, 'Containerfile'), `FROM ${IMAGE}\nCOPY a.bin /a.bin\nCOPY b.bin /b.bin\n`);
  await podman('build', '--quiet', '-t', built, dir);
  const layout = path.join(dir, 'layout');
  await podman('save', '--format', 'oci-dir', '-o', layout, built);
  await podman('rmi', built);
  const registry = await serveRegistry(layout, { bytesPerSec: 2_000_000, holdConfigMs: 5000 });
  const engine = await engineFor(dir, registry.host);
  const image = `${registry.host}/clawdock-ui-pull:latest`;
  const own = await startServer({
    label: 'pull', portBase: 26580, env: { CLAWDOCK_AGENT_IMAGE: image, CLAWDOCK_ENGINE_SOCKET: engine.socket },
  });
  try {
    const page = await openApp(browser, own);
    const name = agentName('pull');
    await own.api('POST', '/agents/create', { name });
    const pull = agentRow(page, name).locator('.agent-pull');
    // Both random layers summed (about 8.6 MiB; the base layer is here already).
    const bar = pull.getByRole('progressbar', { name: 'Image download' });
    await bar.and(page.locator('[aria-valuenow="100"][aria-valuetext^="8."]')).waitFor({ timeout: 60000 });
    assert.match(await bar.getAttribute('aria-valuetext'), /^8\.\d\d MiB of 8\.\d\d MiB$/);
    assert.match(await pull.locator('.pull-text').textContent(), /^Downloading the image: 100%  ·  8\.\d\d MiB of 8\.\d\d MiB/);
    await waitForBadge(page, name, 'Running', 60000);
    assert.equal(await pull.isHidden(), true, 'the bar goes with the create');
    assert.deepEqual(pageErrors(page), []);
    await page.close();
  } finally {
    await own.stop();
    engine.stop();
    registry.close();
    await podman('rmi', '--force', image).catch(() => {});
  }
});

test('Quit from the window stops Clawdock and says so', async () => {
  const own = await startServer({ label: 'quit', portBase: 26560 });
  const page = await openApp(browser, own);
  await page.waitForFunction(() => !document.getElementById('new-agent').disabled, null, { timeout: 30000 });
  await page.locator('#app-menu > summary').click();
  await page.locator('#app-menu').getByRole('button', { name: 'Quit Clawdock…' }).click();
  const confirm = page.locator('#confirm-dialog');
  await confirm.getByText('Quit Clawdock?').waitFor();
  await confirm.getByRole('button', { name: 'Quit' }).click();
  const quit = page.locator('#quit-dialog');
  await quit.getByRole('heading', { name: /Stopping agents…|Clawdock has quit/ }).waitFor();
  await quit.getByRole('heading', { name: 'Clawdock has quit' }).waitFor({ timeout: 30000 });
  await own.stop();
  await page.close();
});
