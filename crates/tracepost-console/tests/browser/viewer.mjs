// The replay viewer in Debian's Chromium: signs in to the console, opens the viewer of a
// stored real recording, checks it loads every segment into rrweb-player, takes a
// screenshot mid-replay, seeks from the side panel, plays to the end, and fails on any
// browser console error or page error — but one: Chromium reports "Blocked script execution
// in '…' because the document's frame is sandboxed" each time rrweb rebuilds the replay
// frame's document (document.open() on the sandboxed iframe, which has no allow-scripts —
// on purpose: recorded scripts must never run). Checked, not ignored: there may be at most
// one such report per rewrite of that document, which the viewer counts.
//
// Run by crates/tracepost-console/tests/replay_browser.rs:
//   node viewer.mjs <console base URL> <admin token> <session id> <screenshot.png> <marker offset ms>
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import assert from "node:assert/strict";

const [base, token, session, shotPath, markOffset] = process.argv.slice(2);
if (!markOffset) throw new Error("usage: node viewer.mjs <base> <token> <session> <png> <offset>");

const profile = mkdtempSync(join(tmpdir(), "tp-viewer-chromium-"));
const browser = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  viewport: { width: 1400, height: 900 },
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
const problems = [];
const sandboxNotes = [];
const step = (s) => console.log(`  · ${s}`);
const SANDBOX = /^Blocked script execution in '[^']*' because the document's frame is sandboxed and the 'allow-scripts' permission is not set\.$/;

// page.waitForFunction evaluates strings, which the console's CSP forbids: poll instead.
async function until(page, fn, what, ms = 20000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await page.evaluate(fn)) return;
    await page.waitForTimeout(100);
  }
  const state = await page.evaluate(() => JSON.stringify({
    state: window.__tpReplay && window.__tpReplay.state,
    status: document.getElementById("replay-status")?.textContent,
  }));
  throw new Error(`timed out waiting for ${what}: ${state}; problems: ${problems.join("; ")}`);
}

try {
  const page = browser.pages()[0] || (await browser.newPage());
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() !== "error") return;
    if (SANDBOX.test(m.text())) sandboxNotes.push(m.text());
    else problems.push(`console error: ${m.text()} at ${JSON.stringify(m.location())}`);
  });
  // At most one sandbox report per rewrite of the replay document, on the current page.
  async function checkSandboxNotes(what) {
    const reopens = await page.evaluate(() => window.__tpReplay.reopens);
    assert.ok(sandboxNotes.length <= reopens,
      `${what}: ${sandboxNotes.length} sandbox reports for ${reopens} document rewrites`);
    step(`${what}: ${reopens} document rewrites, ${sandboxNotes.length} sandbox reports`);
    sandboxNotes.length = 0;
  }

  // Without signing in, the viewer sends the browser to the login form.
  await page.goto(`${base}/replays/${session}`);
  assert.match(page.url(), /\/login$/);
  await page.fill("input[name=token]", token);
  await Promise.all([page.waitForNavigation(), page.click("button[type=submit]")]);
  step("signed in");

  const resp = await page.goto(`${base}/replays/${session}`);
  assert.equal(resp.status(), 200);
  await until(page, () => window.__tpReplay && ["ready", "playing", "failed"].includes(window.__tpReplay.state), "the player");
  const state = await page.evaluate(() => window.__tpReplay.state);
  assert.notEqual(state, "failed", await page.textContent("#replay-status"));
  const loaded = await page.evaluate(() => window.__tpReplay.events);
  assert.ok(loaded > 10, `events loaded: ${loaded}`);
  step(`player ready with ${loaded} events`);

  // Mid-replay: pause a quarter into the recording (the form being filled) for the screenshot.
  const meta = await page.evaluate(() => window.__tpReplay.player.getMetaData());
  assert.ok(meta.totalTime > 500, `recording length ${meta.totalTime} ms`);
  const mid = Math.round(meta.totalTime / 4);
  await page.evaluate((t) => window.__tpReplay.player.goto(t, false), mid);
  await page.waitForTimeout(500);
  // The replayed document is in the player's iframe: the recorded page's form is there.
  const frame = page.frames().find((f) => f !== page.mainFrame());
  assert.ok(frame, "the replay iframe");
  assert.ok(await frame.$("#name"), "the recorded page's #name input is rebuilt in the replay");
  await page.screenshot({ path: shotPath, fullPage: false });
  step(`screenshot mid-replay (${mid} ms of ${meta.totalTime}) → ${shotPath}`);

  // Seek from the side panel: the backend error's mark.
  await page.click(`ol.replay-marks a.seek[data-offset="${markOffset}"]`);
  await page.waitForTimeout(200);
  const at = await page.evaluate(() => window.__tpReplay.player.getReplayer().getCurrentTime());
  assert.ok(Math.abs(at - Number(markOffset)) < 800, `seeked to ${at}, wanted ${markOffset}`);
  assert.match(page.url(), new RegExp(`\\?t=${markOffset}$`));
  step(`the side panel seeks (${at} ms)`);

  // Play to the end, fast.
  await page.evaluate(() => {
    const p = window.__tpReplay.player;
    p.setSpeed(8);
    p.goto(0, true);
  });
  await until(page, () => window.__tpReplay.state === "finished", "the end of the replay", 60000);
  step("played to the end");
  await checkSandboxNotes("first visit");

  // ?t= opens at that offset.
  await page.goto(`${base}/replays/${session}?t=${markOffset}`);
  await until(page, () => window.__tpReplay && window.__tpReplay.state === "playing", "the player at ?t=");
  const start = await page.evaluate(() => window.__tpReplay.player.getReplayer().getCurrentTime());
  assert.ok(start >= Number(markOffset) - 100, `?t= started at ${start}`);
  step(`?t=${markOffset} opens at ${start} ms`);
  await page.waitForTimeout(300);
  await checkSandboxNotes("second visit");

  assert.deepEqual(problems, [], "no browser console errors");
  console.log("viewer: ok");
} finally {
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
}
