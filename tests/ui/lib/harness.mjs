// Shared by the browser tests: starts real `clawdock serve` instances (real Podman
// or the fake one), Debian's Chromium through playwright-core, and small helpers.
//
// Environment (run.sh sets the first three):
//   CLAWDOCK_BIN          the binary (default target/debug/clawdock, from the repo root)
//   CLAWDOCK_UI_RUN_DIR   folder for server homes, browser profiles and pid files
//   CLAWDOCK_UI_RUN_ID    short id put in every agent name (containers: clawdock-uit<id>-...)
//   CHROMIUM              the browser (default /usr/bin/chromium)
//   CLAWDOCK_UI_FROM_DISK=1  serve ui/ from the work tree instead of the files built into
//                         the binary: for editing the UI without a cargo build. Off in CI.

import { spawn, execFile } from 'node:child_process';
import { promisify } from 'node:util';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const exec = promisify(execFile);

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const BIN = path.resolve(ROOT, process.env.CLAWDOCK_BIN || 'target/debug/clawdock');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
export const IMAGE = process.env.CLAWDOCK_AGENT_IMAGE || 'localhost/clawdock-test-gateway:latest';
export const SCREENSHOTS = path.join(ROOT, 'docs/screenshots');
const FAKE_PODMAN = path.join(ROOT, 'tests/fake-podman/podman');

const ownRunDir = !process.env.CLAWDOCK_UI_RUN_DIR;
export const RUN_DIR = process.env.CLAWDOCK_UI_RUN_DIR || fs.mkdtempSync(path.join(os.tmpdir(), 'clawdock-ui-'));
export const RUN_ID = process.env.CLAWDOCK_UI_RUN_ID || Math.random().toString(16).slice(2, 6);

/** An agent name unique to this run (and so a container name no one else uses). */
export function agentName(label) {
  return `uit${RUN_ID}-${label}`;
}

const servers = new Set();
const browsers = new Set();

/**
 * Starts `clawdock serve --port 0` with its own CLAWDOCK_HOME. Resolves once it
 * printed that it listens, with the address and token from `<home>/api.json` (serve
 * prints the token only to a terminal). `portBase` keeps the agents' ports apart
 * between files.
 */
export async function startServer({ label, portBase, env = {} }) {
  const home = fs.mkdtempSync(path.join(RUN_DIR, `home-${label}-`));
  const logFile = path.join(home, 'server.log');
  const log = fs.createWriteStream(logFile);
  const proc = spawn(BIN, ['serve', '--port', '0'], {
    cwd: ROOT,
    env: {
      ...process.env,
      CLAWDOCK_HOME: home,
      CLAWDOCK_AGENT_IMAGE: IMAGE,
      CLAWDOCK_PORT_BASE: String(portBase),
      CLAWDOCK_STOP_TIMEOUT: '2',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const pidFile = path.join(RUN_DIR, `server-${proc.pid}.pid`);
  fs.writeFileSync(pidFile, `${proc.pid} ${home}\n`);
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  proc.stderr.pipe(log, { end: false });
  const link = await new Promise((resolve, reject) => {
    let out = '';
    let done = false;
    const timer = setTimeout(() => reject(new Error(`clawdock serve did not listen within 30 s; see ${logFile}`)), 30000);
    proc.stdout.on('data', (chunk) => {
      log.write(chunk);
      out += chunk;
      if (!done && /Clawdock API listening on /.test(out)) {
        done = true;
        clearTimeout(timer);
        // api.json is written before serve prints that it listens.
        const { url, token } = JSON.parse(fs.readFileSync(path.join(home, 'api.json'), 'utf8'));
        resolve({ url, token });
      }
    });
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`clawdock serve exited (${code ?? signal}) before it listened; see ${logFile}:\n${fs.readFileSync(logFile, 'utf8')}`));
    });
  });
  const server = {
    ...link,
    home,
    logFile,
    link: `${link.url}/#token=${link.token}`,
    async api(method, route, body) {
      const res = await fetch(link.url + route, {
        method,
        headers: { Authorization: `Bearer ${link.token}`, ...(body ? { 'Content-Type': 'application/json' } : {}) },
        body: body ? JSON.stringify(body) : undefined,
      });
      const text = await res.text();
      let json = null;
      try { json = JSON.parse(text); } catch { /* not JSON */ }
      if (!res.ok) throw new Error(`${method} ${route}: ${res.status} ${text}`);
      return json;
    },
    /** Deletes every agent (so no container is left), then SIGTERM and wait. */
    async stop() {
      if (!servers.has(server)) return;
      servers.delete(server);
      if (proc.exitCode == null && proc.signalCode == null) {
        try {
          const { agents } = await server.api('GET', '/agents');
          await Promise.all(agents.map((a) => server.api('DELETE', `/agents/${a.id}`).catch(() => {})));
        } catch { /* the server may be gone already */ }
        proc.kill('SIGTERM');
        let timer;
        const done = await Promise.race([exited, new Promise((r) => { timer = setTimeout(r, 20000, null); })]);
        clearTimeout(timer);
        if (!done) proc.kill('SIGKILL');
        await exited;
      }
      log.end();
      fs.rmSync(pidFile, { force: true });
    },
  };
  servers.add(server);
  return server;
}

/** A wrapper around tests/fake-podman/podman with its own state file. */
export function fakePodman(initialState = {}) {
  const dir = fs.mkdtempSync(path.join(RUN_DIR, 'fake-podman-'));
  const stateFile = path.join(dir, 'state.json');
  fs.writeFileSync(stateFile, JSON.stringify(initialState, null, 2));
  const wrapper = path.join(dir, 'podman');
  fs.writeFileSync(wrapper, `#!/bin/sh\nFAKE_PODMAN_STATE='${stateFile}' exec '${FAKE_PODMAN}' "$@"\n`, { mode: 0o755 });
  return {
    path: wrapper,
    stateFile,
    read: () => JSON.parse(fs.readFileSync(stateFile, 'utf8')),
  };
}

