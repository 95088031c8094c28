// Clawdock's window: finds the API, follows its event stream, and renders the
// agents page, the setup wizard and the agent sheet from one state.
// The page never polls: everything after the first snapshot arrives over /events.

import { Api, EventFeed, locateApi, splitHash } from './api.js';
import { state, changed, subscribe, applyEvent } from './state.js';
import { parseRoute, setRouteHandler, navigate } from './router.js';
import { renderAgents } from './agents.js';
import { renderBanners, renderPills } from './runtime.js';
import { setupCreateDialog, openCreateDialog } from './create.js';
import { setupPanel, renderPanel } from './panel.js';
import { renderWizard } from './wizard.js';
import { h, rich, typingTarget, show } from './util.js';

const $ = (id) => document.getElementById(id);

/** Opens the wizard by itself once, when the machine is absent on first load. */
let autoSetupDone = false;

function onRoute() {
  const { token } = splitHash(location.hash);
  if (token && !window.__CLAWDOCK__) {
    // A fresh link pasted into this tab: take its token.
    const found = locateApi();
    if (state.api && found.token !== state.api.token) {
      location.reload();
      return;
    }
  }
  state.route = parseRoute();
  changed();
}

function render() {
  const gated = state.conn === 'no-token' || state.conn === 'unauthorized';
  const setup = state.route.view === 'setup';
  show($('gate-view'), gated);
  show($('agents-view'), !gated && !setup);
  show($('wizard-view'), !gated && setup);
  show($('banners'), !gated);
  if (gated) renderGate();

  const s = state.status;
  // Decided on the first settled state: right after start the server says `starting`
  // until it has looked at the machine once.
  if (s && !autoSetupDone && s.state !== 'starting') {
    autoSetupDone = true;
    if (s.state === 'absent' && s.needsSetup && state.route.view === 'agents' && !state.route.panel) navigate('setup');
  }

  const newAgent = $('new-agent');
  newAgent.disabled = gated || !s || !s.available;
  newAgent.title = s && !s.available ? 'Install Podman first' : 'New agent (N)';
  newAgent.hidden = setup;
  $('empty-create').disabled = newAgent.disabled;

  renderPills();
  renderBanners();
  if (!gated) {
    renderAgents();
    renderWizard();
    renderPanel();
  }
  document.title = setup ? 'Set up Podman – Clawdock' : 'Clawdock';
}

function renderGate() {
  const view = $('gate-view');
  const key = state.conn;
  if (view.dataset.key === key) return;
  view.dataset.key = key;
  const unauthorized = state.conn === 'unauthorized';
  view.replaceChildren(h('div', { class: 'gate' },
    h('h1', { text: unauthorized ? 'This link’s token is not valid' : 'Open Clawdock from its link' }),
    h('p', null, rich(unauthorized
      ? 'Clawdock refused the access token this page has. The token changes when Clawdock’s data folder changes.'
      : 'This page needs Clawdock’s access token, which comes in the link.')),
    h('p', null, rich('Open the address `clawdock url` prints (it ends in `#token=…`; `clawdock serve` prints it too when run in a terminal), or use the Clawdock window from the tray.'))));
}

function keyboard(e) {
  if (e.defaultPrevented || e.metaKey || e.ctrlKey || e.altKey) return;
  if (document.querySelector('dialog[open]')) return;
  if (typingTarget(e.target)) return;
  if ((e.key === 'n' || e.key === 'N') && !$('new-agent').disabled && !$('new-agent').hidden) {
    e.preventDefault();
    openCreateDialog();
  } else if (e.key === 'Escape' && state.route.view === 'setup') {
    navigate('');
  }
}

function start() {
  const { base, token } = locateApi();
  setupCreateDialog();
  setupPanel();
  $('new-agent').addEventListener('click', openCreateDialog);
  $('empty-create').addEventListener('click', openCreateDialog);
  $('home').addEventListener('click', () => navigate(''));
  document.addEventListener('keydown', keyboard);
  setRouteHandler(onRoute);
  window.addEventListener('hashchange', onRoute);
  window.addEventListener('popstate', onRoute);
  subscribe(render);
  state.route = parseRoute();

  if (!token) {
    state.conn = 'no-token';
    changed();
    return;
  }
  state.api = new Api(base, token);
  const feed = new EventFeed(state.api, {
    onEvent: applyEvent,
    onState: (conn) => {
      state.conn = conn;
      changed();
    },
  });
  feed.start();
  changed();
}

start();
