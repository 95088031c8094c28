// The UI's pure parts, without a browser: the event reducer, the wizard's step
// function, the route parser, the SSE parser, the progress formatter, and the
// helpers that apply the server's rules (`meta`) without copying them.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { applyEvent, emptyServer, agentList, nameOk, fieldOk, SETUP_LINES } from '../../../ui/state.js';
import { wizardStep, wizardChoices, specProblem } from '../../../ui/wizard.js';
import { parseRoute } from '../../../ui/router.js';
import { sseParser, splitHash } from '../../../ui/api.js';
import { phaseTitle, progressFigures, byteFigures } from '../../../ui/progress.js';
import { formatEta, formatClock, formatBytes } from '../../../ui/util.js';
import { createBody, memoryShortfall } from '../../../ui/create.js';
import { announcements } from '../../../ui/announce.js';

/** A `meta` of the server's shape (docs/API.md); the numbers are this test's own. */
const META = {
  name: { pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]*$', maxLength: 5, rule: 'Short names.' },
  providers: [
    { id: '', label: 'None', hint: '', fields: [] },
    { id: 'custom', label: 'Custom', hint: '', fields: [
      { name: 'baseUrl', label: 'Base URL', kind: 'url', required: true, pattern: '^https?://[^\\s/]+' },
      { name: 'apiKey', label: 'API key', kind: 'password', required: false },
    ] },
  ],
  machine: {
    cpus: { min: 1, max: 64 }, memoryMiB: { min: 1024, max: 8192 }, diskGiB: { min: 10, max: 100 },
    memoryStepMiB: 512, cores: 8, recommended: { cpus: 4, memoryMiB: 4096, diskGiB: 40 },
    plannedAgents: { min: 1, max: 3 }, defaultPlannedAgents: 2,
  },
  memory: { agentMiB: 1000, machineBaseMiB: 500, needMiB: [500, 1500, 2500, 3500], suggestedMachineMiB: [4096, 4096, 4096, 4608] },
};

const agent = (id, name, status = 'running') => ({ id, name, status });

test('the reducer: a snapshot replaces, agent events patch, the old state is untouched', () => {
  const s0 = emptyServer();
  const s1 = applyEvent(s0, { type: 'snapshot', status: { state: 'ready' }, agents: [agent('b', 'beta'), agent('a', 'Alpha')], meta: META });
  assert.equal(s0.status, null, 'pure: the previous slice is not changed');
  assert.deepEqual(agentList(s1).map((a) => a.name), ['Alpha', 'beta']);
  assert.equal(s1.meta, META);
  const s2 = applyEvent(s1, { type: 'agent', agent: agent('a', 'Alpha', 'stopped') });
  assert.equal(s1.agents.get('a').status, 'running');
  assert.equal(s2.agents.get('a').status, 'stopped');
  const s3 = applyEvent(s2, { type: 'agentRemoved', id: 'b' });
  assert.deepEqual([...s3.agents.keys()], ['a']);
  assert.equal(applyEvent(s3, { type: 'agentRemoved', id: 'zz' }), s3, 'nothing to remove: same slice');
  assert.equal(applyEvent(s3, { type: 'nonsense' }), s3);
  const s4 = applyEvent(s3, { type: 'runtime', status: { state: 'stopped' } });
  assert.equal(s4.status.state, 'stopped');
  assert.equal(applyEvent(s4, { type: 'shutdown', stopping: 2 }).shutdown.stopping, 2);
  // A later snapshot without meta keeps the rules already known, and ends a shutdown.
  const s5 = applyEvent({ ...s4, shutdown: { stopping: 1 } }, { type: 'snapshot', status: { state: 'ready' }, agents: [] });
  assert.equal(s5.meta, META);
  assert.equal(s5.shutdown, null);
});

test('the reducer keeps the last setup lines only', () => {
  let s = emptyServer();
  for (let i = 0; i < SETUP_LINES + 10; i += 1) s = applyEvent(s, { type: 'setupProgress', step: 'init', line: `l${i}` });
  assert.equal(s.setupLines.length, SETUP_LINES);
  assert.equal(s.setupLines[0].line, 'l10');
  assert.equal(applyEvent(s, { type: 'setupProgress', line: 42 }), s, 'not a line: ignored');
});

