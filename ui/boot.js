// The page's entry: imports app.js, and imports it again when fetching one of its
// modules failed. A change of the host's network (a container runtime adding or
// removing an interface, as rootful Podman does when a container starts or stops;
// Wi-Fi, VPN) makes Chromium fail, with net::ERR_NETWORK_CHANGED, every request still
// waiting for one of its 6 connections to this address, and the app's modules are
// fetched about a dozen at once. Without a second try the page stayed on
// "Connecting…" for good. Failed fetches are not cached, so a new import fetches
// only what is missing; a module that threw is not run twice (its error is cached).
// No static import here: this file must not depend on a second fetch.

const DELAYS = [150, 300, 600, 1200, 2500, 5000];

async function boot() {
  for (let attempt = 0; ; attempt += 1) {
    try {
      await import('./app.js');
      return;
    } catch (e) {
      if (attempt >= DELAYS.length) {
        const loading = document.getElementById('agents-loading');
        if (loading) loading.textContent = 'Clawdock’s page did not load completely. Reload the page to try again.';
        throw e;
      }
      await new Promise((resolve) => { setTimeout(resolve, DELAYS[attempt]); });
    }
  }
}

boot();
