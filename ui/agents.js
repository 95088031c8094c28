// The agents list: one row per agent, patched in place (dom.js `keyed`) so focus and
// selection survive updates.

import { agentList, isBusy } from './state.js';
import { h, icon, setText, show } from './util.js';
import { keyed } from './dom.js';
import { navigate } from './router.js';

const ACTIVITY_LABEL = {
  creating: 'Creating…',
  starting: 'Starting…',
  stopping: 'Stopping…',
  deleting: 'Deleting…',
};
const INFLIGHT_LABEL = { start: 'Starting…', stop: 'Stopping…', delete: 'Deleting…' };

/** The badge of an agent: {label, tone}; tone is ok | busy | idle | error. */
export function statusOf(agent, inflight) {
  if (agent.activity) return { label: ACTIVITY_LABEL[agent.activity] || `${agent.activity}…`, tone: 'busy' };
  const mine = inflight && inflight.get(agent.id);
  if (mine && INFLIGHT_LABEL[mine]) return { label: INFLIGHT_LABEL[mine], tone: 'busy' };
  switch (agent.status) {
    case 'creating': return { label: 'Creating…', tone: 'busy' };
    case 'running': return { label: 'Running', tone: 'ok' };
    case 'stopped': return { label: 'Stopped', tone: 'idle' };
    case 'error': return { label: 'Error', tone: 'error' };
    default: return { label: String(agent.status || 'Unknown'), tone: 'idle' };
  }
}

export function badge() {
  return h('span', { class: 'badge' }, h('i', { class: 'dot', 'aria-hidden': 'true' }), h('span', { class: 'badge-text' }));
}

export function updateBadge(el, agent, inflight) {
  const { label, tone } = statusOf(agent, inflight);
  const cls = `badge tone-${tone}`;
  if (el.className !== cls) el.className = cls;
  setText(el.querySelector('.badge-text'), label);
}

/** The parts of an agent's meta line: [{key, text, cls?, title?}]. */
function metaParts(agent) {
  const parts = [];
  if (agent.port) parts.push({ key: 'port', text: `Port ${agent.port}` });
  if (agent.status === 'running' && agent.gatewayUrl) {
    parts.push({ key: 'gw', text: agent.gatewayUrl, tag: 'code', cls: 'gateway', title: 'Gateway address' });
    if (!agent.ready && !agent.activity) parts.push({ key: 'wait', text: 'waiting for the gateway…', cls: 'muted' });
  }
  if (agent.providerType) parts.push({ key: 'provider', text: agent.providerType });
  return parts.flatMap((p, i) => (i ? [{ key: `sep-${p.key}`, text: '·', cls: 'sep', hidden: true }, p] : [p]));
}

function makeRow(actions, id) {
  const { store } = actions;
  const el = h('li', { class: 'agent', dataset: { id } },
    h('div', { class: 'agent-main' },
      h('div', { class: 'agent-title' }, h('span', { class: 'agent-name' }), badge()),
      h('div', { class: 'agent-meta' }),
      h('p', { class: 'agent-error', hidden: true }),
      h('p', { class: 'agent-notice', hidden: true })),
    h('div', { class: 'agent-actions', role: 'group' },
      h('button', {
        class: 'btn toggle', type: 'button',
        onclick: () => {
          const agent = store.state.server.agents.get(id);
          if (agent) actions.act(agent, agent.status === 'running' ? 'stop' : 'start');
        },
      }),
      h('button', { class: 'btn logs', type: 'button', onclick: () => navigate(`logs/${id}`) }, icon('logs'), 'Logs'),
      h('button', { class: 'btn chat', type: 'button', onclick: () => navigate(`chat/${id}`) }, icon('chat'), 'Chat'),
      h('button', { class: 'btn ghost danger-text del', type: 'button', onclick: () => actions.remove(id) }, icon('trash'), 'Delete')));
  return el;
}

function updateRow(el, agent, state) {
  const q = (sel) => el.querySelector(sel);
  const busy = isBusy(state, agent);
  setText(q('.agent-name'), agent.name);
  updateBadge(q('.badge'), agent, state.local.inflight);
  el.dataset.status = agent.status;
  el.setAttribute('aria-busy', busy ? 'true' : 'false');

  keyed(q('.agent-meta'), metaParts(agent), (p) => p.key,
    (p) => h(p.tag || 'span', { class: p.cls, title: p.title, 'aria-hidden': p.hidden ? 'true' : null }),
    (node, p) => setText(node, p.text));
  const err = agent.status === 'error' ? agent.error || 'The agent failed.' : '';
  setText(q('.agent-error'), err);
  show(q('.agent-error'), !!err);
  setText(q('.agent-notice'), agent.notice || '');
  show(q('.agent-notice'), !!agent.notice);

  const toggle = q('.toggle');
  const kind = agent.status === 'running' ? 'stop' : 'start';
  if (toggle.dataset.kind !== kind) {
    toggle.dataset.kind = kind;
    toggle.replaceChildren(icon(kind === 'stop' ? 'stop' : 'play'), kind === 'stop' ? 'Stop' : 'Start');
  }
  toggle.disabled = busy || (kind === 'start' && !['stopped', 'error'].includes(agent.status));
  const chat = q('.chat');
  chat.disabled = busy || agent.status !== 'running';
  chat.title = agent.status === 'running' ? '' : 'Chat needs a running agent';
  q('.del').disabled = busy;
  toggle.setAttribute('aria-label', `${kind === 'stop' ? 'Stop' : 'Start'} ${agent.name}`);
  q('.logs').setAttribute('aria-label', `Logs of ${agent.name}`);
  chat.setAttribute('aria-label', `Chat with ${agent.name}`);
  q('.del').setAttribute('aria-label', `Delete ${agent.name}`);
}

/** The agents page: render(state). */
export function createAgentsView(actions) {
  const $ = (id) => document.getElementById(id);
  return function render(state) {
    const list = $('agent-list');
    const agents = agentList(state.server);
    const lostFocus = keyed(list, agents, (a) => a.id, (a) => makeRow(actions, a.id), (el, a) => updateRow(el, a, state));
    if (lostFocus) $('main').focus();
    const loaded = state.server.status != null || state.server.agents.size > 0;
    show($('agents-loading'), !loaded);
    show($('agents-empty'), loaded && agents.length === 0);
    show(list, agents.length > 0);
    const running = agents.filter((a) => a.status === 'running').length;
    setText($('agents-summary'), agents.length
      ? `${agents.length} ${agents.length === 1 ? 'agent' : 'agents'}, ${running} running`
      : '');
  };
}
