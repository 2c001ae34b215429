// Runs: the list with filters (state, input name, created between) and
// paging; a run's page with its step timeline, files, deliveries and
// rejects.
import { get, withQuery } from './api.js';
import {
  add, badge, dl, fill, fmtBytes, fmtDuration, fmtNumber, fmtTime, h, s, table,
} from './dom.js';
import { errorBox } from './shell.js';

const PAGE = 50;
const STATES = ['queued', 'running', 'succeeded', 'failed', 'rejected'];

// "2026-12-06T01:30" (a datetime-local value, read as UTC) <-> epoch ms.
function toMs(local) {
  if (!local) return '';
  const ms = Date.parse(`${local}:00Z`);
  return Number.isFinite(ms) ? ms : '';
}
function toLocal(ms) {
  if (!ms) return '';
  return new Date(Number(ms)).toISOString().slice(0, 16);
}

function field(id, label, control) {
  return h('div', { class: 'field' }, h('label', { for: id }, label), control);
}

function filterForm(params) {
  const state = h('select', { id: 'f-state', name: 'state' },
    h('option', { value: '' }, 'any'),
    STATES.map((st) => h('option', { value: st, selected: params.state === st }, st)));
  const input = h('input', {
    id: 'f-input', name: 'input', type: 'search', maxlength: '200',
    value: params.input || '', placeholder: 'part of the file name',
  });
  const from = h('input', { id: 'f-from', name: 'from', type: 'datetime-local', value: toLocal(params.from) });
  const to = h('input', { id: 'f-to', name: 'to', type: 'datetime-local', value: toLocal(params.to) });
  const form = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter runs' },
    field('f-state', 'State', state),
    field('f-input', 'Input name contains', input),
    field('f-from', 'Created from (UTC)', from),
    field('f-to', 'Created before (UTC)', to),
    h('div', { class: 'field buttons' },
      h('button', { type: 'submit', class: 'primary' }, 'Apply'),
      h('a', { href: '#/runs', class: 'button' }, 'Clear')));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    location.hash = withQuery('#/runs', {
      state: state.value, input: input.value.trim(), from: toMs(from.value), to: toMs(to.value),
    });
  });
  return form;
}

export function runsPage(main, params) {
  const controller = new AbortController();
  const offset = Math.max(0, Number(params.offset) || 0);
  const query = {
    state: params.state || '', input: params.input || '', from: params.from || '', to: params.to || '',
  };
  const results = h('div', { id: 'runs-results', 'aria-live': 'polite' }, h('p', { class: 'muted' }, 'Loading…'));
  fill(main, filterForm(query), results);
  get(withQuery('/api/runs', { ...query, limit: PAGE, offset }), controller.signal)
    .then((page) => {
      const first = page.total ? offset + 1 : 0;
      const last = offset + page.runs.length;
      const link = (o) => withQuery('#/runs', { ...query, offset: o || '' });
      fill(results, 
        h('p', { id: 'runs-count' }, `${fmtNumber(first)}–${fmtNumber(last)} of ${fmtNumber(page.total)} runs`),
        page.runs.length
          ? table('Runs, newest first', ['Run', 'Input', 'State', 'Step', 'Created', 'Updated', 'Error'],
            page.runs.map((r) => [
              h('a', { href: `#/runs/${r.run_id}` }, r.run_id),
              h('span', { class: 'input-name' }, r.input_name),
              badge(r.state), r.current_step, fmtTime(r.created_ms), fmtTime(r.updated_ms),
              r.error ? h('span', { class: 'bad' }, r.error) : '']),
            { id: 'runs-table' })
          : h('p', {}, 'No run matches.'),
        h('nav', { class: 'pager', 'aria-label': 'Pages of runs' },
          offset > 0 ? h('a', { href: link(Math.max(0, offset - PAGE)), rel: 'prev' }, '← Newer') : null,
          last < page.total ? h('a', { href: link(offset + PAGE), rel: 'next' }, 'Older →') : null));
    })
    .catch((err) => {
      if (err.name !== 'AbortError') fill(results, errorBox(err));
    });
  return () => controller.abort();
}

