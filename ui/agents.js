// The agents list: one row per agent, patched in place (dom.js `keyed`) so focus and
// selection survive updates.

import { agentList, isBusy, CANCELLABLE, PULLING } from './state.js';
import { h, icon, setText, show, formatBytes } from './util.js';
import { keyed } from './dom.js';
import { navigate } from './router.js';
import { menuBehaviour } from './menu.js';
import { statsText } from './outcomes.js';
import { byteFigures } from './progress.js';

const ACTIVITY_LABEL = {
  creating: 'Creating…',
  starting: 'Starting…',
  restarting: 'Restarting…',
  updating: 'Updating…',
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
  // The gateway's address is in the agent's sheet; "Dashboard" is the way in.
  if (agent.status === 'running' && !agent.ready && !agent.activity) {
    parts.push({ key: 'wait', text: 'waiting for the gateway…', cls: 'muted' });
  }
  if (agent.providerType) parts.push({ key: 'provider', text: agent.providerType });
  if (agent.updateAvailable) {
    parts.push({ key: 'update', text: 'update available', cls: 'update-available',
      title: 'A newer build of its image is out: Update moves the agent to it.' });
  }
  return parts.flatMap((p, i) => (i ? [{ key: `sep-${p.key}`, text: '·', cls: 'sep', hidden: true }, p] : [p]));
}

function makeRow(actions, dialogs, id) {
  const { store } = actions;
  const more = menuBehaviour(h('details', { class: 'menu more' },
    h('summary', { class: 'btn ghost icon-only', title: 'More actions' }, icon('more')),
    h('div', { class: 'menu-items' },
      h('button', { class: 'menu-item settings', type: 'button', onclick: () => dialogs.settings.open(id) }, 'Settings…'),
      h('button', { class: 'menu-item update', type: 'button', onclick: () => actions.update(id) }, 'Update'),
      h('button', { class: 'menu-item backups', type: 'button', onclick: () => dialogs.backups.open(id) }, 'Backups…'),
      h('button', { class: 'menu-item export', type: 'button', onclick: () => dialogs.export.open(id) }, 'Export for Kubernetes…'),
      h('button', { class: 'menu-item rotate-token', type: 'button', onclick: () => actions.rotateToken(id) }, 'New gateway token…'))));
  const el = h('li', { class: 'agent', dataset: { id } },
    h('div', { class: 'agent-main' },
      h('div', { class: 'agent-title' }, h('span', { class: 'agent-name' }), badge()),
      h('div', { class: 'agent-meta' }),
      h('div', { class: 'agent-stats', hidden: true },
        h('div', { class: 'progress mini', 'aria-hidden': 'true' }, h('div', { class: 'bar' })),
        h('span', { class: 'stats-text' })),
      h('div', { class: 'agent-pull', hidden: true },
        h('div', { class: 'progress mini', role: 'progressbar', 'aria-label': 'Image download' }, h('div', { class: 'bar' })),
        h('span', { class: 'pull-text' })),
      h('div', { class: 'agent-error', hidden: true },
        h('p', { class: 'error-text' }),
        h('details', { class: 'error-details', hidden: true },
          h('summary', { text: 'Details' }),
          h('pre', { class: 'details-text' }))),
      h('p', { class: 'agent-notice', hidden: true })),
    h('div', { class: 'agent-actions', role: 'group' },
      h('button', {
        class: 'btn toggle', type: 'button',
        onclick: () => {
          const agent = store.state.server.agents.get(id);
          if (!agent) return;
          if (CANCELLABLE.has(agent.activity)) actions.cancel(id);
          else actions.act(agent, agent.status === 'running' ? 'stop' : 'start');
        },
      }),
      h('button', { class: 'btn dashboard', type: 'button', hidden: true, onclick: () => actions.dashboard(id) }, icon('open'), 'Dashboard'),
      h('button', { class: 'btn logs', type: 'button', onclick: () => navigate(`logs/${id}`) }, icon('logs'), 'Logs'),
      h('button', { class: 'btn chat', type: 'button', onclick: () => navigate(`chat/${id}`) }, icon('chat'), 'Chat'),
      more,
      h('button', { class: 'btn ghost danger-text del', type: 'button', onclick: () => actions.remove(id) }, icon('trash'), 'Delete')));
  return el;
}

/**
 * The row's pull progress: when the server counted bytes, a bar with its figures
 * (percent, bytes, ETA); otherwise Podman's last line under a moving bar.
 */
