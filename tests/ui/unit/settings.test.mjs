// The Settings dialog's pure parts: the limits part of its PATCH body, and the
// limits checked with the server's own bounds (`meta.agentLimits`, the status's
// `machineCpus`), never a copy.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { limitsBody, limitsProblem, cpusAvailable, memoryBudget, editBody, diskUse } from '../../../ui/agentsettings.js';

/** The parts of `meta` the dialog reads (docs/API.md); the numbers are this test's own. */
const META = {
  machine: { cores: 8 },
  memory: { agentMiB: 1300 },
  agentLimits: { memoryMiB: { min: 256, max: 4096 }, cpusMin: 0.01, diskMiB: { min: 256, max: 102400 } },
};

test('the limits part of the body holds only what changed', () => {
  const agent = { memoryMiB: 2048, cpus: null };
  assert.deepEqual(limitsBody(agent, '2048', ''), {});
  assert.deepEqual(limitsBody(agent, ' 1024 ', ''), { memoryMiB: 1024 });
  assert.deepEqual(limitsBody(agent, '2048', '1.5'), { cpus: 1.5 });
  assert.deepEqual(limitsBody({ memoryMiB: 2048, cpus: 2 }, '2048', ''), { cpus: null }, 'empty removes the limit');
  assert.deepEqual(limitsBody({ memoryMiB: 2048, cpus: 2 }, '2048', '2'), {});
  assert.deepEqual(limitsBody({ name: 'old' }, '', ''), {}, 'an older agent: empty keeps the default');
  assert.deepEqual(limitsBody({ memoryMiB: 2048, diskMiB: 10240 }, '2048', '', '10'), {}, 'the same disk limit');
  assert.deepEqual(limitsBody({ memoryMiB: 2048, diskMiB: 10240 }, '2048', '', '20'), { diskMiB: 20480 });
  assert.deepEqual(limitsBody({ memoryMiB: 2048, diskMiB: 10240 }, '2048', '', '0.5'), { diskMiB: 512 });
});

test('the disk limit is checked in GiB against the server’s MiB, and its use said', () => {
  assert.equal(limitsProblem(META, {}, '', '', '20'), '');
  assert.match(limitsProblem(META, {}, '', '', '0.1'), /^Disk limit: from 0.25 to 100 GiB/);
  assert.match(limitsProblem(META, {}, '', '', '200'), /^Disk/);
  assert.match(diskUse({ diskUsedMiB: 1536, diskMiB: 10240 }), /^Uses 1.5 GiB of 10 GiB/);
  assert.match(diskUse({}), /Measured while it runs/);
});

test('limits are checked with the server’s bounds', () => {
  assert.equal(limitsProblem(META, { machineCpus: 4 }, '512', '2'), '');
  assert.equal(limitsProblem(META, { machineCpus: 4 }, '', ''), '');
  assert.match(limitsProblem(META, {}, '100', ''), /^Memory: .*256 to 4096/);
  assert.match(limitsProblem(META, {}, '512.5', ''), /^Memory/);
  assert.match(limitsProblem(META, { machineCpus: 4 }, '512', '5'), /^CPU limit: from 0.01 to 4/);
  assert.match(limitsProblem(META, { machineCpus: 4 }, '512', '0'), /^CPU/);
  assert.equal(limitsProblem(META, null, '512', '8'), '', 'no status yet: the computer’s cores');
  assert.equal(limitsProblem(null, null, 'x', 'y'), '', 'no rules yet: nothing said');
  assert.equal(cpusAvailable(META, { machineCpus: 2 }), 2);
  assert.equal(cpusAvailable(META, {}), 8);
});

test('the memory budget says what the machine has', () => {
  assert.equal(memoryBudget(META, { machineMemoryMib: 4096 }, 2),
    'Podman’s machine has 4096 MiB for its 2 agents. A gateway takes about 1300 MiB.');
  assert.equal(memoryBudget(META, { mode: 'native' }, 1), 'A gateway takes about 1300 MiB.');
});

test('a provider edit sends only the fields filled in', () => {
  const openai = { id: 'openai', fields: [{ name: 'modelId', kind: 'text' }, { name: 'apiKey', kind: 'password' }] };
  assert.deepEqual(editBody(openai, { modelId: ' gpt-5 ', apiKey: '' }), { providerType: 'openai', modelId: 'gpt-5' });
});
