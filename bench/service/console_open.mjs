// Keeps the operations console open in Debian's chromium (headless, through
// playwright-core from console/node_modules) while bench_service measures
// `cbpipe serve`, as an operator would: the overview page, which refreshes
// itself, in one tab, and the runs list reloaded every 5 s in another.
//
//   node bench/service/console_open.mjs http://127.0.0.1:PORT READY_FILE
//
// Writes READY_FILE once both pages have loaded, then runs until SIGTERM
// (closing the browser) and prints how many page loads it made. Exit
// status 2 when the browser or the console cannot be opened.
import { createRequire } from 'node:module';
import { writeFileSync } from 'node:fs';

const [base, readyFile] = process.argv.slice(2);
if (!base || !readyFile) {
  process.stderr.write('usage: console_open.mjs BASE_URL READY_FILE\n');
  process.exit(2);
}
const require = createRequire(
    new URL('../../console/package.json', import.meta.url));
const { chromium } = require('playwright-core');

let browser;
let loads = 0;
let stopping = false;
try {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox'],
  });
  const overview = await browser.newPage();
  const runs = await browser.newPage();
  await overview.goto(`${base}/console/`, { waitUntil: 'load' });
  await runs.goto(`${base}/console/#/runs`, { waitUntil: 'load' });
  loads += 2;
  writeFileSync(readyFile, 'ready\n');
  const shutdown = async () => {
    stopping = true;
    await browser.close().catch(() => {});
    process.stdout.write(`console_open: ${loads} page loads\n`);
    process.exit(0);
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
  while (!stopping) {
    await new Promise((r) => setTimeout(r, 5000));
    if (stopping) break;
    await runs.reload({ waitUntil: 'load' }).catch(() => {});
    ++loads;
  }
} catch (e) {
  if (!stopping) {
    process.stderr.write(`console_open: ${e.message}\n`);
    await browser?.close().catch(() => {});
    process.exit(2);
  }
}