const MIME = { html: 'text/html', js: 'text/javascript', css: 'text/css', svg: 'image/svg+xml', png: 'image/png', json: 'application/json' };

/** Headless Chromium with a fresh profile; the network beyond loopback is closed here. */
export async function launchBrowser() {
  const profile = fs.mkdtempSync(path.join(RUN_DIR, 'chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1100, height: 750 },
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
  if (process.env.CLAWDOCK_UI_FROM_DISK === '1') {
    await context.route((url) => url.hostname === '127.0.0.1' && (url.pathname === '/' || url.pathname.startsWith('/ui/')), (route) => {
      const { pathname } = new URL(route.request().url());
      const rel = pathname === '/' ? 'index.html' : pathname.slice('/ui/'.length);
      const file = path.join(ROOT, 'ui', rel);
      if (!file.startsWith(path.join(ROOT, 'ui')) || !fs.existsSync(file)) return route.fulfill({ status: 404, body: 'not found' });
      return route.fulfill({ path: file, contentType: MIME[path.extname(file).slice(1)] || 'application/octet-stream' });
    });
  }
  const browser = {
    context,
    async close() {
      browsers.delete(browser);
      await context.close().catch(() => {});
      fs.rmSync(profile, { recursive: true, force: true });
    },
  };
  browsers.add(browser);
  return browser;
}

/**
 * Opens the UI the way a user does (the printed link), then goes to `route`.
 * Collects uncaught page errors in `page.errors` so tests can assert there are none.
 */
export async function openApp(browser, server, route = '') {
  const page = await browser.context.newPage();
  page.errors = [];
  page.on('pageerror', (e) => page.errors.push(e));
  page.on('console', (m) => { if (m.type() === 'error') page.errors.push(new Error(m.text())); });
  await page.goto(server.link);
  // The page takes the token from the address once its modules have loaded; a route
  // set before that would wipe the token out of the fragment first.
  await page.waitForFunction(() => !location.hash.includes('token='));
  if (route) await page.evaluate((r) => { location.hash = r; }, route);
  return page;
}

/**
 * Requests Chromium failed because the host's network changed: rootful Podman adds
 * and removes interfaces as containers start and stop (these tests' and any other
 * run's on the machine), and Chromium then fails every request still waiting for a
 * connection with net::ERR_NETWORK_CHANGED. The page retries (ui/boot.js, the event
 * feed); the console line that Chromium logs is not the page's error.
 */
const NETWORK_CHANGED = /net::ERR_NETWORK_CHANGED/;

/** Errors in the page, except failed requests a test caused on purpose. */
export function pageErrors(page, allow = []) {
  return page.errors.filter((e) => ![NETWORK_CHANGED, ...allow].some((re) => re.test(String(e.message))));
}

export async function podman(...args) {
  return exec('podman', args, { timeout: 60000 });
}

export function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

/** The row of an agent in the list. */
export function agentRow(page, name) {
  return page.locator('li.agent').filter({ has: page.locator('.agent-name', { hasText: new RegExp(`^${name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`) }) });
}

/** Waits until the agent's badge reads `label`. */
export async function waitForBadge(page, name, label, timeout = 30000) {
  await agentRow(page, name).locator('.badge', { hasText: new RegExp(`^${label}$`) }).waitFor({ timeout });
}

const AXE = fs.readFileSync(path.join(ROOT, 'tests/ui/node_modules/axe-core/axe.min.js'), 'utf8');

/**
 * Runs axe-core (WCAG 2 A/AA rules) in the page as it is now; returns its serious and
 * critical violations as readable lines. Evaluated through the debugger protocol, so
 * the page's own Content-Security-Policy stays on.
 */
export async function axeProblems(page) {
  if (!(await page.evaluate(() => typeof window.axe === 'object'))) await page.evaluate(AXE);
  const violations = await page.evaluate(async () => {
    const result = await window.axe.run(document, {
      runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] },
      resultTypes: ['violations'],
    });
    return result.violations
      .filter((v) => v.impact === 'serious' || v.impact === 'critical')
      .map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 3).map((n) => `${n.target.join(' ')}: ${n.failureSummary.split('\n').slice(1, 2).join('')}`) }));
  });
  return violations.map((v) => `${v.impact} ${v.id} (${v.help}): ${v.nodes.join(' | ')}`);
}

/**
 * Saves `name-light.png` and `name-dark.png` of the page as it is now, and checks
 * each with axe-core: no serious or critical violation (contrast AA in both themes,
 * names, roles, focusable dialogs).
 */
export async function screenshots(page, name) {
  fs.mkdirSync(SCREENSHOTS, { recursive: true });
  const problems = [];
  for (const colorScheme of ['light', 'dark']) {
    await page.emulateMedia({ colorScheme });
    await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
    await page.screenshot({ path: path.join(SCREENSHOTS, `${name}-${colorScheme}.png`), animations: 'disabled', caret: 'hide' });
    for (const p of await axeProblems(page)) problems.push(`${name} (${colorScheme}): ${p}`);
  }
  await page.emulateMedia({ colorScheme: 'light' });
  if (problems.length) throw new Error(`accessibility (axe-core):\n${problems.join('\n')}`);
}

/** Stops every server and browser this file started; call from `after`. */
export async function cleanup() {
  await Promise.all([...browsers].map((b) => b.close()));
  await Promise.all([...servers].map((s) => s.stop()));
  if (ownRunDir) fs.rmSync(RUN_DIR, { recursive: true, force: true });
}
