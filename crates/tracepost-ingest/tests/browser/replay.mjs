// Records a session on page.html in Chromium through tp.js + tp-replay.js with rrweb from
// npm: clicks and typing, one explicit flush, then more input and a closed page (the last
// segment goes by keepalive). Prints a JSON report on its last line.
// Used by crates/tracepost-ingest/tests/replay_browser.rs:
//   node replay.mjs <base-url>
import { mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { chromium } from "playwright-core";

const base = process.argv[2];
if (!base) throw new Error("usage: node replay.mjs <base-url>");

const profile = mkdtempSync(join(tmpdir(), "tp-replay-chromium-"));
const browser = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  viewport: { width: 1024, height: 700 },
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
const problems = [];
const uploads = [];
try {
  const page = await browser.newPage();
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("console", (m) => m.type() === "error" && problems.push(`console error: ${m.text()}`));
  page.on("response", (r) => {
    if (r.url().includes("/v1/replay")) uploads.push(r.status());
  });
  await page.goto(`${base}/page.html`);
  await page.waitForFunction(() => window.tracepost && window.tracepost.replay
    && window.tracepost.replay.state() === "recording");
  const session = await page.evaluate(() => window.tracepost._s()[0]);
  await page.fill("#name", "Ada Typed-Secret-Name");
  await page.fill("#pw", "pw-Typed-Secret-9");
  await page.click("#notes");
  await page.keyboard.type("notes Typed-Secret-Notes");
  await page.click("#add");
  await page.click("#add");
  await page.mouse.move(200, 150, { steps: 8 });
  // rrweb flushes mouse positions every 500 ms.
  await page.waitForTimeout(700);
  await page.evaluate(() => window.tracepost.replay.flush());
  await page.waitForFunction(() => true);
  // Wait for the first upload to be answered.
  const t0 = Date.now();
  while (uploads.length < 1 && Date.now() - t0 < 10000) await page.waitForTimeout(100);
  // More input, then the page goes away: the last segment by keepalive.
  await page.click("#add");
  await page.fill("#name", "Second Typed-Secret-Later");
  await page.waitForTimeout(300);
  const state = await page.evaluate(() => ({
    state: window.tracepost.replay.state(),
    missing: window.tracepost.replay.missing(),
  }));
  await page.close({ runBeforeUnload: true });
  // Give the keepalive request time to land.
  await new Promise((r) => setTimeout(r, 1500));
  console.log(JSON.stringify({ session, uploads, problems, ...state }));
} finally {
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
}
