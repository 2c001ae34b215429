// Overview: one card per destination, the queue, the runs, dead letters and
// the service's health; refreshed every 5 seconds. Red where `attention` is
// not empty.
import { get } from './api.js';
import { badge, dl, fill, fmtAge, fmtNumber, fmtTime, h, table } from './dom.js';
import { errorBox, setHealth } from './shell.js';

const REFRESH_MS = 5000;

function reachability(d) {
  if (d.reachable === true) return h('span', { class: 'ok' }, 'reachable');
  if (d.reachable === false) {
    return h('span', { class: 'bad' }, 'unreachable',
      d.reachable_error ? ` (${d.reachable_error})` : '');
  }
  return h('span', { class: 'muted' }, 'not checked');
}

function destinationCard(d) {
  const attention = d.attention || [];
  const id = `dest-${String(d.name).replace(/[^A-Za-z0-9_-]/g, '_')}`;
  return h('article', {
    class: attention.length ? 'card attention' : 'card',
    'aria-labelledby': id, 'data-destination': d.name,
  },
  h('h3', { id }, d.name, ' ', h('span', { class: 'muted' }, `(${d.network})`)),
  attention.length
    ? h('ul', { class: 'reasons', 'aria-label': `${d.name} needs attention` },
      attention.map((a) => h('li', {}, a)))
    : h('p', { class: 'ok' }, 'OK'),
  dl([
    ['Server', `${d.protocol}://${d.host}:${d.port}`],
    ['Reachable now', reachability(d)],
    ['Last delivery', d.last_delivery_ms
      ? [fmtTime(d.last_delivery_ms), ' (', fmtAge(d.last_delivery_age_seconds), ')']
      : 'none yet'],
    ['Files today', fmtNumber(d.files_today)],
    ['Records today', fmtNumber(d.records_today)],
    ['Failures today', fmtNumber(d.failures_today)],
    ['Waiting for a retry', d.retries_waiting
      ? [fmtNumber(d.retries_waiting), ', next at ', fmtTime(d.next_retry_ms)]
      : '0'],
  ], { class: 'facts' }));
}

function runsLink(state, n) {
  return h('a', { href: `#/runs?state=${state}` }, fmtNumber(n));
}

function render(main, o, recent) {
  const attention = o.attention || [];
  const anyDestination = (o.destinations || []).some((d) => (d.attention || []).length);
  const red = attention.length > 0 || anyDestination;
  const q = o.queue || {};
  const r = o.runs || {};
  const svc = o.service || {};
  setHealth(svc.ready, red);
  fill(main,
    h('p', { class: 'muted', id: 'updated' }, `Updated ${fmtTime(o.generated_ms)} · refreshes every 5 s`),
    h('section', {
      class: red ? 'banner attention' : 'banner ok', 'aria-label': 'Status',
      'data-status': red ? 'attention' : 'ok',
    },
    red
      ? [h('strong', {}, 'Needs attention'),
        h('ul', {}, attention.map((a) => h('li', {}, a)),
          (o.destinations || []).filter((d) => (d.attention || []).length)
            .map((d) => h('li', {}, `${d.name}: ${d.attention.join(', ')}`)))]
      : h('strong', {}, 'All good: nothing needs a person.')),
    h('section', { 'aria-labelledby': 'h-dest' },
      h('h2', { id: 'h-dest' }, 'Destinations'),
      h('div', { class: 'cards' }, (o.destinations || []).map(destinationCard))),
    h('div', { class: 'cards' },
      h('section', { class: 'card', 'aria-labelledby': 'h-queue' },
        h('h2', { id: 'h-queue' }, 'Queue'),
        dl([
          ['Depth', fmtNumber(q.depth)],
          ['In flight', fmtNumber(q.in_flight)],
          ['Delayed', fmtNumber(q.delayed)],
          ['Dead letters', h('a', {
            href: '#/deadletters', class: q.dead_letters ? 'bad' : '',
          }, fmtNumber(q.dead_letters))],
          ['Oldest message', q.oldest_age_seconds === null || q.oldest_age_seconds === undefined
            ? '—' : fmtAge(q.oldest_age_seconds)],
        ], { class: 'facts' })),
      h('section', { class: 'card', 'aria-labelledby': 'h-runs' },
        h('h2', { id: 'h-runs' }, 'Runs'),
        dl(['queued', 'running', 'failed', 'rejected', 'succeeded']
          .map((st) => [st, runsLink(st, r[st])]), { class: 'facts' })),
      h('section', { class: 'card', 'aria-labelledby': 'h-svc' },
        h('h2', { id: 'h-svc' }, 'Service'),
        dl([
          ['Ready', svc.ready ? h('span', { class: 'ok' }, 'yes') : h('span', { class: 'bad' }, 'no')],
          ['Version', svc.version],
          ['Started', fmtTime(svc.started_ms)],
          ['Workers', fmtNumber(svc.workers)],
        ], { class: 'facts' }))),
    h('section', { 'aria-labelledby': 'h-recent' },
      h('h2', { id: 'h-recent' }, 'Latest runs'),
      recentTable(recent)));
}

function recentTable(recent) {
  if (!recent) return h('p', { class: 'muted' }, 'No run store.');
  return table('The 10 newest runs', ['Run', 'Input', 'State', 'Step', 'Created'],
    recent.runs.map((run) => [
      h('a', { href: `#/runs/${run.run_id}` }, run.run_id),
      h('span', { class: 'input-name' }, run.input_name),
      badge(run.state), run.current_step, fmtTime(run.created_ms)]),
    { id: 'recent-runs' });
}

export function overviewPage(main) {
  let timer = 0;
  let stopped = false;
  const controller = new AbortController();
  async function refresh() {
    try {
      const [o, recent] = await Promise.all([
        get('/api/overview', controller.signal),
        get('/api/runs?limit=10', controller.signal).catch(() => null),
      ]);
      if (stopped) return;
      // Keep the focus where it was across a refresh.
      const focusedHref = document.activeElement && document.activeElement.getAttribute('href');
      render(main, o, recent);
      if (focusedHref) {
        const again = main.querySelector(`a[href="${CSS.escape(focusedHref)}"]`);
        if (again) again.focus();
      }
    } catch (err) {
      if (stopped) return;
      setHealth(false, true);
      fill(main, errorBox(err));
    }
    if (!stopped) timer = setTimeout(refresh, REFRESH_MS);
  }
  fill(main, h('p', { class: 'muted' }, 'Loading…'));
  refresh();
  return () => {
    stopped = true;
    clearTimeout(timer);
    controller.abort();
  };
}
