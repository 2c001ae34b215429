// Parts every page shares: the error box and the health mark in the header.
import { h } from './dom.js';

export function errorBox(err) {
  const auth = err && err.isAuth;
  return h('div', { class: 'error-box', role: 'alert' },
    h('strong', {}, auth ? 'The admin token was refused' : 'Error'),
    ' ',
    err && err.status ? `(HTTP ${err.status} ${err.code}): ` : '',
    err ? err.message : 'unknown error',
    auth ? h('p', {}, 'Enter the token again: it is [service] admin_token of this service.') : null);
}

// ready: the service answered and is ready; attention: something is red.
export function setHealth(ready, attention) {
  const el = document.getElementById('health');
  if (!el) return;
  el.className = `health ${!ready ? 'bad' : attention ? 'warn' : 'ok'}`;
  el.textContent = !ready ? 'Service not ready' : attention ? 'Needs attention' : 'Healthy';
}
