//go:build !race

package limit

import (
	"net/netip"
	"testing"
	"time"
)

// The race detector allocates, so these run without it.

func TestAllocs(t *testing.T) {
	local := mustNew(t, Config{Name: "per_ip", Rate: 1000, Burst: 10})
	// One shard: after the first request, claiming slots for new keys (and
	// evicting) allocates nothing. A larger table allocates each 64 KiB shard
	// once, on its first key.
	oneShard := mustNew(t, Config{Rate: 1000, Burst: 10, MaxKeys: groupsPerShard * groupSlots})
	m := newMemStore()
	global := mustNew(t, Config{Name: "g", Rate: 1e6, Burst: 1 << 30, Lease: 1 << 29, LeaseTTL: time.Hour, Store: m})
	now := time.Now()
	global.Allow([]byte("user-1"), now) // takes the lease
	global.Close()
	v4, v6 := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")
	long := make([]byte, 300)
	buf := make([]byte, 0, 256)
	var r Result
	for _, tc := range []struct {
		name string
		f    func()
	}{
		{"Allow", func() { now = now.Add(time.Millisecond); r = local.Allow([]byte("203.0.113.7"), now) }},
		{"Allow/refused", func() { r = local.Allow([]byte("hot"), now) }},
		{"Allow/long-key", func() { r = local.Allow(long, now) }},
		{"Allow/new-keys", func() { long[0]++; long[1] += long[0] >> 7; r = oneShard.Allow(long[:20], now) }},
		{"AllowAddr/v4", func() { r = local.AllowAddr(v4, now) }},
		{"AllowAddr/v6", func() { r = local.AllowAddr(v6, now) }},
		{"Allow/global-leased", func() { r = global.Allow([]byte("user-1"), now) }},
		{"AppendPolicyHeader", func() { buf = local.AppendPolicyHeader(buf[:0]) }},
		{"AppendRateLimitHeader", func() { buf = local.AppendRateLimitHeader(buf[:0], r) }},
		{"RetryAfterSeconds", func() { buf = buf[:RetryAfterSeconds(r)%2] }},
	} {
		tc.f() // first use may allocate a table shard
		if n := testing.AllocsPerRun(1000, tc.f); n != 0 {
			t.Errorf("%s: %v allocs per run, want 0", tc.name, n)
		}
	}
	if m.numCalls() != 1 {
		t.Errorf("leased requests called the store %d times, want 1", m.numCalls())
	}
}
