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
