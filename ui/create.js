// The "New agent" dialog: the name checked as you type with the server's rule, the
// provider choices and their fields as the server declares them (`meta`), and the
// server's own sentence when it refuses. Nothing here is a copy of a server rule.

import { nameOk, fieldOk } from './state.js';
import { navigate } from './router.js';
import { toast } from './feedback.js';
import { h, rich, fill, setText } from './util.js';
import { keyed } from './dom.js';

/** The create request from the form's values (only the chosen provider's fields). */
export function createBody(provider, values) {
  const body = { name: values.name };
  if (!provider || !provider.id) return body;
  body.providerType = provider.id;
  for (const f of provider.fields) {
    const v = f.kind === 'password' ? values[f.name] : String(values[f.name] ?? '').trim();
    if (v) body[f.name] = v;
  }
  return body;
}

/** What `agents` gateways need against the machine's memory; null when they fit. */
export function memoryShortfall(meta, status, agents) {
  const have = status && status.machineMemoryMib;
  const table = meta && meta.memory.needMiB;
  if (!have || !table || !table.length) return null;
  const need = table[Math.min(agents, table.length - 1)];
  return need > have ? { agents, need, have } : null;
}

export function createDialog(store, actions) {
  const $ = (id) => document.getElementById(id);
  const dialog = $('create-dialog');
  const form = $('create-form');
  const name = $('f-name');
  const select = $('f-provider');
  const { state } = store;

  const meta = () => state.server.meta;
  const provider = () => (meta() ? meta().providers.find((p) => p.id === select.value) : null);
  const values = () => {
    const v = { name: name.value };
    for (const input of $('f-fields').querySelectorAll('input')) v[input.name] = input.value;
    return v;
  };

  /** The provider list and rule texts, from the server's rules. */
  const fillChoices = () => {
    const m = meta();
    if (!m) return;
    fill($('f-name-rule'), ...rich(m.name.rule));
    keyed(select, m.providers, (p) => p.id || 'none', (p) => h('option', { value: p.id }), (el, p) => setText(el, p.label));
  };

  /** A field of the chosen provider; the last two (model and key) share a row. */
  const fieldEl = (f) => {
    const id = `f-${f.name}`;
    const help = f.help ? h('p', { class: 'help', id: `${id}-help` }, rich(f.help)) : null;
    const fields = provider().fields;
    const half = fields.length >= 2 && fields.indexOf(f) >= fields.length - 2;
    return h('div', { class: half ? 'field half' : 'field' },
      h('label', { for: id }, f.label, f.required ? null : h('span', { class: 'optional', text: ' optional' })),
      h('input', {
        id, name: f.name, type: f.kind === 'password' ? 'password' : f.kind === 'url' ? 'url' : 'text',
        spellcheck: 'false', autocomplete: f.kind === 'password' ? 'new-password' : 'off',
        placeholder: f.placeholder, required: f.required, 'aria-describedby': help ? `${id}-help` : null,
      }),
      help);
  };

  const update = () => {
    const m = meta();
    const value = name.value;
    const invalid = !!m && value.length > 0 && !nameOk(m, value);
    $('f-name-rule').hidden = !invalid;
    $('f-name-help').hidden = invalid;
    name.setAttribute('aria-invalid', invalid ? 'true' : 'false');
    name.setAttribute('aria-describedby', invalid ? 'f-name-rule' : 'f-name-help');
    const p = provider();
    fill($('f-provider-help'), ...(p ? rich(p.hint) : []));
    keyed($('f-fields'), p ? p.fields : [], (f) => f.name, fieldEl);
    const fieldsOk = !p || p.fields.every((f) => fieldOk(f, values()[f.name]));
    $('create-submit').disabled = state.local.submitting || !nameOk(m, value) || !fieldsOk;
  };

  const hideError = () => { $('create-error').hidden = true; };
  const showError = (message) => {
    const box = $('create-error');
    box.textContent = message;
    box.hidden = false;
  };

  const memoryWarning = () => {
    const box = $('create-memory');
    const short = memoryShortfall(meta(), state.server.status, state.server.agents.size + 1);
    box.hidden = !short;
    if (short) {
      box.textContent = `${short.agents} agents need about ${(short.need / 1024).toFixed(1)} GiB, but the Podman machine has ` +
        `${(short.have / 1024).toFixed(1)} GiB. The new agent may fail to start or be stopped by the system. ` +
        'Stop another agent, or give the machine more memory.';
    }
  };

  const submit = async () => {
    const button = $('create-submit');
    button.textContent = 'Creating…';
    update();
    try {
      const created = await actions.create(createBody(provider(), values()));
      const wasOpen = dialog.open;
      dialog.close();
      if (created && wasOpen) navigate(`logs/${created.id}`);
      else if (created) toast(`${created.name} is being created.`, { kind: 'ok' });
    } catch (e) {
      if (dialog.open) {
        showError(e.message);
        name.focus();
      } else {
        toast(e.message, { kind: 'error', title: 'Could not create the agent' });
      }
    } finally {
      button.textContent = 'Create agent';
      update();
    }
  };

  form.addEventListener('input', () => { hideError(); update(); });
  form.addEventListener('change', update);
  $('create-cancel').addEventListener('click', () => dialog.close());
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    update();
    if ($('create-submit').disabled) return;
    await submit();
  });
  dialog.addEventListener('close', () => {
    // Secrets do not linger in a closed dialog.
    for (const input of $('f-fields').querySelectorAll('input[type=password]')) input.value = '';
  });

  return {
    open() {
      if (dialog.open) return;
      const s = state.server.status;
      if (s && !s.available) return;
      fillChoices();
      form.reset();
      hideError();
      memoryWarning();
      update();
      dialog.showModal();
      name.focus();
    },
    /** Keeps the open dialog in step with the state (the rules, a request in flight). */
    render() {
      if (!dialog.open) return;
      fillChoices();
      update();
    },
  };
}
