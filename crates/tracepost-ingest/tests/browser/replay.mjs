// Records sessions on page.html in Chromium through tp.js + tp-replay.js with rrweb from
// npm, one scenario per run (see below), and prints a JSON report on its last line.
// Used by crates/tracepost-ingest/tests/replay_browser.rs:
//   node replay.mjs <base-url> [basic|errors|pages|sample0|retry]
import { mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { chromium } from "playwright-core";

const base = process.argv[2];
if (!base) throw new Error("usage: node replay.mjs <base-url> [scenario]");

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
const scenario = process.argv[3] || "basic";
const pause = (ms) => new Promise((r) => setTimeout(r, ms));
const until = async (f, ms = 10000) => {
  const t0 = Date.now();
  while (!f() && Date.now() - t0 < ms) await pause(100);
};
try {
  const page = await browser.newPage();
  page.on("pageerror", (e) => {
    if (!e.message.includes("planted")) problems.push(`page error: ${e.message}`);
  });
  page.on("console", (m) => {
    // Chromium logs every failed response; the retry scenario's 503s are planted.
    const planted = scenario === "retry" && m.text().includes("status of 503");
    if (m.type() === "error" && !planted) problems.push(`console error: ${m.text()}`);
  });
  page.on("response", (r) => {
    if (r.url().includes("/v1/replay")) uploads.push(r.status());
  });
  const open = async (path, state) => {
    await page.goto(`${base}${path}`);
    await page.waitForFunction((s) => window.tracepost && window.tracepost.replay
      && window.tracepost.replay.state() === s, state);
  };
  const report = async (extra) => {
    const state = await page.evaluate(() => ({
      session: window.tracepost._s()[0],
      state: window.tracepost.replay.state(),
      missing: window.tracepost.replay.missing(),
    }));
    return { uploads, problems, ...state, ...extra };
  };
  let out;
  if (scenario === "basic") {
    await open("/page.html", "recording");
    await page.fill("#name", "Ada Typed-Secret-Name");
    await page.fill("#pw", "pw-Typed-Secret-9");
    await page.click("#notes");
    await page.keyboard.type("notes Typed-Secret-Notes");
    await page.click("#add");
    await page.click("#add");
    await page.mouse.move(200, 150, { steps: 8 });
    await pause(700); // rrweb flushes mouse positions every 500 ms
    await page.evaluate(() => window.tracepost.replay.flush());
    await until(() => uploads.length >= 1);
    // More input, then the page goes away: the last segment by keepalive.
    await page.click("#add");
    await page.fill("#name", "Second Typed-Secret-Later");
    await pause(300);
    out = await report();
    await page.close({ runBeforeUnload: true });
    await pause(1500); // the keepalive request lands
  } else if (scenario === "errors") {
    // Error-only mode: nothing is sent until an error, then the buffered past is.
    await open("/errors.html", "buffering");
    await page.click("#add");
    await page.fill("#name", "before the error");
    await pause(6000); // longer than a flush period: still nothing sent
    const before = uploads.length;
    await page.evaluate(() => setTimeout(() => { throw new Error("planted error"); }));
    await until(() => uploads.length >= 1);
    out = await report({ before });
  } else if (scenario === "pages") {
    // Two pages of one session: the numbering continues on the second page.
    await open("/page.html", "recording");
    await page.click("#add");
    await page.evaluate(() => window.tracepost.replay.flush());
    await until(() => uploads.length >= 1);
    await page.click("#add"); // for the segment sent when the page goes away
    await pause(200);
    await open("/page.html?second", "recording");
    await page.click("#add");
    await page.evaluate(() => window.tracepost.replay.flush());
    await until(() => uploads.length >= 3);
    out = await report();
  } else if (scenario === "sample0") {
    await open("/sample0.html", "stopped");
    await page.click("#add");
    await pause(6000);
    out = await report();
  } else if (scenario === "retry") {
    // The server answers 503 to the first three uploads: segment 0 is given up after 3
    // tries and counted; the next segment carries the count.
    await open("/page.html", "recording");
    await page.click("#add");
    await page.evaluate(() => window.tracepost.replay.flush());
    await until(() => uploads.length >= 3);
    await until(() => false, 500);
    await page.click("#add");
    await page.evaluate(() => window.tracepost.replay.flush());
    await until(() => uploads.length >= 4);
    out = await report();
  } else {
    throw new Error(`unknown scenario ${scenario}`);
  }
  console.log(JSON.stringify(out));
} finally {
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
}
