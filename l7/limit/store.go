package limit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// Store keeps the buckets of global limits, shared by every edge replica that
// uses it. RedisStore is the implementation; tests may provide others.
//
// A Store must be safe for concurrent use and must honour ctx's deadline.
type Store interface {
	// Lease first returns req.GiveBack unspent tokens to bucket req.Key, then
	// takes up to req.Want tokens from it and reports how many it granted. The
	// bucket is a GCRA bucket of capacity req.Burst gaining one token per
	// req.Interval, created full on first use.
	Lease(ctx context.Context, req LeaseRequest) (LeaseResult, error)
}

// LeaseRequest is one call of Store.Lease.
type LeaseRequest struct {
	// Key names the bucket; it is unique per limit name and request key.
	Key      string
	Interval time.Duration
	Burst    int
	// Want is 1..Burst; GiveBack is >= 0.
	Want, GiveBack int
}

// LeaseResult is the answer to a LeaseRequest.
type LeaseResult struct {
	// Granted is 0..Want tokens now owned by the caller.
	Granted int
	// Remaining is the tokens left in the bucket after the grant.
	Remaining int
	// Wait is, when Granted is 0, how long until Want tokens are available.
	Wait time.Duration
}

// StoreErrorPolicy decides requests that need a lease the Store cannot give
// (unreachable, slow, or too many calls in flight). The zero value is
// StoreErrorAllow.
type StoreErrorPolicy uint8

const (
	// StoreErrorAllow admits them (fail open: availability over the limit).
	StoreErrorAllow StoreErrorPolicy = iota
	// StoreErrorDeny refuses them (fail closed).
	StoreErrorDeny
	// StoreErrorLocal enforces the limit per replica with local buckets, so
	// the replicas together admit at most replicas x the limit.
	StoreErrorLocal
)

// ParseStoreErrorPolicy parses an `on_store_error` setting: allow, deny or local.
func ParseStoreErrorPolicy(s string) (StoreErrorPolicy, error) {
	switch s {
	case "allow", "":
		return StoreErrorAllow, nil
	case "deny":
		return StoreErrorDeny, nil
	case "local":
		return StoreErrorLocal, nil
	}
	return 0, fmt.Errorf("%w: on_store_error %q: want allow, deny or local", ErrBadConfig, s)
}

// String returns the policy in ParseStoreErrorPolicy's syntax.
func (p StoreErrorPolicy) String() string {
	switch p {
	case StoreErrorAllow:
		return "allow"
	case StoreErrorDeny:
		return "deny"
	case StoreErrorLocal:
		return "local"
	}
	return fmt.Sprintf("StoreErrorPolicy(%d)", p)
}

const (
	domainValue = 'v'
	domainIP    = 'i'
	// rawKeyMax is the longest request key used verbatim in a store key;
	// longer ones are replaced by their SHA-256, so a 16 KiB header value
	// costs the store 32 bytes, not 16 KiB.
	rawKeyMax   = 64
	leaseLocked = math.MinInt64
)

// leaseSlot is a global limit's local view of one key. tokens doubles as the
// slot's lock word: writers that change more than tokens swap it to leaseLocked.
type leaseSlot struct {
	tokens   atomic.Int64 // leased tokens left to spend
	expires  atomic.Int64 // clock ns after which they are stale
	retryAt  atomic.Int64 // clock ns before which the store has nothing for this key
	remain   atomic.Int64 // the store's remaining tokens after our last lease
	giveBack atomic.Int64 // expired tokens to return with the next lease
	fetching atomic.Int64 // 1 while a lease call for this key is in flight
}

type leaseGroup struct {
	keys  [groupSlots]atomic.Uint64
	slots [groupSlots]leaseSlot
}

type leaseShard struct {
	groups []leaseGroup
	used   atomic.Int64
}

// leaseTable is the bounded, lazily allocated table of leaseSlots; it follows
// table's layout and locking (see table.go).
type leaseTable struct {
	shards    []atomic.Pointer[leaseShard]
	groupsPer uint32
	lossy     atomic.Uint64
}

