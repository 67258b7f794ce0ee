"""tracepost logger for Python: copy this file into your project (standard library only).

    log = Logger("https://tracepost.example/tracepost", "tpk_...", service="billing")
    log.error("charge failed", {"order_id": 42})

log() never blocks and never raises: it serialises the log at once (a log that cannot be
serialised, or is over max_log_bytes, is dropped alone and counted in `invalid`) and queues it
(at most max_buffer; beyond, counted in `dropped`). A background thread sends batches of up to
100 logs (and max_batch_bytes) every 5 s, gzipped, to POST {url}/v1/batch, signed with HMAC when
sign=True (the key itself never travels), retrying 429/5xx with backoff (honouring
Retry-After). At exit it sends what is left for at most close_timeout seconds; what it could
not send by then (including a batch still in flight to a server that does not answer) is
counted in `dropped` and reported on stderr.

A log the server would refuse is mended so its batch is not lost: a level it does not know
("verbose") is sent as "info", and lone UTF-16 surrogates become U+FFFD. Bad settings never
raise: zero or negative numbers take the defaults, batch_size is at most 250 and
max_batch_bytes 500,000 (the server's limits), and with no URL, no key, a key under 12
characters with sign=True, or a service that is empty or over 200 characters, every log is counted in `dropped` (the reason printed once).
"""
import atexit, collections, gzip, hashlib, hmac, json, sys, threading, time, urllib.error, urllib.request
from datetime import datetime, timezone

# The levels the server accepts (tracepost-ingest's parse_level); any other is sent as "info".
LEVELS = {"trace", "debug", "info", "information", "notice", "warn", "warning", "error", "err", "fatal",
          "critical", "crit", "alert", "emergency"}


def _positive(value, default):
    return value if isinstance(value, (int, float)) and value > 0 else default


