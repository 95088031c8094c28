// Issue 32: what the window says of snapshots and of a restore.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { snapshotLabel, restoredText } from '../../../ui/backups.js';

test('a snapshot says when and before what', () => {
  const label = snapshotLabel({ takenAt: '2026-12-07T10:00:00Z', before: 'update', bytes: 4096 });
  assert.match(label, /before update · 4 KiB$/);
});

test('a restore says what it made, and what it replaced', () => {
  const outcome = { agent: { name: 'helper' }, files: 12, fromName: 'helper', replaced: 'helper' };
  assert.equal(restoredText(outcome),
    'helper: 12 files from the backup of helper. It replaced helper; a snapshot of that one is kept.');
  assert.equal(restoredText({ ...outcome, replaced: undefined }), 'helper: 12 files from the backup of helper.');
});
