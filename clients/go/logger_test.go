package logger

// Driven by examples/quickstart/tests/clients.rs against the quickstart (TP_URL, TP_KEY): sends
// 1,000 logs among bad ones (unserialisable, oversized) that are dropped alone; checks a wrong
// key (401) and a stale signature (401); then logs to a server that is down (TP_DOWN_URL) and
// times how long the caller was held; to a server that accepts the connection and never answers
// (TP_HANG_URL), where Close must still end by its timeout and count every log; and with bad
// settings (no key, a short key with Sign, a zero Interval, no service), which must never
// panic; and a BatchSize over the server's 250, which is capped. Prints
// JSON stats.

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

func TestAgainstServer(t *testing.T) {
	url, key := os.Getenv("TP_URL"), os.Getenv("TP_KEY")
	if url == "" {
		t.Skip("TP_URL not set: run through cargo test -p quickstart --test clients")
	}
	log := New(url, key, "go-client")
	log.Sign = true
	log.CloseTimeout = 30 * time.Second
	for i := 0; i < 1000; i++ {
		level := "info"
		if i == 10 {
			level = "verbose" // unknown to the server: sent as info, not a 400 for the batch
		}
		log.Log(level, fmt.Sprintf("go-%d", i), map[string]any{"i": i, "password": "hunter2-planted"})
		if i == 500 {
			log.Log("info", "bad-unserialisable", map[string]any{"f": func() {}})
			log.Log("info", "bad-oversized", map[string]any{"blob": strings.Repeat("x", 100000)})
			log.Log("info", strings.Repeat("x", 40000), nil) // over the server's 32 KiB message limit
		}
	}
	log.Close()
	log.Close() // twice: harmless
	stats := map[string]int64{"retries": log.Retries.Load(), "dropped": log.Dropped.Load(), "invalid": log.Invalid.Load()}

	// The server is down: logging must not hold the caller, and Close is bounded, even when it
	// comes in the middle of a retry's backoff (2 s by then).
	down := New(os.Getenv("TP_DOWN_URL"), key, "x")
	down.MaxBuffer, down.CloseTimeout = 1000, 500*time.Millisecond
	start := time.Now()
	for i := 0; i < 5000; i++ {
		down.Log("info", fmt.Sprintf("down-%d", i), nil)
	}
	stats["down_log_ms"] = time.Since(start).Milliseconds()
	time.Sleep(1800 * time.Millisecond) // the rate limit refills; down is in its 2 s backoff (1.5-3.5 s)
	var gz bytes.Buffer
	w := gzip.NewWriter(&gz)
	w.Write([]byte(`{"service":"x","logs":[{"message":"x"}]}`))
	w.Close()
	wrong := New(url, "tpk_"+strings.Repeat("0", 64), "x")
	status, _ := wrong.Post(gz.Bytes(), wrong.Headers(gz.Bytes(), time.Now().Unix()), 10*time.Second)
	stats["wrong_key"] = int64(status)
	stale := New(url, key, "x")
	stale.Sign = true
	status, _ = stale.Post(gz.Bytes(), stale.Headers(gz.Bytes(), time.Now().Unix()-600), 10*time.Second)
	stats["stale"] = int64(status)
	wrong.Close()
	stale.Close()
	start = time.Now()
	down.Close()
	stats["down_close_ms"] = time.Since(start).Milliseconds()
	down.Log("info", "after close", nil) // counted as dropped, never panics
	stats["down_dropped"] = down.Dropped.Load()

	// A server that accepts the connection and never answers: Close ends by its deadline,
	// aborting the request in flight, and every log is counted.
	hang := New(os.Getenv("TP_HANG_URL"), key, "x")
	hang.CloseTimeout = 500 * time.Millisecond
	for i := 0; i < 250; i++ {
		hang.Log("info", fmt.Sprintf("hang-%d", i), nil)
	}
	time.Sleep(300 * time.Millisecond) // the first batch is in flight
	start = time.Now()
	hang.Close()
	stats["hang_close_ms"] = time.Since(start).Milliseconds()
	stats["hang_dropped"] = hang.Dropped.Load()

	// Bad settings (the book's Gin snippet with TRACEPOST_KEY unset): no panic, every log counted.
	for _, c := range [][2]string{{"", "x"}, {"tpk_short", "x"}, {key, ""}} {
		bad := New(url, c[0], c[1])
		bad.Sign, bad.Interval, bad.BatchSize = true, 0, -1
		for i := 0; i < 3; i++ {
			bad.Log("info", "bad-config", nil)
		}
		bad.Close()
		stats["bad_config_dropped"] += bad.Dropped.Load()
	}

	// BatchSize over the server's 250 logs per batch: capped, so the batch is not refused whole.
	big := New(url, key, "go-client")
	big.BatchSize, big.MaxBatchBytes, big.CloseTimeout = 1000, 1e7, 30*time.Second
	for i := 0; i < 300; i++ {
		big.Log("info", fmt.Sprintf("clamp-go-%d", i), nil)
	}
	big.Close()
	stats["clamp_dropped"] = big.Dropped.Load()
	out, _ := json.Marshal(stats)
	fmt.Println("STATS " + string(out))
}
