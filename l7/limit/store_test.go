package limit

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// memStore is an in-process Store with the same GCRA arithmetic as the Redis
// script, on a clock the test sets, so lease logic can be walked on a fixed
// timeline. The Redis script itself is tested against a real Redis.
type memStore struct {
	mu      sync.Mutex
	clock   time.Time
	tats    map[string]time.Time
	err     error
	block   chan struct{} // if non-nil, Lease waits for it to close (or ctx)
	calls   []LeaseRequest
	granted int
	waiting atomic.Int32
}

func newMemStore() *memStore { return &memStore{clock: t0, tats: map[string]time.Time{}} }

func (m *memStore) Lease(ctx context.Context, req LeaseRequest) (LeaseResult, error) {
	m.mu.Lock()
	block, err := m.block, m.err
	m.calls = append(m.calls, req)
	m.mu.Unlock()
	if block != nil {
		m.waiting.Add(1)
		select {
		case <-block:
		case <-ctx.Done():
			m.waiting.Add(-1)
			return LeaseResult{}, ctx.Err()
		}
		m.waiting.Add(-1)
	}
	if err != nil {
		return LeaseResult{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now, iv := m.clock, req.Interval
	tau := time.Duration(req.Burst) * iv
	tat, ok := m.tats[req.Key]
	if !ok || tat.Before(now) {
		tat = now
	}
	if req.GiveBack > 0 {
		tat = tat.Add(-time.Duration(req.GiveBack) * iv)
		if tat.Before(now) {
			tat = now
		}
	}
	avail := max(int((tau-tat.Sub(now))/iv), 0)
	granted := min(req.Want, avail)
	tat = tat.Add(time.Duration(granted) * iv)
	m.tats[req.Key] = tat
	m.granted += granted
	var wait time.Duration
	if granted == 0 {
		wait = tat.Add(time.Duration(min(req.Want, req.Burst))*iv - tau).Sub(now)
	}
	return LeaseResult{Granted: granted, Remaining: avail - granted, Wait: wait}, nil
}

func (m *memStore) set(f func(m *memStore)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f(m)
}

func (m *memStore) lastCall() LeaseRequest {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.calls[len(m.calls)-1]
}

func (m *memStore) numCalls() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.calls)
}

func globalConfig(s Store) Config {
	// One token an hour: nothing refills while a test runs, so counts are exact.
	return Config{Name: "g", Rate: 1, Per: time.Hour, Burst: 10, Lease: 3, Store: s, StoreTimeout: 10 * time.Second}
}

// TestLeaseTimeline: one replica admits exactly burst, leasing Lease tokens at
// a time, then refuses locally without asking the store per request.
func TestLeaseTimeline(t *testing.T) {
	m := newMemStore()
	l := mustNew(t, globalConfig(m))
	key := []byte("alice")
	for i := 0; i < 10; i++ {
		if r := l.Allow(key, t0); !r.Allowed {
			t.Fatalf("request %d refused (%+v)", i, r)
		}
	}
	r := l.Allow(key, t0)
	if r.Allowed || r.RetryAfter() <= 0 {
		t.Fatalf("request 11 = %+v, want refused with a RetryAfter", r)
	}
	l.Close()
	calls := m.numCalls()
	for i := 0; i < 100; i++ {
		l.Allow(key, t0.Add(time.Second))
	}
	l.Close()
	if got := m.numCalls(); got != calls {
		t.Errorf("100 refused requests made %d store calls; the store's wait must be honoured locally", got-calls)
	}
	if m.granted != 10 || calls > 6 {
		t.Errorf("store granted %d tokens in %d calls, want 10 in at most ceil(10/3)+2", m.granted, calls)
	}
	for _, c := range m.calls {
		if c.Key != "g:v=alice" || c.Burst != 10 || c.Interval != time.Hour || c.Want < 1 || c.Want > 3 {
			t.Errorf("lease request %+v", c)
		}
	}
	st := l.Stats()
	if st.StoreCalls != uint64(calls) || st.StoreErrors != 0 || st.StoreFallbacks != 0 || st.Keys != 1 {
		t.Errorf("stats %+v", st)
	}
}

