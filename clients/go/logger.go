// Package logger is tracepost's logger for Go: copy this file (standard library only).
//
//	log := logger.New("https://tracepost.example/tracepost", "tpk_...", "billing")
//	defer log.Close()
//	log.Log("error", "charge failed", map[string]any{"order_id": 42})
//
// Log never blocks and never panics: it serialises the log at once (one that cannot be, or is
// over MaxLogBytes, is dropped alone and counted in Invalid) and queues it (at most MaxBuffer;
// beyond, counted in Dropped). A goroutine sends batches of up to 100 logs (and MaxBatchBytes)
// every 5 s, gzipped, to POST {url}/v1/batch, signed with HMAC when Sign is set (the key itself
// never travels), retrying 429/5xx with backoff (honouring Retry-After). Close sends what is
// left within CloseTimeout; what it could not send is counted in Dropped. Set the fields
// before the first Log.
package logger

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Logger queues and sends logs.
type Logger struct {
	URL, Key, Service                           string
	Sign                                        bool
	BatchSize, Attempts, MaxBuffer, MaxLogBytes int
	MaxBatchBytes                               int
	Interval, CloseTimeout                      time.Duration
	Retries, Dropped, Invalid                   atomic.Int64
	LastStatus                                  atomic.Int64
	queue                                       chan []byte
	start, stop                                 sync.Once
	mu                                          sync.RWMutex
	closed                                      bool
	closing, done                               chan struct{}
	deadline                                    time.Time
}

// New returns a logger with the defaults; its goroutine starts with the first Log.
func New(url, key, service string) *Logger {
	return &Logger{URL: url + "/v1/batch", Key: key, Service: service, BatchSize: 100, Attempts: 5,
		MaxBuffer: 10000, MaxLogBytes: 64 << 10, MaxBatchBytes: 500000, Interval: 5 * time.Second,
		CloseTimeout: 5 * time.Second, closing: make(chan struct{}), done: make(chan struct{})}
}

// Log queues one log (level: trace, debug, info, warn, error).
func (l *Logger) Log(level, message string, context map[string]any) {
	defer func() {
		if recover() != nil {
			l.Invalid.Add(1)
		}
	}()
	l.start.Do(func() { l.queue = make(chan []byte, l.MaxBuffer); go l.run() })
	item, err := json.Marshal(map[string]any{"timestamp": time.Now().UTC().Format(time.RFC3339Nano),
		"level": level, "message": message, "context": context})
	if err == nil && len(message) > 32<<10 { // the server's limit (400 for the whole batch)
		err = fmt.Errorf("message over 32 KiB")
	} else if err == nil && len(item) > l.MaxLogBytes {
		err = fmt.Errorf("%d bytes, over MaxLogBytes=%d", len(item), l.MaxLogBytes)
	}
	if err != nil {
		l.Invalid.Add(1)
		fmt.Fprintf(os.Stderr, "tracepost: log dropped: %v\n", err)
		return
	}
	l.mu.RLock() // Close waits for the logs being queued: none is queued after it, uncounted
	defer l.mu.RUnlock()
	if l.closed {
		l.Dropped.Add(1)
		return
	}
	select {
	case l.queue <- item:
	default:
		l.Dropped.Add(1)
	}
}

// Close sends what is queued within CloseTimeout and stops. Safe to call more than once.
func (l *Logger) Close() {
	l.start.Do(func() { close(l.done) }) // never started: nothing to send
	l.stop.Do(func() {
		l.mu.Lock()
		l.closed, l.deadline = true, time.Now().Add(l.CloseTimeout)
		close(l.closing)
		l.mu.Unlock()
	})
	<-l.done
}

func (l *Logger) run() {
	defer close(l.done)
	tick := time.NewTicker(l.Interval)
	defer tick.Stop()
	var batch [][]byte
	size := 0
	flush := func() { l.send(batch); batch, size = nil, 0 }
	add := func(item []byte) {
		if size+len(item) >= l.MaxBatchBytes {
			flush()
		}
		if batch, size = append(batch, item), size+len(item)+1; len(batch) >= l.BatchSize {
			flush()
		}
	}
	for {
		select {
		case item := <-l.queue:
			add(item)
		case <-tick.C:
			flush()
		case <-l.closing:
			for n := len(l.queue); n > 0; n-- {
				add(<-l.queue)
			}
			flush()
			return
		}
	}
}

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

// Post makes one attempt within timeout: the status (0 on network errors) and Retry-After
// seconds (-1: none).
func (l *Logger) Post(body []byte, h http.Header, timeout time.Duration) (int, int) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "POST", l.URL, bytes.NewReader(body))
	if err != nil {
		return 0, -1
	}
	req.Header = h
	resp, err := http.DefaultClient.Do(req)
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

// left is the time until the close deadline (an hour when not closing).
func (l *Logger) left() time.Duration {
	select {
	case <-l.closing:
		return time.Until(l.deadline)
	default:
		return time.Hour
	}
}

func (l *Logger) send(batch [][]byte) {
	if len(batch) == 0 {
		return
	}
	service, _ := json.Marshal(l.Service)
	var gz bytes.Buffer
	w := gzip.NewWriter(&gz)
	fmt.Fprintf(w, `{"service":%s,"logs":[%s]}`, service, bytes.Join(batch, []byte(",")))
	w.Close()
	for attempt := 0; attempt < l.Attempts && l.left() > 0; attempt++ {
		timeout := 10 * time.Second
		if l.left() < timeout {
			timeout = l.left()
		}
		status, ra := l.Post(gz.Bytes(), l.Headers(gz.Bytes(), time.Now().Unix()), timeout)
		l.LastStatus.Store(int64(status))
		if status >= 200 && status < 300 {
			return
		}
		if status != 0 && status != 429 && status < 500 {
			break // will not succeed on retry
		}
		l.Retries.Add(1)
		wait := time.Duration(500<<attempt) * time.Millisecond
		if ra >= 0 {
			wait = time.Duration(ra) * time.Second
		}
		if l.left() < wait {
			wait = l.left()
		}
		until := time.Now().Add(wait)
		select {
		case <-time.After(wait):
		case <-l.closing: // closing: wait no longer than the deadline
			if d := time.Until(until); d < l.left() {
				time.Sleep(d)
			} else {
				time.Sleep(l.left())
			}
		}
	}
	l.Dropped.Add(int64(len(batch)))
	fmt.Fprintf(os.Stderr, "tracepost: dropped %d logs (HTTP %d)\n", len(batch), l.LastStatus.Load())
}
