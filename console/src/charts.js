// Charts from /api/charts: records per network, delivery latency (p50 and
// p95) and failure rate, over 24 hours (hourly) or 14 days (daily). Inline
// SVG built with createElementNS; each chart also has its numbers as a
// table for screen readers and copying.
import { get } from './api.js';
import { fill, fmtDuration, fmtNumber, h, s, table } from './dom.js';
import { errorBox } from './shell.js';

const W = 640;
const H = 220;
const M = { left: 56, right: 12, top: 12, bottom: 28 };

function bucketLabel(ms, daily) {
  const d = new Date(ms);
  const pad = (n) => String(n).padStart(2, '0');
  return daily ? `${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}` : `${pad(d.getUTCHours())}:00`;
}

// series: [{name, values (numbers or null), cls}]
function lineChart(id, title, buckets, series, daily, fmt) {
  const values = series.flatMap((x) => x.values).filter((v) => v !== null && Number.isFinite(v));
  const max = Math.max(1e-9, ...values);
  const n = Math.max(1, buckets.length - 1);
  const xOf = (i) => M.left + (i / n) * (W - M.left - M.right);
  const yOf = (v) => H - M.bottom - (v / max) * (H - M.top - M.bottom);
  const svg = s('svg', {
    viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-labelledby': `${id}-t`,
  });
  for (const f of [0, 0.5, 1]) {
    const y = yOf(max * f);
    svg.append(s('line', { x1: M.left, x2: W - M.right, y1: y, y2: y, class: 'grid' }),
      s('text', { x: M.left - 6, y: y + 4, class: 'axis end' }, fmt(max * f)));
  }
  const every = Math.max(1, Math.ceil(buckets.length / 8));
  buckets.forEach((b, i) => {
    if (i % every === 0) {
      svg.append(s('text', { x: xOf(i), y: H - 8, class: 'axis middle' }, bucketLabel(b, daily)));
    }
  });
  for (const x of series) {
    // A gap where a bucket has no value (null).
    let d = '';
    let pen = false;
    x.values.forEach((v, i) => {
      if (v === null || !Number.isFinite(v)) {
        pen = false;
        return;
      }
      d += `${pen ? 'L' : 'M'}${xOf(i).toFixed(1)},${yOf(v).toFixed(1)}`;
      pen = true;
      svg.append(s('circle', { cx: xOf(i), cy: yOf(v), r: 2.5, class: `dot ${x.cls}` },
        s('title', {}, `${x.name} ${bucketLabel(buckets[i], daily)}: ${fmt(v)}`)));
    });
    if (d) svg.append(s('path', { d, class: `line ${x.cls}` }));
  }
  const legend = h('ul', { class: 'legend' },
    series.map((x) => h('li', {}, h('span', { class: `swatch ${x.cls}`, 'aria-hidden': 'true' }), x.name)));
  const data = h('details', {},
    h('summary', {}, `${title}: the numbers`),
    table(title, ['Bucket (UTC)', ...series.map((x) => x.name)],
      buckets.map((b, i) => [bucketLabel(b, daily),
        ...series.map((x) => (x.values[i] === null || x.values[i] === undefined ? '—' : fmt(x.values[i])))])));
  return h('section', { class: 'card chart-card', 'aria-labelledby': `${id}-t`, id },
    h('h2', { id: `${id}-t` }, title), svg, legend, data);
}

export function chartsPage(main, params) {
  const controller = new AbortController();
  const range = params.range === '14d' ? '14d' : '24h';
  const daily = range === '14d';
  const rangeNav = h('nav', { class: 'segmented', 'aria-label': 'Time range' },
    h('a', { href: '#/charts?range=24h', 'aria-current': range === '24h' ? 'page' : null }, 'Last 24 hours'),
    h('a', { href: '#/charts?range=14d', 'aria-current': range === '14d' ? 'page' : null }, 'Last 14 days'));
  const body = h('div', { class: 'charts' }, h('p', { class: 'muted' }, 'Loading…'));
  fill(main, rangeNav, body);
  get(`/api/charts?range=${range}`, controller.signal)
    .then((c) => {
      const nets = Object.keys(c.records_per_network || {});
      const cls = (i) => `s${i % 6}`;
      const latency = [];
      Object.entries(c.delivery_latency_seconds || {}).forEach(([net, q], i) => {
        latency.push({ name: `${net} p50`, values: q.p50 || [], cls: cls(i) });
        latency.push({ name: `${net} p95`, values: q.p95 || [], cls: `${cls(i)} dashed` });
      });
      const per = daily ? 'day' : 'hour';
      fill(body, 
        lineChart('chart-records', `Records delivered per network per ${per}`, c.buckets_ms,
          nets.map((net, i) => ({ name: net, values: c.records_per_network[net], cls: cls(i) })),
          daily, (v) => fmtNumber(Math.round(v))),
        lineChart('chart-latency', 'Delivery latency (p50 solid, p95 dashed)', c.buckets_ms, latency,
          daily, (v) => fmtDuration(v * 1000)),
        lineChart('chart-failures', 'Failure rate per destination', c.buckets_ms,
          Object.entries(c.failure_rate || {}).map(([name, values], i) => ({ name, values, cls: cls(i) })),
          daily, (v) => `${(v * 100).toFixed(v < 0.1 ? 1 : 0)} %`));
    })
    .catch((err) => {
      if (err.name !== 'AbortError') fill(body, errorBox(err));
    });
  return () => controller.abort();
}
