// Records real rrweb sessions in Chromium, one per rrweb version, on page.html, and writes
// each recording (the array of events rrweb emitted) to <out-dir>/rrweb-<version>.json.
// Used by crates/tracepost-rrweb/tests/recordings.rs:
//   node record.mjs <out-dir>
// With RRWEB_MASK_ALL_INPUTS=1, inputs are masked as tp-replay.js records them (rrweb's
// maskAllInputs; crates/tracepost-console/tests/replay_browser.rs, whose screenshot is in the book).
import { createServer } from "node:http";
import { readFileSync, writeFileSync, mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { chromium } from "playwright-core";

const here = import.meta.dirname;
const out = process.argv[2];
if (!out) throw new Error("usage: node record.mjs <out-dir>");

// The UMD bundles, each defining the global `rrweb`.
const versions = {
  v1: { pkg: "rrweb-v1", file: "dist/rrweb-all.min.js" },
  v2: { pkg: "rrweb-v2", file: "dist/rrweb.umd.min.cjs" },
};

const server = createServer((req, res) => {
  const url = new URL(req.url, "http://x");
  const m = url.pathname.match(/^\/rrweb-(v\d)\.js$/);
  if (m && versions[m[1]]) {
    const v = versions[m[1]];
    const pkgJson = JSON.parse(readFileSync(join(here, "node_modules", v.pkg, "package.json")));
    res.setHeader("content-type", "text/javascript");
    res.setHeader("x-rrweb-version", pkgJson.version);
    res.end(readFileSync(join(here, "node_modules", v.pkg, v.file)));
  } else if (url.pathname === "/favicon.ico") {
    res.statusCode = 204;
    res.end();
  } else if (url.pathname === "/page.html") {
    res.setHeader("content-type", "text/html; charset=utf-8");
    res.end(readFileSync(join(here, "page.html")));
  } else {
    res.statusCode = 404;
    res.end();
  }
});
await new Promise((r) => server.listen(0, "127.0.0.1", r));
const base = `http://127.0.0.1:${server.address().port}`;

const profile = mkdtempSync(join(tmpdir(), "tp-rrweb-chromium-"));
const browser = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  viewport: { width: 1024, height: 700 },
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});

const pause = (ms) => new Promise((r) => setTimeout(r, ms));

try {
  for (const [name, v] of Object.entries(versions)) {
    const page = await browser.newPage();
    const problems = [];
    page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
    page.on("console", (m) => m.type() === "error" && problems.push(`console error: ${m.text()}`));
    await page.goto(`${base}/page.html`);
    await page.addScriptTag({ url: `${base}/rrweb-${name}.js` });
    const maskAllInputs = process.env.RRWEB_MASK_ALL_INPUTS === "1";
    const version = await page.evaluate(async (maskAllInputs) => {
      window.__events = [];
      const plugins = rrweb.getRecordConsolePlugin ? [rrweb.getRecordConsolePlugin()] : [];
      window.__stop = rrweb.record({
        emit: (e) => window.__events.push(e),
        plugins,
        // rrweb's defaults otherwise: passwords masked, canvas not recorded.
        collectFonts: true,
        maskAllInputs,
      });
      return typeof rrweb.record.addCustomEvent === "function";
    }, maskAllInputs);
    if (!version) throw new Error(`${name}: rrweb.record.addCustomEvent missing`);

    // Input of every kind.
    await page.fill("#name", "Ada Lovelace");
    await page.fill("#pw", "s3cret-pass");
    await page.check("#agree");
    await page.selectOption("#size", "M");
    await page.fill("#notes", "multi\nline ✓");
    // Mouse: moves, clicks (mutations follow), a double click and a context menu.
    await page.mouse.move(10, 10);
    await page.mouse.move(200, 150, { steps: 12 });
    await page.click("#add");
    await page.click("#add");
    await page.click("#edit");
    await page.dblclick("#text");
    await page.click("#text", { button: "right" });
    // Text selection.
    await page.evaluate(() => {
      const r = document.createRange();
      r.selectNodeContents(document.getElementById("text"));
      getSelection().removeAllRanges();
      getSelection().addRange(r);
    });
    // Drag and drop.
    await page.dragAndDrop("#drag", "#drop");
    // Scroll the window and an element.
    await page.evaluate(() => document.getElementById("scroller").scrollTo(0, 120.5));
    await page.mouse.wheel(0, 600);
    await pause(150);
    await page.evaluate(() => window.scrollTo(0, 1200));
    await pause(150);
    // Viewport.
    await page.setViewportSize({ width: 800, height: 600 });
    await pause(250);
    // rrweb 2.x features: shadow DOM, adopted stylesheets, custom elements, annotations.
    await page.evaluate(() => {
      const host = document.getElementById("host");
      const root = host.attachShadow({ mode: "open" });
      root.innerHTML = "<span id='in-shadow'>in a shadow root</span>";
      if ("adoptedStyleSheets" in Document.prototype) {
        const s = new CSSStyleSheet();
        s.replaceSync("span { color: purple; }");
        root.adoptedStyleSheets = [s];
        const d = new CSSStyleSheet();
        d.replaceSync("h1 { letter-spacing: 1px; }");
        document.adoptedStyleSheets = [d];
      }
      customElements.define("tp-widget", class extends HTMLElement {
        connectedCallback() { this.textContent = "widget"; }
      });
      document.body.appendChild(document.createElement("tp-widget"));
      document.getElementById("frame").contentDocument.body.insertAdjacentHTML("beforeend", "<b>added in frame</b>");
      console.log("a console line", { n: 1 });
      rrweb.record.addCustomEvent("checkout", { step: 2, total: 12.5, items: ["a", "b"] });
      if (rrweb.record.addAnnotation) rrweb.record.addAnnotation?.({ type: "timelineMarker", text: "paid" });
    });
    // A checkout (a second Meta + FullSnapshot) while recording.
    await page.evaluate(() => rrweb.record.takeFullSnapshot && rrweb.record.takeFullSnapshot(true));
    await page.mouse.move(300, 200, { steps: 5 });
    await pause(700); // rrweb flushes mouse positions every 500 ms
    const events = await page.evaluate(() => {
      window.__stop();
      return window.__events;
    });
    if (problems.length) throw new Error(`${name}: ${problems.join("; ")}`);
    const pkgVersion = JSON.parse(
      readFileSync(join(here, "node_modules", v.pkg, "package.json")),
    ).version;
    writeFileSync(join(out, `rrweb-${pkgVersion}.json`), JSON.stringify(events));
    console.log(`rrweb ${pkgVersion}: ${events.length} events`);
    await page.close();
  }
} finally {
  await browser.close();
  server.close();
  rmSync(profile, { recursive: true, force: true });
}
