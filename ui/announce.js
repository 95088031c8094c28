// Says status changes aloud for screen readers (an aria-live region): an agent that
// starts running, stops or fails, and the container runtime's state.

import { statusOf } from './agents.js';

/** What to announce between two renders: sentences for what changed. */
export function announcements(before, after) {
  const said = [];
  if (before.runtime && after.runtime && before.runtime !== after.runtime) said.push(`Podman: ${after.runtime}.`);
  for (const [id, label] of after.agents) {
    const was = before.agents.get(id);
    if (was && was.label !== label.label) said.push(`${label.name}: ${label.label}.`);
  }
  return said;
}

function snapshot(state) {
  return {
    runtime: state.server.status ? state.server.status.state : null,
    agents: new Map([...state.server.agents.values()].map((a) => [a.id, { name: a.name, label: statusOf(a).label }])),
  };
}

export function createAnnouncer() {
  let last = null;
  return function announce(state) {
    const now = snapshot(state);
    const said = last ? announcements(last, now) : [];
    last = now;
    if (!said.length) return;
    const region = document.getElementById('announcer');
    region.textContent = said.join(' ');
  };
}
