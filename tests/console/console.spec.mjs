// The console in Debian's chromium (headless, playwright-core), one phase
// per run; tests/console/console_browser_test.cc starts cbpipe serve and
// the servers and changes the world between phases.
//
//   CONSOLE_PHASE=delivered|outage|redrive|perf CONSOLE_URL=http://127.0.0.1:port
//   CONSOLE_TOKEN=<admin token> CONSOLE_ARTIFACTS=<dir for screenshots>
//   CONSOLE_ROOT=<source tree> node tests/console/console.spec.mjs
//
// Exit code 0 when every check passed; the reason otherwise. Any CSP
// violation, console error, uncaught exception, JavaScript dialog or
// request to another origin fails the phase.
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';

const env = (name, fallback) => {
  const v = process.env[name] ?? fallback;
  if (v === undefined) throw new Error(`${name} is not set`);
  return v;
};
const PHASE = env('CONSOLE_PHASE');
const BASE = env('CONSOLE_URL');
const TOKEN = env('CONSOLE_TOKEN');
const ART = env('CONSOLE_ARTIFACTS');
const ROOT = env('CONSOLE_ROOT');
const XSS_NAME = process.env.CONSOLE_XSS_NAME || '<img src=x onerror=alert(1)>.csv';
const CONSOLE = `${BASE}/console/`;

const require = createRequire(path.join(ROOT, 'console/package.json'));
const { chromium } = require('playwright-core');

const problems = [];
// Set while a step expects the browser to log a refused request (a wrong
// token is answered 403, which Chromium logs as a failed resource).
let expectRefusal = false;
function check(ok, message) {
  if (!ok) throw new Error(`check failed: ${message}`);
}
function log(...args) {
  console.log(`[${PHASE}]`, ...args);
}

async function openBrowser() {
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
  });
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  // securitypolicyviolation events, recorded in every document.
  await context.addInitScript(() => {
    window.__csp = [];
    document.addEventListener('securitypolicyviolation', (e) => {
      window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`);
    });
  });
  const page = await context.newPage();
  page.on('dialog', async (d) => {
    problems.push(`a JavaScript dialog opened: ${d.type()} ${d.message()}`);
    await d.dismiss();
  });
  page.on('pageerror', (e) => problems.push(`uncaught: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    if (expectRefusal && /status of 40[13] /.test(m.text())) return;
    problems.push(`console error: ${m.text()}`);
  });
  page.on('request', (r) => {
    if (!r.url().startsWith(BASE) && !r.url().startsWith('data:')) {
      problems.push(`request left the service: ${r.url()}`);
    }
  });
  return { browser, page };
}

async function cspViolations(page) {
  return page.evaluate(() => window.__csp || []).catch(() => []);
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(ART, `${name}.png`), fullPage: true });
}

// Keeps the CSP violations of the document about to be left.
async function collectCsp(page) {
  problems.push(...(await cspViolations(page)).map((v) => `CSP violation: ${v}`));
  await page.evaluate(() => { window.__csp = []; }).catch(() => {});
}

async function go(page, hash, selector) {
  await collectCsp(page);
  await page.goto(`${CONSOLE}${hash}`);
  if (selector) await page.waitForSelector(selector, { timeout: 15000 });
}

// Presses Tab until `predicate` holds for the focused element (at most
// `max` times); returns what it found. Fails when focus is not visible.
async function tabTo(page, predicate, what, max = 60) {
  for (let i = 0; i < max; ++i) {
    await page.keyboard.press('Tab');
    const hit = await page.evaluate(predicate);
    if (hit) {
      const outline = await page.evaluate(() => {
        const s = getComputedStyle(document.activeElement);
        return `${s.outlineStyle} ${s.outlineWidth}`;
      });
      check(!outline.startsWith('none') && !outline.endsWith(' 0px'),
        `focus is visible on ${what} (outline: ${outline})`);
      return;
    }
  }
  throw new Error(`check failed: ${what} is reachable with Tab`);
}

