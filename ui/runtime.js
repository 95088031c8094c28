// The container runtime as the user sees it: the banner above the agents, the pill
// in the title bar, install help per OS, and the runtime actions.

import { state, changed } from './state.js';
import { h, icon, rich, setText, detectOs, copyText } from './util.js';
import { toast } from './feedback.js';
import { navigate } from './router.js';

/** Install steps per OS; each step is text with `code` spans, or a command. */
export const INSTALL = {
  macos: {
    label: 'macOS',
    steps: [
      { text: 'Install Podman with Homebrew:', command: 'brew install podman' },
      { text: 'or download the installer for macOS from podman.io and run it.' },
      { text: 'Podman runs containers in a small Linux virtual machine on macOS; Clawdock creates it for you next.' },
    ],
  },
  windows: {
    label: 'Windows',
    steps: [
      { text: 'Run the Podman installer for Windows from podman.io, or in a terminal:', command: 'winget install RedHat.Podman' },
      { text: 'Podman runs its machine in WSL 2; if Windows asks, let it enable WSL and restart.' },
      { text: 'Clawdock creates the machine for you next.' },
    ],
  },
  linux: {
    label: 'Linux',
    steps: [
      { text: 'Debian, Ubuntu and derivatives:', command: 'sudo apt install podman' },
      { text: 'Fedora, RHEL and derivatives:', command: 'sudo dnf install podman' },
      { text: 'Other distributions: install `podman` with your package manager. On Linux no virtual machine is needed.' },
    ],
  },
};

function commandLine(command) {
  const button = h('button', {
    class: 'icon-btn', type: 'button', title: 'Copy', 'aria-label': `Copy “${command}”`,
    onclick: async () => {
      const ok = await copyText(command);
      button.replaceChildren(icon(ok ? 'check' : 'copy'));
      setTimeout(() => button.replaceChildren(icon('copy')), 1500);
    },
  }, icon('copy'));
  return h('div', { class: 'command' }, h('code', { text: command }), button);
}

function stepList(os) {
  return h('ol', { class: 'install-steps' }, INSTALL[os].steps.map((s) =>
    h('li', null, h('span', null, rich(s.text)), s.command ? commandLine(s.command) : null)));
}

/** Install help for the user's OS, with the other systems folded away. */
export function installHelp() {
  const mine = detectOs();
  const others = Object.keys(INSTALL).filter((os) => os !== mine);
  return h('div', { class: 'install', dataset: { os: mine } },
    h('h3', { text: `Install Podman on ${INSTALL[mine].label}` }),
    stepList(mine),
    others.map((os) => h('details', { class: 'other-os' },
      h('summary', { text: `On ${INSTALL[os].label}` }),
      stepList(os))));
}

// ---- runtime actions ---------------------------------------------------------

/** The runtime action in flight: 'check' | 'start' | 'setup' | null. */
export let runtimeBusy = null;

export async function runtimeAction(kind, body) {
  if (runtimeBusy) return null;
  runtimeBusy = kind;
  changed();
  try {
    const status = await state.api.post(`/runtime/${kind}`, body);
    if (status && status.state) {
      state.status = status;
    }
    if (kind === 'check' && status && !status.available) {
      toast('Podman is still not found. Install it, then check again.', { kind: 'error' });
    }
    return status;
  } catch (e) {
    const title = { check: 'Could not look for Podman', start: 'Could not start Podman', setup: 'Could not set up Podman' }[kind];
    toast(e.message, { kind: 'error', title });
    return null;
  } finally {
    runtimeBusy = null;
    changed();
  }
}

// ---- banner ------------------------------------------------------------------

function busyButton(kind, label, busyLabel, cls = 'btn') {
  const busy = runtimeBusy === kind;
  return h('button', {
    class: cls, type: 'button', disabled: !!runtimeBusy,
    onclick: () => runtimeAction(kind),
  }, busy ? h('span', { class: 'spinner', 'aria-hidden': 'true' }) : null, busy ? busyLabel : label);
}

function banner({ tone, title, text, body, actions, live }) {
  return h('section', { class: `banner tone-${tone}`, role: live ? 'alert' : 'region', 'aria-label': title },
    h('div', { class: 'banner-icon' }, icon(tone === 'error' ? 'warn' : tone === 'warn' ? 'warn' : 'info')),
    h('div', { class: 'banner-body' },
      h('h2', { text: title }),
      text ? h('p', null, rich(text)) : null,
      body || null),
    actions && actions.length ? h('div', { class: 'banner-actions' }, actions) : null);
}

