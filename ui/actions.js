// What the user asks of the server. Each action marks itself in flight in the local
// slice and reports failure as a toast; what changed arrives over the event stream.
// A reply is only an acknowledgement (an id to open, a refusal to show), never state.

import { toast, confirmDialog } from './feedback.js';
import { updateOutcome, updateSummary } from './outcomes.js';

const RUNTIME_TITLES = { check: 'Could not look for Podman', start: 'Could not start Podman', setup: 'Could not set up Podman' };

export function createActions(store) {
  const { state } = store;

  /** Start / stop an agent. */
  async function act(agent, kind) {
    if (agent.activity || state.local.inflight.has(agent.id)) return;
    store.setInflight(agent.id, kind);
    try {
      await state.api.post(`/agents/${encodeURIComponent(agent.id)}/${kind}`);
    } catch (e) {
      toast(e.message, { kind: 'error', title: `Could not ${kind} ${agent.name}` });
    } finally {
      store.setInflight(agent.id, null);
    }
  }

  /** Deletes an agent after asking; the row goes when the server says it is gone. */
  async function remove(id) {
    const agent = state.server.agents.get(id);
    if (!agent || agent.activity || state.local.inflight.has(id)) return;
    const ok = await confirmDialog({
      title: `Delete “${agent.name}”?`,
      text: 'Its container, its volumes and its folder (configuration and workspace) are removed. This cannot be undone.',
      confirm: 'Delete agent',
    });
    if (!ok) return;
    store.setInflight(id, 'delete');
    try {
      await state.api.del(`/agents/${encodeURIComponent(id)}`);
      toast(`${agent.name} was deleted.`, { kind: 'ok' });
    } catch (e) {
      toast(e.message, { kind: 'error', title: `Could not delete ${agent.name}` });
    } finally {
      store.setInflight(id, null);
    }
  }

  /** POST /runtime/<kind>: check | start | setup. Resolves true when accepted. */
  async function runtime(kind, body) {
    if (state.local.runtimeBusy) return false;
    store.setRuntimeBusy(kind);
    try {
      const reply = await state.api.post(`/runtime/${kind}`, body);
      if (kind === 'check' && reply && !reply.available) {
        toast('Podman is still not found. Install it, then check again.', { kind: 'error' });
      }
      return true;
    } catch (e) {
      toast(e.message, { kind: 'error', title: RUNTIME_TITLES[kind] });
      return false;
    } finally {
      store.setRuntimeBusy(null);
    }
  }

  /** POST /agents/create; resolves the new agent's id and name (the reply's). */
  async function create(body) {
    store.setSubmitting(true);
    try {
      const reply = await state.api.post('/agents/create', body);
      const agent = reply && reply.agent;
      if (agent) store.expect(agent.id);
      return agent ? { id: agent.id, name: agent.name } : null;
    } finally {
      store.setSubmitting(false);
    }
  }

  const agentPath = (id, rest = '') => `/agents/${encodeURIComponent(id)}${rest}`;
  const nameOf = (id) => { const a = state.server.agents.get(id); return a ? a.name : null; };

  /** PATCH /agents/{id}: the provider parts; throws the server's ApiError for the dialog. */
  async function edit(id, body) {
    store.setInflight(id, 'edit');
    try {
      await state.api.call('PATCH', agentPath(id), body);
    } finally {
      store.setInflight(id, null);
    }
  }

  /** POST /agents/{id}/update; the outcome (updated, up to date, rolled back) as a toast. */
  async function update(id) {
    const agent = state.server.agents.get(id);
    if (!agent || agent.activity || state.local.inflight.has(id)) return;
    store.setInflight(id, 'update');
    try {
      const reply = await state.api.post(agentPath(id, '/update'));
      const { text, kind } = updateOutcome(agent.name, reply);
      toast(text, { kind, title: kind === 'error' ? 'Update rolled back' : null });
    } catch (e) {
      if (e.code === 'cancelled') toast(`The update of ${agent.name} was cancelled.`, { kind: 'info' });
      else toast(e.message, { kind: 'error', title: `Could not update ${agent.name}` });
    } finally {
      store.setInflight(id, null);
    }
  }

  /** POST /agents/update-all; one toast sums up every agent's outcome. */
  async function updateAll() {
    if (state.local.inflight.has('*update')) return;
    store.setInflight('*update', 'update');
    try {
      const reply = await state.api.post('/agents/update-all');
      const { text, kind } = updateSummary(reply && reply.results, nameOf);
      toast(text, { kind, title: kind === 'error' ? 'Not every agent was updated' : null });
    } catch (e) {
      toast(e.message, { kind: 'error', title: 'Could not update the agents' });
    } finally {
      store.setInflight('*update', null);
    }
  }

  /** POST /agents/{id}/cancel: ends a create, start, restart or update in progress. */
  async function cancel(id) {
    const agent = state.server.agents.get(id);
    if (!agent) return;
    try {
      await state.api.post(agentPath(id, '/cancel'));
    } catch (e) {
      toast(e.message, { kind: 'error', title: `Could not cancel ${agent.name}` });
    }
  }

  /**
   * POST /agents/{id}/dashboard, then opens its one-time address (no token in it),
   * which signs in to the agent's own Control UI. The tray app's window
   * (`__CLAWDOCK__` injected) is navigated to it and hands it to the default
   * browser: a `window.open` after the request's await counts as no click there,
   * and WebKit drops it. A browser opens a new tab.
   */
  async function dashboard(id) {
    const agent = state.server.agents.get(id);
    if (!agent) return;
    try {
      const { url } = await state.api.post(agentPath(id, '/dashboard'));
      if (window.__CLAWDOCK__) window.location.assign(url);
      else window.open(url, '_blank', 'noopener');
    } catch (e) {
      toast(e.message, { kind: 'error', title: `Could not open the dashboard of ${agent.name}` });
    }
  }

  /**
   * POST /agents/{id}/rotate-token after asking: a new gateway token, for when the
   * old one leaked. The container is made again with it; whatever holds the old
   * one (a signed-in dashboard, a client of the gateway) must sign in again.
   */
  async function rotateToken(id) {
    const agent = state.server.agents.get(id);
    if (!agent || agent.activity || state.local.inflight.has(id)) return;
    const ok = await confirmDialog({
      title: `New gateway token for “${agent.name}”?`,
      text: `For when its token may have leaked. ${agent.name}’s container is made again with a new token${agent.status === 'running' ? ' (it restarts)' : ''}, and its gateway refuses the old one from then on: open its dashboard again, and give the new token to any program that used the old one. Its configuration, workspace and port stay.`,
      confirm: 'Make a new token',
    });
    if (!ok) return;
    store.setInflight(id, 'rotate-token');
    try {
      await state.api.post(agentPath(id, '/rotate-token'));
      toast(`${agent.name} has a new gateway token.`, { kind: 'ok' });
    } catch (e) {
      toast(e.message, { kind: 'error', title: `Could not give ${agent.name} a new token` });
    } finally {
      store.setInflight(id, null);
    }
  }

  /** GET /agents/{id}/export?format=kubernetes: the answer (it holds secrets). */
  function exportKubernetes(id) {
    return state.api.get(agentPath(id, '/export?format=kubernetes'));
  }

  /** PUT /settings; the `settings` event that follows changes the switch. */
  async function setLaunchAtLogin(on) {
    if (state.local.loginPending != null) return;
    store.setLoginPending(on);
    try {
      await state.api.call('PUT', '/settings', { launchAtLogin: on });
    } catch (e) {
      toast(e.message, { kind: 'error', title: 'Could not change launch at login' });
    } finally {
      store.setLoginPending(null);
    }
  }

  /** Asks, then POST /shutdown: Clawdock stops its agents and exits. */
  async function quit() {
    if (state.local.quitting) return;
    const running = [...state.server.agents.values()].filter((a) => a.status === 'running').length;
    const ok = await confirmDialog({
      title: 'Quit Clawdock?',
      text: running
        ? `Clawdock stops its ${running} running ${running === 1 ? 'agent' : 'agents'} and exits. Their folders and settings stay; they start again from this window or the tray.`
        : 'Clawdock exits. Agents and their folders stay.',
      confirm: 'Quit',
    });
    if (!ok) return;
    store.setQuitting('asked');
    try {
      await state.api.post('/shutdown');
    } catch (e) {
      // The process may exit before its answer is read; the stream tells the rest.
      if (e.status !== 0) {
        store.setQuitting(null);
        toast(e.message, { kind: 'error', title: 'Could not quit Clawdock' });
      }
    }
  }

  return {
    store, act, remove, runtime, create, edit, update, updateAll, cancel, dashboard, rotateToken, exportKubernetes,
    setLaunchAtLogin, quit,
  };
}
