// Toasts for the outcome of an action, and the confirmation dialog.

import { h, icon } from './util.js';

/** Shows a short message in the corner; errors stay until dismissed or 12 s. */
export function toast(message, { kind = 'info', title } = {}) {
  const box = document.getElementById('toasts');
  const close = () => {
    item.classList.add('leaving');
    setTimeout(() => item.remove(), 160);
  };
  const item = h('div', { class: `toast ${kind}`, role: kind === 'error' ? 'alert' : null },
    icon(kind === 'error' ? 'warn' : kind === 'ok' ? 'check' : 'info'),
    h('div', { class: 'toast-text' },
      title ? h('strong', { text: title }) : null,
      h('span', { text: message })),
    h('button', { class: 'icon-btn', type: 'button', 'aria-label': 'Dismiss', onclick: close }, icon('close')));
  box.append(item);
  while (box.children.length > 4) box.firstElementChild.remove();
  setTimeout(close, kind === 'error' ? 12000 : 5000);
}

/** Asks before a destructive action. Resolves true when confirmed. */
export function confirmDialog({ title, text, confirm = 'Delete' }) {
  const dialog = document.getElementById('confirm-dialog');
  document.getElementById('confirm-title').textContent = title;
  document.getElementById('confirm-text').textContent = text;
  document.getElementById('confirm-ok').textContent = confirm;
  dialog.returnValue = '';
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), { once: true });
    dialog.showModal();
    document.getElementById('confirm-cancel').focus();
  });
}