var leaseSlotBytes = int(unsafe.Sizeof(leaseGroup{})) / groupSlots

func newLeaseTable(maxKeys int) *leaseTable {
	groups := max(maxKeys/groupSlots, 1)
	per := min(groups, groupsPerShard)
	return &leaseTable{shards: make([]atomic.Pointer[leaseShard], groups/per), groupsPer: uint32(per)}
}

func (t *leaseTable) group(h uint64) (*leaseGroup, *leaseShard) {
	p := &t.shards[fastrange(uint32(h), uint32(len(t.shards)))]
	s := p.Load()
	if s == nil {
		s = &leaseShard{groups: make([]leaseGroup, t.groupsPer)}
		if !p.CompareAndSwap(nil, s) {
			s = p.Load()
		}
	}
	return &s.groups[fastrange(uint32(h>>32), t.groupsPer)], s
}

// find returns the slot of tag in grp, claiming one if the key is new.
func (t *leaseTable) find(grp *leaseGroup, sh *leaseShard, tag uint64, now int64) int {
	for {
		for i := range grp.keys {
			if grp.keys[i].Load() == tag {
				return i
			}
		}
		if i, ok := t.claim(grp, sh, tag, now); ok {
			return i
		}
	}
}

// claim takes an empty slot, or one that holds nothing worth keeping (no
// tokens, no call in flight, no pending refusal), or else the one whose lease is
// oldest. Evicting a global key is always safe: the store stays authoritative,
// so at worst leased tokens lapse and the key costs one more store call.
func (t *leaseTable) claim(grp *leaseGroup, sh *leaseShard, tag uint64, now int64) (int, bool) {
	victim, vtok, vkey, vexp := -1, int64(0), uint64(0), int64(math.MaxInt64)
	for i := range grp.slots {
		s := &grp.slots[i]
		tok := s.tokens.Load()
		if tok == leaseLocked {
			continue
		}
		k := grp.keys[i].Load()
		if k == emptyKey || (tok == 0 && s.fetching.Load() == 0 && s.retryAt.Load() <= now) {
			victim, vtok, vkey = i, tok, k
			break
		}
		if e := s.expires.Load(); e < vexp {
			victim, vtok, vkey, vexp = i, tok, k, e
		}
	}
	if victim < 0 {
		runtime.Gosched()
		return 0, false
	}
	s := &grp.slots[victim]
	if !s.tokens.CompareAndSwap(vtok, leaseLocked) {
		return 0, false
	}
	for i := range grp.keys {
		if i != victim && grp.keys[i].Load() == tag {
			s.tokens.Store(vtok)
			return 0, false
		}
	}
	if grp.keys[victim].Load() != vkey {
		s.tokens.Store(vtok)
		return 0, false
	}
	switch {
	case vkey == emptyKey:
		sh.used.Add(1)
	case vtok > 0:
		t.lossy.Add(1)
	}
	grp.keys[victim].Store(tag)
	s.expires.Store(math.MinInt64)
	s.retryAt.Store(math.MinInt64)
	s.remain.Store(0)
	s.giveBack.Store(0)
	s.fetching.Store(0)
	s.tokens.Store(0)
	return victim, true
}

// lock locks slot i of grp if it still belongs to tag, returning its tokens.
// The caller unlocks by storing the tokens back.
func lockSlot(grp *leaseGroup, i int, tag uint64) (int64, bool) {
	s := &grp.slots[i].tokens
	for {
		t := s.Load()
		if t == leaseLocked {
			runtime.Gosched()
			continue
		}
		if !s.CompareAndSwap(t, leaseLocked) {
			continue
		}
		if grp.keys[i].Load() != tag {
			s.Store(t)
			return 0, false
		}
		return t, true
	}
}

func (t *leaseTable) capacity() int { return len(t.shards) * int(t.groupsPer) * groupSlots }

func (t *leaseTable) keys() int {
	n := int64(0)
	for i := range t.shards {
		if s := t.shards[i].Load(); s != nil {
			n += s.used.Load()
		}
	}
	return int(n)
}