// Every form control has an accessible name (a <label>, aria-label or
// text); returns the offenders.
async function unlabelled(page) {
  return page.evaluate(() => {
    const bad = [];
    for (const el of document.querySelectorAll('input, select, textarea, button')) {
      if (el.type === 'hidden' || el.closest('[hidden]')) continue;
      const label = [...(el.labels || [])].map((l) => l.textContent.trim()).join(' ');
      const name = label || el.getAttribute('aria-label') ||
        (el.tagName === 'BUTTON' ? el.textContent.trim() : '');
      if (!name) bad.push(el.outerHTML.slice(0, 80));
    }
    return bad;
  });
}

// The dd beside a dt in a container.
async function fact(page, container, term) {
  return page.evaluate(([c, t]) => {
    const root = document.querySelector(c);
    if (!root) return null;
    for (const dt of root.querySelectorAll('dt')) {
      if (dt.textContent.trim() === t) return dt.nextElementSibling.textContent.trim();
    }
    return null;
  }, [container, term]);
}

// RFC 4180 rows (quoted fields may hold commas, quotes and newlines).
function parseCsv(text) {
  const rows = [];
  let row = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; ++i) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        ++i;
      } else if (c === '"') {
        quoted = false;
      } else {
        field += c;
      }
    } else if (c === '"') {
      quoted = true;
    } else if (c === ',') {
      row.push(field);
      field = '';
    } else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') ++i;
      row.push(field);
      rows.push(row);
      row = [];
      field = '';
    } else {
      field += c;
    }
  }
  if (field || row.length) {
    row.push(field);
    rows.push(row);
  }
  return rows;
}

async function imgCount(page) {
  return page.evaluate(() => document.querySelectorAll('img').length);
}

// -------------------------------------------------------------------------

