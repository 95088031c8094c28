// Backups in the window: "Backups…" of an agent downloads its archive and lists
// the snapshots taken before its updates, edits and limits changes, each put back
// with one button; "Restore from a backup…" in the header's menu makes an agent
// from an archive file. Archives hold the provider key: the dialog says so.

import { toast } from './feedback.js';
import { h } from './util.js';

/** A snapshot's line: when, and before what. */
export function snapshotLabel(snapshot) {
  const when = new Date(snapshot.takenAt);
  const stamp = Number.isNaN(when.getTime()) ? snapshot.takenAt : when.toLocaleString();
  const kb = Math.max(1, Math.round((snapshot.bytes || 0) / 1024));
  return `${stamp} · before ${snapshot.before} · ${kb} KiB`;
}

/** What a restore made, in a sentence. */
export function restoredText(outcome) {
  const replaced = outcome.replaced ? ` It replaced ${outcome.replaced}; a snapshot of that one is kept.` : '';
  return `${outcome.agent.name}: ${outcome.files} files from the backup of ${outcome.fromName}.${replaced}`;
}

export function createBackupDialog(store) {
  const $ = (id) => document.getElementById(id);
  const dialog = $('backup-dialog');
  const download = $('backup-download');
  const api = () => store.state.api;
  let agentId = null;

  download.addEventListener('click', async () => {
    const agent = store.state.server.agents.get(agentId);
    if (!agent) return;
    download.disabled = true;
    try {
      const res = await api().raw('POST', `/agents/${encodeURIComponent(agent.id)}/backup`);
      if (!res.ok) throw new Error((await res.json().catch(() => ({}))).error || `Clawdock answered ${res.status}.`);
      const blob = await res.blob();
      const url = URL.createObjectURL(blob);
      const stamp = new Date().toISOString().slice(0, 10);
      const a = h('a', { href: url, download: `clawdock-${agent.name}-${stamp}.tar.gz`, hidden: true });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
      toast(`The backup of ${agent.name} is downloaded. It holds the provider key: keep it private.`, { kind: 'ok', title: 'Backed up' });
    } catch (e) {
      toast(e.message, { kind: 'error', title: `Could not back up ${agent.name}` });
    } finally {
      download.disabled = false;
    }
  });
  dialog.addEventListener('close', () => { agentId = null; });

  async function putBack(agent, snapshot, button) {
    button.disabled = true;
    try {
      const outcome = await api().post(`/agents/${encodeURIComponent(agent.id)}/snapshots/${encodeURIComponent(snapshot.name)}/restore`);
      toast(restoredText(outcome), { kind: 'ok', title: 'Snapshot put back' });
      dialog.close();
    } catch (e) {
      toast(e.message, { kind: 'error', title: `Could not put back ${agent.name}` });
      button.disabled = false;
    }
  }

  async function list(agent) {
    const body = $('backup-body');
    const warning = h('div', { class: 'form-warning', role: 'note' },
      h('strong', { text: 'A backup holds the agent’s secrets: ' }),
      'its provider key and its paired channels. Keep the file private. ',
      'On another computer: Restore from a backup… in the menu, or ', h('code', { text: 'clawdock agents restore FILE' }), '.');
    body.replaceChildren(warning, h('p', { class: 'muted', text: 'Looking for snapshots…' }));
    let snapshots = [];
    try {
      snapshots = (await api().get(`/agents/${encodeURIComponent(agent.id)}/snapshots`)).snapshots || [];
    } catch (e) {
      body.replaceChildren(warning, h('p', { class: 'error-text', text: e.message }));
      return;
    }
    const items = snapshots.map((s) => {
      const button = h('button', { class: 'btn small', type: 'button' }, 'Put back');
      button.addEventListener('click', () => putBack(agent, s, button));
      return h('li', { class: 'snapshot' }, h('span', { text: snapshotLabel(s) }), button);
    });
    body.replaceChildren(warning,
      h('h3', { text: 'Snapshots' }),
      items.length
        ? h('ul', { class: 'snapshots' }, ...items)
        : h('p', { class: 'muted', text: 'None yet: one is taken before each update, edit and limits change.' }));
  }

  return {
    open(id) {
      const agent = store.state.server.agents.get(id);
      if (!agent || dialog.open) return;
      agentId = id;
      $('backup-title').textContent = `Backups of ${agent.name}`;
      dialog.showModal();
      $('backup-close').focus();
      list(agent);
    },
  };
}

/** "Restore from a backup…": the chosen file is sent as it is. */
export function installRestore(store) {
  const $ = (id) => document.getElementById(id);
  const input = $('restore-file');
  $('restore-backup').addEventListener('click', () => input.click());
  input.addEventListener('change', async () => {
    const file = input.files && input.files[0];
    input.value = '';
    if (!file) return;
    try {
      const res = await fetch(`${store.state.api.base}/agents/restore`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${store.state.api.token}`, 'Content-Type': 'application/gzip' },
        body: file,
        cache: 'no-store',
      });
      const reply = await res.json().catch(() => ({}));
      if (!res.ok) {
        const hint = reply.code === 'name_taken' ? ' Delete or rename that agent first, or restore from the command line with --name.' : '';
        throw new Error(`${reply.error || `Clawdock answered ${res.status}.`}${hint}`);
      }
      toast(restoredText(reply), { kind: 'ok', title: 'Restored' });
    } catch (e) {
      toast(e.message, { kind: 'error', title: 'Could not restore' });
    }
  });
}
