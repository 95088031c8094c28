// The agents list: one row per agent, patched in place so focus and selection
// survive updates, and the actions on an agent.

import { state, changed, agentList, isBusy } from './state.js';
import { h, icon, setText, show } from './util.js';
import { toast, confirmDialog } from './feedback.js';
import { navigate } from './router.js';

const rows = new Map();

const ACTIVITY_LABEL = {
  creating: 'Creating…',
  starting: 'Starting…',
  stopping: 'Stopping…',
  deleting: 'Deleting…',
};
const INFLIGHT_LABEL = { start: 'Starting…', stop: 'Stopping…', delete: 'Deleting…' };

/** The badge of an agent: {label, tone}; tone is ok | busy | idle | error. */
export function statusOf(agent) {
  if (agent.activity) return { label: ACTIVITY_LABEL[agent.activity] || `${agent.activity}…`, tone: 'busy' };
  const mine = state.inflight.get(agent.id);
  if (mine && INFLIGHT_LABEL[mine]) return { label: INFLIGHT_LABEL[mine], tone: 'busy' };
  switch (agent.status) {
    case 'creating': return { label: 'Creating…', tone: 'busy' };
    case 'running': return { label: 'Running', tone: 'ok' };
    case 'stopped': return { label: 'Stopped', tone: 'idle' };
    case 'error': return { label: 'Error', tone: 'error' };
    default: return { label: String(agent.status || 'Unknown'), tone: 'idle' };
  }
}

export function badge(agent) {
  const el = h('span', { class: 'badge' }, h('i', { class: 'dot', 'aria-hidden': 'true' }), h('span', { class: 'badge-text' }));
  updateBadge(el, agent);
  return el;
}

export function updateBadge(el, agent) {
  const { label, tone } = statusOf(agent);
  const cls = `badge tone-${tone}`;
  if (el.className !== cls) el.className = cls;
  setText(el.querySelector('.badge-text'), label);
}

function makeRow(id) {
  const name = h('span', { class: 'agent-name' });
  const status = badge({ id, status: 'creating' });
  const meta = h('div', { class: 'agent-meta' });
  const error = h('p', { class: 'agent-error', hidden: true });
  const notice = h('p', { class: 'agent-notice', hidden: true });
  const toggle = h('button', { class: 'btn', type: 'button' });
  const logs = h('button', { class: 'btn', type: 'button', onclick: () => navigate(`logs/${id}`) }, icon('logs'), 'Logs');
  const chat = h('button', { class: 'btn', type: 'button', onclick: () => navigate(`chat/${id}`) }, icon('chat'), 'Chat');
  const del = h('button', { class: 'btn ghost danger-text', type: 'button', onclick: () => removeAgent(id) }, icon('trash'), 'Delete');
  toggle.addEventListener('click', () => {
    const agent = state.agents.get(id);
    if (agent) act(agent, agent.status === 'running' ? 'stop' : 'start');
  });
  const el = h('li', { class: 'agent', dataset: { id } },
    h('div', { class: 'agent-main' },
      h('div', { class: 'agent-title' }, name, status),
      meta, error, notice),
    h('div', { class: 'agent-actions', role: 'group' }, toggle, logs, chat, del));
  return { el, name, status, meta, error, notice, toggle, logs, chat, del, toggleKind: null };
}

function metaParts(agent) {
  const parts = [];
  if (agent.port) parts.push(h('span', { text: `Port ${agent.port}` }));
  if (agent.status === 'running' && agent.gatewayUrl) {
    parts.push(h('code', { class: 'gateway', title: 'Gateway address', text: agent.gatewayUrl }));
    if (!agent.ready && !agent.activity) parts.push(h('span', { class: 'muted', text: 'waiting for the gateway…' }));
  }
  if (agent.providerType) parts.push(h('span', { text: agent.providerType }));
  return parts;
}

