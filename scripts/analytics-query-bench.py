#!/usr/bin/env python3
"""The Analytics page's SQLite queries against the old page's one query, rounds interleaved.

Run the console bench first (it writes 1M events, 100k of them browser analytics):
  cargo run --release -p tracepost-console --example console_bench -- 1000000 /tmp/tp-bench-analytics
then:
  python3 scripts/analytics-query-bench.py /tmp/tp-bench-analytics/tracepost.sqlite3 [rounds]

Prints each query's median over the rounds and its ratio to the baseline: the old Analytics
page's only query (a 24-hour histogram of `analytics` events, read from `events`).
"""
import sqlite3
import sys
import time

db = sys.argv[1] if len(sys.argv) > 1 else "/tmp/tp-bench-analytics/tracepost.sqlite3"
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 7
c = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
now = int(time.time() * 1e6)
since = now - 86_400 * 10**6
w, e = 3_600 * 10**6, 946_684_800_000_000
bucket = f"{e} + ((ts_us - {e}) - (((ts_us - {e}) % {w}) + {w}) % {w})"
QUERIES = {
    "baseline: old page (histogram of events)":
        f"SELECT b, count(*) FROM (SELECT {bucket} AS b FROM events WHERE kind IN ('analytics') "
        "AND ts_us >= ?1 AND ts_us < ?2) GROUP BY b ORDER BY b",
    "totals":
        "SELECT sum(event = 'pageview'), count(DISTINCT CASE WHEN event = 'pageview' THEN visitor END), "
        "sum(event = 'track'), sum(event = 'pageview' AND referrer_host = host), "
        "sum(event = 'pageview' AND referrer_host IS NULL) FROM analytics WHERE ts_us >= ?1 AND ts_us < ?2",
    "series (hourly)":
        f"SELECT b, count(*), count(DISTINCT visitor) FROM (SELECT {bucket} AS b, visitor FROM analytics "
        "WHERE event = 'pageview' AND ts_us >= ?1 AND ts_us < ?2) GROUP BY b ORDER BY b",
    "top pages":
        "SELECT path, count(*) AS n, count(DISTINCT visitor) FROM analytics WHERE event = 'pageview' "
        "AND ts_us >= ?1 AND ts_us < ?2 AND path IS NOT NULL GROUP BY path ORDER BY n DESC, path LIMIT 25",
    "referrers":
        "SELECT referrer_host, count(*) AS n, count(DISTINCT visitor) FROM analytics WHERE event = 'pageview' "
        "AND ts_us >= ?1 AND ts_us < ?2 AND referrer_host IS NOT NULL AND (host IS NULL OR referrer_host <> host) "
        "GROUP BY referrer_host ORDER BY n DESC, referrer_host LIMIT 25",
    "funnel /,/p1,/p2,signup":
        "WITH s1 AS (SELECT visitor, min(ts_us) AS t FROM analytics WHERE ts_us >= ?1 AND ts_us < ?2 "
        "AND event = 'pageview' AND path = '/' GROUP BY visitor), "
        "s2 AS (SELECT a.visitor, min(a.ts_us) AS t FROM analytics a JOIN s1 ON s1.visitor = a.visitor "
        "WHERE a.ts_us >= ?1 AND a.ts_us < ?2 AND a.event = 'pageview' AND a.path = '/p1' AND a.ts_us >= s1.t GROUP BY a.visitor), "
        "s3 AS (SELECT a.visitor, min(a.ts_us) AS t FROM analytics a JOIN s2 ON s2.visitor = a.visitor "
        "WHERE a.ts_us >= ?1 AND a.ts_us < ?2 AND a.event = 'pageview' AND a.path = '/p2' AND a.ts_us >= s2.t GROUP BY a.visitor), "
        "s4 AS (SELECT a.visitor, min(a.ts_us) AS t FROM analytics a JOIN s3 ON s3.visitor = a.visitor "
        "WHERE a.ts_us >= ?1 AND a.ts_us < ?2 AND a.event = 'track' AND a.name = 'signup' AND a.ts_us >= s3.t GROUP BY a.visitor) "
        "SELECT (SELECT count(*) FROM s1), (SELECT count(*) FROM s2), (SELECT count(*) FROM s3), (SELECT count(*) FROM s4)",
}
times = {k: [] for k in QUERIES}
for _ in range(rounds):
    for name, sql in QUERIES.items():
        t = time.perf_counter()
        c.execute(sql, (since, now)).fetchall()
        times[name].append((time.perf_counter() - t) * 1000)
median = {k: sorted(v)[len(v) // 2] for k, v in times.items()}
base = next(iter(median.values()))
rows = c.execute("SELECT count(*) FROM analytics WHERE ts_us >= ?1 AND ts_us < ?2", (since, now)).fetchone()[0]
print(f"{rows} analytics rows in the last 24 h; {rounds} rounds, interleaved")
for name, m in median.items():
    print(f"{name:44s} {m:8.1f} ms  x{m / base:5.2f}")
summary = sum(m for k, m in median.items() if k in ("totals", "series (hourly)", "top pages", "referrers"))
print(f"{'new page summary, the four in sequence':44s} {summary:8.1f} ms  x{summary / base:5.2f}")
