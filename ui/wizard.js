// The first-run setup wizard (`#setup`): check Podman, choose the machine's size,
// create it with live progress, done. Which step shows is decided by one function
// of the runtime status (`wizardStep`); the user only moves between the first two.
// Sizes, bounds and the memory per agent are the server's (`meta`), never a copy.

import { h, icon, rich, fill, setText, show } from './util.js';
import { installHelp, runtimeButton, runtimeButtons } from './runtime.js';
import { navigate } from './router.js';
import { phaseTitle, progressFigures } from './progress.js';

/** The step to show for a runtime status; `userStep` is 'check' or 'resources'. */
export function wizardStep(status, userStep = 'check') {
  if (!status) return 'loading';
  // Right after launch podman has not been looked for yet (`probing`, every
  // field unknown): not "missing".
  if (status.state === 'probing') return 'loading';
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

/** The wizard's choices, filled from the server's recommendation where unset. */
export function wizardChoices(meta, chosen) {
  const m = meta.machine;
  const agents = chosen.agents ?? m.defaultPlannedAgents;
  return {
    agents,
    cpus: chosen.cpus ?? m.recommended.cpus,
    memoryMiB: chosen.memoryMiB ?? meta.memory.suggestedMachineMiB[agents],
    diskGiB: chosen.diskGiB ?? m.recommended.diskGiB,
  };
}

/** What is wrong with a machine size by the server's bounds, or '' when nothing. */
export function specProblem(meta, { cpus, memoryMiB, diskGiB }) {
  const m = meta.machine;
  const maxCpus = Math.min(m.cpus.max, m.cores || m.cpus.max);
  if (!Number.isInteger(cpus) || cpus < m.cpus.min) return `CPUs: at least ${m.cpus.min}.`;
  if (cpus > maxCpus) return `CPUs: at most ${maxCpus}, the number this computer has.`;
  if (!(memoryMiB >= m.memoryMiB.min)) return `Memory: at least ${m.memoryMiB.min / 1024} GiB.`;
  if (memoryMiB > m.memoryMiB.max) return `Memory: at most ${m.memoryMiB.max / 1024} GiB.`;
  if (!(diskGiB >= m.diskGiB.min)) return `Disk: at least ${m.diskGiB.min} GiB.`;
  if (diskGiB > m.diskGiB.max) return `Disk: at most ${m.diskGiB.max} GiB.`;
  return '';
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

function check(ok, title, detail) {
  return h('li', { class: `check ${ok === true ? 'ok' : ok === false ? 'bad' : 'todo'}` },
    h('span', { class: 'check-icon', 'aria-hidden': 'true' }, ok === true ? icon('check') : ok === false ? icon('close') : ''),
    h('div', null, h('strong', { text: title }), detail ? h('p', { class: 'muted' }, rich(detail)) : null));
}

/** The launch-at-login switch; menu.js keeps it in step (hidden under `clawdock serve`). */
function loginSwitch() {
  return h('div', { class: 'login-choice', dataset: { loginHolder: '' }, hidden: true },
    h('label', { class: 'switch', for: 'wizard-login' },
      h('input', { type: 'checkbox', id: 'wizard-login', dataset: { loginSwitch: '' } }),
      h('span', { class: 'track', 'aria-hidden': 'true' }), 'Launch Clawdock at login'),
    h('p', { class: 'help', text: 'Clawdock’s tray app starts when you log in, so your agents are a click away.' }));
}

function actionsRow(...buttons) {
  return h('div', { class: 'wizard-actions' }, buttons.filter(Boolean));
}

const version = (s) => `Podman ${s.podmanVersion || ''}`.trim();

/** The wizard: render(state). The built step and its clock live in this closure. */
export function createWizard(store, actions, openCreate) {
  const { state } = store;
  let built = null;
  let ticker = null;

  const firstAgentButton = () => h('button', {
    class: 'btn primary', type: 'button',
    onclick: () => { navigate(''); openCreate(); },
  }, state.server.agents.size ? 'Create an agent' : 'Create your first agent');

  const startSetup = () => {
    const c = wizardChoices(state.server.meta, state.local.wizard);
    return actions.runtime('setup', { cpus: c.cpus, memoryMiB: c.memoryMiB, diskGiB: c.diskGiB });
  };

  const STEP_VIEWS = {
    loading() {
      return { el: h('p', { class: 'muted', text: 'Looking at Podman…' }) };
    },

    missing() {
      const el = h('div', { class: 'step' },
        h('h2', { text: 'Podman is needed' }),
        h('ul', { class: 'checks' }, check(false, 'Podman is not installed', 'Clawdock looked for the `podman` program and did not find it.')),
        installHelp(),
        actionsRow(runtimeButton(actions, 'check', 'Check again')));
      return { el, focus: () => el.querySelector('.wizard-actions .btn')?.focus() };
    },

    native() {
      const el = h('div', { class: 'step' });
      const head = h('h2');
      const checks = h('ul', { class: 'checks' });
      const error = h('pre', { class: 'error-text', hidden: true });
      const retry = runtimeButton(actions, 'start', 'Retry', { busyLabel: 'Retrying…' });
      const create = firstAgentButton();
      fill(el, head, checks, error, loginSwitch(), actionsRow(
        h('button', { class: 'btn', type: 'button', onclick: () => navigate('') }, 'Go to agents'), create, retry));
      return {
        el,
        focus: () => el.querySelector('.wizard-actions .btn')?.focus(),
        update() {
          const s = state.server.status;
          const ready = s.state === 'ready';
          const failed = s.state === 'error';
          setText(head, ready ? 'Ready' : 'Podman');
          const engine = ready ? 'The container engine answers' : failed ? 'The container engine does not answer' : 'Waiting for the container engine…';
          if (checks.dataset.engine !== engine) {
            checks.dataset.engine = engine;
            fill(checks,
              check(true, `${version(s)} is installed`),
              check(true, 'No virtual machine needed', 'On Linux, Podman runs containers directly on this computer.'),
              check(ready ? true : failed ? false : null, engine));
          }
          setText(error, failed ? s.error || '' : '');
          show(error, failed);
          show(create, ready);
          show(retry, failed);
        },
      };
    },

    check() {
      const s = state.server.status;
      const go = h('button', { class: 'btn primary', type: 'button', onclick: () => store.setWizard({ step: 'resources' }) }, 'Continue');
      const el = h('div', { class: 'step' },
        h('h2', { text: 'Podman' }),
        h('ul', { class: 'checks' },
          check(true, `${version(s)} is installed`),
          check(true, 'Runs containers in a virtual machine', 'On macOS and Windows, Podman runs containers inside a small Linux virtual machine, “Podman’s machine”.'),
          check(null, 'The machine is not created yet', 'Clawdock creates and starts it for you. Next: choose how much of this computer it may use.')),
        actionsRow(go));
      return { el, focus: () => go.focus() };
    },

    resources() {
      const meta = state.server.meta;
      if (!meta) return STEP_VIEWS.loading();
      const m = meta.machine;
      const chosen = wizardChoices(meta, state.local.wizard);
      const stepGiB = m.memoryStepMiB / 1024;
      const field = (id, label, input, help, cls = 'field') => h('div', { class: cls },
        h('label', { for: id, text: label }), input, help);
      const number = (id, value, min, max, step = 1) => h('input', {
        id, type: 'number', min: String(min), max: String(max), step: String(step), value: String(value), inputmode: 'numeric',
      });
      const maxCpus = Math.min(m.cpus.max, m.cores || m.cpus.max);
      const agents = number('w-agents', chosen.agents, m.plannedAgents.min, m.plannedAgents.max);
      const cpus = number('w-cpus', chosen.cpus, m.cpus.min, maxCpus);
      const memory = number('w-memory', chosen.memoryMiB / 1024, m.memoryMiB.min / 1024, m.memoryMiB.max / 1024, stepGiB);
      const disk = number('w-disk', chosen.diskGiB, m.diskGiB.min, m.diskGiB.max, 5);
      const memHelp = h('p', { class: 'help', id: 'w-agents-help' });
      agents.setAttribute('aria-describedby', 'w-agents-help');
      const problem = h('p', { class: 'help invalid', role: 'alert', hidden: true });
      const submit = h('button', { class: 'btn primary', type: 'submit', dataset: { runtime: 'setup', label: 'Create machine', busyLabel: 'Creating…' } }, 'Create machine');
      const explainMemory = (n) => {
        const gb = (mib) => (mib / 1024).toFixed(1).replace(/\.0$/, '');
        setText(memHelp, `Each OpenClaw agent needs about ${gb(meta.memory.agentMiB)} GB of memory, and the machine itself about ${gb(meta.memory.machineBaseMiB)} GB: for ${n} ${n === 1 ? 'agent' : 'agents'}, ${meta.memory.suggestedMachineMiB[n] / 1024} GiB. The machine takes memory from this computer only while it runs.`);
      };
      explainMemory(chosen.agents);
      const form = h('form', { class: 'step resources', novalidate: true },
        h('h2', { text: 'Resources' }),
        h('p', { class: 'lead', text: 'How much of this computer may Podman’s machine use? The defaults suit most people; you can change them later with Podman.' }),
        field('w-agents', 'How many agents do you plan to run?', agents, memHelp, 'field narrow'),
        h('div', { class: 'field-row three' },
          field('w-cpus', 'CPUs', cpus, h('p', { class: 'help', text: m.cores ? `This computer has ${m.cores}.` : '' })),
          field('w-memory', 'Memory (GiB)', memory, h('p', { class: 'help', text: 'Follows the number of agents.' })),
          field('w-disk', 'Disk (GiB)', disk, h('p', { class: 'help', text: 'Used as needed, up to this size.' }))),
        h('div', { class: 'download-note' }, icon('info'),
          h('p', null, 'Creating the machine downloads ', h('strong', { text: 'about 1 GB' }),
            ' and takes ', h('strong', { text: 'about 2.2 GB' }), ' on disk for the machine image. It takes a few minutes on a fast connection.')),
        problem,
        actionsRow(
          h('button', { class: 'btn', type: 'button', onclick: () => store.setWizard({ step: 'check' }) }, icon('back'), 'Back'),
          submit));
      const read = () => ({
        cpus: Number(cpus.value),
        memoryMiB: Math.round((Number(memory.value) * 1024) / m.memoryStepMiB) * m.memoryStepMiB,
        diskGiB: Math.round(Number(disk.value)),
      });
      const validate = () => {
        const spec = read();
        const msg = specProblem(meta, spec);
        setText(problem, msg);
        problem.hidden = !msg;
        submit.disabled = !!msg || !!state.local.runtimeBusy;
        return !msg;
      };
      agents.addEventListener('input', () => {
        const n = Math.floor(Number(agents.value));
        if (n >= m.plannedAgents.min && n <= m.plannedAgents.max) {
          memory.value = String(meta.memory.suggestedMachineMiB[n] / 1024);
          explainMemory(n);
          store.setWizard({ agents: n });
        }
      });
      form.addEventListener('input', () => {
        if (validate()) store.setWizard(read());
      });
      form.addEventListener('submit', async (e) => {
        e.preventDefault();
        if (!validate()) return;
        store.setWizard(read());
        await startSetup();
      });
      validate();
      return {
        el: form,
        focus: () => agents.focus(),
        update() {
          validate();
        },
      };
    },

    progress() {
      const phase = h('h2');
      const bar = h('div', { class: 'progress', role: 'progressbar', 'aria-label': 'Setup progress' }, h('div', { class: 'bar' }));
      const figures = h('p', { class: 'figures' });
      const line = h('p', { class: 'podman-line', title: 'What Podman printed last' });
      const phases = h('ol', { class: 'phases' });
      const output = h('pre', { class: 'output', tabindex: '0', 'aria-label': 'Podman’s output' });
      const details = h('details', { class: 'output-details' }, h('summary', { text: 'Podman’s output' }), output);
      const leave = h('button', { class: 'btn', type: 'button', onclick: () => navigate('') }, 'Cancel');
      const el = h('div', { class: 'step progress-step' },
        phase, phases, bar, figures, line, details,
        h('div', { class: 'wizard-actions spread' },
          h('p', { class: 'muted small', text: 'Cancel only closes this page: the download and setup continue in the background. Come back here from the banner.' }),
          leave));
      // The local clock: the server's elapsed time and when we got it.
      const startedAt = performance.now();
      let elapsed = null;
      const elapsedNow = () => (elapsed
        ? elapsed.secs + (performance.now() - elapsed.at) / 1000
        : (performance.now() - startedAt) / 1000);

      const paint = () => {
        const s = state.server.status;
        const setup = s.setup && s.setup.running ? s.setup : null;
        const step = setup ? setup.step : 'start';
        const text = setup ? setup.line || '' : '';
        setText(phase, `${phaseTitle(setup)}…`);
        if (phases.dataset.step !== step) {
          phases.dataset.step = step;
          phases.replaceChildren(
            h('li', { class: step === 'init' ? 'current' : 'done' }, step === 'init' ? h('span', { class: 'spinner' }) : icon('check'), 'Create the machine'),
            h('li', { class: step === 'start' ? 'current' : '' }, step === 'start' ? h('span', { class: 'spinner' }) : h('span', { class: 'dot-todo' }), 'Start it'));
        }
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
        } else {
          bar.classList.add('indeterminate');
          inner.style.width = '';
          bar.removeAttribute('aria-valuenow');
        }
        setText(figures, progressFigures(setup, elapsedNow()));
        const lines = state.server.setupLines.map((l) => l.line).join('\n');
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
          const setup = state.server.status.setup;
          if (setup && setup.running) {
            if (!elapsed || elapsed.secs !== setup.elapsedSecs) elapsed = { secs: setup.elapsedSecs || 0, at: performance.now() };
          } else {
            elapsed = null;
          }
          paint();
        },
        tick: paint,
      };
    },

    failed() {
      const s = state.server.status;
      const setup = s.setup;
      const message = (setup && setup.error) || s.error || 'Setup failed.';
      const el = h('div', { class: 'step' },
        h('h2', { text: setup ? 'Creating the machine failed' : 'Podman’s machine has a problem' }),
        h('pre', { class: 'error-text', role: 'alert', text: message }),
        h('p', { class: 'muted', text: 'Retry picks up where it stopped: a machine that was already created is kept and started.' }),
        actionsRow(
          h('button', { class: 'btn', type: 'button', onclick: () => navigate('') }, 'Back to agents'),
          setup
            ? runtimeButton(actions, 'setup', 'Retry', { busyLabel: 'Retrying…', onclick: startSetup })
            : runtimeButton(actions, 'start', 'Retry', { busyLabel: 'Retrying…' })));
      return { el, focus: () => el.querySelector('.btn.primary')?.focus() };
    },

    stopped() {
      const el = h('div', { class: 'step' },
        h('h2', { text: 'Podman’s machine is stopped' }),
        h('ul', { class: 'checks' },
          check(true, `${version(state.server.status)} is installed`),
          check(true, 'The machine exists'),
          check(null, 'The machine is stopped', 'Agents need it running. Starting takes a few seconds.')),
        actionsRow(runtimeButton(actions, 'start', 'Start the machine')));
      return { el, focus: () => el.querySelector('.btn.primary')?.focus() };
    },

    ready() {
      const el = h('div', { class: 'step ready-step' },
        h('div', { class: 'ready-mark', 'aria-hidden': 'true' }, icon('check')),
        h('h2', { text: 'Ready' }),
        h('p', { class: 'lead', text: `${version(state.server.status)} and its machine are running. Agents start in seconds now.` }),
        loginSwitch(),
        actionsRow(
          h('button', { class: 'btn', type: 'button', onclick: () => navigate('') }, 'Go to agents'),
          firstAgentButton()));
      return { el, focus: () => el.querySelector('.btn.primary')?.focus() };
    },
  };

  const stopTicker = () => {
    clearInterval(ticker);
    ticker = null;
  };

  return function render() {
    const view = document.getElementById('wizard-view');
    if (state.local.route.view !== 'setup') {
      if (built) {
        built = null;
        view.replaceChildren();
      }
      stopTicker();
      return;
    }
    const step = wizardStep(state.server.status, state.local.wizard.step);
    const ruled = step !== 'resources' || !!state.server.meta;
    if (!built || built.step !== step || built.ruled !== ruled) {
      const hadFocus = view.contains(document.activeElement);
      const content = STEP_VIEWS[step]();
      built = { step, ruled, ...content };
      view.replaceChildren(h('div', { class: 'wizard', dataset: { step } },
        h('div', { class: 'wizard-head' },
          h('div', null,
            h('h1', { text: 'Set up Podman' }),
            h('p', { class: 'muted', text: 'Clawdock runs every agent in a Podman container on this computer.' })),
          h('button', { class: 'btn ghost', type: 'button', onclick: () => navigate('') }, icon('back'), 'Agents')),
        stepper(step),
        h('div', { class: 'wizard-body' }, content.el)));
      if (content.focus && (hadFocus || document.activeElement === document.body || !document.activeElement)) content.focus();
      stopTicker();
      // A local clock for the elapsed time and ETA text; it makes no requests.
      if (step === 'progress') ticker = setInterval(() => { if (built && built.tick) built.tick(); }, 1000);
    }
    runtimeButtons(view, state.local.runtimeBusy);
    if (built.update) built.update();
  };
}
