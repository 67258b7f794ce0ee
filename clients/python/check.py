"""Driven by examples/quickstart/tests/clients.rs against the quickstart (TP_URL, TP_KEY): sends
1,000 logs through logger.py among two bad ones (unserialisable, oversized) that are dropped
alone; checks a wrong key (401) and a stale signature (401); then logs to a server that is down
(TP_DOWN_URL) and times how long the caller was held; to a server that accepts the connection
and never answers (TP_HANG_URL), where close() must still end by its timeout and count every
log; with bad settings (no URL or key, a short key with sign=True, a zero interval, no
service), which must never raise; and with a batch_size over the server's 250 (capped). Logs
the server would refuse alone (level "verbose", lone surrogates) are mended. Prints JSON
stats."""
import gzip, json, os, sys, time
sys.path.insert(0, os.path.dirname(__file__))
from logger import Logger

url, key = os.environ["TP_URL"], os.environ["TP_KEY"]
log = Logger(url, key, service="py-client", sign=True, close_timeout=30)
circular = {}
circular["self"] = circular
for i in range(1000):
    # i == 10: a level unknown to the server, sent as info (not a 400 for its batch)
    log.log("verbose" if i == 10 else "info", f"python-{i}", {"i": i, "password": "hunter2-planted"})
    if i == 500:
        log.info("bad-unserialisable", circular)
        log.info("bad-oversized", {"blob": "x" * 100_000})
        log.info("x" * 40_000)  # over the server's 32 KiB message limit
        log.info("surrogate-python-\ud800", {"k\udc00": "v\ud83d"})  # lone surrogates: U+FFFD
log.close()
log.close()  # twice: harmless
stats = {"retries": log.retries, "dropped": log.dropped, "invalid": log.invalid}

# The server is down: logging must not hold the caller, and close() is bounded, even when it
# comes in the middle of a retry's backoff (2 s by then).
down = Logger(os.environ["TP_DOWN_URL"], key, service="py-client", max_buffer=1000, close_timeout=0.5)
start = time.monotonic()
for i in range(5000):
    down.info(f"down-{i}")
stats["down_log_ms"] = round((time.monotonic() - start) * 1000)
time.sleep(1.8)  # the per-key rate limit refills; the down logger is in its 2 s backoff (1.5-3.5 s)
wrong = Logger(url, "tpk_" + "0" * 64, service="py-client")
body = gzip.compress(b'{"service":"x","logs":[{"message":"x"}]}')
stats["wrong_key"] = wrong.post(body, wrong.headers(body))[0]
stale = Logger(url, key, service="py-client", sign=True)
stats["stale"] = stale.post(body, stale.headers(body, timestamp=time.time() - 600))[0]
start = time.monotonic()
down.close()
stats["down_close_ms"] = round((time.monotonic() - start) * 1000)
down.info("after close")  # counted as dropped, never raises
stats["down_dropped"] = down.dropped

# A server that accepts the connection and never answers: close() ends by its deadline and
# every log is counted.
hang = Logger(os.environ["TP_HANG_URL"], key, service="x", close_timeout=0.5)
for i in range(250):
    hang.info(f"hang-{i}")
time.sleep(0.3)  # the first batch is in flight
start = time.monotonic()
hang.close()
stats["hang_close_ms"] = round((time.monotonic() - start) * 1000)
stats["hang_dropped"] = hang.dropped

# Bad settings never raise; every log is counted.
stats["bad_config_dropped"] = 0
for bad in (Logger(None, None, service="x"), Logger(url, "tpk_short", service="x", sign=True, interval=0),
            Logger(url, key, service="")):
    for _ in range(3):
        bad.info("bad-config")
    bad.close()
    stats["bad_config_dropped"] += bad.dropped
# batch_size over the server's 250 logs per batch: capped, so the batch is not refused whole.
big = Logger(url, key, service="py-client", batch_size=1000, max_batch_bytes=10**7, close_timeout=30)
for i in range(300):
    big.info(f"clamp-python-{i}")
big.close()
stats["clamp_dropped"] = big.dropped
print(json.dumps(stats))
