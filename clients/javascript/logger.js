// tracepost logger for Node (18+) and browsers: copy this file (no dependencies).
//
//   const { Logger } = require("./logger.js");
//   const log = new Logger({ url: "https://tracepost.example/tracepost", key: "tpk_...", service: "web" });
//   log.error("charge failed", { orderId: 42 });
//
// Buffers up to 100 logs or 5 s, sends them gzipped to POST {url}/v1/batch, signs with HMAC
// (sign: true — the key itself never travels), retries 429/5xx with backoff (honouring
// Retry-After), flushes on exit, and never throws into your code.
"use strict";
const subtle = globalThis.crypto.subtle;
const te = new TextEncoder();
const hex = (buf) => [...new Uint8Array(buf)].map((b) => b.toString(16).padStart(2, "0")).join("");
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

class Logger {
  constructor({ url, key, service, sign = false, batchSize = 100, interval = 5000, attempts = 5 }) {
    Object.assign(this, { url: url.replace(/\/$/, "") + "/v1/batch", key, service, sign, batchSize, attempts });
    this.buf = []; this.retries = 0; this.dropped = 0; this.lastStatus = null; this.chain = Promise.resolve();
    this.timer = setInterval(() => this.flush(), interval);
    if (this.timer.unref) this.timer.unref();
    if (typeof process !== "undefined" && process.on) process.on("beforeExit", () => this.flush());
    if (typeof addEventListener !== "undefined") addEventListener("pagehide", () => this.flush());
  }
  log(level, message, context = {}) {
    try {
      this.buf.push({ timestamp: new Date().toISOString(), level, message: String(message), context: { ...context } });
      if (this.buf.length >= this.batchSize) this.flush();
    } catch (e) { console.error("tracepost: log dropped:", e); }
  }
  debug(m, c) { this.log("debug", m, c); } info(m, c) { this.log("info", m, c); }
  warn(m, c) { this.log("warn", m, c); } error(m, c) { this.log("error", m, c); }
  // Sends everything buffered; the promise resolves when it is sent (or dropped).
  flush() {
    while (this.buf.length) {
      const batch = this.buf.splice(0, this.batchSize);
      this.chain = this.chain.then(() => this.send(batch));
    }
    return this.chain;
  }
  async close() { clearInterval(this.timer); await this.flush(); }
  async headers(body, timestamp = Date.now() / 1000) {
    const h = { "content-type": "application/json", "content-encoding": "gzip" };
    if (!this.sign) return { ...h, "x-tracepost-key": this.key };
    const ts = String(Math.floor(timestamp));
    const secret = await subtle.digest("SHA-256", te.encode(this.key));
    const k = await subtle.importKey("raw", secret, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
    const sig = await subtle.sign("HMAC", k, new Uint8Array([...te.encode(ts + "."), ...body]));
    return { ...h, "x-tracepost-key": this.key.slice(0, 12), "x-tracepost-timestamp": ts, "x-tracepost-signature": "v1=" + hex(sig) };
  }
  // One attempt: [status, Retry-After seconds or null]; network errors are status 0.
  async post(body, headers) {
    try {
      const r = await fetch(this.url, { method: "POST", body, headers, keepalive: body.length < 60000 });
      const ra = r.headers.get("retry-after");
      return [r.status, ra && /^\d+$/.test(ra) ? Number(ra) : null];
    } catch { return [0, null]; }
  }
  async send(batch) {
    try {
      const json = te.encode(JSON.stringify({ service: this.service, logs: batch }));
      const gz = new Response(new Blob([json]).stream().pipeThrough(new CompressionStream("gzip")));
      const body = new Uint8Array(await gz.arrayBuffer());
      for (let attempt = 0; attempt < this.attempts; attempt++) {
        const [status, retryAfter] = await this.post(body, await this.headers(body));
        this.lastStatus = status;
        if (status >= 200 && status < 300) return;
        if (status !== 0 && status !== 429 && status < 500) break; // will not succeed on retry
        this.retries++;
        await sleep(retryAfter !== null ? retryAfter * 1000 : Math.min(500 * 2 ** attempt, 30000));
      }
      this.dropped += batch.length;
      console.error(`tracepost: dropped ${batch.length} logs (HTTP ${this.lastStatus})`);
    } catch (e) { this.dropped += batch.length; console.error("tracepost: dropped logs:", e); }
  }
}
if (typeof module !== "undefined") module.exports = { Logger };
