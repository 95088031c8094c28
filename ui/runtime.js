// The container runtime as the user sees it: the banners above the agents, the pill
// in the title bar, install help per OS, and the buttons of the runtime actions.

import { h, icon, rich, setText, detectOs, copyText } from './util.js';
import { keyed, setBusy } from './dom.js';
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

// ---- banners -----------------------------------------------------------------

const BUSY_LABELS = { check: 'Checking…', start: 'Starting…', setup: 'Setting up…' };

/**
 * A button running a runtime action (`check`, `start`, `setup`); `runtimeButtons`
 * keeps every such button's busy state current.
 */
export function runtimeButton(actions, kind, label, { cls = 'btn primary', busyLabel, onclick } = {}) {
  const button = h('button', {
    class: cls, type: 'button',
    dataset: { runtime: kind, label, busyLabel: busyLabel || BUSY_LABELS[kind] },
    onclick: onclick || (() => actions.runtime(kind)),
  }, label);
  return button;
}

/** Patches every runtime button under `root` to the action in flight. */
export function runtimeButtons(root, busyKind) {
  for (const b of root.querySelectorAll('button[data-runtime]')) {
    setBusy(b, { busy: busyKind === b.dataset.runtime, disabled: !!busyKind, label: b.dataset.label, busyLabel: b.dataset.busyLabel });
  }
}

function banner({ tone, title, text, body, actions, live }) {
  return h('section', { class: `banner tone-${tone}`, role: live ? 'alert' : 'region', 'aria-label': title },
    h('div', { class: 'banner-icon' }, icon(tone === 'info' ? 'info' : 'warn')),
    h('div', { class: 'banner-body' },
      h('h2', { text: title }),
      text ? h('p', { class: 'banner-text' }, rich(text)) : null,
      body || null),
    actions && actions.length ? h('div', { class: 'banner-actions' }, actions) : null);
}

function setupPercent(setup) {
  return setup.step === 'init' && setup.percent != null ? Math.round(setup.percent) : null;
}

/** The banners for a state: [{key, build, text?}]; same key, same banner (patched). */
export function bannersFor(state, actions) {
  const s = state.server.status;
  const items = [];
  if (state.server.shutdown) {
    const n = state.server.shutdown.stopping;
    items.push({
      key: 'shutdown',
      text: n ? `Stopping ${n} ${n === 1 ? 'agent' : 'agents'}…` : 'Stopping…',
      build: () => banner({ tone: 'warn', live: true, title: 'Clawdock is shutting down', text: ' ' }),
    });
  }
  if (s && state.local.route.view !== 'setup') {
    const setup = s.setup;
    const settingUp = setup && setup.running && (s.state === 'absent' || s.state === 'starting');
    if (settingUp) {
      const pct = setupPercent(setup);
      items.push({
        key: `setup-${setup.step}`,
        text: pct != null ? `Downloading and preparing: ${pct}%.` : 'This runs in the background.',
        build: () => banner({
          tone: 'info',
          title: setup.step === 'start' ? 'Starting Podman’s machine…' : 'Creating Podman’s machine…',
          text: ' ',
          actions: [h('button', { class: 'btn', type: 'button', onclick: () => navigate('setup') }, 'Show progress')],
        }),
      });
    } else if (s.state === 'unavailable') {
      items.push({
        key: 'unavailable',
        build: () => banner({
          tone: 'error',
          title: 'Podman is not installed',
          text: 'Clawdock runs each agent in a Podman container, and Podman was not found on this computer. Install it, then check again.',
          body: installHelp(),
          actions: [runtimeButton(actions, 'check', 'Check again')],
        }),
      });
    } else if (s.state === 'absent') {
      items.push({
        key: 'absent',
        build: () => banner({
          tone: 'info',
          title: 'Set up Podman’s machine',
          text: 'Podman runs containers inside a small Linux virtual machine on this computer. It is created once: about 1 GB to download.',
          actions: [h('button', { class: 'btn primary', type: 'button', onclick: () => navigate('setup') }, 'Set up…')],
        }),
      });
    } else if (s.state === 'stopped') {
      items.push({
        key: 'stopped',
        build: () => banner({
          tone: 'info',
          title: 'Podman’s machine is stopped',
          text: 'Agents need it running. Starting it takes a few seconds.',
          actions: [runtimeButton(actions, 'start', 'Start')],
        }),
      });
    } else if (s.state === 'starting') {
      items.push({
        key: 'starting',
        build: () => banner({
          tone: 'info',
          title: 'Starting Podman…',
          text: 'Agents can start as soon as it is ready.',
          body: h('div', { class: 'progress indeterminate', role: 'progressbar', 'aria-label': 'Starting Podman' }, h('div', { class: 'bar' })),
        }),
      });
    } else if (s.state === 'error') {
      items.push({
        key: `error-${s.error || ''}`,
        build: () => banner({
          tone: 'error',
          live: true,
          title: 'Podman has a problem',
          body: h('pre', { class: 'error-text', text: s.error || 'Unknown error.' }),
          actions: [
            runtimeButton(actions, 'start', 'Retry', { busyLabel: 'Retrying…' }),
            setup ? h('button', { class: 'btn', type: 'button', onclick: () => navigate('setup') }, 'Open setup') : null,
          ].filter(Boolean),
        }),
      });
    }
  }
  if (s && s.storeWarning) {
    items.push({
      key: `store-${s.storeWarning}`,
      build: () => banner({ tone: 'warn', title: 'The agent list could not be read', text: s.storeWarning }),
    });
  }
  return items;
}

/** The banners above the page: render(state). */
export function createBanners(actions) {
  return function render(state) {
    const box = document.getElementById('banners');
    keyed(box, bannersFor(state, actions), (b) => b.key, (b) => b.build(), (el, b) => {
      if (b.text) setText(el.querySelector('.banner-text'), b.text);
    });
    runtimeButtons(box, state.local.runtimeBusy);
  };
}

// ---- pills -------------------------------------------------------------------

const PILL = {
  ready: ['ok', (s) => (s.podmanVersion ? `Podman ${s.podmanVersion}` : 'Podman ready')],
  starting: ['busy', () => 'Podman starting…'],
  stopped: ['idle', () => 'Podman stopped'],
  absent: ['idle', () => 'Podman not set up'],
  unavailable: ['error', () => 'Podman missing'],
  error: ['error', () => 'Podman error'],
};

export function renderPills(state) {
  const pill = document.getElementById('runtime-pill');
  const s = state.server.status;
  const conn = state.local.conn;
  if (!s || conn === 'no-token' || conn === 'unauthorized') {
    pill.hidden = true;
  } else {
    const [tone, text] = PILL[s.state] || ['idle', () => s.state];
    pill.hidden = false;
    const cls = `pill tone-${tone}`;
    if (pill.className !== cls) pill.className = cls;
    if (!pill.querySelector('.dot')) pill.replaceChildren(h('i', { class: 'dot', 'aria-hidden': 'true' }), h('span', { class: 'pill-text' }));
    setText(pill.querySelector('.pill-text'), text(s));
    pill.title = `Container runtime: ${s.state}${s.mode ? ` (${s.mode === 'vm' ? 'Podman machine' : 'native Podman'})` : ''}`;
  }
  const connPill = document.getElementById('conn-pill');
  const label = { connecting: 'Connecting…', reconnecting: 'Reconnecting…' }[conn];
  connPill.hidden = !label;
  if (label) {
    connPill.className = 'pill conn tone-busy';
    setText(connPill, label);
  }
}
