// The side sheet for one agent: its logs (followed live) and a chat with its
// gateway. Routes `logs/<id>` and `chat/<id>` open it; closing it goes back to ''.

import { isBusy } from './state.js';
import { h, icon, setText, show, copyText } from './util.js';
import { badge, updateBadge } from './agents.js';
import { navigate } from './router.js';
import { plainText } from './api.js';

const MAX_LINES = 5000;

function dialog() {
  return document.getElementById('panel');
}

/** The agent sheet: render(state). Holds the open panel (its streams) in a closure. */
export function createPanel(store, actions) {
  const { state } = store;
  let current = null;
  const d = dialog();
  d.addEventListener('close', () => {
    if (state.local.route.panel) navigate('');
  });
  // A click on the backdrop (outside the sheet's box) closes it, like a native sheet.
  d.addEventListener('mousedown', (e) => {
    if (e.target !== d) return;
    const r = d.getBoundingClientRect();
    if (e.clientX < r.left || e.clientX > r.right || e.clientY < r.top || e.clientY > r.bottom) d.close();
  });

  const closePanel = () => {
    current.dispose();
    current = null;
    if (d.open) d.close();
    d.replaceChildren();
  };

  return function render() {
    const route = state.local.route;
    if (!route.panel) {
      if (current) closePanel();
      return;
    }
    if (!current || current.kind !== route.panel || current.id !== route.id) {
      if (current) current.dispose();
      current = build(store, actions, route.panel, route.id);
      d.replaceChildren(current.el);
      if (!d.open) d.showModal();
      current.focus();
    }
    current.update();
  };
}

function build(store, actions, kind, id) {
  const { state } = store;
  const title = h('h2', { id: 'panel-title' });
  const status = badge();
  const sub = h('p', { class: 'muted sheet-sub' });
  const tab = (k, label) => h('button', {
    class: 'tab', type: 'button', role: 'tab', 'aria-selected': k === kind ? 'true' : 'false',
    tabindex: k === kind ? '0' : '-1',
    onclick: () => navigate(`${k}/${id}`),
  }, icon(k), label);
  const tabs = h('div', { class: 'tabs', role: 'tablist', 'aria-label': 'View' }, tab('logs', 'Logs'), tab('chat', 'Chat'));
  tabs.addEventListener('keydown', (e) => {
    if (e.key === 'ArrowRight' || e.key === 'ArrowLeft') navigate(`${kind === 'logs' ? 'chat' : 'logs'}/${id}`);
  });
  const close = h('button', { class: 'icon-btn', type: 'button', 'aria-label': 'Close', title: 'Close (Esc)', onclick: () => dialog().close() }, icon('close'));
  const missing = h('div', { class: 'sheet-missing', hidden: true },
    h('p', { text: 'This agent no longer exists.' }),
    h('button', { class: 'btn', type: 'button', onclick: () => dialog().close() }, 'Close'));
  const view = kind === 'logs' ? logsView(store, id) : chatView(store, actions, id);
  const el = h('div', { class: 'sheet-inner', dataset: { kind } },
    h('header', { class: 'sheet-head' },
      h('div', { class: 'sheet-title' }, title, status),
      tabs, close),
    sub, missing, view.el);
  return {
    kind, id, el,
    focus: () => view.focus(),
    dispose: () => view.dispose(),
    update() {
      const agent = state.server.agents.get(id);
      // A just-created agent the server acknowledged is on its way, not missing.
      const loaded = state.server.status != null && !state.local.expected.has(id);
      show(missing, loaded && !agent);
      show(view.el, !!agent || !loaded);
      if (!agent) {
        setText(title, loaded ? 'Unknown agent' : 'Loading…');
        status.hidden = true;
        return;
      }
      status.hidden = false;
      setText(title, agent.name);
      updateBadge(status, agent, state.local.inflight);
      const bits = [`Port ${agent.port}`];
      if (agent.status === 'running' && agent.gatewayUrl) bits.push(agent.gatewayUrl);
      if (agent.providerType) bits.push(agent.providerType);
      setText(sub, bits.join('  ·  '));
      view.update(agent);
    },
  };
}

// ---- logs ----------------------------------------------------------------------

