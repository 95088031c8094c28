// The agents page against a real `clawdock serve` on real Podman: create, run,
// stop, delete; name validation and the server's refusals; a container killed
// from outside; chat errors shown plainly.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, launchBrowser, openApp, cleanup, agentName, agentRow, waitForBadge,
  podman, pageErrors,
} from './lib/harness.mjs';

let server;
let browser;

before(async () => {
  [server, browser] = await Promise.all([
    startServer({ label: 'agents', portBase: 26000 }),
    launchBrowser(),
  ]);
});

after(cleanup);

async function containerExists(name) {
  try {
    await podman('container', 'exists', `clawdock-${name}`);
    return true;
  } catch {
    return false;
  }
}

test('create an agent from the dialog, see it run, stop it, delete it', async () => {
  const name = agentName('alpha');
  const page = await openApp(browser, server);

  await page.getByRole('button', { name: 'New agent' }).click();
  const dialog = page.locator('#create-dialog');
  await dialog.getByLabel('Name', { exact: true }).fill(name);
  await dialog.getByLabel('Model provider').selectOption('openai');
  await dialog.getByLabel('Model id').fill('gpt-4o-mini');
  await dialog.getByRole('button', { name: 'Create agent' }).click();

  // The logs panel opens by itself and follows the creation.
  const panel = page.locator('#panel');
  await panel.locator('.log').getByText('Checking container runtime...').waitFor({ timeout: 15000 });
  await panel.locator('.log').getByText(/OpenClaw gateway is ready at ws:\/\/127\.0\.0\.1:\d+/).waitFor({ timeout: 60000 });
  assert.equal(await dialog.isVisible(), false, 'the create dialog closed');
  await panel.locator('.badge', { hasText: 'Running' }).waitFor();
  await page.keyboard.press('Escape');
  await panel.waitFor({ state: 'hidden' });
  // A dialog's `close` event (which routes back) fires a task after it is hidden.
  await page.waitForFunction(() => location.hash === '', null, { timeout: 5000 }).catch(() => {});
  assert.equal(new URL(page.url()).hash, '', 'closing the panel goes back to the agents page');

  const row = agentRow(page, name);
  await waitForBadge(page, name, 'Running');
  await row.getByRole('button', { name: `Open the dashboard of ${name}` }).waitFor();
  assert.match(await row.locator('.agent-meta').innerText(), /openai/);
  assert.equal(await containerExists(name), true);

  await row.getByRole('button', { name: `Stop ${name}` }).click();
  await waitForBadge(page, name, 'Stopped', 30000);
  assert.equal(await row.getByRole('button', { name: `Start ${name}` }).isEnabled(), true);
  assert.equal(await row.getByRole('button', { name: `Chat with ${name}` }).isDisabled(), true);

  await row.getByRole('button', { name: `Delete ${name}` }).click();
  const confirm = page.locator('#confirm-dialog');
  await confirm.getByText(`Delete “${name}”?`).waitFor();
  // Cancelling keeps it.
  await confirm.getByRole('button', { name: 'Cancel' }).click();
  assert.equal(await row.count(), 1);
  await row.getByRole('button', { name: `Delete ${name}` }).click();
  await confirm.getByRole('button', { name: 'Delete agent' }).click();
  await row.waitFor({ state: 'detached', timeout: 30000 });

  const { agents } = await server.api('GET', '/agents');
  assert.equal(agents.some((a) => a.name === name), false);
  assert.equal(await containerExists(name), false, 'the container is gone');
  assert.deepEqual(pageErrors(page), []);
  await page.close();
});

