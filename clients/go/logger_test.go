package logger

// Driven by crates/tracepost-ingest/tests/clients.rs (TP_URL, TP_KEY): sends 1,000 logs to a
// running server, then checks a wrong key (401) and a stale signature (401). Prints JSON stats.

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
		t.Skip("TP_URL not set: run through cargo test -p tracepost-ingest --test clients")
	}
	log := New(url, key, "go-client")
	log.Sign = true
	for i := 0; i < 1000; i++ {
		log.Log("info", fmt.Sprintf("go-%d", i), map[string]any{"i": i, "password": "hunter2-planted"})
	}
	log.Close()
	time.Sleep(1500 * time.Millisecond) // let the per-key rate limit refill
	var gz bytes.Buffer
	w := gzip.NewWriter(&gz)
	w.Write([]byte(`{"service":"x","logs":[{"message":"x"}]}`))
	w.Close()
	wrong := New(url, "tpk_"+strings.Repeat("0", 64), "x")
	wrongStatus, _ := wrong.Post(gz.Bytes(), wrong.Headers(gz.Bytes(), time.Now().Unix()))
	stale := New(url, key, "x")
	stale.Sign = true
	staleStatus, _ := stale.Post(gz.Bytes(), stale.Headers(gz.Bytes(), time.Now().Unix()-600))
	wrong.Close()
	stale.Close()
	out, _ := json.Marshal(map[string]int{"retries": log.Retries, "dropped": log.Dropped, "wrong_key": wrongStatus, "stale": staleStatus})
	fmt.Println("STATS " + string(out))
}
