// Modal dialogs on <dialog>.showModal(): the rest of the page is inert while
// one is open (focus stays inside), Escape cancels, and focus goes back to
// the control that opened it.
import { add, h } from './dom.js';
import { isWellFormedToken, setToken } from './api.js';

function modal(build) {
  return new Promise((resolve) => {
    const opener = document.activeElement;
    const dialog = h('dialog', { 'aria-modal': 'true' });
    let result = null;
    const done = (value) => {
      result = value;
      dialog.close();
    };
    build(dialog, done);
    // Tab and Shift+Tab cycle inside the dialog (the browser would move on
    // to its own toolbar).
    dialog.addEventListener('keydown', (ev) => {
      if (ev.key !== 'Tab') return;
      const items = [...dialog.querySelectorAll('button, input, select, textarea, a[href]')]
        .filter((el) => !el.disabled);
      if (!items.length) return;
      const first = items[0];
      const last = items[items.length - 1];
      if (ev.shiftKey && document.activeElement === first) {
        ev.preventDefault();
        last.focus();
      } else if (!ev.shiftKey && document.activeElement === last) {
        ev.preventDefault();
        first.focus();
      }
    });
    dialog.addEventListener('close', () => {
      dialog.remove();
      if (opener && opener.isConnected) opener.focus();
      resolve(result);
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}

// Resolves true when the person confirmed.
export function confirmDialog(title, message, confirmLabel) {
  return modal((dialog, done) => {
    const id = `dlg-${Math.random().toString(36).slice(2)}`;
    dialog.setAttribute('aria-labelledby', `${id}-t`);
    dialog.setAttribute('aria-describedby', `${id}-m`);
    const cancel = h('button', { type: 'button', onclick: () => done(false) }, 'Cancel');
    const ok = h('button', { type: 'button', class: 'primary', onclick: () => done(true) },
      confirmLabel);
    add(dialog,
      h('h2', { id: `${id}-t` }, title),
      h('p', { id: `${id}-m` }, message),
      h('div', { class: 'actions' }, cancel, ok));
    // The safe choice has the focus.
    queueMicrotask(() => cancel.focus());
  }).then((v) => v === true);
}

// Asks for the admin token; resolves true when one was entered (and kept
// for this tab).
export function tokenDialog(reason) {
  return modal((dialog, done) => {
    dialog.setAttribute('aria-labelledby', 'token-title');
    const input = h('input', {
      id: 'token-input', name: 'token', type: 'password', autocomplete: 'off',
      spellcheck: 'false', required: true,
    });
    const error = h('p', { class: 'error', role: 'alert', id: 'token-error' });
    const form = h('form', { method: 'dialog', novalidate: true },
      h('h2', { id: 'token-title' }, 'Admin token'),
      reason ? h('p', {}, reason) : null,
      h('p', {}, 'Redriving needs the service\'s admin token ([service] admin_token). ' +
        'It is kept only in this browser tab (sessionStorage) and sent as the ' +
        'Authorization: Bearer header.'),
      h('label', { for: 'token-input' }, 'Admin token'),
      input,
      error,
      h('div', { class: 'actions' },
        h('button', { type: 'button', onclick: () => done(false) }, 'Cancel'),
        h('button', { type: 'submit', class: 'primary' }, 'Use token')));
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const value = input.value.trim();
      if (!isWellFormedToken(value)) {
        error.textContent = 'Enter the token: printable characters, no spaces.';
        input.setAttribute('aria-invalid', 'true');
        input.focus();
        return;
      }
      setToken(value);
      done(true);
    });
    add(dialog, form);
    queueMicrotask(() => input.focus());
  }).then((v) => v === true);
}
