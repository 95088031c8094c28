// The header's menu (Update all, Launch at login, Quit), the per-agent "More" menus,
// the launch-at-login switches, and the window shown while Clawdock quits.
// Menus are <details>: keyboard reachable without script; Escape and a click
// elsewhere close them, and focus goes back to the menu's button.

import { setText, show } from './util.js';
import { setBusy } from './dom.js';

/** Makes a <details class="menu"> behave like a menu button. */
export function menuBehaviour(details) {
  const summary = details.querySelector('summary');
  summary.setAttribute('aria-haspopup', 'true');
  const sync = () => summary.setAttribute('aria-expanded', details.open ? 'true' : 'false');
  sync();
  details.addEventListener('toggle', () => {
    sync();
    if (details.open) details.querySelector('.menu-item:not([disabled]):not([hidden])')?.focus();
  });
  details.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && details.open) {
      e.preventDefault();
      e.stopPropagation();
      details.open = false;
      summary.focus();
    } else if ((e.key === 'ArrowDown' || e.key === 'ArrowUp') && details.open) {
      const items = [...details.querySelectorAll('.menu-item')].filter((el) => !el.hidden && !el.disabled);
      const focusable = items.map((el) => (el.tagName === 'LABEL' ? el.querySelector('input') : el));
      const at = focusable.indexOf(document.activeElement);
      const next = (at + (e.key === 'ArrowDown' ? 1 : -1) + focusable.length) % focusable.length;
      e.preventDefault();
      focusable[next]?.focus();
    }
  });
  // Choosing an item closes the menu and puts focus on its button first (capture
  // phase, before the item's own handler), so a dialog the item opens gives focus
  // back there.
  details.addEventListener('click', (e) => {
    const item = e.target.closest('button.menu-item');
    if (item && details.contains(item)) {
      details.open = false;
      summary.focus();
    }
  }, true);
  return details;
}

/** Closes open menus on a click outside them (installed once). */
export function closeMenusOnOutsideClick() {
  document.addEventListener('mousedown', (e) => {
    for (const d of document.querySelectorAll('details.menu[open]')) {
      if (!d.contains(e.target)) d.open = false;
    }
  });
}

/** Every launch-at-login switch (header menu, wizard) follows the server's setting. */
export function renderLoginSwitches(state) {
  const value = state.server.settings ? state.server.settings.launchAtLogin : null;
  const pending = state.local.loginPending;
  for (const input of document.querySelectorAll('input[data-login-switch]')) {
    const holder = input.closest('[data-login-holder]') || input.closest('label');
    // `null` under `clawdock serve`: there is no login item to switch.
    show(holder, value === true || value === false);
    input.checked = pending != null ? pending : !!value;
    input.disabled = pending != null;
  }
}

/** The header menu's items: render(state). */
export function createAppMenu(actions) {
  const $ = (id) => document.getElementById(id);
  menuBehaviour($('app-menu'));
  closeMenusOnOutsideClick();
  $('update-all').addEventListener('click', () => actions.updateAll());
  $('quit').addEventListener('click', () => actions.quit());
  document.addEventListener('change', (e) => {
    if (e.target.matches && e.target.matches('input[data-login-switch]')) actions.setLaunchAtLogin(e.target.checked);
  });
  return function render(state) {
    const running = state.local.inflight.has('*update');
    const agents = state.server.agents.size;
    setBusy($('update-all'), {
      busy: running, disabled: running || !agents, label: 'Update all agents', busyLabel: 'Updating all agents…',
    });
    renderLoginSwitches(state);
    renderAgentProxy($('agent-proxy'), state.local.agentProxy);
  };
}

/** The agents' proxy and CA bundle, as `GET /settings` says (credentials masked). */
function renderAgentProxy(line, proxy) {
  const from = { host: 'from this computer', clawdock: 'CLAWDOCK_AGENT_PROXY' };
  const parts = [];
  if (proxy && (proxy.httpsProxy || proxy.httpProxy)) {
    parts.push(`Agents' proxy: ${proxy.httpsProxy || proxy.httpProxy} (${from[proxy.source] || proxy.source})`);
  } else if (proxy && proxy.source === 'off') {
    parts.push('Agents\' proxy: off');
  }
  if (proxy && proxy.caBundle) parts.push(`Extra CA: ${proxy.caBundle}`);
  line.textContent = parts.join(' · ');
  line.hidden = parts.length === 0;
}

/**
 * "Stopping agents…" from the moment Clawdock quits (asked here or from the tray:
 * the `shutdown` event) until its event stream ends; then it says it has quit.
 */
export function createQuitView() {
  const dialog = document.getElementById('quit-dialog');
  // Nothing to go back to: Escape does not close it.
  dialog.addEventListener('cancel', (e) => e.preventDefault());
  return function render(state) {
    const { quitting } = state.local;
    const shutdown = state.server.shutdown;
    const on = !!quitting || !!shutdown;
    if (!on) {
      if (dialog.open) dialog.close();
      return;
    }
    const gone = quitting === 'gone';
    setText(document.getElementById('quit-title'), gone ? 'Clawdock has quit' : 'Stopping agents…');
    setText(document.getElementById('quit-text'), gone
      ? 'Its agents are stopped. You can close this window.'
      : shutdown && shutdown.stopping
        ? `Clawdock stops ${shutdown.stopping} ${shutdown.stopping === 1 ? 'agent' : 'agents'}, then exits.`
        : 'Clawdock stops its agents’ containers, then exits.');
    show(document.getElementById('quit-spinner'), !gone);
    if (!dialog.open) {
      for (const d of document.querySelectorAll('dialog[open]')) d.close();
      dialog.showModal();
      document.getElementById('quit-body').focus();
    }
  };
}
