// An agent's Settings dialog: its model provider and its memory, CPU and disk
// limits edited in place (`PATCH /agents/{id}`). The providers, their fields and the
// limits' bounds are the server's (`meta`, the status's `machineCpus` and
// `machineMemoryMib`); a field left empty keeps the agent's value, the API key
// included; the server's refusal (`400 invalid_input`, `409 busy`) is shown in the
// dialog as it said it.

import { fieldOk } from './state.js';
import { toast } from './feedback.js';
import { h, rich, fill, setText } from './util.js';
import { keyed } from './dom.js';

/**
 * The PATCH body from the form: the chosen provider and the fields that were filled
 * in (a blank field keeps its value on the server).
 */
export function editBody(provider, values) {
  const body = {};
  if (provider && provider.id) body.providerType = provider.id;
  for (const f of (provider && provider.fields) || []) {
    const v = f.kind === 'password' ? values[f.name] || '' : String(values[f.name] ?? '').trim();
    if (v) body[f.name] = v;
  }
  return body;
}

/**
 * The limits part of the PATCH body: only what differs from the agent's. `memory`,
 * `cpus` and `disk` (GiB) are the inputs' text; a blank CPU limit is none
 * (`null`), a blank memory or disk limit keeps the agent's.
 */
export function limitsBody(agent, memory, cpus, disk = '') {
  const body = {};
  const m = String(memory ?? '').trim();
  if (m && Number(m) !== agent.memoryMiB) body.memoryMiB = Number(m);
  const c = String(cpus ?? '').trim();
  const want = c ? Number(c) : null;
  if (want !== (agent.cpus ?? null)) body.cpus = want;
  const d = String(disk ?? '').trim();
  if (d && gibToMib(d) !== agent.diskMiB) body.diskMiB = gibToMib(d);
  return body;
}

/** A disk size the user typed in GiB, as the MiB the server counts. */
function gibToMib(text) {
  return Math.round(Number(text) * 1024);
}

/** The CPUs agents share, as the server says: the machine's, else this computer's. */
export function cpusAvailable(meta, status) {
  return (status && status.machineCpus) || (meta && meta.machine.cores) || null;
}

/**
 * Why the server would refuse these limits (`meta.agentLimits`, the CPUs agents
 * share), or '' when it would take them.
 */
export function limitsProblem(meta, status, memory, cpus, disk = '') {
  const rules = meta && meta.agentLimits;
  if (!rules) return '';
  const m = String(memory ?? '').trim();
  const { min, max } = rules.memoryMiB;
  if (m && !(Number.isInteger(Number(m)) && Number(m) >= min && Number(m) <= max)) {
    return `Memory: a whole number of MiB from ${min} to ${max}.`;
  }
  const c = String(cpus ?? '').trim();
  const most = cpusAvailable(meta, status);
  if (c && !(Number(c) >= rules.cpusMin && (!most || Number(c) <= most))) {
    return `CPU limit: from ${rules.cpusMin} to ${most} CPUs, or empty for none.`;
  }
  const d = String(disk ?? '').trim();
  if (d && rules.diskMiB) {
    const mib = gibToMib(d);
    if (!(Number(d) > 0 && mib >= rules.diskMiB.min && mib <= rules.diskMiB.max)) {
      return `Disk limit: from ${rules.diskMiB.min / 1024} to ${rules.diskMiB.max / 1024} GiB.`;
    }
  }
  return '';
}

/** What the agent takes on the disk, said under the disk field. */
export function diskUse(agent) {
  const used = agent.diskUsedMiB;
  const limit = agent.diskMiB;
  if (used == null) return 'Its folders, container and log. Measured while it runs.';
  const gib = (mib) => (mib / 1024).toFixed(mib >= 10240 ? 0 : 1);
  return `Uses ${gib(used)} GiB${limit ? ` of ${gib(limit)} GiB` : ''} (folders, container and log; measured every minute while it runs).`;
}

/** What the machine has for the agents, said under the memory field. */
export function memoryBudget(meta, status, agents) {
  const each = meta ? `A gateway takes about ${meta.memory.agentMiB} MiB.` : '';
  const have = status && status.machineMemoryMib;
  if (!have) return each;
  return `Podman’s machine has ${have} MiB for its ${agents} agent${agents === 1 ? '' : 's'}. ${each}`.trim();
}

/** Is a field needed in the form? Only when the provider changes: else blank keeps it. */
export function editFieldOk(field, value, sameProvider) {
  return fieldOk(sameProvider ? { ...field, required: false } : field, value);
}

