// The page's one state, and the only module that holds mutable state.
// - `server`: what the event stream said (runtime status, agents, the server's rules
//   in `meta`, setup output, shutdown). Written only by `applyEvent`, a pure reducer of
//   `/events` messages: a POST's answer is an acknowledgement, never state, so a late
//   answer cannot overwrite a newer state from the stream.
// - `local`: what this page is doing (connection, route, requests in flight, drafts,
//   the wizard's choices, chat conversations), changed only through the functions here.
// Views are render(state) functions; `changed()` re-renders once per task.

/** The server slice before the first snapshot. */
export function emptyServer() {
  return { status: null, agents: new Map(), meta: null, setupLines: [], pull: new Map(), settings: null, shutdown: null, selfUpdate: null, restarting: null };
}

/**
 * Activities during which an image may be pulled (`pullProgress` lines are kept): a
 * create, an update, and a start that makes a missing container again.
 */
export const PULLING = new Set(['creating', 'starting', 'updating']);

/** How many lines of `podman machine init/start` the wizard keeps. */
export const SETUP_LINES = 300;

/**
 * Applies one `/events` message to the server slice and returns the new slice (the
 * old one is not changed). Unknown messages return the same slice.
 */
export function applyEvent(server, event) {
  switch (event && event.type) {
    case 'snapshot':
      return {
        ...server,
        status: event.status || null,
        agents: new Map((event.agents || []).map((a) => [a.id, a])),
        meta: event.meta || server.meta,
        pull: new Map([...server.pull].filter(([id]) => (event.agents || []).some((a) => a.id === id && PULLING.has(a.activity)))),
        shutdown: null,
      };
    case 'runtime':
      return { ...server, status: event.status || server.status };
    case 'agent': {
      if (!event.agent || !event.agent.id) return server;
      const agents = new Map(server.agents);
      agents.set(event.agent.id, event.agent);
      // The last pull line lives only as long as the pull's operation.
      if (!server.pull.has(event.agent.id) || PULLING.has(event.agent.activity)) return { ...server, agents };
      const pull = new Map(server.pull);
      pull.delete(event.agent.id);
      return { ...server, agents, pull };
    }
    case 'agentRemoved': {
      if (!server.agents.has(event.id)) return server;
      const agents = new Map(server.agents);
      agents.delete(event.id);
      const pull = new Map(server.pull);
      pull.delete(event.id);
      return { ...server, agents, pull };
    }
    case 'pullProgress': {
      if (typeof event.line !== 'string' || !event.id) return server;
      const pull = new Map(server.pull);
      const counted = Number.isFinite(event.doneBytes) && event.totalBytes > 0;
      const etaSecs = Number.isFinite(event.etaSecs) ? event.etaSecs : null;
      pull.set(event.id, { line: event.line, bytes: counted ? { done: event.doneBytes, total: event.totalBytes, etaSecs } : null });
      return { ...server, pull };
    }
    case 'settings':
      if (!('launchAtLogin' in event)) return server;
      return { ...server, settings: { launchAtLogin: event.launchAtLogin } };
    case 'setupProgress':
      if (typeof event.line !== 'string') return server;
      return { ...server, setupLines: [...server.setupLines, { step: event.step, line: event.line }].slice(-SETUP_LINES) };
    case 'shutdown':
      return { ...server, shutdown: { stopping: event.stopping } };
    case 'selfUpdate':
      return event.status ? { ...server, selfUpdate: event.status } : server;
    case 'restarting':
      return typeof event.version === 'string' ? { ...server, restarting: event.version } : server;
    default:
      return server;
  }
}

/** Sorted for display: by name, ignoring case. */
export function agentList(server) {
  return [...server.agents.values()].sort((a, b) =>
    a.name.localeCompare(b.name, undefined, { sensitivity: 'base' }));
}

/** Is something happening to this agent (server activity or our own request)? */
export function isBusy(state, agent) {
  return !!agent.activity || state.local.inflight.has(agent.id);
}

/** Activities that `POST /agents/{id}/cancel` ends. */
export const CANCELLABLE = new Set(['creating', 'starting', 'restarting', 'updating']);

/** Is a name valid by the server's rule (`meta.name`)? Unknown until the rule came. */
export function nameOk(meta, name) {
  if (!meta) return false;
  return new RegExp(meta.name.pattern).test(name) && [...name].length <= meta.name.maxLength;
}

