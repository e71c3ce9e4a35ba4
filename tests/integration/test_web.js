// The browser half of test_web.py: drives the page in headless Chromium
// (puppeteer-core, /usr/bin/chromium) and prints one JSON object of what
// it saw on its last line; test_web.py asserts on it and checks the
// other protocols' side. Argument: JSON {url, smtp: [host, port], counter,
// shots, downloads, subjects: {...}, attachmentName, otherInbox}.
'use strict';
const crypto = require('crypto');
const fs = require('fs');
const net = require('net');
const path = require('path');
const puppeteer = require('puppeteer-core');

const cfg = JSON.parse(process.argv[2]);
const out = { steps: [] };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// SMTP by hand (no npm package): resolves when DATA is answered 250.
function smtpSend(subject, html, text) {
  const [host, port] = cfg.smtp;
  const msg = [
    'From: Live Sender <live@example.test>', 'To: Bob <bob@example.test>',
    `Subject: ${subject}`, 'MIME-Version: 1.0',
    'Content-Type: multipart/alternative; boundary="b1"', '',
    '--b1', 'Content-Type: text/plain; charset=utf-8', '', text,
    '--b1', 'Content-Type: text/html; charset=utf-8', '', html, '--b1--', '',
  ].join('\r\n');
  const script = ['EHLO web-test.example', 'MAIL FROM:<live@example.test>',
    'RCPT TO:<bob@example.test>', 'RCPT TO:<hidden-bcc@example.test>', 'DATA',
    `${msg}\r\n.`, 'QUIT'];
  return new Promise((resolve, reject) => {
    const s = net.connect(port, host);
    let buf = '';
    let step = -1;
    let at250 = 0;
    s.setTimeout(10000, () => reject(new Error('smtp timeout')));
    s.on('data', (d) => {
      buf += d.toString();
      let nl;
      while ((nl = buf.indexOf('\r\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 2);
        if (line[3] === '-') continue;
        if (!/^[23]/.test(line)) return reject(new Error(`smtp: ${line}`));
        if (step === 5) at250 = Date.now();
        step++;
        if (step < script.length) s.write(`${script[step]}\r\n`);
        else { s.end(); resolve(at250); }
      }
    });
    s.on('error', reject);
  });
}

async function counter() {
  return (await (await fetch(`${cfg.counter}/count`)).json());
}

async function rowSubjects(page) {
  return page.$$eval('#list li .subject', (els) => els.map((e) => e.textContent));
}

async function openBySubject(page, subject) {
  await page.waitForFunction((s) => [...document.querySelectorAll('#list li .subject')]
    .some((e) => e.textContent === s), { timeout: 10000 }, subject);
  await page.evaluate((s) => [...document.querySelectorAll('#list li')]
    .find((li) => li.querySelector('.subject').textContent === s).click(), subject);
  await page.waitForFunction((s) => document.querySelector('#msg-subject')?.textContent === s,
    { timeout: 10000 }, subject);
}

async function tab(page, name) {
  await page.click(`#tab-${name}`);
  await page.waitForFunction((n) => document.querySelector(`#tab-${n}`)
    ?.getAttribute('aria-selected') === 'true', {}, name);
  await sleep(150);
}

async function frameText(page) {
  await page.waitForSelector('#html-frame');
  await sleep(300);
  const f = await (await page.$('#html-frame')).contentFrame();
  return f.evaluate(() => document.body ? document.body.innerText : '');
}

async function shot(page, name) {
  await sleep(200);
  await page.screenshot({ path: path.join(cfg.shots, `${name}.png`) });
  out.steps.push(`shot ${name}`);
}

// With http-require-auth: the page asks for credentials when the API
// answers 401 and then shows only that inbox.
async function login(page) {
  await page.goto(cfg.url);
  await page.waitForSelector('#login[open]', { timeout: 10000 });
  out.loginShown = true;
  await page.type('#login-user', cfg.user);
  await page.type('#login-pass', cfg.password);
  await page.click('#login-ok');
  await page.waitForFunction((n) => document.querySelectorAll('#list li').length === n,
    { timeout: 10000 }, cfg.count);
  out.subjects = await rowSubjects(page);
  out.inboxOptions = await page.$$eval('#inbox option', (els) => els.map((e) => e.value));
  await openBySubject(page, out.subjects[0]);
  out.opened = await page.$eval('#msg-subject', (e) => e.textContent);
}

function launch() {
  return puppeteer.launch({
    executablePath: '/usr/bin/chromium', headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-extensions'],
  });
}

async function main() {
  const browser = await launch();
  try {
    const page = await browser.newPage();
    out.errors = [];
    page.on('pageerror', (e) => out.errors.push(e.message));
    page.on('dialog', (d) => d.dismiss());
    await page.setViewport({ width: 1280, height: 800 });

    if (cfg.mode === 'login') return await login(page);
    const cdp = await page.createCDPSession();
    await cdp.send('Browser.setDownloadBehavior', { behavior: 'allow', downloadPath: cfg.downloads });
    // The list loads.
    const t0 = Date.now();
    await page.goto(cfg.url);
    await page.waitForSelector('#list li');
    out.loadMs = Date.now() - t0;
    out.initialSubjects = await rowSubjects(page);
    out.titleBefore = await page.title();

    // Live arrival over SMTP, timed from the 250 to the row in the DOM.
    const live = cfg.subjects.live;
    const sent = smtpSend(live, `<h1 id="live">Live HTML body</h1><p>rendered</p>`,
      'Live plain text body');
    const at250 = await sent;
    await page.waitForFunction((s) => [...document.querySelectorAll('#list li .subject')]
      .some((e) => e.textContent === s), { timeout: 5000, polling: 'mutation' }, live);
    out.liveMs = Date.now() - at250;
    out.liveFirst = (await rowSubjects(page))[0];
    out.titleAfterLive = await page.title();
    out.liveUnreadBold = await page.$eval('#list li', (li) => li.classList.contains('unread') &&
      getComputedStyle(li.querySelector('.subject')).fontWeight >= 700);

    // Open it: subject, HTML, text, headers, envelope with the Bcc.
    await openBySubject(page, live);
    out.liveHtml = await frameText(page);
    await shot(page, 'desktop-light-message');
    await tab(page, 'text');
    out.liveText = await page.$eval('#tab-panel pre.text', (e) => e.textContent);
    await tab(page, 'headers');
    out.liveHeaders = await page.$$eval('#headers-table tbody tr', (rows) =>
      rows.map((r) => [r.cells[0].textContent, r.cells[1].textContent]));
    await tab(page, 'envelope');
    out.liveBcc = await page.$$eval('#envelope li.rcpt.bcc', (els) =>
      els.map((e) => e.firstChild.textContent));
    out.liveRcpts = await page.$$eval('#envelope li.rcpt', (els) =>
      els.map((e) => e.firstChild.textContent));
    await tab(page, 'mime');
    out.liveMime = await page.$$eval('#mime-tree .mime-type', (els) => els.map((e) => e.textContent));
    await tab(page, 'html');

    // The hostile message: nothing runs, nothing remote is fetched until allowed.
    await openBySubject(page, cfg.subjects.hostile);
    out.hostileText = await frameText(page);
    const f = await (await page.$('#html-frame')).contentFrame();
    out.hostileFrameRan = await f.evaluate(() => window.__ran === 1 ||
      document.body.dataset.ran === '1');
    try {
      await f.click('#go');
    } catch (e) {
      out.steps.push(`form click: ${e.message}`);
    }
    await sleep(800);
    out.pageRan = await page.evaluate(() => window.__ran === 1 || document.title.includes('PWNED'));
    out.sandbox = await page.$eval('#html-frame', (e) => e.getAttribute('sandbox'));
    out.countBeforeAllow = await counter();
    await page.click('#allow-remote');
    await page.waitForFunction(() => document.querySelector('#allow-remote') === null);
    await sleep(1000);
    out.countAfterAllow = await counter();
    out.pageRanAfter = await page.evaluate(() => window.__ran === 1 || document.title.includes('PWNED'));

    // Mark-read (opening does it) and an explicit mark-unread/read round.
    await openBySubject(page, cfg.subjects.read);
    out.readRowBold = await page.evaluate((s) => [...document.querySelectorAll('#list li')]
      .find((li) => li.querySelector('.subject').textContent === s).classList.contains('unread'),
    cfg.subjects.read);

    // Mark unread, tags and the .eml download on another message.
    await openBySubject(page, cfg.subjects.tagged);
    await page.click('#toggle-read');
    await page.waitForFunction(() => document.querySelector('#toggle-read').textContent === 'Mark read');
    // The live update of the open (read) may land after ours: the row
    // settles on the last one.
    out.unreadRowBold = await page.waitForFunction((s) => [...document.querySelectorAll('#list li')]
      .find((li) => li.querySelector('.subject').textContent === s).classList.contains('unread'),
    { timeout: 5000 }, cfg.subjects.tagged).then(() => true, (e) => { out.steps.push(`unread: ${e.message}`); return false; });
    await page.click('#edit-tags');
    await page.type('#tag-input', 'urgent, billing');
    await page.click('#tag-form button[type=submit]');
    await page.waitForFunction(() => document.querySelectorAll('.msg-head .tag').length === 2);
    out.tagsShown = await page.$$eval('.msg-head .tag', (els) => els.map((e) => e.textContent));
    out.rowTags = await page.evaluate((s) => [...[...document.querySelectorAll('#list li')]
      .find((li) => li.querySelector('.subject').textContent === s).querySelectorAll('.tag')]
      .map((e) => e.textContent), cfg.subjects.tagged);
    const eml = path.join(cfg.downloads, `${cfg.taggedId}.eml`);
    await page.click('#download-eml');
    for (let i = 0; i < 100 && !fs.existsSync(eml); i++) await sleep(100);
    out.emlSha256 = fs.existsSync(eml)
      ? crypto.createHash('sha256').update(fs.readFileSync(eml)).digest('hex') : null;

    // Attachment download: same bytes (Python compares them).
    await openBySubject(page, cfg.subjects.attachment);
    await tab(page, 'attachments');
    out.attachmentNames = await page.$$eval('#attachment-list .att-name', (els) => els.map((e) => e.textContent));
    out.previews = await page.$$eval('#attachment-list img.preview', (els) => els.length);
    await page.click(`#attachment-list button.download`);
    const file = path.join(cfg.downloads, cfg.attachmentName);
    for (let i = 0; i < 100 && !fs.existsSync(file); i++) await sleep(100);
    out.downloadedSha256 = fs.existsSync(file)
      ? crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex') : null;
    await shot(page, 'desktop-light-attachments');

    // Delete from the page (the IMAP session sees the EXPUNGE).
    await openBySubject(page, cfg.subjects.doomed);
    await page.click('#delete-msg');
    await page.waitForFunction((s) => ![...document.querySelectorAll('#list li .subject')]
      .some((e) => e.textContent === s), { timeout: 5000 }, cfg.subjects.doomed);
    out.afterDelete = await rowSubjects(page);

    // The Delete key deletes the open message.
    await openBySubject(page, cfg.subjects.keyDoomed);
    await page.keyboard.press('Delete');
    await page.waitForFunction((s) => ![...document.querySelectorAll('#list li .subject')]
      .some((e) => e.textContent === s), { timeout: 5000 }, cfg.subjects.keyDoomed);
    out.afterKeyDelete = await rowSubjects(page);

    // Keyboard: Escape back, j/k move, Enter opens, / focuses search.
    await page.keyboard.press('Escape');
    // k, k, j from the current row (the list clamps at its ends).
    out.keyboardExpected = await page.evaluate(() => {
      const rows = [...document.querySelectorAll('#list li')];
      const clamp = (i) => Math.max(0, Math.min(rows.length - 1, i));
      const i = rows.findIndex((li) => li.classList.contains('current'));
      return rows[clamp(clamp(clamp(i - 1) - 1) + 1)].querySelector('.subject').textContent;
    });
    await page.keyboard.press('k');
    await page.keyboard.press('ArrowUp');
    await page.keyboard.press('j');
    await page.keyboard.press('Enter');
    await page.waitForSelector('#msg-subject');
    out.keyboardOpened = await page.$eval('#msg-subject', (e) => e.textContent);
    await page.keyboard.press('Escape');
    await page.keyboard.press('/');
    out.slashFocus = await page.evaluate(() => document.activeElement.id);

    // Search with the API's syntax.
    await page.type('#search', `subject:"${cfg.subjects.searchWord}"`);
    await page.keyboard.press('Enter');
    await page.waitForFunction((w) => {
      const s = [...document.querySelectorAll('#list li .subject')];
      return s.length > 0 && s.every((e) => e.textContent.includes(w));
    }, { timeout: 5000 }, cfg.subjects.searchWord);
    out.searchSubjects = await rowSubjects(page);
    await page.$eval('#search', (e) => { e.value = ''; });
    await page.focus('#search');
    await page.keyboard.press('Enter');
    await page.waitForFunction((n) => document.querySelectorAll('#list li').length === n,
      { timeout: 5000 }, out.afterKeyDelete.length);

    // Dark theme and phone width, as screenshots.
    await page.emulateMediaFeatures([{ name: 'prefers-color-scheme', value: 'dark' }]);
    await openBySubject(page, live);
    await tab(page, 'html');
    await shot(page, 'desktop-dark-message');
    out.darkBg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    await page.setViewport({ width: 390, height: 844 });
    await shot(page, 'phone-dark-message');
    out.phoneListHidden = await page.$eval('#list-pane', (e) => getComputedStyle(e).display === 'none');
    await page.click('#view .back');
    await shot(page, 'phone-dark-list');
    await page.emulateMediaFeatures([{ name: 'prefers-color-scheme', value: 'light' }]);
    await shot(page, 'phone-light-list');
    await page.setViewport({ width: 1280, height: 800 });
    await page.click('#settings-btn');
    await page.waitForSelector('#set-smtp-port');
    out.settingsSmtpPort = await page.$eval('#set-smtp-port', (e) => e.textContent);
    out.settingsImapPort = await page.$eval('#set-imap-port', (e) => e.textContent);
    out.snippets = await page.$$eval('details.snippet summary', (els) => els.map((e) => e.textContent));
    out.smtpUrl = await page.$eval('details.snippet pre', (e) => e.textContent);
    await shot(page, 'desktop-light-settings');
    // Create an inbox from the page, and see it in the picker.
    await page.type('#new-inbox-name', cfg.newInbox);
    await page.click('#create-inbox button[type=submit]');
    await page.waitForFunction((n) => [...document.querySelectorAll('#inbox option')]
      .some((o) => o.value === n), { timeout: 5000 }, cfg.newInbox);
    out.created = await page.$eval('#create-result', (e) => e.textContent);
    await page.click('#settings-close');
    await shot(page, 'desktop-light-list');

    // Inbox switching shows only that inbox; delete all (confirmed) in it.
    await page.select('#inbox', cfg.otherInbox);
    await page.waitForFunction((n) => document.querySelectorAll('#list li').length === n &&
      [...document.querySelectorAll('#list li .subject')].every((e) => e.textContent.startsWith('Other')),
    { timeout: 5000 }, cfg.otherCount);
    out.otherSubjects = await rowSubjects(page);
    await page.click('#delete-all');
    await page.waitForSelector('#confirm[open]');
    await page.click('#confirm-yes');
    await page.waitForFunction(() => document.querySelectorAll('#list li').length === 0,
      { timeout: 5000 });
    out.otherAfterDeleteAll = await rowSubjects(page);
    await page.select('#inbox', '');
    await page.waitForFunction((n) => document.querySelectorAll('#list li').length === n,
      { timeout: 5000 }, out.afterKeyDelete.length - cfg.otherCount);
    out.allAfter = await rowSubjects(page);
  } finally {
    await browser.close();
  }
}

// Prints `out` as the last line, as test_web.py's run_script wants it.
function report(run, result) {
  run().then(() => {
    console.log(JSON.stringify(result));
  }, (e) => {
    result.failure = `${e.stack || e}`;
    console.log(JSON.stringify(result));
    process.exit(1);
  });
}

// test_web_edges.js drives the page with these too.
module.exports = { launch, report, rowSubjects, openBySubject, sleep };
if (require.main === module) report(main, out);