function logsView(store, id) {
  const { state } = store;
  let source = 'agent';
  let controller = null;
  let lines = [];
  let pending = [];
  let flushQueued = false;
  let ended = false;
  let lastStatus = null;

  const log = h('div', { class: 'log', role: 'log', tabindex: '0', 'aria-label': 'Log lines', 'aria-live': 'off' });
  const jump = h('button', { class: 'btn jump', type: 'button', hidden: true, onclick: () => toBottom() }, icon('down'), 'New lines');
  const note = h('p', { class: 'log-note muted' });
  const copy = h('button', {
    class: 'btn', type: 'button',
    onclick: async () => {
      const ok = await copyText(lines.join('\n'));
      copy.replaceChildren(icon(ok ? 'check' : 'copy'), ok ? 'Copied' : 'Copy failed');
      setTimeout(() => copy.replaceChildren(icon('copy'), 'Copy all'), 1500);
    },
  }, icon('copy'), 'Copy all');
  const containerToggle = h('input', { type: 'checkbox', id: 'log-source' });
  containerToggle.addEventListener('change', () => {
    source = containerToggle.checked ? 'container' : 'agent';
    restart();
  });
  const again = h('button', { class: 'btn small', type: 'button', hidden: true, onclick: () => restart() }, 'Follow again');
  const el = h('div', { class: 'logs-view' },
    h('div', { class: 'toolbar' },
      h('label', { class: 'switch', for: 'log-source' }, containerToggle, h('span', { class: 'track', 'aria-hidden': 'true' }), 'Container output'),
      h('span', { class: 'spacer' }),
      copy),
    h('div', { class: 'log-wrap' }, log, jump),
    h('div', { class: 'log-foot' }, note, again));

  const atBottom = () => log.scrollHeight - log.scrollTop - log.clientHeight < 24;
  const toBottom = () => {
    log.scrollTop = log.scrollHeight;
    jump.hidden = true;
  };
  log.addEventListener('scroll', () => { if (atBottom()) jump.hidden = true; });

  function lineEl(text) {
    const m = /^(\[\d\d:\d\d:\d\d\]|\d{4}-\d\d-\d\dT[\d:.]+Z?)\s(.*)$/s.exec(text);
    const body = m ? m[2] : text;
    const cls = /\bERROR\b|\berror\b|failed|Failed/.test(body) ? 'line bad' : /^---/.test(body) ? 'line rule' : 'line';
    return h('div', { class: cls }, m ? h('span', { class: 'ts', text: m[1] }) : null, m ? ' ' : null, body);
  }

  function flush() {
    flushQueued = false;
    if (!pending.length) return;
    const stick = atBottom();
    const frag = document.createDocumentFragment();
    for (const text of pending) frag.append(lineEl(text));
    pending = [];
    log.append(frag);
    while (log.childElementCount > MAX_LINES) log.firstElementChild.remove();
    if (stick) toBottom();
    else jump.hidden = false;
  }

  function add(text) {
    lines.push(text);
    if (lines.length > MAX_LINES) lines.splice(0, lines.length - MAX_LINES);
    pending.push(text);
    if (!flushQueued) {
      flushQueued = true;
      requestAnimationFrame(flush);
    }
  }

  function setNote(text, showAgain = false) {
    setText(note, text);
    again.hidden = !showAgain;
  }

  async function follow() {
    controller = new AbortController();
    const mine = controller;
    ended = false;
    setNote(source === 'container' ? 'Following the container’s output…' : 'Following…');
    const path = source === 'container'
      ? `/agents/${encodeURIComponent(id)}/logs?source=container&tail=500`
      : `/agents/${encodeURIComponent(id)}/logs`;
    try {
      await state.api.stream('GET', path, {
        signal: mine.signal,
        onData: (data) => {
          let text = data;
          try { text = JSON.parse(data); } catch { /* not JSON: show as is */ }
          add(typeof text === 'string' ? text : JSON.stringify(text));
        },
      });
      if (mine !== controller) return;
      ended = true;
      setNote(source === 'container' ? 'The container’s output ended.' : 'The log stream ended.', true);
    } catch (e) {
      if (e && e.name === 'AbortError') return;
      if (mine !== controller) return;
      ended = true;
      setNote(plainText(e.message), true);
    }
  }

  function restart() {
    if (controller) controller.abort();
    lines = [];
    pending = [];
    log.replaceChildren();
    jump.hidden = true;
    follow();
  }

  return {
    el,
    focus: () => log.focus(),
    dispose: () => { if (controller) controller.abort(); controller = null; },
    update(agent) {
      if (!controller) follow();
      // The container's output ends when it stops: follow it again when it runs again.
      if (source === 'container' && ended && agent.status === 'running' && lastStatus !== 'running') restart();
      lastStatus = agent.status;
    },
  };
}

// ---- chat ----------------------------------------------------------------------

