package limit

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// go-redis's own log lines (a failed dial) go to SetRedisLog's function,
// not to stderr in plain text.
func TestSetRedisLogReceivesGoRedisLines(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := ln.Addr().String()
	ln.Close() // every dial is refused
	var mu sync.Mutex
	var lines []string
	SetRedisLog(func(msg string) {
		mu.Lock()
		lines = append(lines, msg)
		mu.Unlock()
	})
	t.Cleanup(func() { SetRedisLog(nil) })

	s := NewRedisStore(RedisConfig{Address: down, Timeout: time.Second})
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := s.Lease(ctx, LeaseRequest{Key: "k", Interval: time.Millisecond, Burst: 1, Want: 1}); err == nil {
		t.Fatal("lease from a Redis that is down succeeded")
	}
	mu.Lock()
	defer mu.Unlock()
	found := false
	for _, l := range lines {
		found = found || strings.Contains(l, "failed to dial") && strings.Contains(l, down)
		if strings.HasSuffix(l, "\n") {
			t.Errorf("line ends in a newline: %q", l)
		}
	}
	if !found {
		t.Errorf("no dial failure among go-redis's lines %q", lines)
	}
}
