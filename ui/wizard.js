// The first-run setup wizard (`#setup`): check Podman, choose the machine's size,
// create it with live progress, done. Which step shows is decided by one function
// of the runtime status (`wizardStep`); the user only moves between the first two.

import { state, changed } from './state.js';
import { h, icon, rich, fill, setText, show, formatBytes, formatClock, formatEta } from './util.js';
import { installHelp, runtimeAction, runtimeBusy } from './runtime.js';
import { navigate } from './router.js';
import { openCreateDialog } from './create.js';

/** Memory for n agents: each needs about 1–1.3 GB, the machine itself about 1.5 GB. */
export function memoryFor(agents) {
  const n = Math.max(1, Math.floor(agents) || 1);
  return Math.max(4096, Math.ceil((1536 + 1280 * n) / 512) * 512);
}

export function defaultCpus(cores = navigator.hardwareConcurrency || 2) {
  return Math.max(1, Math.min(4, Math.floor(cores / 2)));
}

const local = {
  /** 'check' | 'resources': where the user is before setup runs. */
  step: 'check',
  agents: 2,
  cpus: defaultCpus(),
  memoryMiB: memoryFor(2),
  diskGiB: 40,
  /** Byte counter samples for the ETA. */
  samples: [],
  /** When the page first saw the current progress step (for elapsed time without a server clock). */
  startedAt: null,
  /** The server's elapsedSecs and when we got it. */
  elapsed: null,
};

/** The step to show for a runtime status; `userStep` is 'check' or 'resources'. */
export function wizardStep(status, userStep = 'check') {
  if (!status) return 'loading';
  if (!status.available) return 'missing';
  if (status.mode === 'native') return 'native';
  const setup = status.setup;
  if (setup && setup.running) return 'progress';
  if (status.state === 'ready') return 'ready';
  if (status.state === 'starting') return 'progress';
  if (setup && setup.error) return 'failed';
  if (status.state === 'error') return 'failed';
  if (status.state === 'stopped') return 'stopped';
  return userStep === 'resources' ? 'resources' : 'check';
}

const STEPS_VM = [['check', 'Podman'], ['resources', 'Resources'], ['progress', 'Create'], ['ready', 'Ready']];
const STEP_INDEX = { missing: 0, check: 0, resources: 1, progress: 2, failed: 2, stopped: 2, ready: 3 };

function stepper(step) {
  if (step === 'native' || step === 'loading') return null;
  const at = STEP_INDEX[step] ?? 0;
  return h('ol', { class: 'stepper', 'aria-label': 'Setup steps' }, STEPS_VM.map(([, label], i) =>
    h('li', {
      class: i < at || (step === 'ready' && i === at) ? 'done' : i === at ? 'current' : '',
      'aria-current': i === at ? 'step' : null,
    }, h('span', { class: 'num' }, i < at || step === 'ready' ? icon('check') : String(i + 1)), h('span', { class: 'label', text: label }))));
}

let built = null;
let ticker = null;

export function renderWizard() {
  const view = document.getElementById('wizard-view');
  if (state.route.view !== 'setup') {
    if (built) {
      built = null;
      view.replaceChildren();
    }
    stopTicker();
    return;
  }
  const step = wizardStep(state.status, local.step);
  if (!built || built.step !== step) {
    const hadFocus = view.contains(document.activeElement);
    const content = STEP_VIEWS[step]();
    built = { step, ...content };
    view.replaceChildren(h('div', { class: 'wizard', dataset: { step } },
      h('div', { class: 'wizard-head' },
        h('div', null,
          h('h1', { text: 'Set up Podman' }),
          h('p', { class: 'muted', text: 'Clawdock runs every agent in a Podman container on this computer.' })),
        h('button', { class: 'btn ghost', type: 'button', onclick: () => navigate('') }, icon('back'), 'Agents')),
      stepper(step),
      h('div', { class: 'wizard-body' }, content.el)));
    if (content.focus && (hadFocus || document.activeElement === document.body || !document.activeElement)) content.focus();
    if (step === 'progress') startTicker(); else stopTicker();
  }
  if (built.update) built.update();
}

