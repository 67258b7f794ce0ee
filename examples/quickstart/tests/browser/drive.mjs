// Drives Debian's Chromium (playwright-core, no bundled browser) through the quickstart's demo
// page for tests/browser.rs, which starts the quickstart, runs
//   node drive.mjs <scenario> <base url> <output dir>
// and checks what reached the sinks. The last stdout line is a JSON report.
//
// Scenarios:
//   demo    click every demo button (throw, reject, track, /fail, SPA navigation), then check
//           that the page still works; a screenshot goes to <output dir>/demo.png.
//   down    the ingest route answers 500, 429 (Retry-After: 2), 400, or the connection fails:
//           the page must see no error of ours, and retries follow the rules.
//   beacon  45 events of 3 KB pending when the page is hidden: beacons under the 64 KiB quota.
//   record  session replay (tests/browser.rs): with rrweb recording, type into the demo
//           form, submit it, click, call /fail; every replay segment is uploaded.
//   viewer  <base> is a backend event's replay.url: sign in to the console (token in
//           TP_TOKEN), open it, play to the end without console errors; a screenshot taken
//           mid-replay goes to <output dir> (a .png path here).
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const [scenario, base, outDir] = process.argv.slice(2);
const INGEST = '**/tracepost/v1/events**';

const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'tp-chromium-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  viewport: { width: 1100, height: 760 },
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const report = { scenario };
try {
  if (scenario === 'demo') Object.assign(report, await demo());
  else if (scenario === 'down') Object.assign(report, await down());
  else if (scenario === 'beacon') Object.assign(report, await beacon());
  else if (scenario === 'record') Object.assign(report, await record());
  else if (scenario === 'viewer') Object.assign(report, await viewer());
  else throw new Error(`unknown scenario ${scenario}`);
} finally {
  await context.close();
  fs.rmSync(profile, { recursive: true, force: true });
}
console.log(JSON.stringify(report));

// A page with its uncaught errors and the ingest requests it makes recorded.
async function open() {
  const page = await context.newPage();
  // inFlight: the ingest fetches not answered yet. Beacons are left out: Chromium reports a
  // beacon it refused (over its quota) as a request that never finishes.
  const seen = { pageErrors: [], ingest: [], answers: [], inFlight: 0 };
  const isIngest = (r) => r.url().includes('/tracepost/v1/events');
  const counted = (r) => isIngest(r) && r.resourceType() !== 'ping';
  page.on('pageerror', (e) => seen.pageErrors.push(e.message));
  page.on('requestfinished', async (r) => {
    if (!isIngest(r)) return;
    if (counted(r)) seen.inFlight--;
    const response = await r.response();
    seen.answers.push(response ? response.status() : 0);
  });
  page.on('requestfailed', (r) => { if (counted(r)) seen.inFlight--; });
  page.on('request', (r) => {
    if (counted(r)) seen.inFlight++;
    if (isIngest(r)) {
      seen.ingest.push({
        at: Date.now(), type: r.resourceType(), bytes: Buffer.byteLength(r.postData() || ''),
        contentType: r.headers()['content-type'], body: safeJson(r.postData()),
      });
    }
  });
  return { page, seen };
}

function safeJson(text) {
  try { return JSON.parse(text); } catch { return null; }
}

// Sends what is queued now rather than after the 2 s timer, and waits for every answer.
async function flushed(page, seen) {
  await page.evaluate(() => tracepost.flush());
  for (let quiet = 0; quiet < 3; quiet++) {
    await page.waitForTimeout(100);
    if (seen.inFlight > 0) quiet = -1;
  }
}

async function load(page) {
  await page.goto(`${base}/`);
  await page.waitForFunction(() => window.tracepost);
}

async function clickAndWait(page, id, logText) {
  await page.click(`#${id}`);
  await page.waitForFunction((t) => document.getElementById('log').textContent.includes(t), logText);
}

