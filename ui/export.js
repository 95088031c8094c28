// "Export for Kubernetes…": the CLI command that writes the agent's Kustomize folder
// (the recommended way), and the same files as one JSON download. Both hold the
// agent's secrets (its gateway token and provider key): the dialog says so.

import { toast } from './feedback.js';
import { h, icon, copyText } from './util.js';

/** The CLI command that writes the folder: `clawdock agents export NAME --kubernetes DIR`. */
export function exportCommand(name) {
  const quoted = /^[A-Za-z0-9_.-]+$/.test(name) ? name : `'${name.replace(/'/g, `'\\''`)}'`;
  const dir = `./${String(name).toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^-+|-+$/g, '') || 'agent'}-kubernetes`;
  return `clawdock agents export ${quoted} --kubernetes ${dir}`;
}

/** The download's file name for an export answer. */
export function exportFileName(reply) {
  return `${reply.name}-kubernetes.json`;
}

export function createExportDialog(store, actions) {
  const $ = (id) => document.getElementById(id);
  const dialog = $('export-dialog');
  const download = $('export-download');
  let agentId = null;

  download.addEventListener('click', async () => {
    const agent = store.state.server.agents.get(agentId);
    if (!agent) return;
    download.disabled = true;
    try {
      const reply = await actions.exportKubernetes(agentId);
      const blob = new Blob([JSON.stringify(reply, null, 2)], { type: 'application/json' });
      const url = URL.createObjectURL(blob);
      const a = h('a', { href: url, download: exportFileName(reply), hidden: true });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
      toast(`${exportFileName(reply)} holds ${Object.keys(reply.files || {}).length} files for the namespace ${reply.namespace}.`, { kind: 'ok', title: 'Exported' });
    } catch (e) {
      toast(e.message, { kind: 'error', title: `Could not export ${agent.name}` });
    } finally {
      download.disabled = false;
    }
  });
  dialog.addEventListener('close', () => { agentId = null; });

  return {
    open(id) {
      const agent = store.state.server.agents.get(id);
      if (!agent || dialog.open) return;
      agentId = id;
      const command = exportCommand(agent.name);
      const copy = h('button', {
        class: 'icon-btn', type: 'button', title: 'Copy', 'aria-label': 'Copy the command',
        onclick: async () => {
          const ok = await copyText(command);
          copy.replaceChildren(icon(ok ? 'check' : 'copy'));
          setTimeout(() => copy.replaceChildren(icon('copy')), 1500);
        },
      }, icon('copy'));
      $('export-title').textContent = `Export ${agent.name} for Kubernetes`;
      $('export-body').replaceChildren(
        h('p', { text: 'The recommended way is the command line: it writes the folder readable by you only, and packs the workspace too with --with-workspace.' }),
        h('div', { class: 'command' }, h('code', { text: command }), copy),
        h('p', null, 'Then apply it with ', h('code', { text: 'kubectl apply -k DIR' }), '.'),
        h('div', { class: 'form-warning', role: 'note' },
          h('strong', { text: 'These files hold the agent’s secrets: ' }),
          'its gateway token and its provider key. Keep them out of version control and share them only with who may use the agent.'),
        h('p', { text: 'The download is the same files as one JSON object ({name, namespace, files}).' }));
      dialog.showModal();
      $('export-close').focus();
    },
  };
}