// TestLeaseReplicas: two Limiters sharing one store (two edge replicas) admit
// exactly burst in total while the store keeps its state; when the store
// forgets the bucket (restart) with leases outstanding, they admit at most
// burst + replicas x lease.
func TestLeaseReplicas(t *testing.T) {
	m := newMemStore()
	a, b := mustNew(t, globalConfig(m)), mustNew(t, globalConfig(m))
	drain := func(key []byte) (admitted int) {
		for i := 0; i < 100; i++ {
			ra, rb := a.Allow(key, t0), b.Allow(key, t0)
			if !ra.Allowed && !rb.Allowed {
				return admitted
			}
			admitted += btoi(ra.Allowed) + btoi(rb.Allowed)
		}
		t.Fatal("replicas never stopped admitting")
		return 0
	}
	if got := drain([]byte("k1")); got != 10 {
		t.Errorf("two replicas admitted %d, want exactly burst 10", got)
	}

	key := []byte("k2")
	admitted := btoi(a.Allow(key, t0).Allowed) + btoi(b.Allow(key, t0).Allowed)
	a.Close()
	b.Close()
	m.set(func(m *memStore) { clear(m.tats) })
	admitted += drain(key)
	if admitted < 10 || admitted > 10+2*3 {
		t.Errorf("after the store forgot the bucket, replicas admitted %d, want 10..%d (burst + replicas x lease)", admitted, 10+2*3)
	}
	t.Logf("store forgot the bucket: admitted %d (burst 10, bound %d)", admitted, 10+2*3)
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestLeaseExpiry: tokens of an expired lease are not spent; they go back
// with the key's next lease request.
func TestLeaseExpiry(t *testing.T) {
	m := newMemStore()
	cfg := globalConfig(m)
	cfg.Lease, cfg.LeaseTTL = 5, time.Second
	l := mustNew(t, cfg)
	key := []byte("bob")
	if !l.Allow(key, t0).Allowed {
		t.Fatal("first request refused")
	}
	if c := m.lastCall(); c.Want != 5 || c.GiveBack != 0 {
		t.Fatalf("first lease %+v, want Want 5 GiveBack 0", c)
	}
	if !l.Allow(key, t0.Add(2*time.Second)).Allowed {
		t.Fatal("request after expiry refused")
	}
	if c := m.lastCall(); c.Want != 5 || c.GiveBack != 4 {
		t.Fatalf("lease after expiry %+v, want Want 5 GiveBack 4", c)
	}
	if m.numCalls() != 2 || m.granted != 10 {
		t.Errorf("%d calls granted %d, want 2 calls granting 10 (4 of them given back)", m.numCalls(), m.granted)
	}
}

// TestStoreErrorPolicies walks a store outage on a timeline for each policy:
// requests without a lease follow the policy, the store is not asked again until
// StoreRetry has passed, the hooks fire, and the limit recovers with the store.
func TestStoreErrorPolicies(t *testing.T) {
	for _, tc := range []struct {
		policy StoreErrorPolicy
		want   []bool // three requests of a new key during the outage
	}{
		{StoreErrorAllow, []bool{true, true, true}},
		{StoreErrorDeny, []bool{false, false, false}},
		{StoreErrorLocal, []bool{true, true, false}},
	} {
		t.Run(tc.policy.String(), func(t *testing.T) {
			m := newMemStore()
			var hookErrs []error
			var recovered []time.Duration
			var hookMu sync.Mutex
			cfg := globalConfig(m)
			cfg.Burst, cfg.Lease = 2, 1
			cfg.OnStoreError = tc.policy
			cfg.StoreRetry = time.Second
			cfg.StoreErrorHook = func(err error) { hookMu.Lock(); hookErrs = append(hookErrs, err); hookMu.Unlock() }
			cfg.StoreRecoverHook = func(d time.Duration) { hookMu.Lock(); recovered = append(recovered, d); hookMu.Unlock() }
			l := mustNew(t, cfg)

			m.set(func(m *memStore) { m.err = errors.New("connection refused") })
			for i, want := range tc.want {
				r := l.Allow([]byte("carol"), t0.Add(time.Duration(i)*time.Millisecond))
				if r.Allowed != want {
					t.Errorf("outage request %d: allowed=%v, want %v", i, r.Allowed, want)
				}
				if !r.Allowed && RetryAfterSeconds(r) < 1 {
					t.Errorf("outage request %d refused without Retry-After: %+v", i, r)
				}
			}
			st := l.Stats()
			if st.StoreCalls != 1 || st.StoreErrors != 1 || st.StoreFallbacks != 3 || !st.StoreDown {
				t.Errorf("stats during outage %+v, want 1 call, 1 error, 3 fallbacks, down", st)
			}
			hookMu.Lock()
			if len(hookErrs) != 1 || hookErrs[0].Error() != `limit: g: lease "g:v=carol": connection refused` {
				t.Errorf("error hook got %v", hookErrs)
			}
			hookMu.Unlock()

			m.set(func(m *memStore) { m.err = nil })
			// Still inside StoreRetry: the store is not asked.
			l.Allow([]byte("carol"), t0.Add(500*time.Millisecond))
			if got := l.Stats().StoreCalls; got != 1 {
				t.Errorf("store asked %d times within StoreRetry, want 1", got)
			}
			// After StoreRetry, one request probes, succeeds and the limit holds again.
			later := t0.Add(2 * time.Second)
			for i := 0; i < 2; i++ {
				if r := l.Allow([]byte("carol"), later); !r.Allowed {
					t.Fatalf("after recovery request %d refused: %+v", i, r)
				}
			}
			if r := l.Allow([]byte("carol"), later); r.Allowed {
				t.Errorf("after recovery the third request was admitted: burst is 2")
			}
			l.Close()
			st = l.Stats()
			hookMu.Lock()
			defer hookMu.Unlock()
			if st.StoreDown || len(recovered) != 1 || recovered[0] != 2*time.Second {
				t.Errorf("after recovery: stats %+v, recover hook %v (want one call with 2s)", st, recovered)
			}
		})
	}
}

// TestSlowStore: a store slower than StoreTimeout delays a request by at most
// StoreTimeout; the request follows the policy and the store counts as down.
func TestSlowStore(t *testing.T) {
	m := newMemStore()
	m.block = make(chan struct{})
	defer close(m.block)
	cfg := globalConfig(m)
	cfg.StoreTimeout = 20 * time.Millisecond
	cfg.OnStoreError = StoreErrorDeny
	l := mustNew(t, cfg)
	if r := l.Allow([]byte("dave"), t0); r.Allowed {
		t.Errorf("request admitted though the store never answered and policy is deny")
	}
	l.Close()
	if st := l.Stats(); st.StoreErrors != 1 || !st.StoreDown || st.StoreFallbacks != 1 {
		t.Errorf("stats %+v, want one error, down, one fallback", st)
	}
}

// TestMaxFetches: with MaxFetches calls in flight, a request for another new
// key does not queue: it follows the policy at once.
func TestMaxFetches(t *testing.T) {
	m := newMemStore()
	m.block = make(chan struct{})
	cfg := globalConfig(m)
	cfg.MaxFetches = 2
	cfg.OnStoreError = StoreErrorDeny
	l := mustNew(t, cfg)
	var wg sync.WaitGroup
	results := make([]bool, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = l.Allow(fmt.Appendf(nil, "waiting-%d", i), t0).Allowed
		}()
	}
	for i := 0; m.waiting.Load() < 2; i++ {
		if i > 10000 {
			t.Fatal("lease calls never reached the store")
		}
		time.Sleep(time.Millisecond)
	}
	if r := l.Allow([]byte("third"), t0); r.Allowed {
		t.Errorf("third key admitted; policy deny")
	}
	if st := l.Stats(); st.StoreFallbacks != 1 {
		t.Errorf("fallbacks %d, want 1", st.StoreFallbacks)
	}
	close(m.block)
	wg.Wait()
	if !results[0] || !results[1] {
		t.Errorf("waiting requests got %v, want both admitted once the store answered", results)
	}
}

