// Driven by examples/quickstart/tests/clients.rs against the quickstart (TP_URL, TP_KEY): sends
// 1,000 logs through logger.js among bad ones (unserialisable, oversized) that are dropped
// alone; checks a wrong key (401) and a stale signature (401); then logs to a server that is
// down (TP_DOWN_URL) and times how long the caller was held; to a server that accepts the
// connection and never answers (TP_HANG_URL), where close() must still end by its timeout and
// count every log; and with bad settings (no url or key, a short key with sign: true, a zero
// interval, no service), which must never throw; and with a batchSize over the server's 250
// (capped). Logs the server would refuse alone (level "verbose", lone surrogates) are
// mended, and an Error in the context is kept. Prints JSON stats.
"use strict";
const zlib = require("zlib");
const { Logger } = require("./logger.js");
(async () => {
  const url = process.env.TP_URL, key = process.env.TP_KEY;
  const log = new Logger({ url, key, service: "js-client", sign: true, closeTimeout: 30000 });
  const circular = {}; circular.self = circular;
  for (let i = 0; i < 1000; i++) {
    // i === 10: a level unknown to the server, sent as info (not a 400 for its batch)
    log.log(i === 10 ? "verbose" : "info", `javascript-${i}`, { i, password: "hunter2-planted" });
    if (i === 500) {
      log.info("bad-unserialisable", circular);
      log.info("bad-bigint", { n: 1n });
      log.info("bad-oversized", { blob: "x".repeat(100000) });
      log.info("x".repeat(40000)); // over the server's 32 KiB message limit
      log.info("surrogate-javascript-\ud800", { "k\udc00": "v\ud83d" }); // lone surrogates: U+FFFD
      log.info("error-javascript", { err: new TypeError("boom") });
    }
  }
  await log.close();
  await log.close(); // twice: harmless
  const stats = { retries: log.retries, dropped: log.dropped, invalid: log.invalid };

  // The server is down: logging must not hold the caller, and close() is bounded, even when
  // it comes in the middle of a retry's backoff (2 s by then).
  const down = new Logger({ url: process.env.TP_DOWN_URL, key, service: "x", maxBuffer: 1000, closeTimeout: 500 });
  let start = performance.now();
  for (let i = 0; i < 5000; i++) down.info(`down-${i}`);
  stats.down_log_ms = Math.round(performance.now() - start);
  await new Promise((r) => setTimeout(r, 1800)); // the rate limit refills; down is in its 2 s backoff (1.5-3.5 s)
  const body = zlib.gzipSync('{"service":"x","logs":[{"message":"x"}]}');
  const wrong = new Logger({ url, key: "tpk_" + "0".repeat(64), service: "x" });
  stats.wrong_key = (await wrong.post(body, await wrong.headers(body)))[0];
  const stale = new Logger({ url, key, service: "x", sign: true });
  stats.stale = (await stale.post(body, await stale.headers(body, Date.now() / 1000 - 600)))[0];
  await wrong.close(); await stale.close();
  start = performance.now();
  await down.close();
  stats.down_close_ms = Math.round(performance.now() - start);
  down.info("after close"); // counted as dropped, never throws
  stats.down_dropped = down.dropped;

  // A server that accepts the connection and never answers: close() ends by its deadline,
  // aborting the request in flight, and every log is counted.
  const hang = new Logger({ url: process.env.TP_HANG_URL, key, service: "x", closeTimeout: 500 });
  for (let i = 0; i < 250; i++) hang.info(`hang-${i}`);
  await new Promise((r) => setTimeout(r, 300)); // the first batch is in flight
  start = performance.now();
  await hang.close();
  stats.hang_close_ms = Math.round(performance.now() - start);
  stats.hang_dropped = hang.dropped;

  // Bad settings never throw; every log is counted.
  stats.bad_config_dropped = 0;
  for (const bad of [new Logger({ service: "x" }), new Logger({ url, key: "tpk_short", service: "x", sign: true, interval: 0 }),
    new Logger({ url, key, service: "" })]) {
    for (let i = 0; i < 3; i++) bad.info("bad-config");
    await bad.close();
    stats.bad_config_dropped += bad.dropped;
  }

  // batchSize over the server's 250 logs per batch: capped, so the batch is not refused whole.
  const big = new Logger({ url, key, service: "js-client", batchSize: 1000, maxBatchBytes: 1e7, closeTimeout: 30000 });
  for (let i = 0; i < 300; i++) big.info(`clamp-javascript-${i}`);
  await big.close();
  stats.clamp_dropped = big.dropped;
  console.log(JSON.stringify(stats));
})();