function updateRow(row, agent) {
  const busy = isBusy(agent);
  setText(row.name, agent.name);
  updateBadge(row.status, agent);
  row.el.dataset.status = agent.status;
  row.el.setAttribute('aria-busy', busy ? 'true' : 'false');

  const metaKey = JSON.stringify([agent.port, agent.status, agent.gatewayUrl, agent.ready, agent.activity, agent.providerType, agent.exitCode]);
  if (row.metaKey !== metaKey) {
    row.metaKey = metaKey;
    row.meta.replaceChildren(...metaParts(agent).flatMap((p, i) => (i ? [h('span', { class: 'sep', 'aria-hidden': 'true', text: '·' }), p] : [p])));
  }
  const err = agent.status === 'error' ? agent.error || 'The agent failed.' : '';
  setText(row.error, err);
  show(row.error, !!err);
  setText(row.notice, agent.notice || '');
  show(row.notice, !!agent.notice);

  const kind = agent.status === 'running' ? 'stop' : 'start';
  if (row.toggleKind !== kind) {
    row.toggleKind = kind;
    row.toggle.replaceChildren(icon(kind === 'stop' ? 'stop' : 'play'), kind === 'stop' ? 'Stop' : 'Start');
  }
  row.toggle.disabled = busy || (kind === 'start' && !['stopped', 'error'].includes(agent.status));
  row.chat.disabled = busy || agent.status !== 'running';
  row.chat.title = agent.status === 'running' ? '' : 'Chat needs a running agent';
  row.del.disabled = busy;
  row.toggle.setAttribute('aria-label', `${kind === 'stop' ? 'Stop' : 'Start'} ${agent.name}`);
  row.logs.setAttribute('aria-label', `Logs of ${agent.name}`);
  row.chat.setAttribute('aria-label', `Chat with ${agent.name}`);
  row.del.setAttribute('aria-label', `Delete ${agent.name}`);
}

export function renderAgents() {
  const list = document.getElementById('agent-list');
  const agents = agentList();
  for (const [id, row] of rows) {
    if (!state.agents.has(id)) {
      const hadFocus = row.el.contains(document.activeElement);
      row.el.remove();
      rows.delete(id);
      if (hadFocus) document.getElementById('main').focus();
    }
  }
  let previous = null;
  for (const agent of agents) {
    let row = rows.get(agent.id);
    if (!row) {
      row = makeRow(agent.id);
      rows.set(agent.id, row);
    }
    updateRow(row, agent);
    const wanted = previous ? previous.nextSibling : list.firstChild;
    if (wanted !== row.el) list.insertBefore(row.el, wanted);
    previous = row.el;
  }
  const loaded = state.status != null || state.agents.size > 0;
  show(document.getElementById('agents-loading'), !loaded);
  show(document.getElementById('agents-empty'), loaded && agents.length === 0);
  show(list, agents.length > 0);
  const running = agents.filter((a) => a.status === 'running').length;
  setText(document.getElementById('agents-summary'), agents.length
    ? `${agents.length} ${agents.length === 1 ? 'agent' : 'agents'}, ${running} running`
    : '');
}

/** Start / stop an agent. The row follows the server's events; errors become toasts. */
export async function act(agent, kind) {
  if (isBusy(agent)) return;
  state.inflight.set(agent.id, kind);
  changed();
  try {
    await state.api.post(`/agents/${encodeURIComponent(agent.id)}/${kind}`);
  } catch (e) {
    toast(e.message, { kind: 'error', title: `Could not ${kind} ${agent.name}` });
  } finally {
    state.inflight.delete(agent.id);
    changed();
  }
}

async function removeAgent(id) {
  const agent = state.agents.get(id);
  if (!agent || isBusy(agent)) return;
  const ok = await confirmDialog({
    title: `Delete “${agent.name}”?`,
    text: 'Its container, its volumes and its folder (configuration and workspace) are removed. This cannot be undone.',
    confirm: 'Delete agent',
  });
  if (!ok) return;
  state.inflight.set(id, 'delete');
  changed();
  try {
    await state.api.del(`/agents/${encodeURIComponent(id)}`);
    state.agents.delete(id);
    toast(`${agent.name} was deleted.`, { kind: 'ok' });
  } catch (e) {
    toast(e.message, { kind: 'error', title: `Could not delete ${agent.name}` });
  } finally {
    state.inflight.delete(id);
    changed();
  }
}