async function demo() {
  const { page, seen } = await open();
  await load(page);
  await clickAndWait(page, 'throw', 'threw TypeError');
  await clickAndWait(page, 'reject', 'rejected: payment declined');
  await clickAndWait(page, 'track', 'tracked signup');
  await clickAndWait(page, 'fail', 'GET /fail answered 500');
  await clickAndWait(page, 'navigate', 'navigated to /demo/checkout');
  // The page kept working after its errors: a button still does its job.
  await page.click('#count');
  await page.click('#count');
  const countText = await page.textContent('#count');
  const route = await page.textContent('#route');
  const ids = await page.evaluate(() => ({
    session: sessionStorage.getItem('tp_sid').split('.')[0],
    visitor: localStorage.getItem('tp_vid'),
  }));
  await page.screenshot({ path: path.join(outDir, 'demo.png'), fullPage: true });
  await flushed(page, seen);
  return {
    sessionId: ids.session, visitorId: ids.visitor, countText, route,
    pageErrors: seen.pageErrors, answers: seen.answers,
    contentTypes: seen.ingest.map((r) => r.contentType),
  };
}

async function down() {
  const modes = {
    status500: (route) => route.fulfill({ status: 500, body: 'down' }),
    status429: (route) => route.fulfill({
      status: 429, headers: { 'retry-after': '2' },
      body: '{"error":{"status":429,"code":"rate_limited","message":"slow down"}}',
    }),
    status400: (route) => route.fulfill({
      status: 400, body: '{"error":{"status":400,"code":"invalid","message":"no"}}',
    }),
    network: (route) => route.abort('connectionrefused'),
  };
  const results = await Promise.all(Object.entries(modes).map(async ([mode, answer]) => {
    const { page, seen } = await open();
    await page.route(INGEST, answer);
    await load(page);
    await page.click('#track');
    await page.evaluate(() => tracepost.captureException(new Error('handled in ' + location.pathname)));
    await page.click('#navigate');
    await page.evaluate(() => tracepost.flush());
    // Long enough for every retry the rules allow (1 s, then 2 s; Retry-After 2 s, then 2 s).
    await page.waitForTimeout(6500);
    await page.click('#count');
    return [mode, {
      pageErrors: seen.pageErrors,
      countText: await page.textContent('#count'),
      attempts: seen.ingest.map((r) => ({ at: r.at, batchId: r.body && r.body.batch_id })),
    }];
  }));
  return { modes: Object.fromEntries(results) };
}

async function beacon() {
  const { page, seen } = await open();
  await load(page);
  await page.evaluate(() => {
    for (let i = 0; i < 45; i++) tracepost.track('bulk', { i, pad: 'x'.repeat(3000) });
    // What the browser fires when the tab is hidden or left; the page stays to see the answers.
    window.dispatchEvent(new PageTransitionEvent('pagehide', { persisted: false }));
  });
  for (let quiet = 0; quiet < 3; quiet++) {
    await page.waitForTimeout(100);
    if (seen.inFlight > 0) quiet = -1;
  }
  return {
    pageErrors: seen.pageErrors,
    requests: seen.ingest.map((r) => ({
      type: r.type, bytes: r.bytes, events: r.body ? r.body.events.length : 0,
    })),
  };
}

async function record() {
  // Typed into the demo form; tests/browser.rs looks for them in storage (they must not be).
  const TYPED = { name: 'Ada Typed-Secret-Name', email: 'typed-secret@example.org' };
  const { page, seen } = await open();
  const uploads = [];
  page.on('response', (r) => {
    if (r.url().includes('/tracepost/v1/replay')) uploads.push(r.status());
  });
  await load(page);
  await page.waitForFunction(() => tracepost.replay && tracepost.replay.state() === 'recording');
  await page.click('#name');
  await page.keyboard.type(TYPED.name, { delay: 15 });
  await page.fill('#email', TYPED.email);
  await page.click('#subscribe');
  await page.waitForFunction(() => document.getElementById('log').textContent.includes('subscribed'));
  await page.click('#count');
  await page.mouse.move(300, 200, { steps: 8 });
  await page.waitForTimeout(700); // rrweb sends mouse positions every 500 ms
  // The first segment before the backend call, so that its event links to the moment.
  await page.evaluate(() => tracepost.replay.flush());
  await waitFor(() => uploads.length >= 1, 'the first replay segment');
  await page.waitForTimeout(300);
  await clickAndWait(page, 'fail', 'GET /fail answered 500');
  await page.click('#count');
  await page.waitForTimeout(600);
  await page.evaluate(() => tracepost.replay.stop());
  await waitFor(() => uploads.length >= 2, 'the last replay segment');
  const session = await page.evaluate(() => tracepost._s()[0]);
  const missing = await page.evaluate(() => tracepost.replay.missing());
  await flushed(page, seen);
  return { sessionId: session, uploads, missing, pageErrors: seen.pageErrors };
}