func (t *leaseTable) bytes() int64 {
	n := int64(len(t.shards)) * int64(unsafe.Sizeof(atomic.Pointer[leaseShard]{}))
	for i := range t.shards {
		if t.shards[i].Load() != nil {
			n += int64(t.groupsPer)*int64(unsafe.Sizeof(leaseGroup{})) + int64(unsafe.Sizeof(leaseShard{}))
		}
	}
	return n
}

// storeState is the global half of a Limiter.
type storeState struct {
	l        *Limiter
	store    Store
	t        *leaseTable
	local    *table // per-replica buckets for StoreErrorLocal
	policy   StoreErrorPolicy
	lease    int64 // tokens per lease
	low      int64 // lease again when a spend leaves this many or fewer
	ttl      int64 // ns
	timeout  time.Duration
	retry    int64 // ns
	maxCalls int
	errHook  func(error)
	recHook  func(time.Duration)

	down      atomic.Bool
	nextProbe atomic.Int64 // clock ns from which one request may probe a down store

	mu        sync.Mutex
	inflight  map[uint64]*leaseCall
	downSince time.Time
	wg        sync.WaitGroup

	calls, errors, fallbacks counter
}

// leaseCall is one Store.Lease in flight; done is closed when its result is in the slot.
type leaseCall struct{ done chan struct{} }

func newStoreState(l *Limiter, cfg Config) (*storeState, error) {
	s := &storeState{
		l:        l,
		store:    cfg.Store,
		policy:   cfg.OnStoreError,
		lease:    int64(cfg.Lease),
		ttl:      int64(cfg.LeaseTTL),
		timeout:  cfg.StoreTimeout,
		retry:    int64(cfg.StoreRetry),
		maxCalls: cfg.MaxFetches,
		errHook:  cfg.StoreErrorHook,
		recHook:  cfg.StoreRecoverHook,
		inflight: make(map[uint64]*leaseCall),
	}
	switch {
	case s.lease < 0 || s.lease > l.g.burst:
		return nil, fmt.Errorf("%w: %s: lease %d: want 1..burst (%d)", ErrBadConfig, l.name, s.lease, l.g.burst)
	case s.lease == 0:
		s.lease = max(1, l.g.burst/10)
	}
	if l.g.interval < int64(time.Microsecond) {
		return nil, fmt.Errorf("%w: %s: one token every %v: a global limit needs at least 1µs", ErrBadConfig, l.name, nsDuration(l.g.interval))
	}
	if s.policy > StoreErrorLocal {
		return nil, fmt.Errorf("%w: %s: on_store_error %v", ErrBadConfig, l.name, s.policy)
	}
	if s.ttl < 0 || s.timeout < 0 || s.retry < 0 || s.maxCalls < 0 {
		return nil, fmt.Errorf("%w: %s: negative lease_ttl, store timeout, retry or max fetches", ErrBadConfig, l.name)
	}
	if s.ttl == 0 {
		s.ttl = int64(time.Second)
	}
	if s.timeout == 0 {
		s.timeout = 50 * time.Millisecond
	}
	if s.retry == 0 {
		s.retry = int64(time.Second)
	}
	if s.maxCalls == 0 {
		s.maxCalls = 64
	}
	s.low = s.lease / 2
	s.t = newLeaseTable(max(cfg.MaxKeys*slotBytes/leaseSlotBytes, groupSlots))
	if s.policy == StoreErrorLocal {
		s.local = newTable(cfg.MaxKeys)
	}
	return s, nil
}

type takeState uint8

const (
	took takeState = iota
	refused
	needLease
	moved
)

// take spends one leased token of slot i if it can, without locking.
func (s *storeState) take(grp *leaseGroup, i int, tag uint64, now int64) (Result, int64, takeState) {
	sl := &grp.slots[i]
	for {
		t := sl.tokens.Load()
		if t == leaseLocked {
			runtime.Gosched()
			continue
		}
		if grp.keys[i].Load() != tag {
			return Result{}, 0, moved
		}
		if t > 0 {
			if now < sl.expires.Load() {
				if sl.tokens.CompareAndSwap(t, t-1) {
					return s.allowed(t-1, sl.remain.Load()), t - 1, took
				}
				continue
			}
			// The lease expired: its tokens go back with the next lease call.
			if t, ok := lockSlot(grp, i, tag); ok {
				sl.giveBack.Add(t)
				sl.tokens.Store(0)
			}
			continue
		}
		if at := sl.retryAt.Load(); now < at {
			return Result{Reset: nsDuration(at - now)}, 0, refused
		}
		return Result{}, 0, needLease
	}
}

