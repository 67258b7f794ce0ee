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
// left within CloseTimeout, aborting a request still in flight at the deadline; what it could
// not send is counted in Dropped. Set the fields before the first Log; zero or negative
// numbers take the defaults, BatchSize is at most 250 and MaxBatchBytes 500,000 (the server's
// limits). A bad setting never panics: with an empty URL, or a key that
// cannot be used (empty; under 12 characters with Sign), or a Service that is empty or over
// 200 characters, every log is counted in Dropped and
// the reason is printed once on stderr. A level the server does not know ("verbose") is sent
// as "info".
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
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
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
	bad                                         string // why every log is dropped (a bad setting)
}

// levels the server accepts (tracepost-ingest's parse_level); any other is sent as "info".
var levels = map[string]bool{"trace": true, "debug": true, "info": true, "information": true,
	"notice": true, "warn": true, "warning": true, "error": true, "err": true, "fatal": true,
	"critical": true, "crit": true, "alert": true, "emergency": true}

// setup applies the defaults to zero or negative settings and checks the URL and key.
func (l *Logger) setup() {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&l.BatchSize, 100)
	def(&l.Attempts, 5)
	def(&l.MaxBuffer, 10000)
	def(&l.MaxLogBytes, 64<<10)
	def(&l.MaxBatchBytes, 500000)
	if l.BatchSize > 250 { // the server's default max_events: a larger batch is refused whole
		l.BatchSize = 250
	}
	if l.MaxBatchBytes > 500000 { // under the server's 512 KiB
		l.MaxBatchBytes = 500000
	}
	if l.Interval <= 0 {
		l.Interval = 5 * time.Second
	}
	if l.CloseTimeout < 0 {
		l.CloseTimeout = 0
	}
	switch {
	case l.URL == "/v1/batch" || l.URL == "":
		l.bad = "no URL"
	case l.Key == "":
		l.bad = "no key"
	case l.Service == "" || utf8.RuneCountInString(l.Service) > 200:
		l.bad = "the service must be 1 to 200 characters"
	case l.Sign && len(l.Key) < 12:
		l.bad = "the key is under 12 characters (Sign needs its 12-character prefix)"
	}
	if l.bad != "" {
		fmt.Fprintf(os.Stderr, "tracepost: every log is dropped: %s\n", l.bad)
	}
}

// New returns a logger with the defaults; its goroutine starts with the first Log.
func New(url, key, service string) *Logger {
	return &Logger{URL: url + "/v1/batch", Key: key, Service: service, BatchSize: 100, Attempts: 5,
		MaxBuffer: 10000, MaxLogBytes: 64 << 10, MaxBatchBytes: 500000, Interval: 5 * time.Second,
		CloseTimeout: 5 * time.Second, closing: make(chan struct{}), done: make(chan struct{})}
}

// Log queues one log (level: trace, debug, info, warn, error; any other is sent as info).
func (l *Logger) Log(level, message string, context map[string]any) {
	defer func() {
		if recover() != nil {
			l.Invalid.Add(1)
		}
	}()
	l.start.Do(func() {
		l.setup()
		l.queue = make(chan []byte, l.MaxBuffer)
		go l.run()
	})
	if l.bad != "" {
		l.Dropped.Add(1)
		return
	}
	if !levels[strings.ToLower(level)] {
		level = "info"
	}
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
	defer func() { // never take the host down; what is queued is counted
		if r := recover(); r != nil {
			l.drop(len(l.queue), fmt.Sprint("panic: ", r))
		}
	}()
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
	prefix := l.Key
	if len(prefix) > 12 {
		prefix = prefix[:12]
	}
	h.Set("X-Tracepost-Key", prefix)
	h.Set("X-Tracepost-Timestamp", strconv.FormatInt(ts, 10))
	h.Set("X-Tracepost-Signature", "v1="+hex.EncodeToString(m.Sum(nil)))
	return h
}

// Post makes one attempt within timeout: the status (0 on network errors) and Retry-After
// seconds (-1: none).
func (l *Logger) Post(body []byte, h http.Header, timeout time.Duration) (int, int) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	status, ra, _ := l.post(ctx, body, h)
	return status, ra
}

// post is Post under ctx; also the start of an error response's body (the server's reason).
func (l *Logger) post(ctx context.Context, body []byte, h http.Header) (int, int, string) {
	req, err := http.NewRequestWithContext(ctx, "POST", l.URL, bytes.NewReader(body))
	if err != nil {
		return 0, -1, err.Error()
	}
	req.Header = h
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, -1, err.Error()
	}
	defer resp.Body.Close()
	reason, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
	ra, err := strconv.Atoi(resp.Header.Get("Retry-After"))
	if err != nil {
		ra = -1
	}
	return resp.StatusCode, ra, string(reason)
}

// attempt is the context of one attempt: at most 10 s, and ended at the close deadline even
// when Close comes while it is in flight.
func (l *Logger) attempt() (context.Context, context.CancelFunc) {
	timeout := 10 * time.Second
	if left := l.left(); left < timeout {
		timeout = left
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	go func() {
		select {
		case <-ctx.Done():
		case <-l.closing:
			select {
			case <-ctx.Done():
			case <-time.After(time.Until(l.deadline)):
				cancel()
			}
		}
	}()
	return ctx, cancel
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

func (l *Logger) drop(n int, why string) {
	l.Dropped.Add(int64(n))
	fmt.Fprintf(os.Stderr, "tracepost: dropped %d logs (%s)\n", n, why)
}

func (l *Logger) send(batch [][]byte) {
	if len(batch) == 0 {
		return
	}
	defer func() {
		if r := recover(); r != nil {
			l.drop(len(batch), fmt.Sprint("panic: ", r))
		}
	}()
	why := "close timeout passed"
	service, _ := json.Marshal(l.Service)
	var gz bytes.Buffer
	w := gzip.NewWriter(&gz)
	fmt.Fprintf(w, `{"service":%s,"logs":[%s]}`, service, bytes.Join(batch, []byte(",")))
	w.Close()
	for attempt := 0; attempt < l.Attempts && l.left() > 0; attempt++ {
		ctx, cancel := l.attempt()
		status, ra, reason := l.post(ctx, gz.Bytes(), l.Headers(gz.Bytes(), time.Now().Unix()))
		cancel()
		l.LastStatus.Store(int64(status))
		if status >= 200 && status < 300 {
			return
		}
		why = fmt.Sprintf("HTTP %d: %s", status, reason)
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
	l.drop(len(batch), why)
}