async function delivered(page) {
  // / redirects to the console.
  await page.goto(`${BASE}/`);
  check(page.url().startsWith(CONSOLE), `/ leads to /console/ (at ${page.url()})`);
  await page.waitForSelector('[data-destination="visa"]');
  await page.waitForSelector('#recent-runs');
  const recent = await page.$$eval('#recent-runs tbody tr',
    (rows) => rows.map((r) => [...r.cells].map((c) => c.textContent.trim())));
  check(recent.some((r) => r[1] === 'in1.csv' && r[2] === 'succeeded'),
    `the overview shows in1.csv delivered: ${JSON.stringify(recent)}`);
  const overview = await (await page.request.get(`${BASE}/api/overview`)).json();
  for (const d of overview.destinations) {
    const files = await fact(page, `[data-destination="${d.name}"]`, 'Files today');
    check(files === d.files_today.toLocaleString('en-US') && d.files_today >= 2,
      `${d.name}: files today on the page (${files}) as /api/overview (${d.files_today}), two inputs`);
  }
  const status = await page.getAttribute('section[data-status]', 'data-status');
  check(status === 'ok', `the overview is green after deliveries (${status}: ${JSON.stringify(overview.attention)})`);
  await shot(page, 'overview');

  // The input named like markup is text, nothing ran, no <img> exists.
  const names = await page.$$eval('#recent-runs .input-name', (els) => els.map((e) => e.textContent));
  check(names.includes(XSS_NAME), `the markup-named input is shown as text: ${JSON.stringify(names)}`);
  check((await imgCount(page)) === 0, 'no <img> element was created');

  // Keyboard only: Tab to "Runs" in the navigation, Enter.
  await page.focus('body');
  await tabTo(page, () => document.activeElement.dataset.nav === 'runs', 'the Runs link');
  await page.keyboard.press('Enter');
  await page.waitForSelector('#runs-table');
  check(page.url().endsWith('#/runs'), `Enter on Runs opens the runs page (${page.url()})`);
  const offenders = await unlabelled(page);
  check(offenders.length === 0, `every control of the runs page has a name: ${offenders}`);
  for (const [id, label] of [['f-state', 'State'], ['f-input', 'Input name contains'],
    ['f-from', 'Created from (UTC)'], ['f-to', 'Created before (UTC)']]) {
    const got = await page.$eval(`#${id}`, (el) => el.labels[0].textContent);
    check(got === label, `#${id} is labelled "${label}" (${got})`);
  }
  await tabTo(page, () => document.activeElement.id === 'f-input', 'the input name filter');
  await page.keyboard.type('onerror');
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => location.hash.includes('input=onerror') &&
    document.querySelector('#runs-count'));
  const count = await page.textContent('#runs-count');
  check(count === '1–1 of 1 runs', `the input filter finds the one run (${count})`);
  const shown = await page.$eval('#runs-table .input-name', (e) => e.textContent);
  check(shown === XSS_NAME, `the filtered run shows its name as text (${shown})`);
  check((await imgCount(page)) === 0, 'still no <img> element');
  await go(page, '#/runs', '#runs-table');
  await shot(page, 'runs');

  // A run's page, opened with the keyboard: numbers as the API gives them.
  await go(page, '#/runs?input=in1', '#runs-table');
  await tabTo(page, () => /^#\/runs\/[0-9a-f]{16}$/.test(document.activeElement.getAttribute('href') || ''),
    'the first run link');
  await page.keyboard.press('Enter');
  await page.waitForSelector('#files-table');
  const runId = page.url().split('/').pop();
  const run = await (await page.request.get(`${BASE}/api/runs/${runId}`)).json();
  const files = await page.$$eval('#files-table tbody tr',
    (rows) => rows.map((r) => [...r.cells].map((c) => c.textContent.trim())));
  check(files.length === run.files.length && files.length === 4, `four files (${files.length})`);
  for (const f of run.files) {
    check(files.some((row) => row[2] === f.name && row[3] === f.records.toLocaleString('en-US') &&
      row[6] === f.sha256), `file ${f.name} with its records and SHA-256 on the page`);
  }
  const deliveries = await page.$$eval('#deliveries-table tbody tr',
    (rows) => rows.map((r) => [...r.cells].map((c) => c.textContent.trim())));
  check(deliveries.length === 4 && deliveries.every((d) => d[3] === 'delivered'),
    `four deliveries, all delivered: ${JSON.stringify(deliveries)}`);
  check(await page.$('svg.timeline'), 'the step timeline is drawn');
  const steps = await page.$$eval('#steps-table tbody tr', (rows) => rows.length);
  check(steps === run.steps.length && steps > 0, `every step in the table (${steps})`);
  if (run.rejects && run.rejects.total > 0) {
    const byCode = await page.$$eval('#rejects-table tbody tr', (rows) => rows.length);
    check(byCode === Object.keys(run.rejects.by_code).length, 'rejects by code');
    const href = await page.getAttribute('a[download]', 'href');
    const csv = await page.request.get(`${BASE}${href}`);
    check(csv.status() === 200 && csv.headers()['content-type'].startsWith('text/csv'),
      `the rejects file downloads (${csv.status()})`);
    // The stored rejects file names each rejected record by position and
    // case id (no card number column); where a pan column is present it
    // holds masked numbers only.
    const rows = parseCsv(await csv.text());
    check(rows[0].includes('code'), `the rejects file has a code column: ${rows[0]}`);
    const col = rows[0].indexOf('pan');
    const clear = col < 0 ? [] : rows.slice(1).filter((r) => /\d{7}/.test(r[col] || ''));
    check(rows.length > 1 && clear.length === 0,
      `every card number in the rejects file is masked (${clear.length} of ${rows.length - 1} are not)`);
  }
  await shot(page, 'run');

  // Charts, both ranges.
  await go(page, '#/charts', '#chart-records svg');
  const series = await page.$$eval('#chart-records .legend li', (els) => els.map((e) => e.textContent));
  check(['visa', 'mastercard', 'amex', 'discover'].every((n) => series.includes(n)),
    `records per network for every network: ${series}`);
  await shot(page, 'charts-24h');
  await go(page, '#/charts?range=14d', '#chart-failures svg');
  await shot(page, 'charts-14d');
  await go(page, '#/deadletters', '#dl-count');
  await shot(page, 'deadletters-empty');
}