// TestGlobalKeysBounded: the lease table honours MaxKeys too.
func TestGlobalKeysBounded(t *testing.T) {
	m := newMemStore()
	cfg := globalConfig(m)
	cfg.MaxKeys = 64
	l := mustNew(t, cfg)
	var k [4]byte
	for i := 0; i < 3000; i++ {
		k[0], k[1] = byte(i), byte(i>>8)
		if !l.Allow(k[:], t0).Allowed {
			t.Fatalf("key %d refused on its first request", i)
		}
	}
	if st := l.Stats(); st.Keys > st.Capacity || st.Capacity > 64 {
		t.Errorf("stats %+v: over the cap of 64", st)
	}
}

func TestLeaseReportsTheEffectiveLease(t *testing.T) {
	if got := mustNew(t, Config{Rate: 10, Burst: 100}).Lease(); got != 0 {
		t.Errorf("local limit: Lease() = %d, want 0", got)
	}
	if got := mustNew(t, Config{Name: "g", Rate: 10, Burst: 100, Store: newMemStore()}).Lease(); got != 10 {
		t.Errorf("global limit, lease unset: Lease() = %d, want burst/10 = 10", got)
	}
	if got := mustNew(t, Config{Name: "g", Rate: 10, Burst: 5, Store: newMemStore()}).Lease(); got != 1 {
		t.Errorf("global limit, burst 5: Lease() = %d, want at least 1", got)
	}
	if got := mustNew(t, Config{Name: "g", Rate: 10, Burst: 100, Lease: 7, Store: newMemStore()}).Lease(); got != 7 {
		t.Errorf("global limit, lease 7: Lease() = %d", got)
	}
}