function updatePull(el, agent, pull) {
  const on = !!pull && PULLING.has(agent.activity);
  show(el, on);
  if (!on) return;
  const { line, bytes } = pull;
  const bar = el.querySelector('.progress');
  bar.classList.toggle('indeterminate', !bytes);
  if (bytes) {
    const pct = Math.round((bytes.done / bytes.total) * 100);
    bar.firstChild.style.width = `${pct}%`;
    bar.setAttribute('aria-valuenow', String(pct));
    bar.setAttribute('aria-valuetext', `${formatBytes(bytes.done)} of ${formatBytes(bytes.total)}`);
  } else {
    bar.firstChild.style.width = '';
    bar.removeAttribute('aria-valuenow');
    bar.removeAttribute('aria-valuetext');
  }
  setText(el.querySelector('.pull-text'), bytes ? `Downloading the image: ${byteFigures(bytes)}` : line);
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
  // A gateway that keeps dying: the server starts it again after a back-off and
  // says how often it crashed and when it tries next.
  const crash = agent.crashLoop || null;
  const failed = agent.status === 'error' ? agent.error || 'The agent failed.' : '';
  // The server's sentence names no button: here, trying again is Start (a
  // crash loop tries again by itself).
  const err = failed && crash ? `${failed} (${crash.summary})`
    : failed ? `${failed} Press Start to try again.` : '';
  setText(q('.agent-error .error-text'), err);
  show(q('.agent-error'), !!err);
  // Podman's own words behind an error said as advice, else the dead gateway's
  // last lines.
  const lastLines = crash && crash.lastLogs ? crash.lastLogs.join('\n') : '';
  const details = err ? agent.errorDetails || lastLines : '';
  setText(q('.agent-error .details-text'), details);
  show(q('.agent-error .error-details'), !!details);
  setText(q('.agent-notice'), agent.notice || '');
  show(q('.agent-notice'), !!agent.notice);

  const sample = agent.status === 'running' ? state.local.stats.get(agent.id) : null;
  const stats = statsText(sample);
  show(q('.agent-stats'), !!stats);
  if (stats) {
    setText(q('.stats-text'), stats.text);
    q('.agent-stats .bar').style.width = `${Math.round((stats.fraction || 0) * 100)}%`;
  }
  updatePull(q('.agent-pull'), agent, state.server.pull.get(agent.id));

  const toggle = q('.toggle');
  const cancellable = CANCELLABLE.has(agent.activity);
  const kind = cancellable ? 'cancel' : agent.status === 'running' ? 'stop' : 'start';
  const LABELS = { cancel: 'Cancel', stop: 'Stop', start: 'Start' };
  if (toggle.dataset.kind !== kind) {
    toggle.dataset.kind = kind;
    toggle.replaceChildren(icon(kind === 'start' ? 'play' : kind === 'stop' ? 'stop' : 'close'), LABELS[kind]);
  }
  toggle.disabled = cancellable ? false : busy || (kind === 'start' && !['stopped', 'error'].includes(agent.status));
  const dash = q('.dashboard');
  show(dash, agent.status === 'running');
  dash.disabled = busy || !agent.ready;
  dash.title = agent.ready ? 'Open the agent’s own dashboard in the browser' : 'The gateway is not ready yet';
  dash.setAttribute('aria-label', `Open the dashboard of ${agent.name}`);
  const updating = state.local.inflight.has('*update');
  q('.update').disabled = busy || updating;
  q('.update').setAttribute('aria-label', `Update ${agent.name}`);
  q('.settings').disabled = busy;
  q('.settings').setAttribute('aria-label', `Settings of ${agent.name}`);
  q('.export').setAttribute('aria-label', `Export ${agent.name} for Kubernetes`);
  q('.rotate-token').disabled = busy;
  q('.rotate-token').setAttribute('aria-label', `New gateway token for ${agent.name}`);
  q('.backups').setAttribute('aria-label', `Backups of ${agent.name}`);
  q('.more summary').setAttribute('aria-label', `More actions for ${agent.name}`);
  const chat = q('.chat');
  chat.disabled = busy || agent.status !== 'running';
  chat.title = agent.status === 'running' ? '' : 'Chat needs a running agent';
  q('.del').disabled = busy;
  toggle.setAttribute('aria-label', kind === 'cancel' ? `Cancel ${agent.activity} of ${agent.name}` : `${LABELS[kind]} ${agent.name}`);
  q('.logs').setAttribute('aria-label', `Logs of ${agent.name}`);
  chat.setAttribute('aria-label', `Chat with ${agent.name}`);
  q('.del').setAttribute('aria-label', `Delete ${agent.name}`);
}

/** The agents page: render(state). */
export function createAgentsView(actions, dialogs) {
  const $ = (id) => document.getElementById(id);
  return function render(state) {
    const list = $('agent-list');
    const agents = agentList(state.server);
    const lostFocus = keyed(list, agents, (a) => a.id, (a) => makeRow(actions, dialogs, a.id), (el, a) => updateRow(el, a, state));
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
