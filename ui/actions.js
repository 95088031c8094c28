// What the user asks of the server. Each action marks itself in flight in the local
// slice and reports failure as a toast; what changed arrives over the event stream.
// A reply is only an acknowledgement (an id to open, a refusal to show), never state.

import { toast, confirmDialog } from './feedback.js';

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

  return { store, act, remove, runtime, create };
}