// The steps as bars on one time axis (SVG), then as a table.
function timeline(steps) {
  const timed = steps.filter((st) => st.started_ms);
  if (!timed.length) return h('p', { class: 'muted' }, 'No step has started.');
  const t0 = Math.min(...timed.map((st) => st.started_ms));
  const t1 = Math.max(...timed.map((st) => st.finished_ms || Date.now()));
  const span = Math.max(1, t1 - t0);
  const W = 800;
  const LABEL = 110;
  const ROW = 26;
  const svg = s('svg', {
    viewBox: `0 0 ${W} ${timed.length * ROW + 24}`, class: 'timeline', role: 'img',
    'aria-label': `Step timeline: ${timed.length} steps over ${fmtDuration(span)}`,
  });
  timed.forEach((st, i) => {
    const x = LABEL + ((st.started_ms - t0) / span) * (W - LABEL - 10);
    const end = st.finished_ms || Date.now();
    const w = Math.max(2, ((end - st.started_ms) / span) * (W - LABEL - 10));
    const y = i * ROW + 4;
    svg.append(
      s('text', { x: 0, y: y + 14, class: 'label' }, st.name),
      s('rect', { x, y, width: w, height: ROW - 8, class: `bar state-${st.state}` },
        s('title', {}, `${st.name}: ${st.state}, ${fmtDuration(end - st.started_ms)}`)));
  });
  svg.append(s('text', { x: LABEL, y: timed.length * ROW + 18, class: 'axis' }, fmtTime(t0)),
    s('text', { x: W - 10, y: timed.length * ROW + 18, class: 'axis end' }, `+${fmtDuration(span)}`));
  return svg;
}

function totalsText(totals) {
  if (!totals || typeof totals !== 'object') return '';
  return Object.entries(totals).map(([cur, amount]) => `${cur} ${amount}`).join(', ');
}

export function runPage(main, id) {
  const controller = new AbortController();
  fill(main, h('p', { class: 'muted' }, 'Loading…'));
  get(`/api/runs/${encodeURIComponent(id)}`, controller.signal)
    .then((run) => {
      const steps = run.steps || [];
      const rejects = run.rejects || { total: 0, by_code: {}, download: null };
      fill(main,
        h('p', {}, h('a', { href: '#/runs' }, '← All runs')),
        dl([
          ['Input', h('span', { class: 'input-name' }, run.input_name)],
          ['Input key', run.input_key],
          ['State', badge(run.state)],
          ['Current step', run.current_step],
          ['Created', fmtTime(run.created_ms)],
          ['Updated', fmtTime(run.updated_ms)],
          ['Trace id', run.trace_id],
          ['Error', run.error ? h('span', { class: 'bad' }, run.error) : 'none'],
        ], { class: 'facts wide' }),
        h('section', { 'aria-labelledby': 'h-steps' },
          h('h2', { id: 'h-steps' }, 'Steps'),
          timeline(steps),
          table('Steps in order', ['Step', 'State', 'Attempts', 'Started', 'Duration', 'Error'],
            steps.map((st) => [st.name, badge(st.state), fmtNumber(st.attempts), fmtTime(st.started_ms),
              st.started_ms && st.finished_ms ? fmtDuration(st.finished_ms - st.started_ms) : '—',
              st.error ? h('span', { class: 'bad' }, st.error) : '']), { id: 'steps-table' })),
        h('section', { 'aria-labelledby': 'h-files' },
          h('h2', { id: 'h-files' }, 'Files'),
          (run.files || []).length
            ? table('Generated files', ['Batch', 'Network', 'File', 'Records', 'Totals', 'Size', 'SHA-256'],
              run.files.map((f) => [f.batch_id, f.network, f.name, fmtNumber(f.records),
                totalsText(f.totals), fmtBytes(f.size), h('code', { class: 'hash' }, f.sha256)]),
              { id: 'files-table' })
            : h('p', { class: 'muted' }, 'No file generated yet.')),
        h('section', { 'aria-labelledby': 'h-deliveries' },
          h('h2', { id: 'h-deliveries' }, 'Deliveries'),
          (run.deliveries || []).length
            ? table('Deliveries per destination',
              ['Destination', 'Network', 'File', 'Status', 'Remote path', 'Attempts', 'Delivered', 'Error'],
              run.deliveries.map((d) => [d.destination, d.network, d.file, badge(d.status), d.remote_path || '—',
                fmtNumber(d.attempts), fmtTime(d.delivered_ms), d.error ? h('span', { class: 'bad' }, d.error) : '']),
              { id: 'deliveries-table' })
            : h('p', { class: 'muted' }, 'No delivery yet.')),
        h('section', { 'aria-labelledby': 'h-rejects' },
          h('h2', { id: 'h-rejects' }, 'Rejects'),
          h('p', {}, `${fmtNumber(rejects.total)} rejected records`,
            rejects.download
              ? [' · ', h('a', { href: rejects.download, download: `${run.run_id}-rejects.csv` },
                'Download the rejects file (masked card numbers)')]
              : null),
          Object.keys(rejects.by_code || {}).length
            ? table('Rejected records by error code', ['Code', 'Records'],
              Object.entries(rejects.by_code).sort((a, b) => b[1] - a[1])
                .map(([code, n]) => [h('code', {}, code), fmtNumber(n)]), { id: 'rejects-table' })
            : null));
    })
    .catch((err) => {
      if (err.name !== 'AbortError') add(main, errorBox(err));
    });
  return () => controller.abort();
}
