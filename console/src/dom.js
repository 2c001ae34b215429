// DOM helpers. Every value that came from the API goes through text nodes
// (textContent) and attributes set one by one: nothing is ever parsed as
// HTML, so an input named "<img src=x onerror=...>.csv" stays text.

const SVG_NS = 'http://www.w3.org/2000/svg';

function append(parent, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    parent.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

function setAttributes(el, attrs) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value);
    } else if (key === 'text') {
      el.textContent = String(value);
    } else {
      el.setAttribute(key, value === true ? '' : String(value));
    }
  }
}

// h('a', {href: '#/runs', class: 'x'}, 'text', childNode, ...)
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  setAttributes(el, attrs);
  append(el, children);
  return el;
}

// The same for SVG elements (createElementNS).
export function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  setAttributes(el, attrs);
  append(el, children);
  return el;
}

export function clear(el) {
  el.replaceChildren();
  return el;
}

const pad = (n, w = 2) => String(n).padStart(w, '0');

// "2026-12-06 01:57:19" (UTC), or "—" for null.
export function fmtTime(ms) {
  if (ms === null || ms === undefined || ms === 0) return '—';
  const d = new Date(ms);
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ` +
    `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
}

// A duration for people: "850 ms", "12.4 s", "3 min 5 s", "2 h 10 min".
export function fmtDuration(ms) {
  if (ms === null || ms === undefined || !Number.isFinite(ms) || ms < 0) return '—';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const sec = ms / 1000;
  if (sec < 60) return `${sec.toFixed(1)} s`;
  const min = Math.floor(sec / 60);
  if (min < 60) return `${min} min ${Math.round(sec % 60)} s`;
  const hours = Math.floor(min / 60);
  if (hours < 48) return `${hours} h ${min % 60} min`;
  return `${Math.floor(hours / 24)} d ${hours % 24} h`;
}

export function fmtAge(seconds) {
  if (seconds === null || seconds === undefined) return '—';
  return `${fmtDuration(seconds * 1000)} ago`;
}

export function fmtNumber(n) {
  if (n === null || n === undefined) return '—';
  return Number(n).toLocaleString('en-US');
}

export function fmtBytes(n) {
  if (n === null || n === undefined) return '—';
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

// A <table> with a caption, header cells and rows of cells (strings or nodes).
export function table(caption, headers, rows, attrs = {}) {
  return h('table', attrs,
    h('caption', {}, caption),
    h('thead', {}, h('tr', {}, headers.map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, rows.map((cells) => h('tr', {}, cells.map((c) => h('td', {}, c))))));
}

// <dl> from [[term, value], ...].
export function dl(pairs, attrs = {}) {
  return h('dl', attrs, pairs.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}

// A state as a badge: "succeeded", "failed", ...
export function badge(state) {
  return h('span', { class: `badge state-${String(state).replace(/[^a-z_]/g, '')}` }, state);
}

// replaceChildren/append that leave out null, undefined and false (the
// native ones would insert the text "null") and flatten arrays.
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export function add(el, ...children) {
  append(el, children);
  return el;
}
