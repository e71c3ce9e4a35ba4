// The browser half of test_web_edges.py: the Release button, browser
// notifications and "Delete all" under a search, in headless Chromium.
// Argument: JSON {mode: "release" | "notify" | "deleteall", url, ...};
// prints one JSON object of what the page showed on its last line.
'use strict';
const { launch, report, rowSubjects, openBySubject, sleep } = require('./test_web.js');

const cfg = JSON.parse(process.argv[2]);
const out = { steps: [], errors: [] };

async function toastSays(page, prefix) {
  await page.waitForFunction((p) => document.querySelector('#toast').textContent.startsWith(p),
    { timeout: 15000 }, prefix);
  return page.$eval('#toast', (e) => e.textContent);
}

async function rowCount(page, n) {
  await page.waitForFunction((k) => document.querySelectorAll('#list li').length === k,
    { timeout: 10000 }, n);
}

// Release: the prompt is answered with cfg.answers in turn (its default,
// the envelope recipients, is kept); the toast says what the server said.
async function release(page) {
  const answers = [...cfg.answers];
  out.promptDefaults = [];
  page.on('dialog', (d) => {
    out.promptDefaults.push(d.defaultValue());
    d.accept(answers.shift());
  });
  await page.goto(cfg.url);
  await openBySubject(page, cfg.subject);
  await page.waitForSelector('#release');
  await page.click('#release');
  out.released = await toastSays(page, 'Released');
  await page.evaluate(() => { document.querySelector('#toast').textContent = ''; });
  await page.click('#release');
  out.refused = await toastSays(page, 'Release failed');
}

// Notifications: window.Notification is wrapped before the page runs, so
// every notification the page makes is recorded (the permission is the
// browser's, granted by overridePermissions); document.hidden is ours to
// set, as a hidden tab in a headless browser cannot be had otherwise.
function stubs() {
  const Real = window.Notification;
  window.__notes = [];
  window.__hidden = false;
  function Stub(title, opts) {
    window.__notes.push({ title, body: opts && opts.body, tag: opts && opts.tag });
    this.onclick = null;
    this.close = () => {};
    window.__last = this;
  }
  Object.defineProperty(Stub, 'permission', { get: () => Real.permission });
  Stub.requestPermission = () => Real.requestPermission();
  window.Notification = Stub;
  Object.defineProperty(Document.prototype, 'hidden', { get: () => window.__hidden });
  Object.defineProperty(Document.prototype, 'visibilityState',
    { get: () => (window.__hidden ? 'hidden' : 'visible') });
}

async function send(subject) {
  const res = await fetch(`${cfg.url}api/v1/send`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ From: { Email: 'nora@example.test', Name: 'Nora Notify' },
      To: [{ Email: 'bob@example.test' }], Subject: subject, Text: 'hello' }),
  });
  if (!res.ok) throw new Error(`send: ${res.status} ${await res.text()}`);
}

async function sendAndSee(page, subject) {
  await send(subject);
  await page.waitForFunction((s) => [...document.querySelectorAll('#list li .subject')]
    .some((e) => e.textContent === s), { timeout: 10000 }, subject);
  await sleep(300);     // a notification, if any, is made with the row
}

async function notify(page, browser) {
  await browser.defaultBrowserContext().overridePermissions(new URL(cfg.url).origin,
    ['notifications']);
  await page.evaluateOnNewDocument(stubs);
  await page.goto(cfg.url);
  await page.waitForSelector('#list');
  const notes = () => page.evaluate(() => window.__notes.map((n) => [n.title, n.body]));
  await page.evaluate(() => { window.__hidden = true; });
  await sendAndSee(page, 'Hidden but not turned on');
  out.offHidden = await notes();
  await page.evaluate(() => { window.__hidden = false; });
  await page.click('#notify-btn');
  await page.waitForFunction(() => document.querySelector('#notify-btn')
    .getAttribute('aria-pressed') === 'true', { timeout: 5000 });
  out.permission = await page.evaluate(() => Notification.permission);
  await sendAndSee(page, 'On and visible');
  out.onVisible = await notes();
  await page.evaluate(() => { window.__hidden = true; });
  await sendAndSee(page, 'Hidden one');
  await sendAndSee(page, 'Hidden two');
  out.onHidden = await notes();
  // Clicking the last one opens its message.
  await page.evaluate(() => { window.__hidden = false; window.__last.onclick(); });
  await page.waitForFunction(() => document.querySelector('#msg-subject')?.textContent === 'Hidden two',
    { timeout: 5000 });
  out.clickOpened = await page.$eval('#msg-subject', (e) => e.textContent);
  await page.click('#notify-btn');
  await page.evaluate(() => { window.__hidden = true; });
  await sendAndSee(page, 'Turned off again');
  out.offAgain = await notes();
}

async function confirmAndDelete(page) {
  await page.click('#delete-all');
  await page.waitForSelector('#confirm[open]');
  const q = await page.$eval('#confirm .question', (e) => e.textContent);
  const yes = await page.$eval('#confirm-yes', (e) => e.textContent);
  await page.click('#confirm-yes');
  return [q, yes];
}

// Delete all: with a search on (all inboxes), then without one in inbox
// cfg.otherInbox.
async function deleteAll(page) {
  page.on('dialog', (d) => d.dismiss());
  await page.goto(cfg.url);
  await rowCount(page, cfg.total);
  await page.type('#search', cfg.query);
  await page.keyboard.press('Enter');
  await rowCount(page, cfg.matches);
  out.matched = await rowSubjects(page);
  out.searchConfirm = await confirmAndDelete(page);
  await page.waitForFunction(() => document.querySelector('#more').textContent === 'No message matches.',
    { timeout: 10000 });
  out.afterSearchDelete = await rowSubjects(page);
  await page.$eval('#search', (e) => { e.value = ''; });
  await page.focus('#search');
  await page.keyboard.press('Enter');
  await rowCount(page, cfg.total - cfg.matches);
  out.left = await rowSubjects(page);
  await page.select('#inbox', cfg.otherInbox);
  await rowCount(page, cfg.otherLeft);
  out.scopeConfirm = await confirmAndDelete(page);
  await rowCount(page, 0);
  await page.select('#inbox', '');
  await rowCount(page, cfg.total - cfg.matches - cfg.otherLeft);
  out.finally = await rowSubjects(page);
}

const MODES = { release, notify, deleteall: deleteAll };

async function main() {
  const browser = await launch();
  try {
    const page = await browser.newPage();
    page.on('pageerror', (e) => out.errors.push(e.message));
    await page.setViewport({ width: 1280, height: 800 });
    await MODES[cfg.mode](page, browser);
  } finally {
    await browser.close();
  }
}

report(main, out);
