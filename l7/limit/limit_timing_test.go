package limit

import (
	"encoding/binary"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

// Benchmarks of Allow beside golang.org/x/time/rate, measured in the same run:
//
//	go test -run '^$' -bench . -benchmem -benchtime 1s ./l7/limit/
//
// Every request is admitted (the clock advances one interval per request), so
// each one pays the state update, the costlier path. x/time/rate has no key
// table: its many-keys benchmark indexes a pre-built slice of limiters, which
// leaves out the lookup the edge would need (a map under a lock).
//
// Times carry a monotonic reading, as the edge's do (time.Now): Time.Sub of two
// such times is a subtraction, of wall-only times a much slower computation.

const (
	benchKeys     = 1 << 16
	benchInterval = time.Microsecond // 1M tokens/s
)

func benchKeySet() [][]byte {
	keys := make([][]byte, benchKeys)
	for i := range keys {
		keys[i] = binary.BigEndian.AppendUint64([]byte("user-"), uint64(i)*0x9e3779b97f4a7c15)
	}
	return keys
}

var sinkTime time.Time

func BenchmarkAllow(b *testing.B) {
	// The loop's own cost, included in the single-key numbers of both limiters.
	b.Run("loop-baseline", func(b *testing.B) {
		now := time.Now()
		for b.Loop() {
			now = now.Add(benchInterval)
		}
		sinkTime = now
	})
	b.Run("single-key", func(b *testing.B) {
		l := mustNew(b, Config{Rate: 1e6, Burst: 1000})
		key := []byte("203.0.113.7")
		now := time.Now()
		b.ReportAllocs()
		for b.Loop() {
			now = now.Add(benchInterval)
			if !l.Allow(key, now).Allowed {
				b.Fatal("refused")
			}
		}
	})
	// Allow alone: the clock stands still and the bucket is deep enough
	// (2^40 tokens) that every request of the run is admitted, so each one
	// takes the same path as in single-key (lookup, GCRA, CAS) without the
	// loop's time arithmetic (loop-baseline) around it.
	b.Run("single-key-fixed-now", func(b *testing.B) {
		l := mustNew(b, Config{Rate: 1e6, Burst: 1 << 40})
		key := []byte("203.0.113.7")
		now := time.Now()
		b.ReportAllocs()
		for b.Loop() {
			if !l.Allow(key, now).Allowed {
				b.Fatal("refused")
			}
		}
	})
	b.Run("single-key-refused", func(b *testing.B) {
		l := mustNew(b, Config{Rate: 1, Per: time.Hour, Burst: 1})
		key := []byte("203.0.113.7")
		now := time.Now()
		l.Allow(key, now)
		b.ReportAllocs()
		for b.Loop() {
			if l.Allow(key, now).Allowed {
				b.Fatal("admitted")
			}
		}
	})
	b.Run("addr-v4", func(b *testing.B) {
		l := mustNew(b, Config{Rate: 1e6, Burst: 1000})
		ip := netip.MustParseAddr("203.0.113.7")
		now := time.Now()
		b.ReportAllocs()
		for b.Loop() {
			now = now.Add(benchInterval)
			l.AllowAddr(ip, now)
		}
	})
	b.Run("many-keys-parallel", func(b *testing.B) {
		// 64Ki keys in a 1Mi-key table, every key's slot already taken.
		l := mustNew(b, Config{Rate: 1e6, Burst: 1000, MaxKeys: 1 << 20})
		keys := benchKeySet()
		warm := time.Now()
		for _, k := range keys {
			l.Allow(k, warm)
		}
		var worker atomic.Uint64
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			i := int(worker.Add(1)) * 7919
			now := time.Now()
			for pb.Next() {
				i++
				now = now.Add(benchInterval)
				l.Allow(keys[i&(benchKeys-1)], now)
			}
		})
	})
	b.Run("single-key-parallel", func(b *testing.B) {
		l := mustNew(b, Config{Rate: 1e6, Burst: 1000})
		key := []byte("203.0.113.7")
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			now := time.Now()
			for pb.Next() {
				now = now.Add(benchInterval)
				l.Allow(key, now)
			}
		})
	})
}

func BenchmarkXRate(b *testing.B) {
	b.Run("single-key", func(b *testing.B) {
		l := rate.NewLimiter(1e6, 1000)
		now := time.Now()
		b.ReportAllocs()
		for b.Loop() {
			now = now.Add(benchInterval)
			if !l.AllowN(now, 1) {
				b.Fatal("refused")
			}
		}
	})
	b.Run("single-key-fixed-now", func(b *testing.B) {
		l := rate.NewLimiter(1e6, 1<<40)
		now := time.Now()
		b.ReportAllocs()
		for b.Loop() {
			if !l.AllowN(now, 1) {
				b.Fatal("refused")
			}
		}
	})
	b.Run("many-keys-parallel", func(b *testing.B) {
		ls := make([]*rate.Limiter, benchKeys)
		for i := range ls {
			ls[i] = rate.NewLimiter(1e6, 1000)
		}
		var worker atomic.Uint64
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := int(worker.Add(1)) * 7919
			now := time.Now()
			for pb.Next() {
				i++
				now = now.Add(benchInterval)
				// An odd multiplier permutes the indices: random access, as
				// hashed keys get, not a prefetcher-friendly walk.
				ls[(i*40503)&(benchKeys-1)].AllowN(now, 1)
			}
		})
	})
	b.Run("single-key-parallel", func(b *testing.B) {
		l := rate.NewLimiter(1e6, 1000)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			now := time.Now()
			for pb.Next() {
				now = now.Add(benchInterval)
				l.AllowN(now, 1)
			}
		})
	})
}

// BenchmarkAllowGlobal measures a global limit's request path while the key
// holds a lease: local spending, no store call per request.
func BenchmarkAllowGlobal(b *testing.B) {
	m := newMemStore()
	l := mustNew(b, Config{Name: "g", Rate: 1e6, Burst: 1 << 30, Lease: 1 << 29, LeaseTTL: time.Hour, Store: m})
	key := []byte("user-1")
	now := time.Now()
	l.Allow(key, now)
	b.ReportAllocs()
	for b.Loop() {
		if !l.Allow(key, now).Allowed {
			b.Fatal("refused")
		}
	}
}

func BenchmarkHeaders(b *testing.B) {
	l := mustNew(b, Config{Name: "per_ip", Rate: 50, Burst: 100})
	r := l.Allow([]byte("k"), time.Now())
	buf := make([]byte, 0, 128)
	b.ReportAllocs()
	for b.Loop() {
		buf = l.AppendPolicyHeader(buf[:0])
		buf = l.AppendRateLimitHeader(buf[:0], r)
	}
}
