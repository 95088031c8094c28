// Screenshots of every screen, light and dark, 1100x750, into docs/screenshots/.
// They double as a smoke test of each screen; look at them after UI changes.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, launchBrowser, openApp, cleanup, fakePodman, screenshots, waitForBadge,
  agentRow, podman, agentName, RUN_DIR,
} from './lib/harness.mjs';

after(cleanup);

/** A readable name for the pictures, unless another container already uses it. */
async function niceName(name) {
  try {
    await podman('container', 'exists', `clawdock-${name}`);
    return agentName(name);
  } catch {
    return name;
  }
}

test('agents page, create dialog, logs and chat', async () => {
  const [server, browser] = await Promise.all([startServer({ label: 'shots', portBase: 26200 }), launchBrowser()]);
  const page = await openApp(browser, server);

  await page.locator('#agents-empty').waitFor();
  await screenshots(page, 'agents-empty');

  const research = await niceName('research');
  const drafts = await niceName('drafts');
  const { agent } = await server.api('POST', '/agents/create', { name: research, providerType: 'openai', modelId: 'gpt-4o-mini' });
  const second = (await server.api('POST', '/agents/create', { name: drafts, providerType: 'anthropic' })).agent;
  await waitForBadge(page, research, 'Running', 60000);
  await waitForBadge(page, drafts, 'Running', 60000);
  await server.api('POST', `/agents/${second.id}/stop`);
  await waitForBadge(page, drafts, 'Stopped');
  await page.waitForFunction(() => !document.querySelector('.agent-meta .muted'));
  // What the running agent costs, from the stats stream (its CPU figure from the second sample).
  await agentRow(page, research).locator('.agent-stats', { hasText: /CPU \d/ }).waitFor({ timeout: 15000 });
  await screenshots(page, 'agents');

  await agentRow(page, research).locator('details.more > summary').click();
  await agentRow(page, research).getByRole('button', { name: `Settings of ${research}` }).click();
  const settings = page.locator('#settings-dialog');
  await settings.getByLabel('Model id').fill('gpt-4.1');
  await screenshots(page, 'settings-dialog');
  await page.keyboard.press('Escape');
  await agentRow(page, research).locator('details.more > summary').click();
  await screenshots(page, 'agent-menu');
  await page.keyboard.press('Escape');

  await page.getByRole('button', { name: 'New agent' }).click();
  const dialog = page.locator('#create-dialog');
  await dialog.getByLabel('Name', { exact: true }).fill('writer');
  await dialog.getByLabel('Model provider').selectOption('anthropic');
  await dialog.getByLabel('API key').fill('sk-ant-example-key');
  await screenshots(page, 'create-dialog');
  await dialog.getByLabel('Name', { exact: true }).fill('my agent');
  await dialog.getByLabel('Model provider').selectOption('custom');
  await dialog.getByLabel('Base URL').fill('http://localhost:11434/v1');
  await dialog.getByLabel('Provider name').fill('ollama');
  await dialog.getByLabel('API key').fill('');
  await screenshots(page, 'create-dialog-custom');
  await page.keyboard.press('Escape');

  await page.evaluate((id) => { location.hash = `logs/${id}`; }, agent.id);
  const panel = page.locator('#panel');
  await panel.locator('.log').getByText('OpenClaw gateway is ready').waitFor();
  await screenshots(page, 'logs');
  await panel.getByText('Container output').click();
  await panel.locator('.log').getByText('[gateway] ready').waitFor();
  await screenshots(page, 'logs-container');

  await panel.getByRole('tab', { name: 'Chat' }).click();
  const input = panel.getByLabel('Message');
  await input.fill('What can you do?');
  await input.press('Enter');
  await panel.locator('.msg.error').waitFor({ timeout: 30000 });
  await screenshots(page, 'chat');
  await page.keyboard.press('Escape');

  await page.evaluate(() => { location.hash = 'setup'; });
  await page.locator('.wizard[data-step="native"]').getByRole('heading', { name: 'Ready' }).waitFor();
  await screenshots(page, 'wizard-native');
  await browser.close();
  await server.stop();
});

test('Podman missing', async () => {
  const [server, browser] = await Promise.all([
    startServer({ label: 'missing', portBase: 26250, env: { CLAWDOCK_PODMAN: `${RUN_DIR}/no-such-podman` } }),
    launchBrowser(),
  ]);
  const page = await openApp(browser, server);
  const banner = page.locator('#banners .banner', { hasText: 'Podman is not installed' });
  await banner.waitFor();
  assert.equal(await page.getByRole('button', { name: 'New agent' }).isDisabled(), true);
  await banner.getByRole('button', { name: 'Check again' }).click();
  await page.locator('.toast', { hasText: 'still not found' }).waitFor();
  await page.locator('.toast').getByRole('button', { name: 'Dismiss' }).click();
  await page.locator('.toast').waitFor({ state: 'detached' });
  await screenshots(page, 'podman-missing');
  await page.evaluate(() => { location.hash = 'setup'; });
  await page.locator('.wizard[data-step="missing"]').waitFor();
  await screenshots(page, 'wizard-1-missing');
  await browser.close();
  await server.stop();
});

test('setup wizard steps (VM mode, fake podman)', async () => {
  const fake = fakePodman({
    delays: { 'machine init': 6, 'machine start': 1.5 },
    faults: { 'machine init': { mode: 'fail', times: 1, message: 'Error: failed to download the machine image: connection reset by peer' } },
  });
  const [server, browser] = await Promise.all([
    startServer({ label: 'shots-vm', portBase: 26280, env: { CLAWDOCK_PODMAN: fake.path, CLAWDOCK_MACHINE_MODE: 'vm' } }),
    launchBrowser(),
  ]);
  const page = await openApp(browser, server);
  const step = (name) => page.locator(`.wizard[data-step="${name}"]`);

  await step('check').waitFor();
  await screenshots(page, 'wizard-1-check');
  await page.getByRole('button', { name: 'Agents', exact: true }).click();
  await page.locator('#banners .banner', { hasText: 'Set up Podman’s machine' }).waitFor();
  await screenshots(page, 'agents-machine-absent');
  await page.locator('#banners').getByRole('button', { name: 'Set up…' }).click();

  await step('check').getByRole('button', { name: 'Continue' }).click();
  await step('resources').waitFor();
  await screenshots(page, 'wizard-2-resources');
  await step('resources').getByRole('button', { name: 'Create machine' }).click();

  await step('failed').waitFor({ timeout: 15000 });
  await screenshots(page, 'wizard-3-failed');
  await step('failed').getByRole('button', { name: 'Retry' }).click();

  await page.waitForFunction(() => {
    const el = document.querySelector('.wizard[data-step="progress"] [role=progressbar]');
    return el && Number(el.getAttribute('aria-valuenow')) >= 40;
  }, null, { timeout: 15000 });
  await page.locator('.wizard .figures', { hasText: 'left' }).waitFor({ timeout: 5000 }).catch(() => {});
  await screenshots(page, 'wizard-3-progress');

  await step('ready').waitFor({ timeout: 30000 });
  await screenshots(page, 'wizard-4-ready');
  await browser.close();
  await server.stop();
});
