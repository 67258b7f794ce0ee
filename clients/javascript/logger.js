// tracepost logger for Node (18+) and browsers: copy this file (no dependencies).
//
//   const { Logger } = require("./logger.js");
//   const log = new Logger({ url: "https://tracepost.example/tracepost", key: "tpk_...", service: "web" });
//   log.error("charge failed", { orderId: 42 });
//
// log() never blocks and never throws: it serialises the log at once (one that cannot be
// serialised, or is over maxLogBytes, is dropped alone and counted in `invalid`) and queues it
// (at most maxBuffer; beyond, counted in `dropped`). Batches of up to 100 logs (and
// maxBatchBytes) go every 5 s, gzipped, to POST {url}/v1/batch, signed with HMAC when
// sign: true (the key itself never travels), retried on 429/5xx with backoff (honouring
// Retry-After). On exit (Node: beforeExit; browsers: pagehide) what is left is sent within
// closeTimeout ms; what could not be sent is counted in `dropped` and reported.
"use strict";
const subtle = globalThis.crypto.subtle;
const te = new TextEncoder();
const hex = (buf) => [...new Uint8Array(buf)].map((b) => b.toString(16).padStart(2, "0")).join("");

class Logger {
  constructor({ url, key, service, sign = false, batchSize = 100, interval = 5000, attempts = 5,
    maxBuffer = 10000, maxLogBytes = 65536, maxBatchBytes = 500000, closeTimeout = 5000 }) {
    Object.assign(this, { url: url.replace(/\/$/, "") + "/v1/batch", key, service, sign, batchSize, attempts,
      maxBuffer, maxLogBytes, maxBatchBytes, closeTimeout });
    this.buf = []; this.retries = 0; this.dropped = 0; this.invalid = 0; this.lastStatus = null;
    this.draining = null; this.deadline = null;
    this.timer = setInterval(() => this.flush(), interval);
    if (this.timer.unref) this.timer.unref();
    if (typeof process !== "undefined" && process.on) process.on("beforeExit", () => this.close());
    if (typeof addEventListener !== "undefined") addEventListener("pagehide", () => this.flush());
  }
  log(level, message, context = {}) {
    try {
      message = String(message);
      if (te.encode(message).length > 32768) throw new RangeError("message over 32 KiB"); // the server's limit
      const item = te.encode(JSON.stringify({ timestamp: new Date().toISOString(), level, message, context: { ...context } }));
      if (item.length > this.maxLogBytes) throw new RangeError(`${item.length} bytes, over maxLogBytes=${this.maxLogBytes}`);
      if (this.buf.length >= this.maxBuffer || this.deadline !== null) { this.dropped++; return; }
      this.buf.push(item);
      if (this.buf.length >= this.batchSize) this.flush();
    } catch (e) { this.invalid++; console.error("tracepost: log dropped:", e.message); }
  }
  debug(m, c) { this.log("debug", m, c); } info(m, c) { this.log("info", m, c); }
  warn(m, c) { this.log("warn", m, c); } error(m, c) { this.log("error", m, c); }
  // Sends everything queued; the promise resolves when it is sent (or dropped).
  flush() {
    if (!this.draining) this.draining = this.drain().finally(() => { this.draining = null; });
    return this.draining;
  }
  async drain() {
    while (this.buf.length) {
      let n = 0, size = 0;
      while (n < this.buf.length && n < this.batchSize && size + this.buf[n].length < this.maxBatchBytes) size += this.buf[n++].length + 1;
      await this.send(this.buf.splice(0, Math.max(n, 1)));
    }
  }
  // Sends what is left within closeTimeout ms; idempotent.
  async close() {
    clearInterval(this.timer);
    if (this.deadline === null) this.deadline = Date.now() + this.closeTimeout;
    if (this.wake) this.wake(); // a retry's pause now ends by the deadline
    await this.flush();
  }
  async headers(body, timestamp = Date.now() / 1000) {
    const h = { "content-type": "application/json", "content-encoding": "gzip" };
    if (!this.sign) return { ...h, "x-tracepost-key": this.key };
    const ts = String(Math.floor(timestamp));
    const secret = await subtle.digest("SHA-256", te.encode(this.key));
    const k = await subtle.importKey("raw", secret, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
    const sig = await subtle.sign("HMAC", k, new Uint8Array([...te.encode(ts + "."), ...body]));
    return { ...h, "x-tracepost-key": this.key.slice(0, 12), "x-tracepost-timestamp": ts, "x-tracepost-signature": "v1=" + hex(sig) };
  }
  // One attempt: [status, Retry-After seconds or null]; network errors and timeouts are status 0.
  async post(body, headers, timeoutMs = 10000) {
    try {
      const r = await fetch(this.url, { method: "POST", body, headers, keepalive: body.length < 60000, signal: AbortSignal.timeout(timeoutMs) });
      const ra = r.headers.get("retry-after");
      return [r.status, ra && /^\d+$/.test(ra) ? Number(ra) : null];
    } catch { return [0, null]; }
  }
  left() { return this.deadline === null ? Infinity : this.deadline - Date.now(); }
  // Waits ms, or until the close deadline when close() is called meanwhile.
  async pause(ms) {
    const until = Date.now() + ms;
    while (Date.now() < until && this.left() > 0) {
      await new Promise((r) => {
        const t = setTimeout(r, Math.min(until - Date.now(), this.left()));
        this.wake = () => { clearTimeout(t); r(); };
      });
    }
  }
  async send(batch) {
    try {
      if (this.left() <= 0) throw new Error("close timeout passed");
      const parts = [te.encode(`{"service":${JSON.stringify(this.service)},"logs":[`)];
      batch.forEach((item, i) => parts.push(...(i ? [te.encode(","), item] : [item])));
      parts.push(te.encode("]}"));
      const gz = new Response(new Blob(parts).stream().pipeThrough(new CompressionStream("gzip")));
      const body = new Uint8Array(await gz.arrayBuffer());
      for (let attempt = 0; attempt < this.attempts && this.left() > 0; attempt++) {
        const [status, retryAfter] = await this.post(body, await this.headers(body), Math.min(10000, this.left()));
        this.lastStatus = status;
        if (status >= 200 && status < 300) return;
        if (status !== 0 && status !== 429 && status < 500) break; // will not succeed on retry
        this.retries++;
        await this.pause(retryAfter !== null ? retryAfter * 1000 : Math.min(500 * 2 ** attempt, 30000));
      }
      this.dropped += batch.length;
      console.error(`tracepost: dropped ${batch.length} logs (HTTP ${this.lastStatus})`);
    } catch (e) { this.dropped += batch.length; console.error(`tracepost: dropped ${batch.length} logs: ${e.message}`); }
  }
}
if (typeof module !== "undefined") module.exports = { Logger };