async function waitFor(ok, what, ms = 15000) {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

// The console viewer's one tolerated report, as crates/tracepost-console/tests/browser/
// viewer.mjs explains: rrweb rebuilding the sandboxed replay frame's document (no
// allow-scripts, on purpose), at most once per rewrite, which the viewer counts.
function sandboxReport() {
  return /^Blocked script execution in '[^']*' because the document's frame is sandboxed and the 'allow-scripts' permission is not set\.$/;
}

async function viewer() {
  const SANDBOX = sandboxReport();
  const page = await context.newPage();
  await page.setViewportSize({ width: 1400, height: 900 }); // the player and its side panel
  const problems = [], sandboxNotes = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    if (SANDBOX.test(m.text())) sandboxNotes.push(m.text());
    else problems.push(`console error: ${m.text()} at ${JSON.stringify(m.location())}`);
  });
  // The console's CSP forbids page.waitForFunction's string evaluation: poll.
  const until = async (fn, what, ms = 30000) => {
    const end = Date.now() + ms;
    while (Date.now() < end) {
      if (await page.evaluate(fn)) return;
      await page.waitForTimeout(100);
    }
    throw new Error(`timed out waiting for ${what}; problems: ${problems.join('; ')}`);
  };
  const replayUrl = base;
  await page.goto(replayUrl);
  const signIn = page.url().endsWith('/login');
  await page.fill('input[name=token]', process.env.TP_TOKEN);
  await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
  const resp = await page.goto(replayUrl);
  const status = resp.status();
  // A link with ?t= plays from that offset once the segments are loaded.
  await until(() => window.__tpReplay && ['playing', 'failed'].includes(window.__tpReplay.state), 'the player');
  const state = await page.evaluate(() => window.__tpReplay.state);
  if (state === 'failed') throw new Error(await page.textContent('#replay-status'));
  const events = await page.evaluate(() => window.__tpReplay.events);
  const startedAt = await page.evaluate(() => window.__tpReplay.player.getReplayer().getCurrentTime());
  // Mid-replay: the form filled in (masked), for the screenshot.
  const meta = await page.evaluate(() => window.__tpReplay.player.getMetaData());
  const mid = Math.round(meta.totalTime / 2);
  await page.evaluate((t) => window.__tpReplay.player.goto(t, false), mid);
  await page.waitForTimeout(500);
  const frame = page.frames().find((f) => f !== page.mainFrame());
  const replayed = frame ? {
    name: await frame.$eval('#name', (e) => e.value).catch(() => null),
    email: await frame.$eval('#email', (e) => e.value).catch(() => null),
    text: await frame.$eval('body', (e) => e.textContent).catch(() => ''),
  } : null;
  await page.screenshot({ path: outDir, fullPage: false });
  await page.evaluate(() => {
    const p = window.__tpReplay.player;
    p.setSpeed(8);
    p.goto(0, true);
  });
  await until(() => window.__tpReplay.state === 'finished', 'the end of the replay', 60000);
  const reopens = await page.evaluate(() => window.__tpReplay.reopens);
  return {
    signIn, status, events, startedAt, totalTime: meta.totalTime, mid, replayed,
    reopens, sandboxNotes: sandboxNotes.length, problems,
  };
}
