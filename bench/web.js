// bench/web.sh's browser side: opens the page LOADS times on a full
// store and reports, as one JSON line, the time from navigation start
// until the list shows its first page, then scrolls the list SCROLLS
// times and reports how many rows each scroll brought and how long it took.
// Argument: JSON {url, loads, scrolls}.
'use strict';
const puppeteer = require('puppeteer-core');

const cfg = JSON.parse(process.argv[2]);

async function main() {
  const browser = await puppeteer.launch({ executablePath: '/usr/bin/chromium', headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-extensions'] });
  const out = { loads: [], scrolls: [], bytes: 0, errors: [] };
  try {
    const page = await browser.newPage();
    await page.setViewport({ width: 1280, height: 800 });
    page.on('pageerror', (e) => out.errors.push(e.message));
    for (let i = 0; i < cfg.loads; i++) {
      await page.goto(cfg.url, { waitUntil: 'domcontentloaded' });
      await page.waitForFunction(() => document.querySelectorAll('#list li').length >= 50,
        { polling: 'mutation', timeout: 30000 });
      // The page's own mark, set right after it appended the first page.
      out.loads.push(await page.evaluate(() =>
        performance.getEntriesByName('mailsnare:first-page')[0].startTime));
      // The first load's bytes on the wire (later ones revalidate: 304).
      if (i === 0) out.bytes = await page.evaluate(() => performance.getEntries()
        .reduce((n, e) => n + (e.transferSize || 0), 0));
      await page.evaluate(() => new Promise((r) => setTimeout(r, 300)));
    }
    // Timed in the page: from setting scrollTop to the next rows in the DOM.
    for (let i = 0; i < cfg.scrolls; i++) {
      out.scrolls.push(await page.evaluate(async () => {
        const rows = () => document.querySelectorAll('#list li').length;
        const before = rows();
        const t0 = performance.now();
        document.querySelector('#list-pane').scrollTop = 1e9;
        for (let w = 0; rows() === before && w < 6000; w++)
          await new Promise((r) => setTimeout(r, 5));
        return { before, after: rows(), ms: performance.now() - t0 };
      }));
    }
    out.total = await page.$eval('#count', (e) => e.textContent);
  } finally {
    await browser.close();
  }
  console.log(JSON.stringify(out));
}

main().catch((e) => { console.error(e); process.exit(1); });
