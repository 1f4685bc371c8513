package limit

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

func mustNew(t testing.TB, cfg Config) *Limiter {
	t.Helper()
	l, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%+v): %v", cfg, err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

type step struct {
	at        time.Duration // since t0
	allowed   bool
	remaining int
	retry     time.Duration
	reset     time.Duration
}

func walk(t *testing.T, allow func(time.Time) Result, steps []step) {
	t.Helper()
	for i, s := range steps {
		r := allow(t0.Add(s.at))
		want := Result{Allowed: s.allowed, Remaining: s.remaining, Reset: s.reset}
		if r != want || r.RetryAfter() != s.retry {
			t.Errorf("step %d at +%v: got %+v (RetryAfter %v), want %+v (RetryAfter %v)", i, s.at, r, r.RetryAfter(), want, s.retry)
		}
	}
}

// TestTimeline walks fixed timelines through one bucket: burst, refusal with
// the exact wait, refill one token at a time, and a full refill.
func TestTimeline(t *testing.T) {
	// 10 per second: one token every 100ms; burst 3.
	l := mustNew(t, Config{Name: "t", Rate: 10, Burst: 3})
	key := []byte("k")
	walk(t, func(now time.Time) Result { return l.Allow(key, now) }, []step{
		{at: 0, allowed: true, remaining: 2, reset: ms(100)},
		{at: 0, allowed: true, remaining: 1, reset: ms(100)},
		{at: 0, allowed: true, remaining: 0, reset: ms(100)},
		{at: 0, allowed: false, retry: ms(100), reset: ms(100)},
		{at: ms(99), allowed: false, retry: ms(1), reset: ms(1)},
		{at: ms(100), allowed: true, remaining: 0, reset: ms(100)},
		{at: ms(150), allowed: false, retry: ms(50), reset: ms(50)},
		{at: ms(250), allowed: true, remaining: 0, reset: ms(50)},
		{at: ms(260), allowed: false, retry: ms(40), reset: ms(40)},
		{at: ms(300), allowed: true, remaining: 0, reset: ms(100)},
		{at: ms(1000), allowed: true, remaining: 2, reset: ms(100)},
		{at: ms(1050), allowed: true, remaining: 1, reset: ms(50)},
		{at: ms(1250), allowed: true, remaining: 2, reset: ms(100)},
	})
}

// TestTimelineSlow covers a limit slower than one per second, where
// Retry-After and t= round up to whole seconds.
func TestTimelineSlow(t *testing.T) {
	l := mustNew(t, Config{Name: "slow", Rate: 2, Per: time.Minute, Burst: 2}) // a token per 30s
	key := []byte("user-1")
	sec := func(n int) time.Duration { return time.Duration(n) * time.Second }
	steps := []struct {
		at                    time.Duration
		allowed               bool
		retryAfter, ratelimit string
	}{
		{0, true, "0", `"slow";r=1;t=30`},
		{sec(1), true, "0", `"slow";r=0;t=29`},
		{sec(2), false, "28", `"slow";r=0;t=28`},
		{sec(29) + ms(500), false, "1", `"slow";r=0;t=1`},
		{sec(30), true, "0", `"slow";r=0;t=30`},
		{sec(200), true, "0", `"slow";r=1;t=30`},
	}
	for i, s := range steps {
		r := l.Allow(key, t0.Add(s.at))
		ra := strconv.Itoa(RetryAfterSeconds(r))
		rl := string(l.AppendRateLimitHeader(nil, r))
		if r.Allowed != s.allowed || ra != s.retryAfter || rl != s.ratelimit {
			t.Errorf("step %d at +%v: got allowed=%v Retry-After %s RateLimit %s, want %v %s %s",
				i, s.at, r.Allowed, ra, rl, s.allowed, s.retryAfter, s.ratelimit)
		}
	}
}