class Logger:
    def __init__(self, url, key, service, sign=False, batch_size=100, interval=5.0, attempts=5,
                 max_buffer=10_000, max_log_bytes=64 * 1024, max_batch_bytes=500_000, close_timeout=5.0):
        self.url, self.key, self.service, self.sign = str(url or "").rstrip("/") + "/v1/batch", key, service, sign
        # at most the server's default max_events (250) and under its 512 KiB: else refused whole
        self.batch_size, self.interval = min(int(_positive(batch_size, 100)), 250), _positive(interval, 5.0)
        self.attempts, self.max_buffer = int(_positive(attempts, 5)), int(_positive(max_buffer, 10_000))
        self.max_log_bytes = int(_positive(max_log_bytes, 64 * 1024))
        self.max_batch_bytes = min(int(_positive(max_batch_bytes, 500_000)), 500_000)
        self.close_timeout, self.deadline, self.urgent, self.inflight = _positive(close_timeout, 0), None, False, 0
        self.abandoned = False  # close() gave up on the sender thread and counted what it held
        self.bad = ("no URL" if not url else "no key" if not isinstance(key, str) or not key
                    else "the service must be 1 to 200 characters"
                    if not isinstance(service, str) or not 1 <= len(service) <= 200
                    else "the key is under 12 characters (sign=True needs its 12-character prefix)"
                    if sign and len(key) < 12 else None)
        if self.bad:
            print(f"tracepost: every log is dropped: {self.bad}", file=sys.stderr)
        self.buf, self.cond = collections.deque(), threading.Condition()
        self.retries, self.dropped, self.invalid, self.last_status, self.last_error = 0, 0, 0, None, None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        atexit.register(self.close)

    def log(self, level, message, context=None):
        if self.bad:
            with self.cond:
                self.dropped += 1
            return
        try:
            level = str(level).lower()
            level = level if level in LEVELS else "info"
            message = _well_formed(str(message))
            if len(message.encode()) > 32 * 1024:  # the server's limit (400 for the whole batch)
                raise ValueError("message over 32 KiB")
            item = _well_formed(json.dumps({"timestamp": datetime.now(timezone.utc).isoformat(), "level": level,
                                            "message": message, "context": dict(context or {})},
                                           default=str, ensure_ascii=False)).encode()
            if len(item) > self.max_log_bytes:
                raise ValueError(f"{len(item)} bytes, over max_log_bytes={self.max_log_bytes}")
        except Exception as e:  # this log alone is dropped; never crash the host
            with self.cond:
                self.invalid += 1
            print(f"tracepost: log dropped: {e}", file=sys.stderr)
            return
        with self.cond:
            if len(self.buf) >= self.max_buffer or self.deadline is not None:
                self.dropped += 1
                return
            self.buf.append(item)
            if len(self.buf) >= self.batch_size:
                self.cond.notify()

    def debug(self, m, c=None): self.log("debug", m, c)
    def info(self, m, c=None): self.log("info", m, c)
    def warn(self, m, c=None): self.log("warn", m, c)
    def error(self, m, c=None): self.log("error", m, c)

    def flush(self, timeout=None):
        """Sends what is queued now; waits (at most timeout s) until it is sent or dropped."""
        with self.cond:
            self.urgent = True
            self.cond.notify()
            return self.cond.wait_for(lambda: not self.buf and not self.inflight, timeout)

    def close(self, timeout=None):
        """Sends what is left within timeout (default close_timeout) s; idempotent. What the
        sender still holds at the deadline (a request in flight included) is counted in
        `dropped` and the thread is abandoned (it is a daemon)."""
        with self.cond:
            if self.deadline is None:
                self.deadline = time.monotonic() + (self.close_timeout if timeout is None else timeout)
            self.cond.notify()
        self.thread.join(max(0.0, self.deadline - time.monotonic()))
        with self.cond:
            if not self.thread.is_alive() or self.abandoned:
                return
            self.abandoned, n = True, len(self.buf) + self.inflight
            self.buf.clear()
            self.dropped += n
        print(f"tracepost: dropped {n} logs (close timeout passed)", file=sys.stderr)

    def _left(self):
        return None if self.deadline is None else self.deadline - time.monotonic()

    def _run(self):
        while True:
            with self.cond:
                self.cond.wait_for(lambda: self.deadline is not None or self.urgent or len(self.buf) >= self.batch_size,
                                   self.interval)
                batch, size = [], 0
                while self.buf and len(batch) < self.batch_size and size + len(self.buf[0]) < self.max_batch_bytes:
                    size += len(self.buf[0]) + 1
                    batch.append(self.buf.popleft())
                self.inflight, self.urgent = len(batch), bool(self.buf) and self.urgent
                if not batch and self.deadline is not None:
                    self.cond.notify_all()
                    return
            if batch:
                self._send(batch)
            with self.cond:
                self.inflight = 0
                self.cond.notify_all()

    def headers(self, body, timestamp=None):
        h = {"content-type": "application/json", "content-encoding": "gzip"}
        if not self.sign:
            return {**h, "x-tracepost-key": self.key}
        ts = str(int(timestamp if timestamp is not None else time.time()))
        secret = hashlib.sha256(self.key.encode()).digest()
        sig = hmac.new(secret, ts.encode() + b"." + body, hashlib.sha256).hexdigest()
        return {**h, "x-tracepost-key": self.key[:12], "x-tracepost-timestamp": ts,
                "x-tracepost-signature": "v1=" + sig}

    def post(self, body, headers, timeout=10):
        """One attempt: (status, Retry-After seconds or None). Network errors are status 0."""
        req = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, None
        except urllib.error.HTTPError as e:
            ra = e.headers.get("retry-after")
            try:
                self.last_error = e.read(300).decode(errors="replace")  # the server's reason
            except Exception:
                self.last_error = None
            return e.code, float(ra) if ra and ra.isdigit() else None
        except Exception:
            return 0, None

    def _send(self, batch):
        try:
            left = self._left()
            if left is not None and left <= 0:
                raise TimeoutError("close timeout passed")
            head = b'{"service":' + json.dumps(self.service).encode() + b',"logs":['
            body = gzip.compress(head + b",".join(batch) + b"]}")
            for attempt in range(self.attempts):
                left = self._left()
                if left is not None and left <= 0:
                    break  # closing, out of time
                status, retry_after = self.post(body, self.headers(body), min(10, left or 10))
                self.last_status = status
                if 200 <= status < 300:
                    return
                if status != 0 and status != 429 and status < 500:
                    break  # a 4xx other than 429 will not succeed on retry
                self.retries += 1
                until = time.monotonic() + (retry_after if retry_after is not None else min(0.5 * 2 ** attempt, 30))
                while time.monotonic() < until and (self._left() is None or self._left() > 0):
                    time.sleep(0.05)  # until the retry, or the close deadline if close() came meanwhile
            self._drop(len(batch), f"HTTP {self.last_status}: {self.last_error or ''}")
        except Exception as e:
            self._drop(len(batch), e)

    def _drop(self, n, why):
        with self.cond:
            if self.abandoned:
                return  # close() counted them already
            self.dropped += n
        print(f"tracepost: dropped {n} logs ({why})", file=sys.stderr)


def _well_formed(s):
    """s with each lone UTF-16 surrogate (which no UTF-8 can carry) replaced by U+FFFD."""
    return s.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
