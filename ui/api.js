// The HTTP API of Clawdock (docs/API.md): where it is, the token, JSON calls and
// Server-Sent Events read with fetch (EventSource cannot send the bearer header).

const TOKEN_KEY = 'clawdock.token';

/** An answer that was not 2xx, or no answer at all (status 0). */
export class ApiError extends Error {
  constructor(status, message, code = null) {
    super(message);
    this.status = status;
    /** The server's stable `code` (docs/API.md), when it sent one. */
    this.code = code;
  }
}

/**
 * Splits a location hash into the API token (first visit: `#token=...`) and the
 * route (`setup`, `logs/<id>`, ...). Tolerates `#/route`, `#token=x&route` and
 * `#route&token=x`.
 */
export function splitHash(hash) {
  const raw = String(hash || '').replace(/^#/, '').replace(/^\//, '');
  let token = null;
  const rest = [];
  for (const part of raw.split('&')) {
    if (!part) continue;
    if (part.startsWith('token=')) {
      try { token = decodeURIComponent(part.slice(6)); } catch { token = part.slice(6); }
    } else {
      rest.push(part);
    }
  }
  return { token: token || null, route: rest.join('&') };
}

/**
 * Finds the API: the desktop window injects `window.__CLAWDOCK__ = {url, token}`;
 * a browser gets the page from the API itself with the token in the fragment, which
 * is kept in sessionStorage and removed from the visible URL.
 */
export function locateApi() {
  const injected = window.__CLAWDOCK__;
  if (injected && injected.url && injected.token) {
    return { base: String(injected.url).replace(/\/+$/, ''), token: String(injected.token) };
  }
  const { token, route } = splitHash(location.hash);
  if (token) {
    try { sessionStorage.setItem(TOKEN_KEY, token); } catch { /* storage off: the URL keeps working this once */ }
    const url = location.pathname + location.search + (route ? `#${route}` : '');
    history.replaceState(history.state, '', url);
  }
  let stored = null;
  try { stored = sessionStorage.getItem(TOKEN_KEY); } catch { /* ignore */ }
  return { base: location.origin, token: token || stored || null };
}

/** Turns an HTML error page (a gateway's 501, say) into its plain text. */
export function plainText(message) {
  const text = String(message ?? '');
  if (!/<[a-z!/][^>]*>/i.test(text)) return text.trim();
  const doc = new DOMParser().parseFromString(text, 'text/html');
  const parts = [];
  const walk = (node) => {
    for (const child of node.childNodes) {
      if (child.nodeType === Node.TEXT_NODE) parts.push(child.textContent);
      else if (child.nodeType === Node.ELEMENT_NODE && !/^(script|style|title)$/i.test(child.tagName)) {
        walk(child);
        parts.push(' ');
      }
    }
  };
  walk(doc.body || doc.documentElement);
  return parts.join('').replace(/\s+/g, ' ').trim();
}

async function errorFrom(res) {
  let message = '';
  let code = null;
  const type = res.headers.get('content-type') || '';
  try {
    if (type.includes('json')) {
      const body = await res.json();
      message = body && (body.error || body.message) ? String(body.error || body.message) : '';
      code = body && typeof body.code === 'string' ? body.code : null;
    } else {
      message = await res.text();
    }
  } catch { /* body unreadable: fall back below */ }
  message = plainText(message);
  if (!message) {
    message = res.status === 401
      ? 'Missing or wrong API token.'
      : `Clawdock answered ${res.status} ${res.statusText || ''}`.trim() + '.';
  }
  return new ApiError(res.status, message, code);
}

const UNREACHABLE = 'Clawdock is not answering. Is it still running?';

export class Api {
  constructor(base, token) {
    this.base = base;
    this.token = token;
  }

  headers(json) {
    const h = { Authorization: `Bearer ${this.token}` };
    if (json) h['Content-Type'] = 'application/json';
    return h;
  }

  async raw(method, path, body, signal) {
    try {
      return await fetch(this.base + path, {
        method,
        headers: this.headers(body !== undefined),
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: 'no-store',
        signal,
      });
    } catch (e) {
      if (e && e.name === 'AbortError') throw e;
      throw new ApiError(0, UNREACHABLE);
    }
  }

  /** A JSON call; throws ApiError with the server's `{error}` sentence. */
  async call(method, path, body) {
    const res = await this.raw(method, path, body);
    if (!res.ok) throw await errorFrom(res);
    if (res.status === 204) return null;
    try { return await res.json(); } catch { return null; }
  }

  get(path) { return this.call('GET', path); }
  post(path, body) { return this.call('POST', path, body); }
  del(path) { return this.call('DELETE', path); }

  /**
   * Reads an SSE answer, calling onData with each event's data (a string).
   * Resolves when the stream ends; rejects with ApiError on a non-2xx answer and with
   * an AbortError when `signal` aborts.
   */
  async stream(method, path, { body, signal, onData, onOpen } = {}) {
    const res = await this.raw(method, path, body, signal);
    if (!res.ok) throw await errorFrom(res);
    if (onOpen) onOpen(res);
    await readSse(res, onData, signal);
  }
}

/** The SSE wire format: `field: value` lines, events separated by a blank line. */
export async function readSse(res, onData, signal) {
  if (!res.body) {
    parseSseText(await res.text(), onData);
    return;
  }
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  const parser = sseParser(onData);
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      parser.push(decoder.decode(value, { stream: true }));
    }
    parser.push(decoder.decode());
    parser.end();
  } catch (e) {
    if (signal && signal.aborted) {
      const abort = new Error('aborted');
      abort.name = 'AbortError';
      throw abort;
    }
    throw e;
  } finally {
    try { reader.releaseLock(); } catch { /* already released */ }
  }
}

