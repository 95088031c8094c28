// The one DOM patching helper the views share: keyed children, created once per key
// and updated in place, so focus, selection and scroll positions survive renders.

/**
 * Makes `parent`'s children follow `items`: one element per key (`data-key`), made by
 * `create(item)` the first time, `update(el, item)` on every call, in the items'
 * order; elements whose key is gone are removed. Returns true when the element that
 * had focus was removed (the caller decides where focus goes).
 */
export function keyed(parent, items, keyOf, create, update) {
  const existing = new Map();
  for (const el of parent.children) {
    if (el.dataset.key != null) existing.set(el.dataset.key, el);
  }
  let previous = null;
  for (const item of items) {
    const key = String(keyOf(item));
    let el = existing.get(key);
    if (el) {
      existing.delete(key);
    } else {
      el = create(item);
      el.dataset.key = key;
    }
    if (update) update(el, item);
    const wanted = previous ? previous.nextSibling : parent.firstChild;
    if (wanted !== el) parent.insertBefore(el, wanted);
    previous = el;
  }
  let lostFocus = false;
  for (const el of existing.values()) {
    if (el.contains(document.activeElement)) lostFocus = true;
    el.remove();
  }
  return lostFocus;
}

/**
 * A button that shows a spinner and another label while its action runs; `busy` is
 * this button's action running, `disabled` any reason it cannot be pressed.
 * Patches in place (focus stays).
 */
export function setBusy(button, { busy, disabled, label, busyLabel }) {
  button.disabled = !!disabled;
  button.setAttribute('aria-busy', busy ? 'true' : 'false');
  const text = busy ? busyLabel : label;
  if (button.dataset.shown === text) return;
  button.dataset.shown = text;
  const spinner = document.createElement('span');
  spinner.className = 'spinner';
  spinner.setAttribute('aria-hidden', 'true');
  button.replaceChildren(...(busy ? [spinner, text] : [text]));
}
