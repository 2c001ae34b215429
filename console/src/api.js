// The admin API, from the page's own origin. GETs need no token; POSTs send
// the admin token as "Authorization: Bearer" (never a cookie, never in a
// URL). The token is asked once per tab and kept in sessionStorage, which
// ends with the tab.

const TOKEN_KEY = 'cbpipe.admin_token';

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
  // True when the token was missing or refused (401/403).
  get isAuth() {
    return this.status === 401 || this.status === 403;
  }
}

async function answer(res) {
  let body = null;
  try {
    body = await res.json();
  } catch {
    body = null;
  }
  if (!res.ok) {
    const e = (body && body.error) || {};
    throw new ApiError(res.status, e.code || `http_${res.status}`,
      e.message || res.statusText || 'request failed');
  }
  return body;
}

async function send(path, init) {
  let res;
  try {
    res = await fetch(path, { cache: 'no-store', credentials: 'omit', ...init });
  } catch (err) {
    throw new ApiError(0, 'network', `cannot reach the service (${err.message})`);
  }
  return answer(res);
}

export function get(path, signal) {
  return send(path, { headers: { Accept: 'application/json' }, signal });
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY) || '';
}

export function setToken(value) {
  sessionStorage.setItem(TOKEN_KEY, value);
  document.dispatchEvent(new Event('tokenchange'));
}

export function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
  document.dispatchEvent(new Event('tokenchange'));
}

// A token the Authorization header can carry: printable ASCII, no spaces.
export function isWellFormedToken(value) {
  return /^[\x21-\x7e]+$/.test(value);
}

// POST without a body, with the bearer token.
export function post(path) {
  return send(path, {
    method: 'POST',
    headers: { Accept: 'application/json', Authorization: `Bearer ${token()}` },
  });
}

// "/api/runs?state=failed&limit=50" from a path and an object of params
// (empty values left out).
export function withQuery(path, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== '' && v !== null && v !== undefined) q.set(k, String(v));
  }
  const text = q.toString();
  return text ? `${path}?${text}` : path;
}
