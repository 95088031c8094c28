// Clawdock's own update in the window, and the note for a desktop with no tray.
// - The header menu's "Check for Clawdock updates" asks the server now (POST
//   /app/update/check); what it found arrives as the `selfUpdate` event too.
// - A newer version offered: a note over the agents page, and a dialog with its
//   release notes where the user decides (Install and restart, or Later). The
//   install is the server's (POST /app/update/install): the same core function as
//   the tray's and `clawdock self-update`; the agents keep running through it.
// - Route 'no-tray' (the tray app found no tray host on the desktop): where the
//   controls are, since no icon will show them.

import { h, setText, show } from './util.js';
import { toast } from './feedback.js';
import { navigate } from './router.js';

/** Where the controls are when no tray icon shows them. */
export const NO_TRAY_TEXT = 'This desktop has no tray host (GNOME needs the “AppIndicator and KStatusNotifierItem Support” extension), so Clawdock opened this window instead. Its controls are here: your agents on this page, and Check for Clawdock updates, Launch at login and Quit Clawdock… in the menu ☰ at the top right. Closing this window leaves Clawdock and its agents running; open Clawdock from your applications to come back.';

/** What a check or an install came to, as one sentence (pure). */
export function outcomeSentence(outcome) {
  if (!outcome) return '';
  if (outcome.state === 'upToDate') {
    return outcome.offered && outcome.offered !== outcome.current
      ? `Clawdock ${outcome.current} is up to date. The feed offers ${outcome.offered}, which is older: a downgrade is never installed.`
      : `Clawdock ${outcome.current} is up to date.`;
  }
  if (outcome.state === 'available') return `Clawdock ${outcome.release.version} is available (this is ${outcome.current}).`;
  if (outcome.state === 'installed') return `Clawdock ${outcome.release.version} is installed; Clawdock restarts into it and your agents keep running.`;
  return '';
}

/** The release offered and not installed, from the server's status (pure). */
export function availableRelease(selfUpdate) {
  const last = selfUpdate && selfUpdate.last;
  return last && last.state === 'available' ? last.release : null;
}

/** The notes over the agents page (no tray, an update offered): [{key, build}] (pure but for `build`). */
export function appNotes(state, open) {
  const notes = [];
  if (state.local.noTray) {
    notes.push({
      key: 'no-tray',
      build: () => h('section', { class: 'banner tone-info', role: 'region', 'aria-label': 'No tray icon' },
        h('div', { class: 'banner-body' },
          h('h2', { text: 'Clawdock runs, but your desktop shows no tray icon' }),
          h('p', { text: NO_TRAY_TEXT }))),
    });
  }
  const release = availableRelease(state.server.selfUpdate);
  if (release && !state.server.restarting) {
    notes.push({
      key: `update-${release.version}`,
      build: () => h('section', { class: 'banner tone-info', role: 'region', 'aria-label': 'Update available' },
        h('div', { class: 'banner-body' },
          h('h2', { text: `Clawdock ${release.version} is available` }),
          h('p', { text: 'Install it when it suits you; your agents keep running while Clawdock restarts.' })),
        h('div', { class: 'banner-actions' },
          h('button', { class: 'btn', type: 'button', onclick: open }, 'What’s new…'))),
    });
  }
  if (state.server.restarting) {
    notes.push({
      key: `restarting-${state.server.restarting}`,
      build: () => h('section', { class: 'banner tone-info', role: 'alert', 'aria-label': 'Restarting' },
        h('div', { class: 'banner-body' },
          h('h2', { text: `Restarting into Clawdock ${state.server.restarting}` }),
          h('p', { text: 'Your agents keep running. This window closes; open Clawdock again in a moment.' }))),
    });
  }
  return notes;
}

export function createSelfUpdate(store) {
  const { state } = store;
  const $ = (id) => document.getElementById(id);
  const dialog = $('update-dialog');
  let installing = false;
  let shownKeys = '';

  const open = () => {
    if (!dialog.open) dialog.showModal();
    render(state);
  };
  const check = async () => {
    try {
      const outcome = await state.api.call('POST', '/app/update/check');
      toast(outcomeSentence(outcome), { kind: 'ok' });
      if (outcome.state === 'available') open();
    } catch (e) {
      toast(e.message, { kind: 'error', title: 'Could not check for updates' });
    }
  };
  const install = async () => {
    if (installing) return;
    installing = true;
    $('update-error').hidden = true;
    render(state);
    try {
      const outcome = await state.api.call('POST', '/app/update/install');
      toast(outcomeSentence(outcome), { kind: 'ok' });
      dialog.close();
    } catch (e) {
      setText($('update-error'), e.message);
      $('update-error').hidden = false;
    } finally {
      installing = false;
      render(state);
    }
  };
  $('check-updates').addEventListener('click', check);
  $('update-install').addEventListener('click', install);
  $('update-later').addEventListener('click', () => dialog.close());
  dialog.addEventListener('close', () => {
    if (state.local.route.notice === 'update') navigate('');
  });

  function render(current) {
    const release = availableRelease(current.server.selfUpdate);
    const busy = !!(current.server.selfUpdate && current.server.selfUpdate.busy);
    $('check-updates').disabled = busy || installing;
    setText($('check-updates'), busy && !installing ? 'Checking for Clawdock updates…' : 'Check for Clawdock updates');
    if (current.local.route.notice === 'update' && release && !dialog.open) dialog.showModal();
    if (release) {
      setText($('update-title'), `Clawdock ${release.version}`);
      setText($('update-sub'), `You have ${current.server.selfUpdate.current}.${release.date ? ` Released ${release.date.slice(0, 10)}.` : ''}`);
      setText($('update-notes'), release.notes || 'No release notes.');
    }
    $('update-install').disabled = installing || !release || !!current.server.restarting;
    setText($('update-install'), installing ? 'Installing…' : 'Install and restart');
    const box = $('app-notes');
    const notes = appNotes(current, open);
    const keys = notes.map((n) => n.key).join(' ');
    if (keys !== shownKeys) {
      shownKeys = keys;
      box.replaceChildren(...notes.map((n) => n.build()));
    }
    show(box, notes.length > 0);
  }
  return render;
}