// TestExactBurst checks the exact admit/deny sequence for several rate/burst
// pairs at one instant, then that a sustained stream at the rate is admitted.
func TestExactBurst(t *testing.T) {
	for _, tc := range []struct {
		rate  float64
		per   time.Duration
		burst int
	}{
		{1, time.Second, 1}, {50, time.Second, 100}, {20, time.Second, 40}, {0.5, time.Second, 3}, {1000, time.Minute, 7},
	} {
		l := mustNew(t, Config{Rate: tc.rate, Per: tc.per, Burst: tc.burst})
		key := []byte("k")
		for i := 0; i < tc.burst+5; i++ {
			r := l.Allow(key, t0)
			if want := i < tc.burst; r.Allowed != want {
				t.Fatalf("rate %v/%v burst %d: request %d allowed=%v, want %v", tc.rate, tc.per, tc.burst, i, r.Allowed, want)
			}
			if r.Allowed && r.Remaining != tc.burst-1-i {
				t.Fatalf("rate %v/%v burst %d: request %d remaining %d, want %d", tc.rate, tc.per, tc.burst, i, r.Remaining, tc.burst-1-i)
			}
		}
		// After draining, exactly one request per interval is admitted.
		interval := time.Duration(float64(tc.per) / tc.rate)
		for i := 1; i <= 20; i++ {
			now := t0.Add(time.Duration(i) * interval)
			if r := l.Allow(key, now); !r.Allowed {
				t.Fatalf("rate %v/%v: request at interval %d refused (%+v)", tc.rate, tc.per, i, r)
			}
			if r := l.Allow(key, now); r.Allowed {
				t.Fatalf("rate %v/%v: second request at interval %d admitted", tc.rate, tc.per, i)
			}
		}
	}
}

func TestDefaults(t *testing.T) {
	l := mustNew(t, Config{Rate: 2.5})
	if got := string(l.AppendPolicyHeader(nil)); got != `"default";q=3;w=2` {
		t.Errorf("policy = %s, want \"default\";q=3;w=2", got)
	}
	st := l.Stats()
	if st.Capacity > DefaultMemory/slotBytes || st.Capacity < DefaultMemory/slotBytes-groupsPerShard*groupSlots {
		t.Errorf("default capacity %d, want about %d", st.Capacity, DefaultMemory/slotBytes)
	}
	if st.Bytes > 1<<20 {
		t.Errorf("an unused default limiter holds %d bytes; shards should be allocated lazily", st.Bytes)
	}
	if l.Key() != (KeySpec{Kind: KeyClientIP}) || l.Name() != "default" || l.Global() {
		t.Errorf("Key, Name, Global = %v, %q, %v", l.Key(), l.Name(), l.Global())
	}
}