func (s *storeState) allowed(left, remain int64) Result {
	r := Result{Allowed: true, Remaining: int(min(left+max(remain, 0), s.l.g.burst))}
	if int64(r.Remaining) < s.l.g.burst {
		// Once not full, a GCRA bucket gains a token within one interval.
		r.Reset = nsDuration(s.l.g.interval)
	}
	return r
}

// allow decides one request of a global limit. h is the key's local hash,
// key and domain its bytes for the store, n and now the same instant.
func (s *storeState) allow(h uint64, key []byte, domain byte, n int64, now time.Time) Result {
	tag := keyTag(h)
	grp, sh := s.t.group(h)
	i := s.t.find(grp, sh, tag, n)
	// A request without a lease waits for one, at most StoreTimeout in all. It
	// may take several calls: under contention other requests of this replica
	// can spend a lease before the waiter gets to it.
	var timer *time.Timer
	for attempt := 0; ; attempt++ {
		r, left, st := s.take(grp, i, tag, n)
		switch st {
		case took:
			if left <= s.low {
				sl := &grp.slots[i]
				if sl.fetching.Load() == 0 && n >= sl.retryAt.Load() {
					s.startLease(grp, i, tag, key, domain, n, now)
				}
			}
			return r
		case refused:
			return r
		case moved:
			i = s.t.find(grp, sh, tag, n)
			continue
		}
		var c *leaseCall
		if attempt < maxLeaseAttempts {
			c = s.startLease(grp, i, tag, key, domain, n, now)
		}
		if c == nil {
			return s.fallback(h, n)
		}
		if c.done == nil {
			continue
		}
		if timer == nil {
			timer = time.NewTimer(s.timeout)
			defer timer.Stop()
		}
		select {
		case <-c.done:
		case <-timer.C:
			return s.fallback(h, n)
		}
	}
}

// maxLeaseAttempts bounds how often one request joins or starts a lease call.
const maxLeaseAttempts = 64

// doneCall stands for a lease call that finished before a request could join it.
var doneCall = &leaseCall{}

// startLease starts a lease call for slot i (or joins the one in flight) and
// returns it, or nil when the store is down or MaxFetches calls are in flight.
func (s *storeState) startLease(grp *leaseGroup, i int, tag uint64, key []byte, domain byte, n int64, now time.Time) *leaseCall {
	sl := &grp.slots[i]
	if !sl.fetching.CompareAndSwap(0, 1) {
		s.mu.Lock()
		c := s.inflight[tag]
		s.mu.Unlock()
		if c == nil {
			return doneCall
		}
		return c
	}
	if !s.usable(n) {
		sl.fetching.Store(0)
		return nil
	}
	s.mu.Lock()
	if len(s.inflight) >= s.maxCalls {
		s.mu.Unlock()
		sl.fetching.Store(0)
		return nil
	}
	c := &leaseCall{done: make(chan struct{})}
	s.inflight[tag] = c
	s.wg.Add(1)
	s.mu.Unlock()

	t, ok := lockSlot(grp, i, tag)
	if !ok {
		s.endCall(tag, c)
		return doneCall
	}
	back := sl.giveBack.Swap(0)
	sl.tokens.Store(t)
	req := LeaseRequest{
		Key:      s.storeKey(key, domain),
		Interval: nsDuration(s.l.g.interval),
		Burst:    int(s.l.g.burst),
		Want:     int(max(s.lease-t, 1)),
		GiveBack: int(back),
	}
	go s.lease1(grp, i, tag, req, n, now, c)
	return c
}