async function outage(page) {
  await go(page, '#/overview', '[data-destination="visa"]');
  // Red, with the waiting retry and the server unreachable.
  await page.waitForFunction(() => {
    const card = document.querySelector('[data-destination="visa"]');
    if (!card || !card.classList.contains('attention')) return false;
    const dts = [...card.querySelectorAll('dt')];
    const wait = dts.find((dt) => dt.textContent === 'Waiting for a retry');
    return wait && /^[1-9]/.test(wait.nextElementSibling.textContent) &&
      document.querySelector('section[data-status="attention"]');
  }, null, { timeout: 60000, polling: 250 });
  const waiting = await fact(page, '[data-destination="visa"]', 'Waiting for a retry');
  log('visa waiting for a retry:', waiting);
  check(/next at \d{4}-\d\d-\d\d/.test(waiting), `the next retry's time is shown (${waiting})`);
  await page.waitForFunction(() => /unreachable/.test(
    document.querySelector('[data-destination="visa"]').textContent), null, { timeout: 20000 });
  await shot(page, 'overview-outage');
  // The retries run out: a dead letter.
  await page.waitForFunction(() => {
    const dts = [...document.querySelectorAll('dt')];
    const dl = dts.find((dt) => dt.textContent === 'Dead letters');
    return dl && /^[1-9]/.test(dl.nextElementSibling.textContent);
  }, null, { timeout: 90000, polling: 500 });
  await shot(page, 'overview-deadletter');
  await go(page, '#/deadletters', '#dl-table');
  const rows = await page.$$eval('#dl-table tbody tr', (r) => r.map((x) => x.textContent));
  check(rows.some((r) => r.includes('late.csv')), `the dead letter of late.csv is listed: ${rows}`);
  await shot(page, 'deadletters');
  await page.click('#dl-table tbody tr a[href^="#/deadletters/"]');
  await page.waitForSelector('pre.body');
  await shot(page, 'deadletter');
}

async function redrive(page) {
  await go(page, '#/deadletters', '#dl-table');
  // "Redrive all" asks first; Escape closes the dialog and gives the focus
  // back.
  await page.focus('body');
  await tabTo(page, () => document.activeElement.id === 'redrive-all', 'Redrive all');
  await page.keyboard.press('Enter');
  await page.waitForSelector('dialog[open]');
  await page.keyboard.press('Escape');
  await page.waitForSelector('dialog', { state: 'detached' });
  check(await page.evaluate(() => document.activeElement.id === 'redrive-all'),
    'the focus is back on Redrive all after Escape');

  // Redrive one, keyboard only: confirm, then a wrong token.
  await tabTo(page, () => document.activeElement.hasAttribute('data-redrive'), 'a Redrive button');
  await page.keyboard.press('Enter');
  await page.waitForSelector('dialog[open]');
  // The focus is trapped in the modal dialog: Tab cycles its two buttons.
  for (let i = 0; i < 4; ++i) {
    await page.keyboard.press('Tab');
    check(await page.evaluate(() => !!document.activeElement.closest('dialog')),
      'Tab stays inside the dialog');
  }
  await page.focus('dialog button.primary');
  await shot(page, 'redrive-confirm');
  await page.keyboard.press('Enter');
  await page.waitForSelector('#token-input');
  check(await page.evaluate(() => document.activeElement.id === 'token-input'),
    'the token field has the focus');
  check((await page.$eval('#token-input', (e) => e.labels[0].textContent)) === 'Admin token',
    'the token field is labelled');
  const offenders = await unlabelled(page);
  check(offenders.length === 0, `every control has a name: ${offenders}`);
  await page.keyboard.type('not-the-token');
  expectRefusal = true;
  await page.keyboard.press('Enter');
  // Refused: a clear message, and the token is asked again.
  await page.waitForSelector('#dl-status [role="alert"]');
  const refused = await page.textContent('#dl-status [role="alert"]');
  log('wrong token:', refused);
  check(/admin token was refused/.test(refused) && /403/.test(refused),
    `a wrong token is refused with a clear message (${refused})`);
  await page.waitForSelector('#token-input');
  check(/refused/.test(await page.textContent('dialog')), 'the token dialog says why it asks again');
  check(await page.evaluate(() => sessionStorage.length === 0), 'a refused token is not kept');
  await shot(page, 'redrive-wrong-token');
  expectRefusal = false;
  await page.keyboard.type(TOKEN);
  await page.keyboard.press('Enter');
  await page.waitForSelector('#dl-status .notice.ok');
  const done = await page.textContent('#dl-status .notice.ok');
  log('redrive:', done);
  check(/^Redriven: /.test(done), `redriven (${done})`);
  const storage = await page.evaluate(() => ({
    session: sessionStorage.getItem('cbpipe.admin_token'),
    local: localStorage.length,
    cookie: document.cookie,
    url: location.href,
  }));
  check(storage.session === TOKEN && storage.local === 0 && storage.cookie === '' &&
    !storage.url.includes(TOKEN), `the token only in sessionStorage: ${JSON.stringify({ ...storage, session: !!storage.session })}`);
  await page.waitForFunction(() => /^0 dead letters/.test(
    (document.querySelector('#dl-count') || {}).textContent || ''), null, { timeout: 10000 });
  await shot(page, 'deadletters-redriven');
  // Delivered after the redrive.
  const deadline = Date.now() + 60000;
  let state = '';
  while (Date.now() < deadline) {
    // The same hash again is no navigation: reload to read the list anew.
    await go(page, '#/runs?input=late', '#runs-table');
    await page.reload();
    await page.waitForSelector('#runs-table tbody tr .badge', { timeout: 15000 });
    state = await page.textContent('#runs-table tbody tr .badge');
    if (state === 'succeeded') break;
    await page.waitForTimeout(1000);
  }
  check(state === 'succeeded', `late.csv is delivered after the redrive (${state})`);
  await page.click('#runs-table tbody tr a');
  await page.waitForSelector('#deliveries-table');
  await shot(page, 'run-redriven');
}

