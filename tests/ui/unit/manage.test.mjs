// The pure parts of managing an agent from the window, without a browser: the update
// outcomes, the stats sentence, the settings edit's
// body, the export command, when the stats stream is wanted, and the reducer's
// handling of `pullProgress` and `settings` messages.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { updateOutcome, updateSummary, statsText } from '../../../ui/outcomes.js';
import { editBody, editFieldOk } from '../../../ui/agentsettings.js';
import { exportCommand, exportFileName } from '../../../ui/export.js';
import { wantStats } from '../../../ui/stats.js';
import { applyEvent, emptyServer } from '../../../ui/state.js';

const MiB = 1024 ** 2;
const GiB = 1024 ** 3;

test('an update’s outcome and Update all’s summary', () => {
  assert.deepEqual(updateOutcome('alpha', { updated: true }), { text: 'alpha was updated to a newer image.', kind: 'ok' });
  assert.deepEqual(updateOutcome('alpha', { updated: false }), { text: 'alpha is up to date.', kind: 'ok' });
  assert.deepEqual(updateOutcome('alpha', { updated: false, rolledBack: 'the gateway did not get healthy' }),
    { text: 'alpha was rolled back to its previous image: the gateway did not get healthy', kind: 'error' });
  const names = { a: 'alpha', b: 'beta', c: 'gamma' };
  const nameOf = (id) => names[id];
  assert.deepEqual(updateSummary([{ id: 'a', updated: false }, { id: 'b', updated: false }], nameOf),
    { text: 'All agents are up to date.', kind: 'ok' });
  assert.deepEqual(updateSummary([{ id: 'a', updated: false }], nameOf), { text: 'alpha is up to date.', kind: 'ok' });
  assert.deepEqual(updateSummary([{ id: 'a', updated: true }, { id: 'b', updated: false }, { id: 'c', error: 'pull failed.', code: 'podman_failed' }], nameOf),
    { text: 'Updated: alpha. Up to date: beta. gamma failed: pull failed.', kind: 'error' });
  assert.deepEqual(updateSummary([{ id: 'a', updated: false, rolledBack: 'unhealthy' }], nameOf),
    { text: 'alpha was rolled back: unhealthy.', kind: 'error' });
  assert.equal(updateSummary([], nameOf).kind, 'info');
  assert.match(updateSummary([{ id: 'zz', updated: true }], nameOf).text, /zz/, 'an unknown id is named by its id');
});

test('stats: memory used of the limit, CPU', () => {
  assert.deepEqual(statsText({ memoryBytes: 256 * MiB, memoryLimitBytes: 2 * GiB, cpuPercent: 3.25, pids: 9 }),
    { text: 'Memory 256 MiB of 2.00 GiB  ·  CPU 3.3%', fraction: 0.125 });
  assert.deepEqual(statsText({ memoryBytes: 100 * MiB, memoryLimitBytes: 0, cpuPercent: null }),
    { text: 'Memory 100 MiB  ·  CPU …', fraction: null }, 'the first sample has no CPU figure');
  assert.equal(statsText({ memoryBytes: MiB, memoryLimitBytes: MiB, cpuPercent: 150 }).text, 'Memory 1.00 MiB of 1.00 MiB  ·  CPU 150%');
  assert.equal(statsText(undefined), null);
});

test('settings: blank fields keep their value; the key is needed only for another provider', () => {
  const openai = { id: 'openai', fields: [
    { name: 'modelId', kind: 'text', required: false },
    { name: 'apiKey', kind: 'password', required: false },
  ] };
  const custom = { id: 'custom', fields: [
    { name: 'baseUrl', kind: 'url', required: true, pattern: '^https?://[^\\s/]+' },
    { name: 'apiKey', kind: 'password', required: false },
  ] };
  assert.deepEqual(editBody(openai, { modelId: ' gpt-4o ', apiKey: '' }), { providerType: 'openai', modelId: 'gpt-4o' });
  assert.deepEqual(editBody(openai, { modelId: '', apiKey: ' k ' }), { providerType: 'openai', apiKey: ' k ' }, 'a key is sent as typed');
  assert.deepEqual(editBody({ id: '', fields: [] }, {}), {});
  assert.equal(editFieldOk(custom.fields[0], '', true), true, 'same provider: blank keeps the base URL');
  assert.equal(editFieldOk(custom.fields[0], '', false), false, 'new provider: the base URL is needed');
  assert.equal(editFieldOk(custom.fields[0], 'ftp://x', true), false, 'a value is still checked');
});