func (s *storeState) lease1(grp *leaseGroup, i int, tag uint64, req LeaseRequest, n int64, now time.Time, c *leaseCall) {
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	res, err := s.store.Lease(ctx, req)
	cancel()
	s.calls.Add(1)
	if err != nil {
		s.errors.Add(1)
		s.markDown(n, now, fmt.Errorf("limit: %s: lease %q: %w", s.l.name, req.Key, err))
	} else {
		s.markUp(now)
	}
	sl := &grp.slots[i]
	if t, ok := lockSlot(grp, i, tag); ok {
		if err == nil {
			granted := int64(min(max(res.Granted, 0), req.Want))
			sl.remain.Store(int64(res.Remaining))
			if granted > 0 {
				t += granted
				sl.expires.Store(n + s.ttl)
			} else {
				wait := max(int64(res.Wait), s.l.g.interval/2, 1)
				sl.retryAt.Store(n + wait)
			}
		}
		// On error the tokens we tried to give back are dropped: the store may
		// or may not have taken them, and dropping can only undershoot.
		sl.fetching.Store(0)
		sl.tokens.Store(t)
	}
	s.endCall(tag, c)
}

func (s *storeState) endCall(tag uint64, c *leaseCall) {
	s.mu.Lock()
	if s.inflight[tag] == c {
		delete(s.inflight, tag)
	}
	s.mu.Unlock()
	close(c.done)
	s.wg.Done()
}

// usable reports whether a store call may be made at n: always while the store
// is up; once per StoreRetry while it is down (that call is the probe).
func (s *storeState) usable(n int64) bool {
	if !s.down.Load() {
		return true
	}
	p := s.nextProbe.Load()
	return n >= p && s.nextProbe.CompareAndSwap(p, n+s.retry)
}

func (s *storeState) markDown(n int64, now time.Time, err error) {
	s.nextProbe.Store(n + s.retry)
	if !s.down.Load() {
		s.mu.Lock()
		if !s.down.Load() {
			s.downSince = now
			s.down.Store(true)
		}
		s.mu.Unlock()
	}
	if s.errHook != nil {
		s.errHook(err)
	}
}

func (s *storeState) markUp(now time.Time) {
	if !s.down.Load() {
		return
	}
	s.mu.Lock()
	was := s.down.Swap(false)
	since := s.downSince
	s.mu.Unlock()
	if was && s.recHook != nil {
		s.recHook(now.Sub(since))
	}
}

func (s *storeState) fallback(h uint64, n int64) Result {
	s.fallbacks.Add(1)
	switch s.policy {
	case StoreErrorDeny:
		return Result{Reset: nsDuration(s.retry)}
	case StoreErrorLocal:
		tat, ok := s.local.allow(&s.l.g, h, n)
		return s.l.g.result(tat, n, ok)
	}
	return Result{Allowed: true, Reset: nsDuration(s.l.g.interval)}
}

// storeKey names key's bucket in the store: "<limit>:<domain>=<key>", or
// "<limit>:<domain>#<hex sha256>" for keys longer than rawKeyMax. Replicas
// agree on it because it depends on nothing process-local.
func (s *storeState) storeKey(key []byte, domain byte) string {
	b := make([]byte, 0, len(s.l.name)+3+max(len(key), 2*sha256.Size))
	b = append(b, s.l.name...)
	b = append(b, ':', domain)
	if len(key) <= rawKeyMax {
		b = append(b, '=')
		b = append(b, key...)
	} else {
		sum := sha256.Sum256(key)
		b = append(b, '#')
		b = hex.AppendEncode(b, sum[:])
	}
	return string(b)
}

func (s *storeState) stats() Stats {
	st := Stats{
		Keys:           s.t.keys(),
		Capacity:       s.t.capacity(),
		Bytes:          s.t.bytes(),
		LossyEvictions: s.t.lossy.Load(),
		StoreCalls:     s.calls.Load(),
		StoreErrors:    s.errors.Load(),
		StoreFallbacks: s.fallbacks.Load(),
		StoreDown:      s.down.Load(),
	}
	if s.local != nil {
		st.Bytes += s.local.bytes()
		st.LossyEvictions += s.local.lossy.Load()
	}
	return st
}

func (s *storeState) close() { s.wg.Wait() }