func TestHeaders(t *testing.T) {
	for _, tc := range []struct {
		cfg    Config
		policy string
	}{
		{Config{Name: "per_ip", Rate: 50, Burst: 100}, `"per_ip";q=100;w=2`},
		{Config{Name: "per_user", Rate: 20, Burst: 40}, `"per_user";q=40;w=2`},
		{Config{Name: "minute", Rate: 1, Per: time.Minute, Burst: 2}, `"minute";q=2;w=120`},
		{Config{Name: "frac", Rate: 3, Burst: 10}, `"frac";q=10;w=4`},
		{Config{Name: `a"b\c`, Rate: 1, Burst: 1}, `"a\"b\\c";q=1;w=1`},
	} {
		l := mustNew(t, tc.cfg)
		if got := string(l.AppendPolicyHeader([]byte("x"))); got != "x"+tc.policy {
			t.Errorf("%s: policy %s, want %s", tc.cfg.Name, got, tc.policy)
		}
	}
	l := mustNew(t, Config{Name: "n", Rate: 1, Burst: 5})
	for _, tc := range []struct {
		r       Result
		header  string
		seconds int
	}{
		{Result{Allowed: true, Remaining: 4, Reset: ms(1)}, `"n";r=4;t=1`, 0},
		{Result{Allowed: true, Remaining: 5}, `"n";r=5;t=0`, 0},
		{Result{Reset: ms(1500)}, `"n";r=0;t=2`, 2},
		{Result{Reset: time.Second}, `"n";r=0;t=1`, 1},
		{Result{}, `"n";r=0;t=0`, 1},
	} {
		if got := string(l.AppendRateLimitHeader(nil, tc.r)); got != tc.header {
			t.Errorf("AppendRateLimitHeader(%+v) = %s, want %s", tc.r, got, tc.header)
		}
		if got := RetryAfterSeconds(tc.r); got != tc.seconds {
			t.Errorf("RetryAfterSeconds(%+v) = %d, want %d", tc.r, got, tc.seconds)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, `limit: bad config: default: rate 0: want a positive number`},
		{Config{Name: "x", Rate: -1}, `limit: bad config: x: rate -1: want a positive number`},
		{Config{Name: "x\n", Rate: 1}, `limit: bad config: name "x\n": want printable ASCII`},
		{Config{Name: "x", Rate: 1, Burst: -2}, `limit: bad config: x: burst -2: want >= 1`},
		{Config{Name: "x", Rate: 1, Per: -time.Second}, `limit: bad config: x: per -1s: want a positive duration`},
		{Config{Name: "x", Rate: 1, MaxKeys: -1}, `limit: bad config: x: max_keys -1: want >= 0`},
		{Config{Name: "x", Rate: 1, IPv6Prefix: 129}, `limit: bad config: x: ipv6_prefix 129: want 1..128`},
		{Config{Name: "x", Rate: 1e12}, `limit: bad config: x: rate 1e+12 per 1s: one token every 0ns is out of range`},
		{Config{Name: "x", Rate: 1, Key: KeySpec{Kind: KeyHeader, Name: "a b"}}, `limit: bad config: x: key "header:a b": header name must be an RFC 9110 token`},
		{Config{Name: "x", Rate: 1, Burst: 5, Lease: 6, Store: newMemStore()}, `limit: bad config: x: lease 6: want 1..burst (5)`},
		{Config{Name: "x", Rate: 1e7, Store: newMemStore()}, `limit: bad config: x: one token every 100ns: a global limit needs at least 1µs`},
	} {
		_, err := New(tc.cfg)
		if err == nil || err.Error() != tc.want || !errors.Is(err, ErrBadConfig) {
			t.Errorf("New(%+v) = %v, want %s", tc.cfg, err, tc.want)
		}
	}
}

func TestAllowAddr(t *testing.T) {
	l := mustNew(t, Config{Rate: 1, Per: time.Hour, Burst: 1})
	a := func(s string) netip.Addr { return netip.MustParseAddr(s) }
	// Each group shares one bucket: the first address drains it.
	for _, same := range [][]string{
		{"192.0.2.1", "::ffff:192.0.2.1"},
		{"2001:db8:1:2::1", "2001:db8:1:2:ffff::9", "2001:db8:1:2::1%eth0"},
	} {
		if r := l.AllowAddr(a(same[0]), t0); !r.Allowed {
			t.Fatalf("%s: first request refused", same[0])
		}
		for _, s := range same[1:] {
			if r := l.AllowAddr(a(s), t0); r.Allowed {
				t.Errorf("%s admitted: it should share %s's bucket", s, same[0])
			}
		}
	}
	for _, other := range []string{"192.0.2.2", "2001:db8:1:3::1", "::"} {
		if r := l.AllowAddr(a(other), t0); !r.Allowed {
			t.Errorf("%s refused: it has its own bucket", other)
		}
	}
	// A header value equal to an address's key bytes is a different bucket.
	k := AppendClientIPKey(nil, a("192.0.2.1"), 64)
	if r := l.Allow(k, t0); !r.Allowed {
		t.Errorf("value key %x refused: it must not share the client-IP bucket", k)
	}
	// Invalid addresses share one bucket.
	l.AllowAddr(netip.Addr{}, t0)
	if r := l.AllowAddr(netip.Addr{}, t0); r.Allowed {
		t.Errorf("second request without an address admitted")
	}
}

