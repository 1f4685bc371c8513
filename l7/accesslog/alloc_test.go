//go:build !race

package accesslog

import (
	"io"
	"testing"
	"time"
)

func TestRecordAllocatesNothing(t *testing.T) {
	l := New(Config{Writer: io.Discard})
	defer l.Close()
	now := time.Now()
	id, path := []byte("0123456789abcdef01234567"), []byte("/app/dashboard")
	if n := testing.AllocsPerRun(1000, func() {
		l.Finish(l.Begin(now).Str("request_id", id).Str("path", path).Int("status", 200).String("route", "r"))
	}); n != 0 {
		t.Errorf("allocs per record = %v, want 0", n)
	}
}
