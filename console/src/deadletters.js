// Dead letters: the list, one letter's details, redrive one or all (after a
// confirmation, with the admin token).
import { ApiError, forgetToken, get, post, token, withQuery } from './api.js';
import { add, dl, fill, fmtNumber, fmtTime, h, table } from './dom.js';
import { confirmDialog, tokenDialog } from './dialogs.js';
import { errorBox } from './shell.js';

// Runs `action` (a POST) with the token, asking for it first when this tab
// has none, and again once when it is refused.
async function withToken(action, status) {
  let reason = '';
  for (let tries = 0; tries < 2; ++tries) {
    if (!token() && !(await tokenDialog(reason))) {
      return null;
    }
    try {
      return await action();
    } catch (err) {
      if (!(err instanceof ApiError) || !err.isAuth) throw err;
      forgetToken();
      fill(status, errorBox(err));
      reason = `The token was refused (HTTP ${err.status}: ${err.message}).`;
      if (tries === 1) return null;
    }
  }
  return null;
}

function result(status, text, ok) {
  fill(status, h('div', { class: ok ? 'notice ok' : 'notice bad', role: ok ? 'status' : 'alert' }, text));
}

async function redriveOne(id, status, after) {
  const sure = await confirmDialog('Redrive this dead letter?',
    `Dead letter ${id} goes back to the queue and its run continues where it stopped.`, 'Redrive');
  if (!sure) return;
  try {
    const r = await withToken(() => post(`/api/deadletters/${encodeURIComponent(id)}/redrive`), status);
    if (r) {
      result(status, `Redriven: ${r.redriven}${r.run_id ? ` (run ${r.run_id})` : ''}.`, true);
      after();
    }
  } catch (err) {
    fill(status, errorBox(err));
  }
}

async function redriveAll(total, status, after) {
  const sure = await confirmDialog('Redrive every dead letter?',
    `All ${fmtNumber(total)} dead letters go back to the queue.`, 'Redrive all');
  if (!sure) return;
  try {
    const r = await withToken(() => post('/api/deadletters/redrive'), status);
    if (r) {
      const failed = r.failed || [];
      result(status, `Redriven: ${fmtNumber(r.redriven)}.` +
        (failed.length ? ` Not redriven: ${failed.length}.` : ''), failed.length === 0);
      after();
    }
  } catch (err) {
    fill(status, errorBox(err));
  }
}

export function deadLettersPage(main, params) {
  const controller = new AbortController();
  const status = h('div', { id: 'dl-status', 'aria-live': 'polite' });
  const list = h('div', { id: 'dl-list' }, h('p', { class: 'muted' }, 'Loading…'));
  fill(main, status, list);
  const load = () => get(withQuery('/api/deadletters', { limit: 100, after: params.after || '' }), controller.signal)
    .then((page) => {
      const letters = page.dead_letters || [];
      fill(list, 
        h('p', { id: 'dl-count' }, `${fmtNumber(page.total)} dead letters`),
        h('p', {}, h('button', {
          type: 'button', class: 'danger', id: 'redrive-all', disabled: page.total ? null : true,
          onclick: () => redriveAll(page.total, status, load),
        }, 'Redrive all…')),
        letters.length
          ? table('Dead letters, oldest first', ['Id', 'Run', 'Input', 'Reason', 'Moved', 'Receives', 'Actions'],
            letters.map((d) => [
              h('a', { href: `#/deadletters/${d.id}` }, d.id),
              d.run_id ? h('a', { href: `#/runs/${d.run_id}` }, d.run_id) : '—',
              h('span', { class: 'input-name' }, d.input_name || '—'),
              d.reason, fmtTime(d.moved_at_ms), fmtNumber(d.receive_count),
              h('button', {
                type: 'button', class: 'danger', 'data-redrive': d.id,
                'aria-label': `Redrive ${d.id}`, onclick: () => redriveOne(d.id, status, load),
              }, 'Redrive…')]), { id: 'dl-table' })
          : h('p', {}, 'No dead letters.'),
        page.next_after
          ? h('nav', { class: 'pager', 'aria-label': 'Pages of dead letters' },
            h('a', { href: withQuery('#/deadletters', { after: page.next_after }) }, 'More →'))
          : null);
    })
    .catch((err) => {
      if (err.name !== 'AbortError') fill(list, errorBox(err));
    });
  load();
  return () => controller.abort();
}

export function deadLetterPage(main, id) {
  const controller = new AbortController();
  const status = h('div', { id: 'dl-status', 'aria-live': 'polite' });
  fill(main, status);
  get(`/api/deadletters/${encodeURIComponent(id)}`, controller.signal)
    .then((d) => {
      let body = d.body;
      try {
        body = JSON.stringify(JSON.parse(d.body), null, 2);
      } catch {
        body = d.body;
      }
      add(main, 
        h('p', {}, h('a', { href: '#/deadletters' }, '← All dead letters')),
        dl([
          ['Run', d.run_id ? h('a', { href: `#/runs/${d.run_id}` }, d.run_id) : '—'],
          ['Input', h('span', { class: 'input-name' }, d.input_name || '—')],
          ['Reason', d.reason],
          ['Sent', fmtTime(d.sent_at_ms)],
          ['First received', fmtTime(d.first_received_at_ms)],
          ['Moved to dead letters', fmtTime(d.moved_at_ms)],
          ['Receives', fmtNumber(d.receive_count)],
        ], { class: 'facts wide' }),
        h('h2', {}, 'Message body'),
        h('pre', { class: 'body' }, body),
        Object.keys(d.attributes || {}).length
          ? table('Attributes', ['Name', 'Value'], Object.entries(d.attributes))
          : null,
        h('p', {}, h('button', {
          type: 'button', class: 'danger', 'data-redrive': d.id,
          onclick: () => redriveOne(d.id, status, () => {}),
        }, 'Redrive…')));
    })
    .catch((err) => {
      if (err.name !== 'AbortError') add(main, errorBox(err));
    });
  return () => controller.abort();
}
