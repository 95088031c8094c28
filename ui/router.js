// Routes live in location.hash so the desktop shell can navigate by setting it:
// '' (agents), 'setup', 'logs/<agentId>', 'chat/<agentId>', and two notes over the
// agents page: 'update' (the newer Clawdock's release notes) and 'no-tray' (the
// desktop shows no tray: where the controls are).

import { splitHash } from './api.js';

/** The route of a location hash (pure: no access to `location` here). */
export function parseRoute(hash) {
  const { route } = splitHash(hash);
  const [name, ...rest] = route.split('/');
  const id = rest.join('/');
  if (name === 'setup') return { view: 'setup' };
  if (name === 'update' || name === 'no-tray') return { view: 'agents', notice: name };
  if ((name === 'logs' || name === 'chat') && id) {
    let decoded = id;
    try { decoded = decodeURIComponent(id); } catch { /* keep as is */ }
    return { view: 'agents', panel: name, id: decoded };
  }
  return { view: 'agents' };
}

/** Fired on window when `navigate` changed the route without a hashchange. */
export const ROUTE_EVENT = 'clawdock:route';

/** Goes to a route; '' is the agents page (no fragment left in the address). */
export function navigate(route) {
  const target = route ? `#${route}` : '';
  if (location.hash === target || (!route && !location.hash)) {
    window.dispatchEvent(new Event(ROUTE_EVENT));
    return;
  }
  if (route) {
    location.hash = route;
  } else {
    history.pushState(history.state, '', location.pathname + location.search);
    window.dispatchEvent(new Event(ROUTE_EVENT));
  }
}
