// What each running agent costs: follows `GET /agents/stats` (SSE, one sample every
// 2 s) while the agents page is on screen, and closes it when the page is hidden or
// the view changes, so the server stops running `podman stats`. A stream, not polling:
// one request stays open; after a failure it is opened again with a growing delay.

/** Should the stats stream be open? The agents page visible with a running agent. */
export function wantStats({ conn, route, hidden, quitting, agents }) {
  return conn === 'live' && !hidden && !quitting && route.view === 'agents' && !route.panel
    && agents.some((a) => a.status === 'running');
}

export function createStatsFeed(store) {
  const { state } = store;
  let controller = null;
  let failures = 0;
  let timer = null;

  const close = () => {
    clearTimeout(timer);
    timer = null;
    if (controller) controller.abort();
    controller = null;
    if (state.local.stats.size) store.setStats(null);
  };

  const open = async () => {
    const mine = new AbortController();
    controller = mine;
    try {
      await state.api.stream('GET', '/agents/stats', {
        signal: mine.signal,
        onData: (data) => {
          let sample;
          try { sample = JSON.parse(data); } catch { return; }
          failures = 0;
          store.setStats(sample);
        },
      });
    } catch (e) {
      if (e && e.name === 'AbortError') return;
    }
    if (controller !== mine) return;
    // Ended or failed while still wanted: again after a while.
    controller = null;
    failures += 1;
    store.setStats(null);
    timer = setTimeout(() => { timer = null; sync(); }, Math.min(60000, 2000 * 2 ** Math.min(failures - 1, 5)));
  };

  const sync = () => {
    const want = wantStats({
      conn: state.local.conn, route: state.local.route, hidden: document.hidden,
      quitting: state.local.quitting || state.server.shutdown, agents: [...state.server.agents.values()],
    });
    if (!want) {
      close();
      failures = 0;
    } else if (!controller && !timer && state.api) {
      open();
    }
  };

  document.addEventListener('visibilitychange', sync);
  return sync;
}
