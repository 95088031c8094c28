// Small DOM and formatting helpers shared by the views.

/**
 * Builds an element: h('button', {class: 'btn', onclick}, 'Start').
 * Props: `class`, `text`, `on<event>`, `dataset`, boolean/property values
 * (`disabled`, `hidden`, `value`, `checked`), anything else as an attribute.
 */
export function h(tag, props, ...children) {
  const el = tag.includes(':')
    ? document.createElementNS('http://www.w3.org/2000/svg', tag.split(':')[1])
    : document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value == null || value === false) continue;
    if (key === 'class') el.setAttribute('class', value);
    else if (key === 'text') el.textContent = value;
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
    else if (key === 'disabled' || key === 'hidden' || key === 'checked' || key === 'value') el[key] = value;
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

/** Replaces an element's children; null and false children are skipped. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child == null || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Text with `code` spans: 'Run `brew install podman`' -> [text, <code>]. */
export function rich(text) {
  return String(text).split(/(`[^`]+`)/).filter(Boolean).map((part) =>
    part.startsWith('`') && part.endsWith('`') ? h('code', { text: part.slice(1, -1) }) : part);
}

/** Sets textContent only when it changed (keeps selections and avoids layout work). */
export function setText(el, text) {
  const t = text == null ? '' : String(text);
  if (el.textContent !== t) el.textContent = t;
}

export function show(el, visible) {
  if (el.hidden === !!visible) el.hidden = !visible;
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

export function formatBytes(n) {
  if (n == null || !Number.isFinite(n)) return '';
  let v = n;
  let i = 0;
  while (v >= 1024 && i < UNITS.length - 1) { v /= 1024; i += 1; }
  const digits = i === 0 ? 0 : v < 10 ? 2 : v < 100 ? 1 : 0;
  return `${v.toFixed(digits)} ${UNITS[i]}`;
}

/** 75 -> "1:15"; 3700 -> "1:01:40". */
export function formatClock(secs) {
  const s = Math.max(0, Math.floor(secs));
  const hh = Math.floor(s / 3600);
  const mm = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return hh ? `${hh}:${String(mm).padStart(2, '0')}:${ss}` : `${mm}:${ss}`;
}

/** 42 -> "about 45 s"; 200 -> "about 4 min". */
export function formatEta(secs) {
  if (!Number.isFinite(secs) || secs < 0) return '';
  if (secs < 5) return 'a few seconds';
  if (secs < 60) return `about ${Math.ceil(secs / 5) * 5} s`;
  const min = Math.round(secs / 60);
  if (min < 60) return `about ${min} min`;
  return `about ${Math.floor(min / 60)} h ${min % 60} min`;
}

/** The user's OS as far as the page can tell: 'macos' | 'windows' | 'linux'. */
export function detectOs(ua = navigator.userAgent) {
  if (/Mac OS X|Macintosh/i.test(ua)) return 'macos';
  if (/Windows/i.test(ua)) return 'windows';
  return 'linux';
}

/** Copies text; falls back to a hidden textarea where the clipboard API is missing. */
export async function copyText(text) {
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      return true;
    }
  } catch { /* fall back */ }
  const area = h('textarea', { class: 'offscreen', readonly: true });
  area.value = text;
  document.body.append(area);
  area.select();
  let ok = false;
  try { ok = document.execCommand('copy'); } catch { ok = false; }
  area.remove();
  return ok;
}

/** Is focus in something that takes typing (so single-key shortcuts stay off)? */
export function typingTarget(el) {
  if (!el) return false;
  return el.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(el.tagName);
}

export function icon(name) {
  const paths = {
    play: 'M5 3.5v9l7-4.5z',
    stop: 'M4.5 4.5h7v7h-7z',
    logs: 'M3 4h10M3 8h10M3 12h6',
    chat: 'M3 4.5A1.5 1.5 0 0 1 4.5 3h7A1.5 1.5 0 0 1 13 4.5v5a1.5 1.5 0 0 1-1.5 1.5H7l-3 2.5V11h.5',
    trash: 'M3.5 4.5h9M6.5 4.5V3h3v1.5M5 4.5l.5 8.5h5l.5-8.5',
    copy: 'M5.5 5.5h7v7h-7zM3.5 10.5v-7h7',
    close: 'M4 4l8 8M12 4l-8 8',
    check: 'M3.5 8.5l3 3 6-7',
    warn: 'M8 2.5l6 11H2zM8 6.5v3.5M8 11.8v.2',
    info: 'M8 7.5v4M8 4.8v.2M8 1.8a6.2 6.2 0 1 0 0 12.4A6.2 6.2 0 0 0 8 1.8z',
    down: 'M8 3v10M4 9l4 4 4-4',
    back: 'M10 3L5 8l5 5',
    send: 'M2.5 8h10M9 4l4 4-4 4',
    open: 'M9 3h4v4M13 3L7.5 8.5M11 9.5V13H3V5h3.5',
    more: 'M3.5 8h.01M8 8h.01M12.5 8h.01',
  };
  const filled = name === 'play' || name === 'stop';
  return h('svg:svg', { class: filled ? 'ico filled' : 'ico', viewBox: '0 0 16 16', 'aria-hidden': 'true' },
    h('svg:path', { d: paths[name] || '' }));
}
