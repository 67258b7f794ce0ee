// Driven by crates/tracepost-ingest/tests/clients.rs: sends 1,000 logs through logger.js to a
// running server, then checks a wrong key (401) and a stale signature (401). Prints JSON stats.
"use strict";
const zlib = require("zlib");
const { Logger } = require("./logger.js");
(async () => {
  const url = process.env.TP_URL, key = process.env.TP_KEY;
  const log = new Logger({ url, key, service: "js-client", sign: true });
  for (let i = 0; i < 1000; i++) log.info(`javascript-${i}`, { i, password: "hunter2-planted" });
  await log.close();
  const stats = { retries: log.retries, dropped: log.dropped };
  await new Promise((r) => setTimeout(r, 1500)); // let the per-key rate limit refill
  const body = zlib.gzipSync('{"service":"x","logs":[{"message":"x"}]}');
  const wrong = new Logger({ url, key: "tpk_" + "0".repeat(64), service: "x" });
  stats.wrong_key = (await wrong.post(body, await wrong.headers(body)))[0];
  const stale = new Logger({ url, key, service: "x", sign: true });
  stats.stale = (await stale.post(body, await stale.headers(body, Date.now() / 1000 - 600)))[0];
  await wrong.close(); await stale.close();
  console.log(JSON.stringify(stats));
})();
