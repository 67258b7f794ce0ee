// tracepost logger for Node (18+), server-side only: copy this file (no dependencies). Its key
// is a secret; never put it in a web page (browsers use tp.js with a public token).
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
// Retry-After). On exit (beforeExit) what is left is sent within closeTimeout ms, a request
// still in flight at the deadline aborted; what could not be sent is counted in `dropped` and
// reported.
//
// A log the server would refuse is mended so its batch is not lost: a level it does not know
// ("verbose") is sent as "info", lone UTF-16 surrogates become U+FFFD, and an Error in the
// context keeps its name, message and stack. Bad settings never throw: zero or negative
// numbers take the defaults, batchSize is at most 250 and maxBatchBytes 500,000 (the
// server's limits), and with no url, no key, a key under 12 characters with sign: true, or a
// service that is empty or over 200 characters, every log is counted in `dropped` (the reason printed once).
"use strict";
const te = new TextEncoder();
// The levels the server accepts (tracepost-ingest's parse_level); any other is sent as "info".
const LEVELS = new Set(["trace", "debug", "info", "information", "notice", "warn", "warning", "error", "err",
  "fatal", "critical", "crit", "alert", "emergency"]);
const LONE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;
const HAS_LONE = new RegExp(LONE.source);
const wellFormed = (s) => s.replace(LONE, "\ufffd");
// JSON.stringify's replacer: strings well-formed (keys too), Errors as {name, message, stack}.
function mend(key, value) {
  if (typeof value === "string") return wellFormed(value);
  if (value instanceof Error) return { name: value.name, message: value.message, stack: value.stack };
  if (value && typeof value === "object" && !Array.isArray(value) && Object.keys(value).some((k) => HAS_LONE.test(k))) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [wellFormed(k), v]));
  }
  return value;
}
const positive = (v, d) => (typeof v === "number" && v > 0 ? v : d);
const hex = (buf) => [...new Uint8Array(buf)].map((b) => b.toString(16).padStart(2, "0")).join("");

class Logger {
  constructor({ url, key, service, sign = false, batchSize = 100, interval = 5000, attempts = 5,
    maxBuffer = 10000, maxLogBytes = 65536, maxBatchBytes = 500000, closeTimeout = 5000 } = {}) {
    Object.assign(this, { url: String(url || "").replace(/\/$/, "") + "/v1/batch", key, service, sign,
      // at most the server's default max_events (250) and under its 512 KiB: else refused whole
      batchSize: Math.min(positive(batchSize, 100), 250), attempts: positive(attempts, 5), maxBuffer: positive(maxBuffer, 10000),
      maxLogBytes: positive(maxLogBytes, 65536), maxBatchBytes: Math.min(positive(maxBatchBytes, 500000), 500000),
      closeTimeout: positive(closeTimeout, 0) });
    this.buf = []; this.retries = 0; this.dropped = 0; this.invalid = 0; this.lastStatus = null; this.lastError = null;
    this.draining = null; this.deadline = null; this.inflight = null;
    this.bad = !url ? "no url" : typeof key !== "string" || !key ? "no key"
      : typeof service !== "string" || !service || [...service].length > 200 ? "the service must be 1 to 200 characters"
      : sign && key.length < 12 ? "the key is under 12 characters (sign: true needs its 12-character prefix)" : null;
    if (this.bad) console.error("tracepost: every log is dropped:", this.bad);
    this.timer = setInterval(() => this.flush(), positive(interval, 5000));
    if (this.timer.unref) this.timer.unref();
    if (typeof process !== "undefined" && process.on) process.on("beforeExit", () => this.close());
  }
  log(level, message, context = {}) {
    if (this.bad) { this.dropped++; return; }
    try {
      level = String(level).toLowerCase();
      if (!LEVELS.has(level)) level = "info";
      message = wellFormed(String(message));
      if (te.encode(message).length > 32768) throw new RangeError("message over 32 KiB"); // the server's limit
      const item = te.encode(JSON.stringify({ timestamp: new Date().toISOString(), level, message, context: { ...context } }, mend));
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
    const t = setTimeout(() => this.inflight && this.inflight.abort(), this.left()); // a request in flight too
    try { await this.flush(); } finally { clearTimeout(t); }
  }
  async headers(body, timestamp = Date.now() / 1000) {
    const h = { "content-type": "application/json", "content-encoding": "gzip" };
    if (!this.sign) return { ...h, "x-tracepost-key": this.key };
    const ts = String(Math.floor(timestamp));
    const subtle = (globalThis.crypto || require("crypto").webcrypto).subtle;
    const secret = await subtle.digest("SHA-256", te.encode(this.key));
    const k = await subtle.importKey("raw", secret, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
    const sig = await subtle.sign("HMAC", k, new Uint8Array([...te.encode(ts + "."), ...body]));
    return { ...h, "x-tracepost-key": this.key.slice(0, 12), "x-tracepost-timestamp": ts, "x-tracepost-signature": "v1=" + hex(sig) };
  }
  // One attempt: [status, Retry-After seconds or null]; network errors and timeouts are status
  // 0. Aborted at timeoutMs, or at the close deadline when close() comes while it is in flight.
  async post(body, headers, timeoutMs = 10000) {
    const ac = new AbortController();
    const t = setTimeout(() => ac.abort(), timeoutMs);
    this.inflight = ac;
    try {
      const r = await fetch(this.url, { method: "POST", body, headers, signal: ac.signal });
      const ra = r.headers.get("retry-after");
      this.lastError = r.ok ? null : (await r.text()).slice(0, 300); // the server's reason
      return [r.status, ra && /^\d+$/.test(ra) ? Number(ra) : null];
    } catch (e) { this.lastError = e.message; return [0, null]; } finally { clearTimeout(t); this.inflight = null; }
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
      console.error(`tracepost: dropped ${batch.length} logs (HTTP ${this.lastStatus}: ${this.lastError})`);
    } catch (e) { this.dropped += batch.length; console.error(`tracepost: dropped ${batch.length} logs: ${e.message}`); }
  }
}
if (typeof module !== "undefined") module.exports = { Logger };
