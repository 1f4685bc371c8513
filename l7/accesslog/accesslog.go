// Package accesslog writes one JSON object per request without ever blocking
// the request path: a record is formatted into a pooled buffer on the request
// goroutine, then copied under a short lock into a bounded shared buffer that
// a single writer goroutine swaps out and writes. When the shared buffer is
// full (a slow disk, a stuck pipe) records are dropped and counted, never
// waited for.
package accesslog

import (
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// Config configures a Logger. The zero value is usable once Writer is set.
type Config struct {
	// Writer receives the JSON lines. Required.
	Writer io.Writer
	// MaxBuffered bounds the bytes waiting for the writer (default 4 MiB);
	// records beyond it are dropped.
	MaxBuffered int
	// FlushInterval is how long a record may wait before it is written
	// (default 100ms); a buffer past 64 KiB is written sooner.
	FlushInterval time.Duration
}

// Logger is an asynchronous JSON access log. Its methods are safe for
// concurrent use. A nil *Logger logs nothing, so callers need no checks.
type Logger struct {
	cfg     Config
	pool    sync.Pool // *Record; taken and returned on the request goroutine
	mu      sync.Mutex
	pending []byte // guarded by mu
	wake    chan struct{}
	stop    chan struct{}
	done    chan struct{}
	close   sync.Once
	dropped atomic.Uint64
	written atomic.Uint64
	stamp   atomic.Pointer[stamp]
}

// New starts a Logger's writer goroutine; Close stops it.
func New(cfg Config) *Logger {
	if cfg.MaxBuffered <= 0 {
		cfg.MaxBuffered = 4 << 20
	}
	if cfg.FlushInterval <= 0 {
		cfg.FlushInterval = 100 * time.Millisecond
	}
	l := &Logger{
		cfg:     cfg,
		pending: make([]byte, 0, 64<<10),
		wake:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	l.pool.New = func() any { return &Record{buf: make([]byte, 0, 512)} }
	go l.run()
	return l
}

// Record is one log line being built. Acquire it with Begin; it is owned by
// the caller until Finish takes it back.
type Record struct {
	buf []byte
}

// maxPooledRecord keeps records that grew on a huge path out of the pool.
const maxPooledRecord = 16 << 10

// soonBytes is how much pending output wakes the writer before its tick.
const soonBytes = 64 << 10

// Begin starts a record stamped with t. It returns nil on a nil Logger; every
// Record method accepts a nil receiver.
func (l *Logger) Begin(t time.Time) *Record {
	if l == nil {
		return nil
	}
	r := l.pool.Get().(*Record)
	r.buf = append(r.buf[:0], `{"time":"`...)
	r.buf = l.appendTime(r.buf, t)
	r.buf = append(r.buf, '"')
	return r
}

// stamp caches the formatted second, since formatting a time costs more than
// the rest of a record.
type stamp struct {
	unix int64
	text []byte // "2006-01-02T15:04:05"
}

// appendTime appends t as RFC 3339 UTC with microseconds.
func (l *Logger) appendTime(dst []byte, t time.Time) []byte {
	t = t.UTC()
	sec := t.Unix()
	st := l.stamp.Load()
	if st == nil || st.unix != sec {
		st = &stamp{unix: sec, text: t.AppendFormat(nil, "2006-01-02T15:04:05")}
		l.stamp.Store(st)
	}
	dst = append(dst, st.text...)
	us := t.Nanosecond() / 1000
	var frac [8]byte
	frac[0] = '.'
	for i := 6; i >= 1; i-- {
		frac[i] = byte('0' + us%10)
		us /= 10
	}
	frac[7] = 'Z'
	return append(dst, frac[:]...)
}

// Str adds a string field; empty values are left out.
func (r *Record) Str(key string, v []byte) *Record {
	if r == nil || len(v) == 0 {
		return r
	}
	r.key(key)
	r.buf = AppendJSONString(r.buf, v)
	return r
}

// String is Str for a Go string.
func (r *Record) String(key, v string) *Record {
	if r == nil || v == "" {
		return r
	}
	r.key(key)
	r.buf = appendJSONStringS(r.buf, v)
	return r
}

// Field adds a string field, written even when empty: for fields every
// record carries, so consumers need not treat a missing key as empty.
func (r *Record) Field(key string, v []byte) *Record {
	if r == nil {
		return r
	}
	r.key(key)
	r.buf = AppendJSONString(r.buf, v)
	return r
}

// FieldString is Field for a Go string.
func (r *Record) FieldString(key, v string) *Record {
	if r == nil {
		return r
	}
	r.key(key)
	r.buf = appendJSONStringS(r.buf, v)
	return r
}

// Int adds an integer field.
func (r *Record) Int(key string, v int64) *Record {
	if r == nil {
		return r
	}
	r.key(key)
	r.buf = strconv.AppendInt(r.buf, v, 10)
	return r
}

func (r *Record) key(k string) {
	r.buf = append(r.buf, ',', '"')
	r.buf = append(r.buf, k...)
	r.buf = append(r.buf, '"', ':')
}

// Finish closes the record and queues it for writing. It never blocks on
// the writer: if the pending buffer is full the record is dropped and
// counted. r must not be used afterwards.
func (l *Logger) Finish(r *Record) {
	if l == nil || r == nil {
		return
	}
	r.buf = append(r.buf, '}', '\n')
	l.mu.Lock()
	ok := len(l.pending)+len(r.buf) <= l.cfg.MaxBuffered
	if ok {
		l.pending = append(l.pending, r.buf...)
	}
	soon := len(l.pending) >= soonBytes
	l.mu.Unlock()
	if !ok {
		l.dropped.Add(1)
	}
	if soon {
		select {
		case l.wake <- struct{}{}:
		default:
		}
	}
	if cap(r.buf) <= maxPooledRecord {
		l.pool.Put(r)
	}
}

// Dropped returns how many records were dropped because the writer fell
// behind by more than MaxBuffered bytes.
func (l *Logger) Dropped() uint64 {
	if l == nil {
		return 0
	}
	return l.dropped.Load()
}

// Written returns how many bytes reached the writer.
func (l *Logger) Written() uint64 {
	if l == nil {
		return 0
	}
	return l.written.Load()
}

func (l *Logger) run() {
	defer close(l.done)
	spare := make([]byte, 0, 64<<10)
	tick := time.NewTicker(l.cfg.FlushInterval)
	defer tick.Stop()
	for {
		select {
		case <-l.stop:
			l.flush(&spare)
			return
		case <-tick.C:
		case <-l.wake:
		}
		l.flush(&spare)
	}
}

// flush swaps the pending buffer for spare and writes what it held.
func (l *Logger) flush(spare *[]byte) {
	l.mu.Lock()
	out := l.pending
	l.pending = (*spare)[:0]
	l.mu.Unlock()
	if len(out) > 0 {
		l.cfg.Writer.Write(out) //nolint:errcheck // a failing log sink must not stop the proxy
		l.written.Add(uint64(len(out)))
	}
	if cap(out) > 2*l.cfg.MaxBuffered {
		out = make([]byte, 0, 64<<10)
	}
	*spare = out[:0]
}

// Close writes what is pending and stops the writer. Finish must not be
// called after Close.
func (l *Logger) Close() {
	if l == nil {
		return
	}
	l.close.Do(func() {
		close(l.stop)
		<-l.done
	})
}

const hexDigits = "0123456789abcdef"

// AppendJSONString appends s as a JSON string literal. Invalid UTF-8 becomes
// U+FFFD, so a hostile path cannot break the line's JSON.
func AppendJSONString(dst, s []byte) []byte {
	dst = append(dst, '"')
	// Fast path: copy the run of bytes that need no escaping in one go.
	plain := 0
	for plain < len(s) {
		c := s[plain]
		if c < 0x20 || c == '"' || c == '\\' || c >= 0x7f {
			break
		}
		plain++
	}
	dst = append(dst, s[:plain]...)
	for i := plain; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c < 0x20 || c == 0x7f:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, `\ufffd`...)
		} else {
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return append(dst, '"')
}

func appendJSONStringS(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf {
			return AppendJSONString(dst, []byte(s))
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}
