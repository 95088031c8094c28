// The page's state: what the event stream told us plus what this page is doing.
// Views read it and re-render after `changed()`; only the event stream and the
// user's own actions change it.

export const state = {
  /** The Api client (api.js), once located. */
  api: null,
  /** 'connecting' | 'live' | 'reconnecting' | 'unauthorized' | 'no-token' */
  conn: 'connecting',
  /** The runtime status (docs/API.md), null until the first snapshot. */
  status: null,
  /** id -> agent object, as the server last sent it. */
  agents: new Map(),
  /** id -> the action this page has in flight for that agent ('start', 'stop', ...). */
  inflight: new Map(),
  /** The lines `podman machine init/start` printed, for the wizard's details. */
  setupLines: [],
  /** `{stopping}` once the server announced its shutdown. */
  shutdown: null,
  /** {view: 'agents'|'setup', panel?: 'logs'|'chat', id?} from location.hash. */
  route: { view: 'agents' },
};

const listeners = new Set();
let queued = false;

export function subscribe(fn) {
  listeners.add(fn);
}

/** Re-renders once after the current task, however often it was called. */
export function changed() {
  if (queued) return;
  queued = true;
  queueMicrotask(() => {
    queued = false;
    for (const fn of listeners) fn(state);
  });
}

/** Applies one `/events` message. */
export function applyEvent(event) {
  switch (event.type) {
    case 'snapshot':
      state.status = event.status || null;
      state.agents = new Map((event.agents || []).map((a) => [a.id, a]));
      state.shutdown = null;
      break;
    case 'runtime':
      state.status = event.status || state.status;
      break;
    case 'agent':
      if (event.agent && event.agent.id) state.agents.set(event.agent.id, event.agent);
      break;
    case 'agentRemoved':
      state.agents.delete(event.id);
      break;
    case 'setupProgress':
      if (typeof event.line === 'string') {
        state.setupLines.push({ step: event.step, line: event.line });
        if (state.setupLines.length > 300) state.setupLines.splice(0, state.setupLines.length - 300);
      }
      break;
    case 'shutdown':
      state.shutdown = { stopping: event.stopping };
      break;
    default:
      return;
  }
  changed();
}

/** Sorted for display: by name, ignoring case. */
export function agentList() {
  return [...state.agents.values()].sort((a, b) =>
    a.name.localeCompare(b.name, undefined, { sensitivity: 'base' }));
}

/** Is something happening to this agent (server activity or our own request)? */
export function isBusy(agent) {
  return !!agent.activity || state.inflight.has(agent.id);
}
