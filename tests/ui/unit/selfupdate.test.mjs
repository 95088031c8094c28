// Clawdock's own update and the no-tray note in the window, without a browser: the
// routes the tray opens the window at, the reducer's `selfUpdate` and `restarting`
// messages, the sentences for each outcome, and which notes show over the agents page.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseRoute } from '../../../ui/router.js';
import { applyEvent, emptyServer } from '../../../ui/state.js';
import { outcomeSentence, availableRelease, appNotes, NO_TRAY_TEXT } from '../../../ui/selfupdate.js';

const available = {
  current: '0.1.0', busy: false, automatic: true, checkedAt: '2026-12-07T20:00:00Z',
  last: { state: 'available', current: '0.1.0', release: { version: '0.1.1', notes: 'Fixes.', date: '2026-12-07T10:00:00Z' } },
  error: null, errorCode: null, restartingInto: null,
};

test('the tray opens the window at the update’s notes or at the no-tray note', () => {
  assert.deepEqual(parseRoute('#update'), { view: 'agents', notice: 'update' });
  assert.deepEqual(parseRoute('#no-tray'), { view: 'agents', notice: 'no-tray' });
  assert.deepEqual(parseRoute('#setup'), { view: 'setup' });
});

test('selfUpdate and restarting messages land in the server slice', () => {
  let server = applyEvent(emptyServer(), { type: 'selfUpdate', status: available });
  assert.equal(availableRelease(server.selfUpdate).version, '0.1.1');
  assert.equal(applyEvent(server, { type: 'selfUpdate' }), server, 'no status: unchanged');
  server = applyEvent(server, { type: 'restarting', version: '0.1.1' });
  assert.equal(server.restarting, '0.1.1');
  assert.equal(availableRelease(null), null);
});

test('each outcome is said in one sentence, a downgrade as refused', () => {
  assert.equal(outcomeSentence({ state: 'upToDate', current: '0.1.0', offered: null }), 'Clawdock 0.1.0 is up to date.');
  assert.match(outcomeSentence({ state: 'upToDate', current: '0.1.0', offered: '0.0.9' }), /0\.0\.9, which is older: a downgrade is never installed/);
  assert.match(outcomeSentence(available.last), /0\.1\.1 is available \(this is 0\.1\.0\)/);
  assert.match(outcomeSentence({ state: 'installed', from: '0.1.0', release: { version: '0.1.1' } }), /agents keep running/);
});

test('the notes over the agents page: no tray, an update offered, a restart under way', () => {
  const local = (noTray) => ({ noTray, route: { view: 'agents' } });
  assert.deepEqual(appNotes({ local: local(false), server: emptyServer() }, () => {}), []);
  const keys = (state) => appNotes(state, () => {}).map((n) => n.key);
  assert.deepEqual(keys({ local: local(true), server: emptyServer() }), ['no-tray']);
  const offered = applyEvent(emptyServer(), { type: 'selfUpdate', status: available });
  assert.deepEqual(keys({ local: local(true), server: offered }), ['no-tray', 'update-0.1.1']);
  const restarting = applyEvent(offered, { type: 'restarting', version: '0.1.1' });
  assert.deepEqual(keys({ local: local(false), server: restarting }), ['restarting-0.1.1']);
  assert.match(NO_TRAY_TEXT, /menu ☰ at the top right/);
  assert.match(NO_TRAY_TEXT, /Quit Clawdock/);
});
