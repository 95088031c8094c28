// Used by run.sh for servers a failed test left running: deletes their agents (so
// no container stays behind) through the API named in <home>/api.json.
// Usage: node tests/ui/lib/teardown.mjs <CLAWDOCK_HOME>...

import fs from 'node:fs';
import path from 'node:path';

for (const home of process.argv.slice(2)) {
  try {
    const { url, token } = JSON.parse(fs.readFileSync(path.join(home, 'api.json'), 'utf8'));
    const headers = { Authorization: `Bearer ${token}` };
    const { agents } = await (await fetch(`${url}/agents`, { headers, signal: AbortSignal.timeout(5000) })).json();
    await Promise.all(agents.map((a) => fetch(`${url}/agents/${a.id}`, { method: 'DELETE', headers, signal: AbortSignal.timeout(30000) })
      .then((r) => console.error(`tests/ui: deleted agent ${a.name} (${r.status})`))
      .catch((e) => console.error(`tests/ui: could not delete agent ${a.name}: ${e.message}`))));
  } catch (e) {
    console.error(`tests/ui: no teardown for ${home}: ${e.message}`);
  }
}