function chatView(store, actions, id) {
  const { state } = store;
  const messages = store.conversation(id);
  let controller = null;

  const list = h('div', { class: 'chat-list', role: 'log', 'aria-label': 'Conversation', 'aria-live': 'polite' });
  const emptyNote = h('div', { class: 'chat-empty muted' },
    h('p', { text: 'Send a message to this agent’s gateway. The answer streams in as it is written.' }));
  const input = h('textarea', { class: 'chat-input', rows: '1', placeholder: 'Message…', 'aria-label': 'Message' });
  const send = h('button', { class: 'btn primary', type: 'submit' }, icon('send'), 'Send');
  const hint = h('p', { class: 'chat-hint muted', text: 'Enter sends, Shift+Enter adds a line.' });
  const startBtn = h('button', { class: 'btn small', type: 'button', onclick: () => { const a = state.server.agents.get(id); if (a) actions.act(a, 'start'); } }, icon('play'), 'Start');
  const offline = h('div', { class: 'chat-offline', hidden: true }, h('span', { text: 'Chat needs a running agent.' }), startBtn);
  const form = h('form', { class: 'composer' }, input, send);
  const el = h('div', { class: 'chat-view' }, list, offline, form, hint);

  const render = (m) => {
    if (!m.el) {
      m.text = h('div', { class: 'bubble-text' });
      m.el = h('div', { class: `msg ${m.role}` },
        h('div', { class: 'who', text: m.role === 'user' ? 'You' : m.role === 'error' ? 'Error' : 'Agent' }), m.text);
    }
    setText(m.text, m.content || (m.pending ? '' : m.role === 'assistant' ? '(no answer)' : ''));
    m.el.classList.toggle('pending', !!m.pending);
    return m.el;
  };
  const scroll = () => { list.scrollTop = list.scrollHeight; };
  const redraw = () => {
    list.replaceChildren(...(messages.length ? messages.map(render) : [emptyNote]));
    scroll();
  };

  const grow = () => {
    input.style.height = 'auto';
    input.style.height = `${Math.min(input.scrollHeight, 160)}px`;
  };
  input.addEventListener('input', grow);
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      form.requestSubmit();
    }
  });

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (controller) { controller.abort(); return; }
    const text = input.value.trim();
    const agent = state.server.agents.get(id);
    if (!text || !agent || agent.status !== 'running') return;
    input.value = '';
    grow();
    messages.push({ role: 'user', content: text });
    const answer = { role: 'assistant', content: '', pending: true };
    messages.push(answer);
    redraw();
    controller = new AbortController();
    const mine = controller;
    sending(true);
    try {
      await state.api.stream('POST', `/agents/${encodeURIComponent(id)}/chat`, {
        body: { message: text },
        signal: mine.signal,
        onData: (data) => {
          if (data.trim() === '[DONE]') return;
          let chunk;
          try { chunk = JSON.parse(data); } catch { return; }
          if (chunk && chunk.error) {
            const msg = typeof chunk.error === 'string' ? chunk.error : chunk.error.message || JSON.stringify(chunk.error);
            messages.push({ role: 'error', content: plainText(msg) });
            redraw();
            return;
          }
          const choice = chunk && chunk.choices && chunk.choices[0];
          const piece = choice && ((choice.delta && choice.delta.content) || (choice.message && choice.message.content));
          if (piece) {
            answer.content += piece;
            render(answer);
            scroll();
          }
        },
      });
    } catch (err) {
      if (!(err && err.name === 'AbortError')) {
        if (!answer.content) messages.splice(messages.indexOf(answer), 1);
        messages.push({ role: 'error', content: plainText(err.message) });
      } else if (!answer.content) {
        answer.content = '(stopped)';
      }
    } finally {
      answer.pending = false;
      if (mine === controller) controller = null;
      sending(false);
      redraw();
    }
  });

  function sending(on) {
    send.replaceChildren(icon(on ? 'stop' : 'send'), on ? 'Stop' : 'Send');
    send.classList.toggle('primary', !on);
    input.disabled = on;
    if (!on) input.focus();
  }

  redraw();
  return {
    el,
    focus: () => input.focus(),
    dispose: () => { if (controller) controller.abort(); },
    update(agent) {
      const running = agent.status === 'running';
      offline.hidden = running;
      form.hidden = !running && !controller;
      hint.hidden = form.hidden;
      startBtn.disabled = isBusy(state, agent) || !['stopped', 'error'].includes(agent.status);
      startBtn.hidden = agent.status === 'running';
      setText(offline.firstChild, isBusy(state, agent) ? 'The agent is busy; chat opens when it runs.' : 'Chat needs a running agent.');
    },
  };
}