// Load time of each page with CONSOLE_RUNS runs: from navigation start to
// the page's data on screen, three loads each (the first cold).
async function perf(page) {
  const runs = Number(process.env.CONSOLE_RUNS || 0).toLocaleString('en-US');
  const BUDGET_MS = Number(process.env.CONSOLE_BUDGET_MS || 200);
  const pages = [
    ['overview', '#/overview', '#recent-runs'],
    ['runs', '#/runs', '#runs-table'],
    ['runs, state failed', '#/runs?state=failed', '#runs-table'],
    ['runs, input name', '#/runs?input=CB_9999', '#runs-table'],
    ['runs, page 1000', '#/runs?offset=50000', '#runs-table'],
    ['runs, one day', `#/runs?from=${Date.now() - 86400000 * 10}&to=${Date.now() - 86400000 * 9}`, '#runs-table'],
    ['dead letters', '#/deadletters', '#dl-count'],
    ['charts', '#/charts', '#chart-records svg'],
  ];
  const figures = {};
  const slow = [];
  for (const [name, hash, selector] of pages) {
    const times = [];
    for (let i = 0; i < 5; ++i) {
      await collectCsp(page);
      await page.goto('about:blank');
      await page.goto(`${CONSOLE}${hash}`);
      const t = await page.waitForFunction(
        (sel) => document.querySelector(sel) && performance.now(), selector,
        { polling: 'raf', timeout: 15000 });
      times.push(Math.round(await t.jsonValue()));
    }
    const sorted = [...times].sort((a, b) => a - b);
    const median = sorted[2];  // of 5 loads
    figures[name] = { ms: times, median };
    log(`${name}: ${times.join(', ')} ms (median ${median})`);
    if (median >= BUDGET_MS) slow.push(`${name} ${median} ms`);
    if (name === 'runs') {
      const count = await page.textContent('#runs-count');
      check(count === `1–50 of ${runs} runs`, `the runs page counts every run (${count})`);
      await shot(page, 'runs-100000');
    }
  }
  fs.writeFileSync(path.join(ART, 'perf.json'),
    `${JSON.stringify({ runs, budget_ms: BUDGET_MS, pages: figures }, null, 2)}\n`);
  check(slow.length === 0, `every page loads in under ${BUDGET_MS} ms: ${slow.join('; ')}`);
}

// -------------------------------------------------------------------------

const phases = { delivered, outage, redrive, perf };
fs.mkdirSync(ART, { recursive: true });
fs.rmSync(path.join(ART, `failed-${PHASE}.png`), { force: true });
const { browser, page } = await openBrowser();
let failed = null;
try {
  if (!phases[PHASE]) throw new Error(`no phase ${PHASE}`);
  await phases[PHASE](page);
  await collectCsp(page);
} catch (err) {
  failed = err;
  await shot(page, `failed-${PHASE}`).catch(() => {});
}
await browser.close();
if (failed) console.log(`[${PHASE}] FAILED: ${failed.stack || failed}`);
for (const p of problems) console.log(`[${PHASE}] PROBLEM: ${p}`);
if (failed || problems.length) process.exit(1);
log('passed');
