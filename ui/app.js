// Clawdock's window: finds the API, follows its event stream, and renders the
// agents page, the setup wizard and the agent sheet from one state (state.js).
// The page never polls: everything after the first snapshot arrives over /events.

import { createBackupDialog, installRestore } from './backups.js';
import { Api, EventFeed, locateApi, splitHash } from './api.js';
import { createStore } from './state.js';
import { parseRoute, navigate, ROUTE_EVENT } from './router.js';
import { createActions } from './actions.js';
import { createAgentsView } from './agents.js';
import { createBanners, renderPills } from './runtime.js';
import { createDialog } from './create.js';
import { createPanel } from './panel.js';
import { createWizard } from './wizard.js';
import { createAnnouncer } from './announce.js';
import { createSettingsDialog } from './agentsettings.js';
import { createExportDialog } from './export.js';
import { createAppMenu, createQuitView } from './menu.js';
import { createStatsFeed } from './stats.js';
import { h, rich, typingTarget, show } from './util.js';

const $ = (id) => document.getElementById(id);

function renderGate(state) {
  const view = $('gate-view');
  const key = state.local.conn;
  if (view.dataset.key === key) return;
  view.dataset.key = key;
  const unauthorized = key === 'unauthorized';
  view.replaceChildren(h('div', { class: 'gate' },
    h('h1', { text: unauthorized ? 'This link’s token is not valid' : 'Open Clawdock from its link' }),
    h('p', null, rich(unauthorized
      ? 'Clawdock refused the access token this page has. The token changes when Clawdock’s data folder changes.'
      : 'This page needs Clawdock’s access token, which comes in the link.')),
    h('p', null, rich('Open the address `clawdock url` prints (it ends in `#token=…`; `clawdock serve` prints it too when run in a terminal), or use the Clawdock window from the tray.'))));
}

function start() {
  const store = createStore();
  const { state } = store;
  const actions = createActions(store);
  const create = createDialog(store, actions);
  const dialogs = {
    settings: createSettingsDialog(store, actions),
    export: createExportDialog(store, actions),
    backups: createBackupDialog(store),
  };
  installRestore(store);
  const stats = createStatsFeed(store);
  const views = [
    createBanners(actions),
    createAppMenu(actions),
    createAgentsView(actions, dialogs),
    createWizard(store, actions, () => create.open()),
    createPanel(store, actions),
    () => create.render(),
    () => dialogs.settings.render(),
    createQuitView(),
  ];
  const announce = createAnnouncer();

  const render = () => {
    const { conn, route } = state.local;
    const gated = conn === 'no-token' || conn === 'unauthorized';
    const setup = route.view === 'setup';
    show($('gate-view'), gated);
    show($('agents-view'), !gated && !setup);
    show($('wizard-view'), !gated && setup);
    show($('banners'), !gated);
    if (gated) renderGate(state);

    const s = state.server.status;
    // Decided on the first settled state: right after start the server says `probing`
    // until it has looked at the machine once (then maybe `starting` a while).
    if (s && !state.local.autoSetupDone && s.state !== 'probing' && s.state !== 'starting') {
      store.markAutoSetupDone();
      if (s.state === 'absent' && s.needsSetup && route.view === 'agents' && !route.panel) navigate('setup');
    }

    const newAgent = $('new-agent');
    newAgent.disabled = gated || !s || !s.available;
    newAgent.title = s && s.state === 'unavailable' ? 'Install Podman first' : 'New agent (N)';
    newAgent.hidden = setup;
    $('empty-create').disabled = newAgent.disabled;

    renderPills(state);
    if (!gated) for (const view of views) view(state);
    stats();
    announce(state);
    document.title = setup ? 'Set up Podman – Clawdock' : 'Clawdock';
  };

  const onRoute = () => {
    const { token } = splitHash(location.hash);
    if (token && !window.__CLAWDOCK__ && state.api) {
      // A fresh link pasted into this tab: take its token.
      const found = locateApi();
      if (found.token !== state.api.token) {
        location.reload();
        return;
      }
    }
    store.setRoute(parseRoute(location.hash));
  };

  const keyboard = (e) => {
    if (e.defaultPrevented || e.metaKey || e.ctrlKey || e.altKey) return;
    if (document.querySelector('dialog[open]')) return;
    if (typingTarget(e.target)) return;
    if ((e.key === 'n' || e.key === 'N') && !$('new-agent').disabled && !$('new-agent').hidden) {
      e.preventDefault();
      create.open();
    } else if (e.key === 'Escape' && state.local.route.view === 'setup') {
      navigate('');
    }
  };

  const { base, token } = locateApi();
  $('new-agent').addEventListener('click', () => create.open());
  $('empty-create').addEventListener('click', () => create.open());
  $('home').addEventListener('click', () => navigate(''));
  document.addEventListener('keydown', keyboard);
  window.addEventListener('hashchange', onRoute);
  window.addEventListener('popstate', onRoute);
  window.addEventListener(ROUTE_EVENT, onRoute);
  store.subscribe(render);
  store.setRoute(parseRoute(location.hash));

  if (!token) {
    store.setConn('no-token');
    return;
  }
  store.setApi(new Api(base, token));
  let settingsAsked = false;
  const feed = new EventFeed(state.api, {
    onEvent: (event) => store.applyEvent(event),
    onState: (conn) => {
      // Quitting: the stream's end is Clawdock's exit; nothing to reconnect to.
      if (conn === 'reconnecting' && (state.local.quitting || state.server.shutdown)) {
        feed.stop();
        store.setQuitting('gone');
        return;
      }
      store.setConn(conn);
      if (conn === 'live' && !settingsAsked) {
        settingsAsked = true;
        state.api.get('/settings').then((reply) => store.loadSettings(reply), () => {});
      }
    },
  });
  feed.start();
}

start();