func TestAppendClientIPKey(t *testing.T) {
	for _, tc := range []struct {
		ip     string
		prefix int
		want   string
	}{
		{"192.0.2.1", 64, "c0000201"},
		{"::ffff:10.1.2.3", 64, "0a010203"},
		{"2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff", 64, "20010db8aaaabbbb000000000000000040"},
		{"2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff", 0, "20010db8aaaabbbb000000000000000040"},
		{"2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff", 48, "20010db8aaaa00000000000000000000" + "30"},
		{"2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff", 57, "20010db8aaaabb800000000000000000" + "39"},
		{"2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff", 128, "20010db8aaaabbbbccccddddeeeeffff" + "80"},
		{"", 64, "00"},
	} {
		var ip netip.Addr
		if tc.ip != "" {
			ip = netip.MustParseAddr(tc.ip)
		}
		got := AppendClientIPKey(nil, ip, tc.prefix)
		if hexs := hexString(got); hexs != tc.want {
			t.Errorf("AppendClientIPKey(%s, %d) = %s, want %s", tc.ip, tc.prefix, hexs, tc.want)
		}
	}
}

func hexString(b []byte) string {
	const digits = "0123456789abcdef"
	s := make([]byte, 0, 2*len(b))
	for _, c := range b {
		s = append(s, digits[c>>4], digits[c&15])
	}
	return string(s)
}

// TestConcurrentOneKey checks the lock-free update under contention: at one
// instant, exactly burst of many concurrent requests are admitted.
func TestConcurrentOneKey(t *testing.T) {
	const burst, workers, each = 1000, 8, 400
	l := mustNew(t, Config{Rate: 1, Per: time.Hour, Burst: burst})
	var admitted atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if l.Allow([]byte("hot"), t0).Allowed {
					admitted.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if got := admitted.Load(); got != burst {
		t.Errorf("admitted %d of %d concurrent requests, want exactly burst %d", got, workers*each, burst)
	}
}

// TestConcurrentClaims races many goroutines claiming slots of a tiny table
// (the race detector checks the protocol) and checks the cap holds.
func TestConcurrentClaims(t *testing.T) {
	l := mustNew(t, Config{Rate: 1, Burst: 2, MaxKeys: 16})
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			var k [8]byte
			for i := 0; i < 5000; i++ {
				k[0], k[1], k[2] = byte(i), byte(i>>8), byte(i%7)
				l.Allow(k[:], t0.Add(time.Duration(i)*time.Millisecond))
			}
		}(w)
	}
	wg.Wait()
	if st := l.Stats(); st.Keys > st.Capacity || st.Capacity > 16 {
		t.Errorf("stats %+v: keys over capacity or capacity over MaxKeys 16", st)
	}
}

// TestConcurrentFirstRequestsOneBucket: goroutines sending the first
// requests of the same new keys at once must create one bucket per key.
// Before claims were serialized per key, two could each take a slot before
// seeing the other's key, and the key admitted one request over its burst.
func TestConcurrentFirstRequestsOneBucket(t *testing.T) {
	const workers, keys = 8, 20000
	l := mustNew(t, Config{Rate: 1, Per: time.Hour, Burst: 1, MaxKeys: 1 << 18})
	var admitted atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range workers {
		wg.Go(func() {
			<-start
			var k [8]byte
			for i := range keys {
				binary.LittleEndian.PutUint64(k[:], uint64(i))
				if l.Allow(k[:], t0).Allowed {
					admitted.Add(1)
				}
			}
		})
	}
	close(start)
	wg.Wait()
	if got := admitted.Load(); got != keys {
		t.Errorf("admitted %d requests for %d new keys of burst 1, want exactly %d", got, keys, keys)
	}
	// No tag may sit in two slots.
	seen := map[uint64]bool{}
	for i := range l.local.shards {
		s := l.local.shards[i].Load()
		if s == nil {
			continue
		}
		for g := range s.groups {
			for j := range s.groups[g].keys {
				k := s.groups[g].keys[j].Load()
				if k == emptyKey {
					continue
				}
				if seen[k] {
					t.Fatalf("key tag %#x holds two slots", k)
				}
				seen[k] = true
			}
		}
	}
}