function runtimeBanner(status) {
  const setup = status.setup;
  const settingUp = setup && setup.running;
  switch (status.state) {
    case 'unavailable':
      return banner({
        tone: 'error',
        title: 'Podman is not installed',
        text: 'Clawdock runs each agent in a Podman container, and Podman was not found on this computer. Install it, then check again.',
        body: installHelp(),
        actions: [busyButton('check', 'Check again', 'Checking…', 'btn primary')],
      });
    case 'absent':
      if (settingUp) return setupRunningBanner(setup);
      return banner({
        tone: 'info',
        title: 'Set up Podman’s machine',
        text: 'Podman runs containers inside a small Linux virtual machine on this computer. It is created once: about 1 GB to download.',
        actions: [h('button', { class: 'btn primary', type: 'button', onclick: () => navigate('setup') }, 'Set up…')],
      });
    case 'stopped':
      return banner({
        tone: 'info',
        title: 'Podman’s machine is stopped',
        text: 'Agents need it running. Starting it takes a few seconds.',
        actions: [busyButton('start', 'Start', 'Starting…', 'btn primary')],
      });
    case 'starting':
      if (settingUp) return setupRunningBanner(setup);
      return banner({
        tone: 'info',
        title: 'Starting Podman…',
        text: 'Agents can start as soon as it is ready.',
        body: h('div', { class: 'progress indeterminate', role: 'progressbar', 'aria-label': 'Starting Podman' }, h('div', { class: 'bar' })),
      });
    case 'error':
      return banner({
        tone: 'error',
        live: true,
        title: 'Podman has a problem',
        body: h('pre', { class: 'error-text', text: status.error || 'Unknown error.' }),
        actions: [
          busyButton('start', 'Retry', 'Retrying…', 'btn primary'),
          setup ? h('button', { class: 'btn', type: 'button', onclick: () => navigate('setup') }, 'Open setup') : null,
        ].filter(Boolean),
      });
    default:
      return null;
  }
}

function setupRunningBanner(setup) {
  const pct = setup.step === 'init' && setup.percent != null ? Math.round(setup.percent) : null;
  return banner({
    tone: 'info',
    title: setup.step === 'start' ? 'Starting Podman’s machine…' : 'Creating Podman’s machine…',
    text: pct != null ? `Downloading and preparing: ${pct}%.` : 'This runs in the background.',
    actions: [h('button', { class: 'btn', type: 'button', onclick: () => navigate('setup') }, 'Show progress')],
  });
}

let lastKey = null;

export function renderBanners() {
  const box = document.getElementById('banners');
  const s = state.status;
  const setup = s && s.setup;
  const key = JSON.stringify([
    s && s.state, s && s.error, s && s.storeWarning, setup && setup.running, setup && setup.step,
    setup && setup.step === 'init' && setup.percent != null ? Math.round(setup.percent) : null,
    runtimeBusy, state.shutdown, state.route.view,
  ]);
  if (key === lastKey) return;
  lastKey = key;
  // Keep focus where it was when the same banner comes back (e.g. after "Check again").
  const focusedText = box.contains(document.activeElement) ? document.activeElement.textContent : null;
  const items = [];
  if (state.shutdown) {
    const n = state.shutdown.stopping;
    items.push(banner({
      tone: 'warn', live: true, title: 'Clawdock is shutting down',
      text: n ? `Stopping ${n} ${n === 1 ? 'agent' : 'agents'}…` : 'Stopping…',
    }));
  }
  if (s && state.route.view !== 'setup') {
    const b = runtimeBanner(s);
    if (b) items.push(b);
  }
  if (s && s.storeWarning) {
    items.push(banner({ tone: 'warn', title: 'The agent list could not be read', text: s.storeWarning }));
  }
  box.replaceChildren(...items);
  if (focusedText) {
    const again = [...box.querySelectorAll('button')].find((b) => b.textContent === focusedText);
    if (again) again.focus();
  }
}

const PILL = {
  ready: ['ok', (s) => (s.podmanVersion ? `Podman ${s.podmanVersion}` : 'Podman ready')],
  starting: ['busy', () => 'Podman starting…'],
  stopped: ['idle', () => 'Podman stopped'],
  absent: ['idle', () => 'Podman not set up'],
  unavailable: ['error', () => 'Podman missing'],
  error: ['error', () => 'Podman error'],
};

export function renderPills() {
  const pill = document.getElementById('runtime-pill');
  const s = state.status;
  if (!s || state.conn === 'no-token' || state.conn === 'unauthorized') {
    pill.hidden = true;
  } else {
    const [tone, text] = PILL[s.state] || ['idle', () => s.state];
    pill.hidden = false;
    pill.className = `pill tone-${tone}`;
    pill.replaceChildren(h('i', { class: 'dot', 'aria-hidden': 'true' }), text(s));
    pill.title = `Container runtime: ${s.state}${s.mode ? ` (${s.mode === 'vm' ? 'Podman machine' : 'native Podman'})` : ''}`;
  }
  const conn = document.getElementById('conn-pill');
  const label = { connecting: 'Connecting…', reconnecting: 'Reconnecting…' }[state.conn];
  conn.hidden = !label;
  if (label) {
    conn.className = 'pill conn tone-busy';
    setText(conn, label);
  }
}
