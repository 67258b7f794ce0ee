"""Driven by crates/tracepost-ingest/tests/clients.rs: sends 1,000 logs through logger.py to a
running server, then checks a wrong key (401) and a stale signature (401). Prints JSON stats."""
import gzip, json, os, sys, time
sys.path.insert(0, os.path.dirname(__file__))
from logger import Logger

url, key = os.environ["TP_URL"], os.environ["TP_KEY"]
log = Logger(url, key, service="py-client", sign=True)
for i in range(1000):
    log.info(f"python-{i}", {"i": i, "password": "hunter2-planted"})
log.close()
stats = {"retries": log.retries, "dropped": log.dropped}
time.sleep(1.5)  # let the per-key rate limit refill before the stale check
wrong = Logger(url, "tpk_" + "0" * 64, service="py-client")
body = gzip.compress(b'{"service":"x","logs":[{"message":"x"}]}')
stats["wrong_key"] = wrong.post(body, wrong.headers(body))[0]
stale = Logger(url, key, service="py-client", sign=True)
stats["stale"] = stale.post(body, stale.headers(body, timestamp=time.time() - 600))[0]
wrong.stop.set(); stale.stop.set()
print(json.dumps(stats))
