// Package logger is tracepost's logger for Go: copy this file (standard library only).
//
//	log := logger.New("https://tracepost.example/tracepost", "tpk_...", "billing")
//	defer log.Close()
//	log.Log("error", "charge failed", map[string]any{"order_id": 42})
//
// It buffers up to 100 logs or 5 s, sends them gzipped to POST {url}/v1/batch, signs with
// HMAC (Sign: true — the key itself never travels), retries 429/5xx with backoff (honouring
// Retry-After), flushes on Close, and never panics into your code.
package logger

import (
	"bytes"
	"compress/gzip"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"
)

type entry struct {
	Timestamp string         `json:"timestamp"`
	Level     string         `json:"level"`
	Message   string         `json:"message"`
	Context   map[string]any `json:"context,omitempty"`
}

// Logger buffers and sends logs. Set Sign before the first log.
type Logger struct {
	URL, Key, Service   string
	Sign                bool
	BatchSize, Attempts int
	Retries, Dropped    int
	LastStatus          int
	mu, sendMu          sync.Mutex
	buf                 []entry
	stop                chan struct{}
	done                sync.WaitGroup
}

// New starts a logger that flushes every 5 s.
func New(url, key, service string) *Logger {
	l := &Logger{URL: url + "/v1/batch", Key: key, Service: service, BatchSize: 100, Attempts: 5, stop: make(chan struct{})}
	l.done.Add(1)
	go func() {
		defer l.done.Done()
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				l.Flush()
			case <-l.stop:
				return
			}
		}
	}()
	return l
}

// Log buffers one log (level: trace, debug, info, warn, error).
func (l *Logger) Log(level, message string, context map[string]any) {
	defer func() { _ = recover() }()
	l.mu.Lock()
	l.buf = append(l.buf, entry{time.Now().UTC().Format(time.RFC3339Nano), level, message, context})
	full := len(l.buf) >= l.BatchSize
	l.mu.Unlock()
	if full {
		l.Flush()
	}
}

// Flush sends everything buffered.
func (l *Logger) Flush() {
	l.sendMu.Lock()
	defer l.sendMu.Unlock()
	for {
		l.mu.Lock()
		n := len(l.buf)
		if n > l.BatchSize {
			n = l.BatchSize
		}
		batch := l.buf[:n:n]
		l.buf = l.buf[n:]
		l.mu.Unlock()
		if n == 0 {
			return
		}
		l.send(batch)
	}
}

// Close stops the timer and flushes.
func (l *Logger) Close() { close(l.stop); l.done.Wait(); l.Flush() }

// Headers of a request carrying body, signed at ts (Unix seconds) when Sign is set.
func (l *Logger) Headers(body []byte, ts int64) http.Header {
	h := http.Header{"Content-Type": {"application/json"}, "Content-Encoding": {"gzip"}}
	if !l.Sign {
		h.Set("X-Tracepost-Key", l.Key)
		return h
	}
	secret := sha256.Sum256([]byte(l.Key))
	m := hmac.New(sha256.New, secret[:])
	fmt.Fprintf(m, "%d.", ts)
	m.Write(body)
	h.Set("X-Tracepost-Key", l.Key[:12])
	h.Set("X-Tracepost-Timestamp", strconv.FormatInt(ts, 10))
	h.Set("X-Tracepost-Signature", "v1="+hex.EncodeToString(m.Sum(nil)))
	return h
}

// Post makes one attempt: the status (0 on network errors) and Retry-After seconds (-1: none).
func (l *Logger) Post(body []byte, h http.Header) (int, int) {
	req, err := http.NewRequest("POST", l.URL, bytes.NewReader(body))
	if err != nil {
		return 0, -1
	}
	req.Header = h
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return 0, -1
	}
	resp.Body.Close()
	ra, err := strconv.Atoi(resp.Header.Get("Retry-After"))
	if err != nil {
		ra = -1
	}
	return resp.StatusCode, ra
}

func (l *Logger) send(batch []entry) {
	defer func() {
		if r := recover(); r != nil {
			l.Dropped += len(batch)
		}
	}()
	js, _ := json.Marshal(map[string]any{"service": l.Service, "logs": batch})
	var gz bytes.Buffer
	w := gzip.NewWriter(&gz)
	w.Write(js)
	w.Close()
	for attempt := 0; attempt < l.Attempts; attempt++ {
		status, ra := l.Post(gz.Bytes(), l.Headers(gz.Bytes(), time.Now().Unix()))
		l.LastStatus = status
		if status >= 200 && status < 300 {
			return
		}
		if status != 0 && status != 429 && status < 500 {
			break // will not succeed on retry
		}
		l.Retries++
		wait := time.Duration(500<<attempt) * time.Millisecond
		if ra >= 0 {
			wait = time.Duration(ra) * time.Second
		}
		time.Sleep(wait)
	}
	l.Dropped += len(batch)
	fmt.Fprintf(os.Stderr, "tracepost: dropped %d logs (HTTP %d)\n", len(batch), l.LastStatus)
}
