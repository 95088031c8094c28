// The "New agent" dialog: name checked as you type with the server's rule,
// provider fields, and the server's own error sentence when it refuses.

import { state, changed } from './state.js';
import { navigate } from './router.js';
import { toast } from './feedback.js';

/** The server's rule for agent names (docs/API.md, SEED-SPEC.md). */
export const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
export const NAME_MAX = 63;

export function nameOk(name) {
  return NAME_RE.test(name) && name.length <= NAME_MAX;
}

const $ = (id) => document.getElementById(id);
let submitting = false;

export function setupCreateDialog() {
  const dialog = $('create-dialog');
  const form = $('create-form');
  const name = $('f-name');
  const provider = $('f-provider');
  const base = $('f-base');

  const update = () => {
    const value = name.value;
    const invalid = value.length > 0 && !nameOk(value);
    $('f-name-rule').hidden = !invalid;
    $('f-name-help').hidden = invalid;
    name.setAttribute('aria-invalid', invalid ? 'true' : 'false');
    name.setAttribute('aria-describedby', invalid ? 'f-name-rule' : 'f-name-help');
    const kind = provider.value;
    const custom = kind === 'custom';
    $('f-custom').hidden = !custom;
    $('f-model-fields').hidden = !kind;
    $('f-key-help').hidden = !kind;
    $('f-provider-help').hidden = !!kind;
    base.required = custom;
    const baseOk = !custom || /^https?:\/\/[^\s/]+/i.test(base.value.trim());
    $('create-submit').disabled = submitting || !nameOk(value) || !baseOk;
  };

  form.addEventListener('input', () => {
    hideError();
    update();
  });
  form.addEventListener('change', update);
  $('create-cancel').addEventListener('click', () => dialog.close());
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    update();
    if ($('create-submit').disabled) return;
    await submit(dialog, update);
  });
  dialog.addEventListener('close', () => {
    // Secrets do not linger in a closed dialog.
    $('f-key').value = '';
  });
  dialog.updateForm = update;
}

/** Warns, before anything is created, when one more gateway would not fit in the
 * Podman machine's memory (vm mode; the server says how much each one takes). */
function memoryWarning() {
  const st = state.status;
  const box = $('create-memory');
  const have = st && st.machineMemoryMiB;
  if (!have || !st.agentMemoryMiB) {
    box.hidden = true;
    return;
  }
  const agents = state.agents.size + 1;
  const need = 512 + st.agentMemoryMiB * agents;
  box.hidden = need <= have;
  box.textContent = `${agents} agents need about ${(need / 1024).toFixed(1)} GiB, but the Podman machine has ` +
    `${(have / 1024).toFixed(1)} GiB. The new agent may fail to start or be stopped by the system. ` +
    'Stop another agent, or give the machine more memory.';
}

function hideError() {
  $('create-error').hidden = true;
}

function showError(message) {
  const box = $('create-error');
  box.textContent = message;
  box.hidden = false;
}

function body() {
  const value = (id) => $(id).value.trim();
  const kind = $('f-provider').value;
  const req = { name: $('f-name').value };
  if (!kind) return req;
  req.providerType = kind;
  if (value('f-model')) req.modelId = value('f-model');
  if ($('f-key').value) req.apiKey = $('f-key').value;
  if (kind === 'custom') {
    req.baseUrl = value('f-base');
    if (value('f-pname')) req.providerName = value('f-pname');
  }
  return req;
}

async function submit(dialog, update) {
  submitting = true;
  const button = $('create-submit');
  button.textContent = 'Creating…';
  update();
  try {
    const res = await state.api.post('/agents/create', body());
    const agent = res && res.agent;
    if (agent) {
      state.agents.set(agent.id, agent);
      changed();
    }
    const wasOpen = dialog.open;
    dialog.close();
    if (agent && wasOpen) navigate(`logs/${agent.id}`);
    else if (agent) toast(`${agent.name} is being created.`, { kind: 'ok' });
  } catch (e) {
    if (dialog.open) {
      showError(e.message);
      $('f-name').focus();
    } else {
      toast(e.message, { kind: 'error', title: 'Could not create the agent' });
    }
  } finally {
    submitting = false;
    button.textContent = 'Create agent';
    update();
  }
}

export function openCreateDialog() {
  const dialog = $('create-dialog');
  if (dialog.open) return;
  if (state.status && !state.status.available) return;
  $('create-form').reset();
  hideError();
  memoryWarning();
  dialog.updateForm();
  dialog.showModal();
  $('f-name').focus();
}