test('an invalid name shows the rule before submit; a duplicate shows the server’s 409', async () => {
  const taken = agentName('taken');
  await server.api('POST', '/agents/create', { name: taken });
  const page = await openApp(browser, server);
  await agentRow(page, taken).waitFor();

  await page.keyboard.press('n');
  const dialog = page.locator('#create-dialog');
  const name = dialog.getByLabel('Name', { exact: true });
  const rule = dialog.getByText('Names start with a letter or digit, then letters, digits');
  const submit = dialog.getByRole('button', { name: 'Create agent' });
  await name.waitFor();
  assert.equal(await submit.isDisabled(), true, 'nothing to submit yet');
  assert.equal(await rule.isVisible(), false);

  for (const bad of ['-starts-with-dash', 'has space', 'ünïcode', 'a'.repeat(64)]) {
    await name.fill(bad);
    assert.equal(await rule.isVisible(), true, `rule shown for ${bad}`);
    assert.equal(await submit.isDisabled(), true, `submit disabled for ${bad}`);
    assert.equal(await name.getAttribute('aria-invalid'), 'true');
  }
  await name.press('Enter');
  assert.equal(await dialog.isVisible(), true, 'Enter does not submit an invalid name');

  await name.fill('a'.repeat(63));
  assert.equal(await rule.isVisible(), false);
  assert.equal(await submit.isEnabled(), true);

  // Names are unique ignoring case: the server refuses, the dialog says why.
  await name.fill(taken.toUpperCase());
  await name.press('Enter');
  const error = dialog.locator('#create-error');
  await error.waitFor();
  assert.equal(await error.innerText(), `An agent named \`${taken.toUpperCase()}\` already exists.`);
  assert.equal(await dialog.isVisible(), true, 'the dialog stays open');
  // Typing again clears the error; Esc closes.
  await name.fill(`${taken}-2`);
  assert.equal(await error.isVisible(), false);
  await page.keyboard.press('Escape');
  await dialog.waitFor({ state: 'hidden' });

  // A custom provider needs a base URL; the localhost note is there.
  await page.getByRole('button', { name: 'New agent' }).click();
  await name.fill(agentName('custom'));
  await dialog.getByLabel('Model provider').selectOption('custom');
  await dialog.getByText('host.containers.internal').waitFor();
  assert.equal(await submit.isDisabled(), true, 'base URL missing');
  await dialog.getByLabel('Base URL').fill('http://localhost:11434/v1');
  assert.equal(await submit.isEnabled(), true);
  await page.keyboard.press('Escape');

  assert.deepEqual(pageErrors(page, [/409/]), []);
  await page.close();
});

test('a container killed from outside updates its badge without a reload', async () => {
  const name = agentName('victim');
  const page = await openApp(browser, server);
  await server.api('POST', '/agents/create', { name });
  await waitForBadge(page, name, 'Running', 60000);
  let loads = 0;
  page.on('load', () => { loads += 1; });

  await podman('kill', `clawdock-${name}`);
  await waitForBadge(page, name, 'Error', 30000);
  const row = agentRow(page, name);
  await row.locator('.agent-error', { hasText: /stopped on its own|exit code 137/ }).waitFor();
  assert.equal(await row.getByRole('button', { name: `Start ${name}` }).isEnabled(), true);
  assert.equal(loads, 0, 'no reload');

  // Starting it again from the row works.
  await row.getByRole('button', { name: `Start ${name}` }).click();
  await waitForBadge(page, name, 'Running', 60000);
  assert.deepEqual(pageErrors(page), []);
  await page.close();
});

test('chat shows the gateway’s error plainly', async () => {
  const name = agentName('chatty');
  await server.api('POST', '/agents/create', { name });
  const page = await openApp(browser, server);
  await waitForBadge(page, name, 'Running', 60000);
  await agentRow(page, name).getByRole('button', { name: `Chat with ${name}` }).click();
  const panel = page.locator('#panel');
  const input = panel.getByLabel('Message');
  await input.fill('Hello there');
  await input.press('Enter');
  await panel.locator('.msg.user', { hasText: 'Hello there' }).waitFor();
  // The test gateway has no chat endpoint: the API answers 502 with the gateway's error.
  const error = panel.locator('.msg.error .bubble-text');
  await error.waitFor({ timeout: 30000 });
  const text = await error.innerText();
  assert.match(text, /gateway/i);
  assert.doesNotMatch(text, /<[a-z]+>/i, 'no raw HTML');
  // Logs tab switches the route and the view.
  await panel.getByRole('tab', { name: 'Logs' }).click();
  await panel.locator('.log').getByText('OpenClaw gateway is ready').waitFor();
  assert.match(page.url(), /#logs\//);
  await page.close();
});

test('keyboard only: the create dialog keeps focus inside and gives it back', async () => {
  const page = await openApp(browser, server);
  const newAgent = page.getByRole('button', { name: 'New agent' });
  await page.waitForFunction(() => !document.getElementById('new-agent').disabled);
  await newAgent.focus();
  await page.keyboard.press('Enter');
  const dialog = page.locator('#create-dialog');
  await dialog.getByLabel('Name', { exact: true }).waitFor();
  for (let i = 0; i < 12; i += 1) {
    await page.keyboard.press('Tab');
    const inside = await page.evaluate(() => {
      const el = document.activeElement;
      return !el || el === document.body || document.getElementById('create-dialog').contains(el);
    });
    assert.ok(inside, `Tab ${i + 1} stays in the dialog`);
  }
  await page.keyboard.press('Escape');
  await dialog.waitFor({ state: 'hidden' });
  assert.equal(await page.evaluate(() => document.activeElement && document.activeElement.id), 'new-agent', 'focus goes back to the button that opened it');
  assert.deepEqual(pageErrors(page), []);
  await page.close();
});
