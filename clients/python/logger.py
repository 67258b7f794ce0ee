"""tracepost logger for Python: copy this file into your project (standard library only).

    log = Logger("https://tracepost.example/tracepost", "tpk_...", service="billing")
    log.error("charge failed", {"order_id": 42})

Buffers up to 100 logs or 5 s, sends them gzipped to POST {url}/v1/batch, signs with HMAC
(sign=True: the key itself never travels), retries 429/5xx with backoff (honouring
Retry-After), flushes at exit, and never raises into your code.
"""
import atexit, gzip, hashlib, hmac, json, sys, threading, time, urllib.error, urllib.request
from datetime import datetime, timezone


class Logger:
    def __init__(self, url, key, service, sign=False, batch_size=100, interval=5.0, attempts=5):
        self.url, self.key, self.service, self.sign = url.rstrip("/") + "/v1/batch", key, service, sign
        self.batch_size, self.interval, self.attempts = batch_size, interval, attempts
        self.buf, self.lock, self.send_lock = [], threading.Lock(), threading.Lock()
        self.retries, self.dropped, self.last_status = 0, 0, None
        self.stop = threading.Event()
        threading.Thread(target=self._tick, daemon=True).start()
        atexit.register(self.close)

    def log(self, level, message, context=None):
        try:
            entry = {"timestamp": datetime.now(timezone.utc).isoformat(), "level": level,
                     "message": str(message), "context": dict(context or {})}
            with self.lock:
                self.buf.append(entry)
                full = len(self.buf) >= self.batch_size
            if full:
                self.flush()
        except Exception as e:  # never crash the host
            print(f"tracepost: log dropped: {e}", file=sys.stderr)

    def debug(self, m, c=None): self.log("debug", m, c)
    def info(self, m, c=None): self.log("info", m, c)
    def warn(self, m, c=None): self.log("warn", m, c)
    def error(self, m, c=None): self.log("error", m, c)

    def flush(self):
        with self.send_lock:
            while True:
                with self.lock:
                    batch, self.buf = self.buf[: self.batch_size], self.buf[self.batch_size:]
                if not batch:
                    return
                self._send(batch)

    def close(self):
        self.stop.set()
        self.flush()

    def _tick(self):
        while not self.stop.wait(self.interval):
            self.flush()

    def headers(self, body, timestamp=None):
        h = {"content-type": "application/json", "content-encoding": "gzip"}
        if not self.sign:
            return {**h, "x-tracepost-key": self.key}
        ts = str(int(timestamp if timestamp is not None else time.time()))
        secret = hashlib.sha256(self.key.encode()).digest()
        sig = hmac.new(secret, ts.encode() + b"." + body, hashlib.sha256).hexdigest()
        return {**h, "x-tracepost-key": self.key[:12], "x-tracepost-timestamp": ts,
                "x-tracepost-signature": "v1=" + sig}

    def post(self, body, headers):
        """One attempt: (status, Retry-After seconds or None). Network errors are status 0."""
        req = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, None
        except urllib.error.HTTPError as e:
            ra = e.headers.get("retry-after")
            return e.code, float(ra) if ra and ra.isdigit() else None
        except Exception:
            return 0, None

    def _send(self, batch):
        try:
            body = gzip.compress(json.dumps({"service": self.service, "logs": batch}).encode())
            for attempt in range(self.attempts):
                status, retry_after = self.post(body, self.headers(body))
                self.last_status = status
                if 200 <= status < 300:
                    return
                if status != 0 and status != 429 and status < 500:
                    break  # a 4xx other than 429 will not succeed on retry
                self.retries += 1
                time.sleep(retry_after if retry_after is not None else min(0.5 * 2 ** attempt, 30))
            self.dropped += len(batch)
            print(f"tracepost: dropped {len(batch)} logs (HTTP {self.last_status})", file=sys.stderr)
        except Exception as e:
            self.dropped += len(batch)
            print(f"tracepost: dropped {len(batch)} logs: {e}", file=sys.stderr)