test('export: the CLI command and the download’s name', () => {
  assert.equal(exportCommand('research'), 'clawdock agents export research --kubernetes ./research-kubernetes');
  assert.equal(exportCommand('My_Agent'), 'clawdock agents export My_Agent --kubernetes ./my-agent-kubernetes');
  assert.equal(exportCommand("it's"), "clawdock agents export 'it'\\''s' --kubernetes ./it-s-kubernetes");
  assert.equal(exportFileName({ name: 'my-agent' }), 'my-agent-kubernetes.json');
});

test('the stats stream is wanted only while the agents page shows a running agent', () => {
  const base = { conn: 'live', route: { view: 'agents' }, hidden: false, quitting: null, agents: [{ status: 'running' }] };
  assert.equal(wantStats(base), true);
  assert.equal(wantStats({ ...base, hidden: true }), false, 'page hidden');
  assert.equal(wantStats({ ...base, route: { view: 'setup' } }), false, 'another view');
  assert.equal(wantStats({ ...base, route: { view: 'agents', panel: 'logs', id: 'x' } }), false, 'the sheet covers the page');
  assert.equal(wantStats({ ...base, agents: [{ status: 'stopped' }] }), false, 'nothing runs');
  assert.equal(wantStats({ ...base, conn: 'reconnecting' }), false);
  assert.equal(wantStats({ ...base, quitting: 'asked' }), false);
});

test('the reducer keeps the last pull line while an agent pulls, and the settings', () => {
  const agent = (activity) => ({ id: 'a', name: 'alpha', status: 'running', activity });
  let s = applyEvent(emptyServer(), { type: 'snapshot', status: null, agents: [agent('updating')] });
  s = applyEvent(s, { type: 'pullProgress', id: 'a', line: 'Copying blob x 1MiB / 2MiB', doneBytes: MiB, totalBytes: 2 * MiB });
  s = applyEvent(s, { type: 'pullProgress', id: 'a', line: 'Trying to pull x...' });
  assert.deepEqual(s.pull.get('a'), { line: 'Trying to pull x...', bytes: null }, 'no counters: no bar');
  s = applyEvent(s, { type: 'pullProgress', id: 'a', line: 'Copying blob x 2MiB / 2MiB', doneBytes: 2 * MiB, totalBytes: 2 * MiB });
  assert.deepEqual(s.pull.get('a'), { line: 'Copying blob x 2MiB / 2MiB', bytes: { done: 2 * MiB, total: 2 * MiB, etaSecs: null } });
  s = applyEvent(s, { type: 'pullProgress', id: 'a', line: 'Copying blob y [=>-] 1MiB / 4MiB', doneBytes: 3 * MiB, totalBytes: 6 * MiB, etaSecs: 12 });
  assert.deepEqual(s.pull.get('a').bytes, { done: 3 * MiB, total: 6 * MiB, etaSecs: 12 }, 'the server’s sums and ETA, kept as sent');
  s = applyEvent(s, { type: 'agent', agent: agent('updating') });
  assert.equal(s.pull.has('a'), true, 'still updating');
  s = applyEvent(s, { type: 'agent', agent: agent(null) });
  assert.equal(s.pull.has('a'), false, 'the update ended');
  for (const activity of ['creating', 'starting']) {
    let p = applyEvent(s, { type: 'agent', agent: agent(activity) });
    p = applyEvent(p, { type: 'pullProgress', id: 'a', line: 'Copying blob z', doneBytes: MiB, totalBytes: GiB });
    p = applyEvent(p, { type: 'agent', agent: agent(activity) });
    assert.equal(p.pull.has('a'), true, `a ${activity} agent may pull: its bar stays`);
  }
  assert.equal(applyEvent(s, { type: 'pullProgress', id: 'a' }), s, 'no line: unchanged');
  s = applyEvent(s, { type: 'settings', launchAtLogin: true });
  assert.deepEqual(s.settings, { launchAtLogin: true });
  const before = s;
  s = applyEvent(s, { type: 'snapshot', status: null, agents: [agent(null)] });
  assert.deepEqual(s.settings, before.settings, 'a snapshot keeps the settings (it does not carry them)');
});
