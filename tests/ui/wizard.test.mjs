// The setup wizard in VM mode against the fake podman (tests/fake-podman): from
// "machine absent" through live progress to "Ready", and Retry after a failed init.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launchBrowser, openApp, cleanup, fakePodman, pageErrors } from './lib/harness.mjs';

after(cleanup);

async function vmServer(label, portBase, state) {
  const fake = fakePodman(state);
  const server = await startServer({
    label, portBase,
    env: { CLAWDOCK_PODMAN: fake.path, CLAWDOCK_MACHINE_MODE: 'vm' },
  });
  return { fake, server };
}

const wizard = (page, step) => page.locator(`#wizard-view .wizard[data-step="${step}"]`);

test('the wizard goes from machine absent through progress to Ready', async () => {
  const [{ fake, server }, browser] = await Promise.all([
    vmServer('wizard', 26300, { delays: { 'machine init': 4, 'machine start': 1 } }),
    launchBrowser(),
  ]);
  const page = await openApp(browser, server);

  // Machine absent: the page opens the wizard by itself, at step 1.
  const check = wizard(page, 'check');
  await check.waitFor();
  assert.match(page.url(), /#setup$/);
  assert.doesNotMatch(page.url(), /token=/, 'the token left the address bar');
  await check.getByText('Podman 5.2.1 is installed').waitFor();
  await check.getByRole('button', { name: 'Continue' }).click();

  // Step 2: sizes, with memory following the number of agents: the server's table
  // (`GET /meta`), which the page applies and does not compute.
  const meta = await server.api('GET', '/meta');
  const gib = (n) => String(meta.memory.suggestedMachineMiB[n] / 1024);
  const resources = wizard(page, 'resources');
  await resources.waitFor();
  const agents = resources.getByLabel('How many agents do you plan to run?');
  const memory = resources.getByLabel('Memory (GiB)');
  assert.equal(await agents.inputValue(), String(meta.machine.defaultPlannedAgents));
  assert.equal(await memory.inputValue(), String(meta.machine.recommended.memoryMiB / 1024));
  assert.equal(await resources.getByLabel('Disk (GiB)').inputValue(), String(meta.machine.recommended.diskGiB));
  const cpus = String(meta.machine.recommended.cpus);
  assert.equal(await resources.getByLabel('CPUs').inputValue(), cpus);
  await resources.getByText('about 1 GB').waitFor();
  await agents.fill('3');
  assert.equal(await memory.inputValue(), gib(3));
  await agents.fill('9');
  assert.equal(await memory.inputValue(), gib(9));
  assert.notEqual(gib(9), gib(3), 'memory follows the number of agents');
  await agents.fill('2');
  assert.equal(await memory.inputValue(), gib(2));
  await resources.getByLabel('Disk (GiB)').fill('50');
  await resources.getByRole('button', { name: 'Create machine' }).click();

  // Step 3: live progress with percent and byte counts from podman's output.
  const progress = wizard(page, 'progress');
  await progress.waitFor();
  const bar = progress.getByRole('progressbar');
  await page.waitForFunction(() => {
    const el = document.querySelector('#wizard-view [role=progressbar]');
    return el && Number(el.getAttribute('aria-valuenow')) > 0;
  }, null, { timeout: 15000 });
  assert.match(await progress.locator('.figures').innerText(), /\d+%\s+·\s+[\d.]+ \w?i?B of [\d.]+ GiB/);
  assert.ok(await bar.isVisible());
  await progress.getByText(/continue in the background/).waitFor();

  // Step 4: Ready, and the first agent is one click away.
  const ready = wizard(page, 'ready');
  await ready.waitFor({ timeout: 30000 });
  await ready.getByRole('heading', { name: 'Ready' }).waitFor();
  await ready.getByRole('button', { name: 'Create your first agent' }).click();
  await page.locator('#create-dialog').getByLabel('Name', { exact: true }).waitFor();
  assert.equal(new URL(page.url()).hash, '');

  assert.deepEqual(fake.read().last_init_args, ['machine', 'init', '--cpus', cpus, '--memory', String(meta.memory.suggestedMachineMiB[2]), '--disk-size', '50']);
  assert.deepEqual(pageErrors(page), []);
  await browser.close();
  await server.stop();
});

test('a failed init shows the error and Retry, which then succeeds', async () => {
  const [{ fake, server }, browser] = await Promise.all([
    vmServer('retry', 26350, {
      delays: { 'machine init': 2, 'machine start': 1 },
      faults: { 'machine init': { mode: 'fail', times: 1, message: 'Error: download failed' } },
    }),
    launchBrowser(),
  ]);
  const page = await openApp(browser, server, 'setup');
  await wizard(page, 'check').getByRole('button', { name: 'Continue' }).click();
  await wizard(page, 'resources').getByRole('button', { name: 'Create machine' }).click();

  const failed = wizard(page, 'failed');
  await failed.waitFor({ timeout: 15000 });
  await failed.getByText('Error: download failed').waitFor();
  // The agents page says so too.
  const retry = failed.getByRole('button', { name: 'Retry' });
  assert.equal(await retry.isEnabled(), true);
  await retry.click();

  await wizard(page, 'ready').waitFor({ timeout: 30000 });
  assert.equal(fake.read().calls['machine init'], 2);
  assert.equal(fake.read().machines[0].Running, true);

  // Back on the agents page: no banner, New agent enabled.
  await wizard(page, 'ready').getByRole('button', { name: 'Go to agents' }).click();
  await page.locator('#agents-view').waitFor();
  assert.equal(await page.locator('#banners .banner').count(), 0);
  assert.equal(await page.getByRole('button', { name: 'New agent' }).isEnabled(), true);
  assert.deepEqual(pageErrors(page), []);
  await browser.close();
  await server.stop();
});