export function createSettingsDialog(store, actions) {
  const $ = (id) => document.getElementById(id);
  const dialog = $('settings-dialog');
  const form = $('settings-form');
  const select = $('s-provider');
  const { state } = store;
  let agentId = null;
  let submitting = false;

  const meta = () => state.server.meta;
  const agent = () => state.server.agents.get(agentId);
  const provider = () => (meta() ? meta().providers.find((p) => p.id === select.value) : null);
  const same = () => !!agent() && (agent().providerType || '') === select.value;
  const values = () => {
    const v = {};
    for (const input of $('s-fields').querySelectorAll('input')) v[input.name] = input.value;
    return v;
  };

  const keyHelp = (f) => (same()
    ? 'Leave empty to keep the agent’s current key.'
    : 'The old key is not kept for another provider: enter this provider’s key.') + (f.help ? ` ${f.help}` : '');

  const fieldEl = (f) => {
    const id = `s-${f.name}`;
    return h('div', { class: 'field' },
      h('label', { for: id }, f.label),
      h('input', {
        id, name: f.name, type: f.kind === 'password' ? 'password' : f.kind === 'url' ? 'url' : 'text',
        spellcheck: 'false', autocomplete: f.kind === 'password' ? 'new-password' : 'off',
        'aria-describedby': `${id}-help`,
      }),
      h('p', { class: 'help', id: `${id}-help` }));
  };
  const fieldUpdate = (el, f) => {
    const input = el.querySelector('input');
    const keep = same();
    input.placeholder = keep ? (f.kind === 'password' ? 'Unchanged' : 'Unchanged (leave empty to keep)') : f.placeholder || '';
    input.required = !keep && f.required;
    const ok = editFieldOk(f, input.value, keep);
    input.setAttribute('aria-invalid', input.value && !ok ? 'true' : 'false');
    const help = el.querySelector('.help');
    const text = f.kind === 'password' ? keyHelp(f)
      : keep ? `Leave empty to keep the agent’s current value.${f.help ? ` ${f.help}` : ''}`
        : f.help || (f.required ? 'Required for this provider.' : '');
    if (help.dataset.text !== text) {
      help.dataset.text = text;
      fill(help, ...rich(text));
    }
  };

  const limitsText = () => [$('s-memory').value, $('s-cpus').value, $('s-disk').value];

  const updateLimits = () => {
    const m = meta();
    const status = state.server.status;
    const a = agent();
    const memory = $('s-memory');
    const cpus = $('s-cpus');
    memory.min = m.agentLimits.memoryMiB.min;
    memory.max = m.agentLimits.memoryMiB.max;
    cpus.min = m.agentLimits.cpusMin;
    const most = cpusAvailable(m, status);
    if (most) cpus.max = most;
    setText($('s-memory-help'), memoryBudget(m, status, state.server.agents.size)
      + (a.memoryMiB == null ? ' Empty: the default.' : ''));
    setText($('s-cpus-help'), most ? `Up to ${most} CPUs (what ${status && status.mode === 'vm' ? 'Podman’s machine' : 'this computer'} has). Empty: no limit.` : 'Empty: no limit.');
    setText($('s-disk-help'), diskUse(a));
    const model = a.modelId ? `Model: ${a.modelId}.` : 'Model: the provider’s default.';
    setText($('s-current'), a.baseUrl ? `${model} Base URL: ${a.baseUrl}.` : model);
    return limitsProblem(m, status, ...limitsText());
  };

  const update = () => {
    const m = meta();
    if (!m || !agent()) return;
    const problem = updateLimits();
    $('s-memory').setAttribute('aria-invalid', problem.startsWith('Memory') ? 'true' : 'false');
    $('s-cpus').setAttribute('aria-invalid', problem.startsWith('CPU') ? 'true' : 'false');
    $('s-disk').setAttribute('aria-invalid', problem.startsWith('Disk') ? 'true' : 'false');
    keyed(select, m.providers, (p) => p.id || 'none', (p) => h('option', { value: p.id }), (el, p) => setText(el, p.label));
    const p = provider();
    fill($('s-provider-help'), ...(p ? rich(p.hint) : []));
    keyed($('s-fields'), p ? p.fields : [], (f) => f.name, fieldEl, fieldUpdate);
    const v = values();
    // "None" cannot be chosen for an agent that has a provider; an agent without
    // one can still have its limits changed.
    const providerOk = !!p && (!!p.id || same()) && p.fields.every((f) => editFieldOk(f, v[f.name], same()));
    const limitsEdit = Object.keys(limitsBody(agent(), ...limitsText())).length > 0;
    const ok = providerOk && !problem && (!!p.id || limitsEdit);
    $('settings-submit').disabled = submitting || !ok;
    setText($('settings-title'), `Settings of ${agent().name}`);
  };

  const showError = (message) => {
    const box = $('settings-error');
    box.textContent = message;
    box.hidden = !message;
  };

  form.addEventListener('input', () => { showError(''); update(); });
  form.addEventListener('change', update);
  $('settings-cancel').addEventListener('click', () => dialog.close());
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    update();
    if ($('settings-submit').disabled || !agent()) return;
    const { name, status } = agent();
    submitting = true;
    $('settings-submit').textContent = 'Saving…';
    update();
    try {
      const p = provider();
      const body = { ...(p && p.id ? editBody(p, values()) : {}), ...limitsBody(agent(), ...limitsText()) };
      await actions.edit(agentId, body);
      dialog.close();
      toast(status === 'running' ? `Settings saved. ${name} restarts with them.` : `Settings saved for ${name}.`, { kind: 'ok' });
    } catch (err) {
      showError(err.message);
      select.focus();
    } finally {
      submitting = false;
      $('settings-submit').textContent = 'Save';
      update();
    }
  });
  dialog.addEventListener('close', () => {
    // Secrets do not linger in a closed dialog.
    for (const input of $('s-fields').querySelectorAll('input')) input.value = '';
    agentId = null;
  });

  return {
    open(id) {
      if (dialog.open || !meta() || !state.server.agents.has(id)) return;
      agentId = id;
      showError('');
      $('s-fields').replaceChildren();
      update();
      select.value = agent().providerType || '';
      $('s-memory').value = agent().memoryMiB ?? '';
      $('s-cpus').value = agent().cpus ?? '';
      $('s-disk').value = agent().diskMiB == null ? '' : agent().diskMiB / 1024;
      update();
      dialog.showModal();
      select.focus();
    },
    /** Keeps the open dialog in step (the agent removed, the rules changed). */
    render() {
      if (!dialog.open) return;
      if (!agent()) { dialog.close(); return; }
      update();
    },
  };
}