/** Does a field's value meet the server's rule for it (`meta.providers[].fields[]`)? */
export function fieldOk(field, value) {
  const v = String(value ?? '').trim();
  if (!v) return !field.required;
  return !field.pattern || new RegExp(field.pattern).test(v);
}

/** The store: the state above, its writers, and the render subscription. */
export function createStore() {
  const state = {
    /** The Api client (api.js), once located. */
    api: null,
    server: emptyServer(),
    local: {
      /** 'connecting' | 'live' | 'reconnecting' | 'unauthorized' | 'no-token' */
      conn: 'connecting',
      /** {view: 'agents'|'setup', panel?: 'logs'|'chat', id?} from location.hash. */
      route: { view: 'agents' },
      /** id -> the action this page has in flight for that agent ('start', 'stop', ...). */
      inflight: new Map(),
      /** Ids the server acknowledged creating whose first event has not come yet. */
      expected: new Set(),
      /** The runtime action in flight: 'check' | 'start' | 'setup' | null. */
      runtimeBusy: null,
      /** The create dialog's request is in flight. */
      submitting: false,
      /** The agents' proxy from `GET /settings` (credentials masked), or null. */
      agentProxy: null,
      /** The wizard opened itself once already (first load with no machine). */
      autoSetupDone: false,
      /** The wizard's choices before setup runs; sizes are filled from `meta`. */
      wizard: { step: 'check', agents: null, cpus: null, memoryMiB: null, diskGiB: null },
      /** Chat messages by agent id, kept while the page lives. */
      conversations: new Map(),
      /** The last `/agents/stats` sample by agent id; empty while no stats stream is open. */
      stats: new Map(),
      /** The launch-at-login value a PUT is asking for, while it is in flight. */
      loginPending: null,
      /** 'asked' once this page asked Clawdock to quit; 'gone' when its stream ended after. */
      quitting: null,
    },
  };
  const listeners = new Set();
  let queued = false;

  const changed = () => {
    if (queued) return;
    queued = true;
    queueMicrotask(() => {
      queued = false;
      for (const fn of listeners) fn(state);
    });
  };

  return {
    state,
    subscribe(fn) { listeners.add(fn); },
    changed,
    /** The event stream's writer: the only way into `state.server`. */
    applyEvent(event) {
      const next = applyEvent(state.server, event);
      if (next === state.server) return;
      if (event.type === 'agent' && event.agent) state.local.expected.delete(event.agent.id);
      state.server = next;
      changed();
    },
    setApi(api) { state.api = api; },
    setConn(conn) { state.local.conn = conn; changed(); },
    setRoute(route) {
      state.local.route = route;
      // The desktop has no tray: said once, the note stays while the window lives.
      if (route.notice === 'no-tray') state.local.noTray = true;
      changed();
    },
    /** `GET /app/update`'s answer, unless the stream said newer already. */
    loadSelfUpdate(reply) {
      if (!reply || state.server.selfUpdate) return;
      this.applyEvent({ type: 'selfUpdate', status: reply });
    },
    setInflight(id, kind) {
      if (kind) state.local.inflight.set(id, kind);
      else state.local.inflight.delete(id);
      changed();
    },
    expect(id) {
      if (!state.server.agents.has(id)) state.local.expected.add(id);
      changed();
    },
    setRuntimeBusy(kind) { state.local.runtimeBusy = kind; changed(); },
    setSubmitting(on) { state.local.submitting = on; changed(); },
    markAutoSetupDone() { state.local.autoSetupDone = true; },
    /**
     * `GET /settings` read once at start, fed through the reducer as a `settings`
     * message; a `settings` event that came first is newer and wins.
     */
    loadSettings(reply) {
      if (!reply) return;
      // Read-only, set by environment variables: it changes only with a restart.
      state.local.agentProxy = reply.agentProxy || null;
      if (state.server.settings) { changed(); return; }
      this.applyEvent({ type: 'settings', launchAtLogin: reply.launchAtLogin });
    },
    setStats(sample) {
      state.local.stats = new Map(((sample && sample.agents) || []).map((a) => [a.id, a]));
      changed();
    },
    setLoginPending(value) { state.local.loginPending = value; changed(); },
    setQuitting(phase) { state.local.quitting = phase; changed(); },
    setWizard(patch) { Object.assign(state.local.wizard, patch); changed(); },
    /** The conversation with an agent (created empty on first use). */
    conversation(id) {
      if (!state.local.conversations.has(id)) state.local.conversations.set(id, []);
      return state.local.conversations.get(id);
    },
  };
}
