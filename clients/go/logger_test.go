package logger

// Driven by examples/quickstart/tests/clients.rs against the quickstart (TP_URL, TP_KEY): sends
// 1,000 logs among bad ones (unserialisable, oversized) that are dropped alone; checks a wrong
// key (401) and a stale signature (401); then logs to a server that is down (TP_DOWN_URL) and
// times how long the caller was held. Prints JSON stats.

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
		log.Log("info", fmt.Sprintf("go-%d", i), map[string]any{"i": i, "password": "hunter2-planted"})
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
	out, _ := json.Marshal(stats)
	fmt.Println("STATS " + string(out))
}