test('the wizard step follows the runtime status', () => {
  const vm = { available: true, mode: 'vm' };
  const table = [
    [null, 'check', 'loading'],
    [{ available: false, state: 'unavailable' }, 'check', 'missing'],
    [{ available: null, machineInitialized: null, needsSetup: null, state: 'probing', mode: 'vm' }, 'check', 'loading'],
    [{ available: true, mode: 'native', state: 'ready' }, 'check', 'native'],
    [{ ...vm, state: 'absent' }, 'check', 'check'],
    [{ ...vm, state: 'absent' }, 'resources', 'resources'],
    [{ ...vm, state: 'absent', setup: { running: true } }, 'resources', 'progress'],
    [{ ...vm, state: 'starting' }, 'check', 'progress'],
    [{ ...vm, state: 'absent', setup: { running: false, error: 'x' } }, 'check', 'failed'],
    [{ ...vm, state: 'error' }, 'check', 'failed'],
    [{ ...vm, state: 'stopped' }, 'check', 'stopped'],
    [{ ...vm, state: 'ready' }, 'resources', 'ready'],
  ];
  for (const [status, user, want] of table) assert.equal(wizardStep(status, user), want, JSON.stringify([status, user]));
});

test('the wizard proposes and checks sizes by the server’s rules', () => {
  assert.deepEqual(wizardChoices(META, {}), { agents: 2, cpus: 4, memoryMiB: 4096, diskGiB: 40 });
  assert.equal(wizardChoices(META, { agents: 3 }).memoryMiB, 4608);
  const ok = { cpus: 2, memoryMiB: 4096, diskGiB: 40 };
  assert.equal(specProblem(META, ok), '');
  assert.match(specProblem(META, { ...ok, cpus: 9 }), /at most 8/);
  assert.match(specProblem(META, { ...ok, cpus: 0 }), /at least 1/);
  assert.match(specProblem(META, { ...ok, memoryMiB: 512 }), /Memory: at least 1 GiB/);
  assert.match(specProblem(META, { ...ok, memoryMiB: 9000 }), /Memory: at most 8 GiB/);
  assert.match(specProblem(META, { ...ok, diskGiB: 101 }), /Disk: at most 100/);
});

test('routes parse from the hash', () => {
  assert.deepEqual(parseRoute(''), { view: 'agents' });
  assert.deepEqual(parseRoute('#setup'), { view: 'setup' });
  assert.deepEqual(parseRoute('#/logs/abc'), { view: 'agents', panel: 'logs', id: 'abc' });
  assert.deepEqual(parseRoute('#chat/a%2Fb'), { view: 'agents', panel: 'chat', id: 'a/b' });
  assert.deepEqual(parseRoute('#chat/%E0%A4%A'), { view: 'agents', panel: 'chat', id: '%E0%A4%A' }, 'bad escapes kept');
  assert.deepEqual(parseRoute('#logs/'), { view: 'agents' });
  assert.deepEqual(parseRoute('#token=t0k&setup'), { view: 'setup' });
  assert.deepEqual(splitHash('#setup&token=a%20b'), { token: 'a b', route: 'setup' });
});

test('the SSE parser: fields, comments, CRLF, chunks split anywhere, a last event without a blank line', () => {
  const got = [];
  const p = sseParser((d) => got.push(d));
  const wire = ': hello\r\ndata: one\r\n\r\ndata: two\ndata:  three\nevent: x\nid: 1\n\nda';
  for (const ch of wire) p.push(ch);
  p.push('ta:four');
  p.end();
  assert.deepEqual(got, ['one', 'two\n three', 'four']);
});