function startTicker() {
  if (ticker) return;
  // A local clock for the elapsed time and ETA text; it makes no requests.
  ticker = setInterval(() => { if (built && built.tick) built.tick(); }, 1000);
}

function stopTicker() {
  clearInterval(ticker);
  ticker = null;
  local.startedAt = null;
  local.samples = [];
}

function check(ok, title, detail) {
  return h('li', { class: `check ${ok === true ? 'ok' : ok === false ? 'bad' : 'todo'}` },
    h('span', { class: 'check-icon', 'aria-hidden': 'true' }, ok === true ? icon('check') : ok === false ? icon('close') : ''),
    h('div', null, h('strong', { text: title }), detail ? h('p', { class: 'muted' }, rich(detail)) : null));
}

function actions(...buttons) {
  return h('div', { class: 'wizard-actions' }, buttons.filter(Boolean));
}

function spinnerButton(label, busyLabel, kind, onclick, cls = 'btn primary') {
  const busy = runtimeBusy === kind;
  return h('button', { class: cls, type: 'button', disabled: !!runtimeBusy, onclick },
    busy ? h('span', { class: 'spinner', 'aria-hidden': 'true' }) : null, busy ? busyLabel : label);
}

const STEP_VIEWS = {
  loading() {
    return { el: h('p', { class: 'muted', text: 'Looking at Podman…' }) };
  },

  missing() {
    const el = h('div', { class: 'step' });
    const update = () => {
      fill(el,
        h('h2', { text: 'Podman is needed' }),
        h('ul', { class: 'checks' }, check(false, 'Podman is not installed', 'Clawdock looked for the `podman` program and did not find it.')),
        installHelp(),
        actions(spinnerButton('Check again', 'Checking…', 'check', () => runtimeAction('check'))));
    };
    let lastBusy;
    return {
      el,
      update() { if (lastBusy !== runtimeBusy) { lastBusy = runtimeBusy; update(); } },
      focus: () => el.querySelector('.wizard-actions .btn')?.focus(),
    };
  },

  native() {
    const el = h('div', { class: 'step' });
    let key = null;
    return {
      el,
      focus: () => el.querySelector('.wizard-actions .btn')?.focus(),
      update() {
        const s = state.status;
        const k = JSON.stringify([s.state, s.error, s.podmanVersion, runtimeBusy, state.agents.size]);
        if (k === key) return;
        key = k;
        const ready = s.state === 'ready';
        fill(el,
          h('h2', { text: ready ? 'Ready' : 'Podman' }),
          h('ul', { class: 'checks' },
            check(true, `Podman ${s.podmanVersion || ''} is installed`.replace('  ', ' ')),
            check(true, 'No virtual machine needed', 'On Linux, Podman runs containers directly on this computer.'),
            check(ready ? true : s.state === 'error' ? false : null, ready ? 'The container engine answers' : s.state === 'error' ? 'The container engine does not answer' : 'Waiting for the container engine…')),
          s.state === 'error' ? h('pre', { class: 'error-text', text: s.error || '' }) : null,
          actions(
            h('button', { class: 'btn', type: 'button', onclick: () => navigate('') }, 'Go to agents'),
            ready ? firstAgentButton() : null,
            s.state === 'error' ? spinnerButton('Retry', 'Retrying…', 'start', () => runtimeAction('start')) : null));
      },
    };
  },

  check() {
    const s = state.status;
    const go = h('button', { class: 'btn primary', type: 'button', onclick: () => { local.step = 'resources'; changed(); } }, 'Continue');
    const el = h('div', { class: 'step' },
      h('h2', { text: 'Podman' }),
      h('ul', { class: 'checks' },
        check(true, `Podman ${s.podmanVersion || ''} is installed`.replace('  ', ' ')),
        check(true, 'Runs containers in a virtual machine', 'On macOS and Windows, Podman runs containers inside a small Linux virtual machine, “Podman’s machine”.'),
        check(null, 'The machine is not created yet', 'Clawdock creates and starts it for you. Next: choose how much of this computer it may use.')),
      actions(go));
    return { el, focus: () => go.focus() };
  },

  resources() {
    const cores = navigator.hardwareConcurrency || 0;
    const field = (id, label, input, help, cls = 'field') => h('div', { class: cls },
      h('label', { for: id, text: label }), input, help);
    const number = (id, value, min, max, step = 1) => h('input', {
      id, type: 'number', min: String(min), max: max ? String(max) : null, step: String(step), value: String(value), inputmode: 'numeric',
    });
    const agents = number('w-agents', local.agents, 1, 20);
    const cpus = number('w-cpus', local.cpus, 1, cores || 64);
    const memory = number('w-memory', local.memoryMiB / 1024, 2, 256, 0.5);
    const disk = number('w-disk', local.diskGiB, 20, 2000, 5);
    const memHelp = h('p', { class: 'help' });
    const problem = h('p', { class: 'help invalid', hidden: true });
    const submit = h('button', { class: 'btn primary', type: 'submit' }, 'Create machine');
    const explainMemory = () => {
      const n = Math.max(1, Math.floor(Number(agents.value)) || 1);
      setText(memHelp, `Each OpenClaw agent needs about 1–1.3 GB of memory, and the machine itself about 1.5 GB: for ${n} ${n === 1 ? 'agent' : 'agents'}, ${memoryFor(n) / 1024} GiB. The machine takes memory from this computer only while it runs.`);
    };
    explainMemory();
    const form = h('form', { class: 'step resources', novalidate: true },
      h('h2', { text: 'Resources' }),
      h('p', { class: 'lead', text: 'How much of this computer may Podman’s machine use? The defaults suit most people; you can change them later with Podman.' }),
      field('w-agents', 'How many agents do you plan to run?', agents, memHelp, 'field narrow'),
      h('div', { class: 'field-row three' },
        field('w-cpus', 'CPUs', cpus, h('p', { class: 'help', text: cores ? `This computer has ${cores}.` : '' })),
        field('w-memory', 'Memory (GiB)', memory, h('p', { class: 'help', text: 'Follows the number of agents.' })),
        field('w-disk', 'Disk (GiB)', disk, h('p', { class: 'help', text: 'Used as needed, up to this size.' }))),
      h('div', { class: 'download-note' }, icon('info'),
        h('p', null, 'Creating the machine downloads ', h('strong', { text: 'about 1 GB' }),
          ' and takes ', h('strong', { text: 'about 2.2 GB' }), ' on disk for the machine image. It takes a few minutes on a fast connection.')),
      problem,
      actions(
        h('button', { class: 'btn', type: 'button', onclick: () => { local.step = 'check'; changed(); } }, icon('back'), 'Back'),
        submit));
    const validate = () => {
      const c = Number(cpus.value);
      const m = Number(memory.value);
      const d = Number(disk.value);
      let msg = '';
      if (!Number.isInteger(c) || c < 1) msg = 'CPUs: at least 1.';
      else if (cores && c > cores) msg = `CPUs: at most ${cores}, the number this computer has.`;
      else if (!(m >= 2)) msg = 'Memory: at least 2 GiB.';
      else if (!(d >= 20)) msg = 'Disk: at least 20 GiB.';
      setText(problem, msg);
      problem.hidden = !msg;
      submit.disabled = !!msg || !!runtimeBusy;
      if (!msg) {
        local.cpus = c;
        local.memoryMiB = Math.round(m * 2) * 512;
        local.diskGiB = Math.round(d);
      }
      return !msg;
    };
    agents.addEventListener('input', () => {
      const n = Math.floor(Number(agents.value));
      if (n >= 1) {
        local.agents = n;
        memory.value = String(memoryFor(n) / 1024);
      }
      explainMemory();
      validate();
    });
    form.addEventListener('input', validate);
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      if (!validate()) return;
      await startSetup();
    });
    validate();
    return { el: form, focus: () => agents.focus(), update: validate };
  },

  progress() {
    const phase = h('h2');
    const bar = h('div', { class: 'progress', role: 'progressbar', 'aria-label': 'Setup progress' }, h('div', { class: 'bar' }));
    const figures = h('p', { class: 'figures' });
    const line = h('p', { class: 'podman-line', title: 'What Podman printed last' });
    const phases = h('ol', { class: 'phases' });
    const output = h('pre', { class: 'output' });
    const details = h('details', { class: 'output-details' }, h('summary', { text: 'Podman’s output' }), output);
    const leave = h('button', { class: 'btn', type: 'button', onclick: () => navigate('') }, 'Cancel');
    const el = h('div', { class: 'step progress-step' },
      phase, phases, bar, figures, line, details,
      h('div', { class: 'wizard-actions spread' },
        h('p', { class: 'muted small', text: 'Cancel only closes this page: the download and setup continue in the background. Come back here from the banner.' }),
        leave));
    if (!local.startedAt) local.startedAt = performance.now();

    const elapsedNow = () => {
      if (local.elapsed) return local.elapsed.secs + (performance.now() - local.elapsed.at) / 1000;
      return (performance.now() - local.startedAt) / 1000;
    };

    const paint = () => {
      const s = state.status;
      const setup = s.setup && s.setup.running ? s.setup : null;
      const step = setup ? setup.step : 'start';
      const text = setup ? setup.line || '' : '';
      let title;
      if (step === 'start' || !setup) title = 'Starting the machine';
      else if (/^Extracting/i.test(text)) title = 'Unpacking the machine image';
      else if (/^(Copying|Looking up|Getting image|Writing|Downloading)/i.test(text)) title = 'Downloading the machine image';
      else title = 'Creating the machine';
      setText(phase, `${title}…`);
      phases.replaceChildren(
        h('li', { class: step === 'init' ? 'current' : 'done' }, step === 'init' ? h('span', { class: 'spinner' }) : icon('check'), 'Create the machine'),
        h('li', { class: step === 'start' ? 'current' : '' }, step === 'start' ? h('span', { class: 'spinner' }) : h('span', { class: 'dot-todo' }), 'Start it'));
      setText(line, text);
      show(line, !!text);
      const counted = setup && step === 'init' && setup.percent != null && setup.totalBytes;
      const inner = bar.firstChild;
      if (counted) {
        const pct = Math.max(0, Math.min(100, setup.percent));
        bar.classList.remove('indeterminate');
        inner.style.width = `${pct.toFixed(1)}%`;
        bar.setAttribute('aria-valuenow', String(Math.round(pct)));
        bar.setAttribute('aria-valuemin', '0');
        bar.setAttribute('aria-valuemax', '100');
        const eta = etaSecs(setup);
        const bits = [`${Math.round(pct)}%`, `${formatBytes(setup.doneBytes)} of ${formatBytes(setup.totalBytes)}`];
        if (eta != null) bits.push(`${formatEta(eta)} left`);
        else bits.push(`${formatClock(elapsedNow())} elapsed`);
        setText(figures, bits.join('  ·  '));
      } else {
        bar.classList.add('indeterminate');
        inner.style.width = '';
        bar.removeAttribute('aria-valuenow');
        setText(figures, `${formatClock(elapsedNow())} elapsed`);
      }
      const lines = state.setupLines.map((l) => l.line).join('\n');
      if (output.textContent !== lines) {
        const stick = output.scrollHeight - output.scrollTop - output.clientHeight < 16;
        output.textContent = lines;
        if (stick) output.scrollTop = output.scrollHeight;
      }
      show(details, !!lines);
    };

    return {
      el,
      focus: () => leave.focus(),
      update() {
        const setup = state.status.setup;
        if (setup && setup.running) {
          if (!local.elapsed || local.elapsed.secs !== setup.elapsedSecs) {
            local.elapsed = { secs: setup.elapsedSecs || 0, at: performance.now() };
          }
          sample(setup);
        } else {
          local.elapsed = null;
        }
        paint();
      },
      tick: paint,
    };
  },

  failed() {
    const s = state.status;
    const setup = s.setup;
    const message = (setup && setup.error) || s.error || 'Setup failed.';
    const retry = () => (setup ? startSetup() : runtimeAction('start'));
    const el = h('div', { class: 'step' },
      h('h2', { text: setup ? 'Creating the machine failed' : 'Podman’s machine has a problem' }),
      h('pre', { class: 'error-text', role: 'alert', text: message }),
      h('p', { class: 'muted', text: 'Retry picks up where it stopped: a machine that was already created is kept and started.' }),
      actions(
        h('button', { class: 'btn', type: 'button', onclick: () => navigate('') }, 'Back to agents'),
        spinnerButton('Retry', 'Retrying…', setup ? 'setup' : 'start', retry)));
    return { el, focus: () => el.querySelector('.btn.primary')?.focus() };
  },

  stopped() {
    const el = h('div', { class: 'step' });
    let lastBusy;
    const paint = () => fill(el,
      h('h2', { text: 'Podman’s machine is stopped' }),
      h('ul', { class: 'checks' },
        check(true, `Podman ${state.status.podmanVersion || ''} is installed`.replace('  ', ' ')),
        check(true, 'The machine exists'),
        check(null, 'The machine is stopped', 'Agents need it running. Starting takes a few seconds.')),
      actions(spinnerButton('Start the machine', 'Starting…', 'start', () => runtimeAction('start'))));
    return {
      el,
      update() { if (lastBusy !== runtimeBusy) { lastBusy = runtimeBusy; paint(); } },
      focus: () => el.querySelector('.btn.primary')?.focus(),
    };
  },

  ready() {
    const s = state.status;
    const el = h('div', { class: 'step ready-step' },
      h('div', { class: 'ready-mark', 'aria-hidden': 'true' }, icon('check')),
      h('h2', { text: 'Ready' }),
      h('p', { class: 'lead', text: `Podman ${s.podmanVersion || ''} and its machine are running. Agents start in seconds now.`.replace('  ', ' ') }),
      actions(
        h('button', { class: 'btn', type: 'button', onclick: () => navigate('') }, 'Go to agents'),
        firstAgentButton()));
    return { el, focus: () => el.querySelector('.btn.primary')?.focus() };
  },
};

