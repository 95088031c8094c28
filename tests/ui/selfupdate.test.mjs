// Clawdock's own update in the window, against the real `clawdock serve` and a feed
// on loopback (issue 31): the menu's "Check for Clawdock updates" finds a newer version and
// shows its release notes, where the user decides; this build was not installed
// from a package, so "Install and restart" says so and changes nothing. And the
// note a desktop with no tray gets (route `no-tray`): where the controls are.
// Screenshots: update-dialog, no-tray (light and dark).

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startServer, launchBrowser, openApp, cleanup, screenshots, pageErrors } from './lib/harness.mjs';

after(cleanup);

/** A tauri-plugin-updater feed offering 9.9.9; the check asks nothing more of it. */
async function feed() {
  const server = http.createServer((req, res) => {
    if (req.url !== '/latest.json') { res.writeHead(404); res.end(); return; }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({
      version: '9.9.9',
      notes: 'Agents keep running while Clawdock updates.\nA second line of notes.',
      pub_date: '2026-12-07T12:00:00Z',
      platforms: { 'linux-x86_64': { url: 'http://127.0.0.1:9/none.deb', signature: 'unused' } },
    }));
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${server.address().port}/latest.json` };
}

test('Check for Clawdock updates shows the notes; an install this copy cannot do says why', async () => {
  const offered = await feed();
  const [server, browser] = await Promise.all([
    startServer({ label: 'update', portBase: 26400, env: { CLAWDOCK_SELF_UPDATE_URL: offered.url } }),
    launchBrowser(),
  ]);
  const page = await openApp(browser, server);
  await page.locator('#agents-empty').waitFor();
  await page.locator('#app-menu > summary').click();
  await page.getByRole('button', { name: 'Check for Clawdock updates' }).click();
  const dialog = page.locator('#update-dialog');
  await dialog.waitFor({ state: 'visible' });
  assert.equal(await page.locator('#update-title').textContent(), 'Clawdock 9.9.9');
  assert.match(await page.locator('#update-notes').textContent(), /Agents keep running while Clawdock updates\.\nA second line/);
  assert.match(await page.locator('#update-sub').textContent(), /You have 0\.\d+\.\d+\. Released 2026-12-07\./);
  await screenshots(page, 'update-dialog');

  await dialog.getByRole('button', { name: 'Install and restart' }).click();
  const error = page.locator('#update-error');
  await error.waitFor({ state: 'visible' });
  assert.match(await error.textContent(), /not installed from a package/);
  await dialog.getByRole('button', { name: 'Later' }).click();
  // Behind the dialog, the note that stays until the user installs.
  await page.locator('#app-notes', { hasText: 'Clawdock 9.9.9 is available' }).waitFor();
  assert.deepEqual(pageErrors(page, [/409/]), []);
  offered.server.close();
});

test('with no tray on the desktop the window says where the controls are', async () => {
  const [server, browser] = await Promise.all([startServer({ label: 'notray', portBase: 26420 }), launchBrowser()]);
  const page = await openApp(browser, server, 'no-tray');
  const note = page.locator('#app-notes', { hasText: 'your desktop shows no tray icon' });
  await note.waitFor();
  assert.match(await note.textContent(), /menu ☰ at the top right/);
  // It stays when the user moves on.
  await page.evaluate(() => { location.hash = ''; });
  await page.locator('#agents-empty').waitFor();
  assert.equal(await note.isVisible(), true);
  await screenshots(page, 'no-tray');
  assert.deepEqual(pageErrors(page), []);
});