test('progress figures with the server’s ETA, and phase titles', () => {
  const setup = (done, etaSecs = null, total = 2 ** 31) => ({ step: 'init', doneBytes: done, totalBytes: total, percent: (100 * done) / total, etaSecs, line: 'Copying blob' });
  assert.equal(progressFigures(setup(2 ** 30, 10), 3), '50%  ·  1.00 GiB of 2.00 GiB  ·  about 10 s left');
  assert.equal(progressFigures(setup(2 ** 30), 75), '50%  ·  1.00 GiB of 2.00 GiB  ·  1:15 elapsed', 'no ETA yet');
  assert.equal(progressFigures({ ...setup(2 ** 30, 10), step: 'start' }, 5), '0:05 elapsed', 'starting counts no bytes');
  assert.equal(progressFigures({ step: 'init', line: 'Looking up', doneBytes: null, totalBytes: null }, 5), '0:05 elapsed');
  assert.equal(progressFigures(null, 3700), '1:01:40 elapsed');
  assert.equal(byteFigures({ done: 3 * 2 ** 20, total: 4 * 2 ** 20, etaSecs: 200 }), '75%  ·  3.00 MiB of 4.00 MiB  ·  about 3 min left');
  assert.equal(byteFigures({ done: 3 * 2 ** 20, total: 4 * 2 ** 20, etaSecs: null }), '75%  ·  3.00 MiB of 4.00 MiB');
  assert.equal(byteFigures({ done: 5, total: 4, etaSecs: 0 }), '100%  ·  5 B of 4 B  ·  a few seconds left', 'a percent past 100 is cut');
  assert.equal(phaseTitle(null), 'Starting the machine');
  assert.equal(phaseTitle({ step: 'init', line: 'Extracting compressed file' }), 'Unpacking the machine image');
  assert.equal(phaseTitle({ step: 'init', line: 'Copying blob 1' }), 'Downloading the machine image');
  assert.equal(phaseTitle({ step: 'init', line: '' }), 'Creating the machine');
  assert.equal(formatEta(3), 'a few seconds');
  assert.equal(formatEta(42), 'about 45 s');
  assert.equal(formatEta(200), 'about 3 min');
  assert.equal(formatEta(3 * 3600 + 120), 'about 3 h 2 min');
  assert.equal(formatClock(75), '1:15');
  assert.equal(formatBytes(1536), '1.50 KiB');
});

test('the server’s rules are applied as sent, not copied', () => {
  assert.equal(nameOk(null, 'abc'), false, 'no rule yet: nothing is valid');
  assert.equal(nameOk(META, 'abc'), true);
  assert.equal(nameOk(META, 'abcdef'), false, 'this meta says 5 at most');
  assert.equal(nameOk(META, '-ab'), false);
  const [, custom] = META.providers;
  assert.equal(fieldOk(custom.fields[0], ''), false, 'required');
  assert.equal(fieldOk(custom.fields[0], 'ftp://x'), false);
  assert.equal(fieldOk(custom.fields[0], 'http://localhost:11434/v1'), true);
  assert.equal(fieldOk(custom.fields[1], ''), true, 'optional');
  assert.deepEqual(createBody(custom, { name: 'a', baseUrl: ' http://h/v1 ', apiKey: ' k ', modelId: 'not this provider’s field' }),
    { name: 'a', providerType: 'custom', baseUrl: 'http://h/v1', apiKey: ' k ' });
  assert.deepEqual(createBody(META.providers[0], { name: 'a' }), { name: 'a' });
  assert.equal(memoryShortfall(META, { machineMemoryMib: 4096 }, 3), null);
  assert.deepEqual(memoryShortfall(META, { machineMemoryMib: 3000 }, 3), { agents: 3, need: 3500, have: 3000 });
  assert.deepEqual(memoryShortfall(META, { machineMemoryMib: 3000 }, 9).need, 3500, 'past the table: its last row');
  assert.equal(memoryShortfall(META, { state: 'ready' }, 3), null, 'native: no machine memory, no warning');
});

test('status changes are announced', () => {
  const snap = (runtime, label) => ({ runtime, agents: new Map([['a', { name: 'alpha', label }]]) });
  assert.deepEqual(announcements(snap('ready', 'Running'), snap('ready', 'Running')), []);
  assert.deepEqual(announcements(snap('ready', 'Starting…'), snap('stopped', 'Running')), ['Podman: stopped.', 'alpha: Running.']);
});
