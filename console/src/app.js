// The console's router: hash routes, one page at a time; a page returns a
// function that stops its timers and requests when another page opens.
import { forgetToken, token } from './api.js';
import { chartsPage } from './charts.js';
import { deadLetterPage, deadLettersPage } from './deadletters.js';
import { overviewPage } from './overview.js';
import { runPage, runsPage } from './runs.js';

const TITLES = { overview: 'Overview', runs: 'Runs', deadletters: 'Dead letters', charts: 'Charts' };

let stopPage = null;

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, '');
  const [path, query = ''] = raw.split('?');
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  return { parts, params: Object.fromEntries(new URLSearchParams(query)) };
}

function route() {
  if (stopPage) stopPage();
  stopPage = null;
  const main = document.getElementById('page');
  const { parts, params } = parseHash();
  const section = parts[0] || 'overview';
  const id = parts[1];
  if (section === 'runs') stopPage = id ? runPage(main, id) : runsPage(main, params);
  else if (section === 'deadletters') stopPage = id ? deadLetterPage(main, id) : deadLettersPage(main, params);
  else if (section === 'charts') stopPage = chartsPage(main, params);
  else stopPage = overviewPage(main);
  const name = TITLES[section] || 'Overview';
  // The heading stays while the page's content is replaced (refreshes,
  // answers), so the focus put on it is never lost.
  const title = id ? `${name.replace(/s$/, '')} ${id}` : name;
  document.getElementById('page-title').textContent = title;
  document.title = `${title} · cbpipe console`;
  for (const a of document.querySelectorAll('[data-nav]')) {
    if (a.dataset.nav === (TITLES[section] ? section : 'overview')) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

function showTokenState() {
  document.getElementById('token-forget').hidden = !token();
}

window.addEventListener('hashchange', () => {
  route();
  // A keyboard user lands at the new page's start.
  document.getElementById('page-title').focus();
});
document.addEventListener('tokenchange', showTokenState);
document.getElementById('token-forget').addEventListener('click', () => forgetToken());
showTokenState();
route();
