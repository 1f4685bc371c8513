package accesslog

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"sync"
	"testing"
	"time"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestRecordsAreValidJSONLines(t *testing.T) {
	var out syncBuffer
	l := New(Config{Writer: &out})
	at := time.Date(2026, 11, 25, 10, 0, 0, 123456000, time.UTC)
	l.Finish(l.Begin(at).
		Str("request_id", []byte("abc")).
		Str("path", []byte("/a\"b\\c\x01\xff/ü")).
		Int("status", 200).
		String("route", "example.com/app/").
		Str("jwt_sub", nil))
	l.Close()

	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 1 {
		t.Fatalf("got %d lines, want 1: %q", len(lines), out.String())
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &got); err != nil {
		t.Fatalf("line is not JSON: %v: %s", err, lines[0])
	}
	want := map[string]any{
		"time":       "2026-11-25T10:00:00.123456Z",
		"request_id": "abc",
		"path":       "/a\"b\\c\x01\ufffd/ü",
		"status":     float64(200),
		"route":      "example.com/app/",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %#v, want %#v", k, got[k], v)
		}
	}
	if _, ok := got["jwt_sub"]; ok {
		t.Error("empty field jwt_sub was written")
	}
}

// blockingWriter never returns, like a log pipe nobody reads.
type blockingWriter struct{ release chan struct{} }

func (w blockingWriter) Write(p []byte) (int, error) {
	<-w.release
	return len(p), nil
}

func TestFinishNeverBlocksOnAStuckWriter(t *testing.T) {
	w := blockingWriter{release: make(chan struct{})}
	l := New(Config{Writer: w, MaxBuffered: 4096, FlushInterval: time.Millisecond})
	const n = 5000
	for i := range n {
		l.Finish(l.Begin(time.Now()).Int("i", int64(i)))
	}
	if l.Dropped() == 0 {
		t.Errorf("dropped = 0 with a stuck writer and 4 KiB of buffer; want records dropped, not waited for")
	}
	close(w.release)
	l.Close()
	if l.Dropped() >= n {
		t.Errorf("dropped all %d records; the buffered ones should have been written", n)
	}
}

func TestNilLoggerIsANoop(t *testing.T) {
	var l *Logger
	l.Finish(l.Begin(time.Now()).Str("a", []byte("b")).Int("c", 1))
	l.Close()
	if l.Dropped() != 0 || l.Written() != 0 {
		t.Error("nil logger counted something")
	}
}

func BenchmarkRecord(b *testing.B) {
	l := New(Config{Writer: io.Discard})
	defer l.Close()
	now := time.Now()
	id, path := []byte("0123456789abcdef01234567"), []byte("/app/dashboard")
	b.ReportAllocs()
	for b.Loop() {
		l.Finish(l.Begin(now).Str("request_id", id).Str("path", path).Int("status", 200).String("route", "example.com/app/"))
	}
}