function firstAgentButton() {
  return h('button', {
    class: 'btn primary', type: 'button',
    onclick: () => { navigate(''); openCreateDialog(); },
  }, state.agents.size ? 'Create an agent' : 'Create your first agent');
}

async function startSetup() {
  state.setupLines = [];
  local.samples = [];
  local.startedAt = performance.now();
  await runtimeAction('setup', { cpus: local.cpus, memoryMiB: local.memoryMiB, diskGiB: local.diskGiB });
}

function sample(setup) {
  if (setup.step !== 'init' || setup.doneBytes == null || !setup.totalBytes) return;
  const last = local.samples[local.samples.length - 1];
  if (last && (last.total !== setup.totalBytes || setup.doneBytes < last.done)) local.samples = [];
  if (last && last.done === setup.doneBytes && last.total === setup.totalBytes) return;
  local.samples.push({ t: performance.now(), done: setup.doneBytes, total: setup.totalBytes });
  const cutoff = performance.now() - 30000;
  while (local.samples.length > 2 && local.samples[0].t < cutoff) local.samples.shift();
}

function etaSecs(setup) {
  const s = local.samples;
  if (s.length < 2) return null;
  const a = s[0];
  const b = s[s.length - 1];
  const secs = (b.t - a.t) / 1000;
  if (secs < 0.5 || b.done <= a.done) return null;
  const rate = (b.done - a.done) / secs;
  return Math.max(0, (setup.totalBytes - setup.doneBytes) / rate);
}