export function sseParser(onData) {
  let buffer = '';
  let data = [];
  const line = (text) => {
    if (text === '') {
      if (data.length) {
        const payload = data.join('\n');
        data = [];
        onData(payload);
      }
      return;
    }
    if (text.startsWith(':')) return;
    const colon = text.indexOf(':');
    const field = colon < 0 ? text : text.slice(0, colon);
    let value = colon < 0 ? '' : text.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') data.push(value);
  };
  return {
    push(chunk) {
      buffer += chunk;
      let nl;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        let text = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        if (text.endsWith('\r')) text = text.slice(0, -1);
        line(text);
      }
    },
    end() {
      if (buffer) line(buffer.replace(/\r$/, ''));
      buffer = '';
      line('');
    },
  };
}

function parseSseText(text, onData) {
  const p = sseParser(onData);
  p.push(text);
  p.end();
}

/**
 * Follows `GET /events`. Reconnects when the stream ends or fails, with a growing
 * delay; this is not polling: nothing is requested while a stream is open.
 * Calls onEvent(object) and onState('connecting'|'live'|'reconnecting'|'unauthorized').
 */
export class EventFeed {
  constructor(api, { onEvent, onState }) {
    this.api = api;
    this.onEvent = onEvent;
    this.onState = onState;
    this.failures = 0;
    this.timer = null;
    this.controller = null;
    this.stopped = false;
  }

  start() {
    this.stopped = false;
    this.connect();
    // Coming back online or to the window: try at once instead of waiting out the delay.
    const now = () => { if (this.timer) this.reconnectNow(); };
    window.addEventListener('online', now);
    document.addEventListener('visibilitychange', () => { if (!document.hidden) now(); });
  }

  reconnectNow() {
    clearTimeout(this.timer);
    this.timer = null;
    this.connect();
  }

  async connect() {
    if (this.stopped) return;
    this.controller = new AbortController();
    this.onState(this.failures ? 'reconnecting' : 'connecting');
    let opened = false;
    try {
      await this.api.stream('GET', '/events', {
        signal: this.controller.signal,
        onData: (data) => {
          let event;
          try { event = JSON.parse(data); } catch { return; }
          if (!opened && event.type === 'snapshot') {
            opened = true;
            this.failures = 0;
            this.onState('live');
          }
          this.onEvent(event);
        },
      });
    } catch (e) {
      if (e && e.name === 'AbortError') return;
      if (e instanceof ApiError && e.status === 401) {
        this.onState('unauthorized');
        return;
      }
    }
    if (this.stopped) return;
    this.failures += 1;
    this.onState('reconnecting');
    const delay = Math.min(15000, 500 * 2 ** Math.min(this.failures - 1, 5));
    this.timer = setTimeout(() => { this.timer = null; this.connect(); }, delay);
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.controller) this.controller.abort();
  }
}
