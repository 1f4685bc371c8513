// Package limit implements the edge's rate limits: token buckets keyed by client
// IP, a header, a JWT claim or the route, kept in a bounded lock-free table, and
// optionally shared by several edge replicas through a Store (Redis).
//
// A bucket holds up to Burst tokens and gains Rate tokens per Per; a request takes
// one token or is refused. Buckets run the generic cell rate algorithm (GCRA), so
// a bucket's whole state is one int64, its theoretical arrival time, updated with
// a single compare-and-swap: Allow takes no lock and allocates nothing.
//
// Time is passed in (now time.Time), as in golang.org/x/time/rate's AllowN, so
// tests walk fixed timelines. The limiter measures time as now.Sub of the moment
// New ran, which uses the monotonic clock when now carries one (time.Now does),
// so wall-clock steps never empty or refill buckets.
//
// This package knows nothing of HTTP servers: the caller extracts the key bytes
// (header or claim value, client address) and writes the response headers with
// AppendPolicyHeader, AppendRateLimitHeader and RetryAfterSeconds.
package limit

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"sync/atomic"
	"time"
)

// Defaults of zero-valued Config fields.
const (
	// DefaultMemory is the memory a limit's key table may use when Config.MaxKeys is 0.
	DefaultMemory = 64 << 20
	// DefaultPer is Config.Per's default: rates are per second.
	DefaultPer = time.Second
	// DefaultIPv6Prefix is the prefix IPv6 clients are aggregated to.
	DefaultIPv6Prefix = 64
)

// Header names of draft-ietf-httpapi-ratelimit-headers-11 and RFC 9110 section 10.2.3.
const (
	HeaderPolicy     = "RateLimit-Policy"
	HeaderRateLimit  = "RateLimit"
	HeaderRetryAfter = "Retry-After"
)

// Config describes one named rate limit. Every field but Rate has a usable zero
// value; New rejects a Config whose Rate is not positive, so a forgotten rate is a
// start-up error rather than a limit that admits or refuses everything.
type Config struct {
	// Name names the limit in RateLimit-Policy / RateLimit header fields, in
	// metrics and in shared-store keys; printable ASCII. Empty means "default".
	Name string
	// Rate is the number of tokens a bucket gains per Per; it may be fractional.
	Rate float64
	// Per is the period of Rate; zero means one second.
	Per time.Duration
	// Burst is the bucket capacity: how many requests a full bucket admits at
	// once. Zero means Rate rounded up (one period's worth), at least 1.
	Burst int
	// Key says what a request's bucket is keyed by; the zero value is client_ip.
	// The limiter itself takes key bytes; Key is recorded for the caller.
	Key KeySpec
	// MaxKeys caps the number of buckets kept at once. Zero sizes the table for
	// DefaultMemory. The table never grows past it; see Allow for eviction.
	MaxKeys int
	// IPv6Prefix is the prefix length AllowAddr aggregates IPv6 clients to;
	// zero means 64.
	IPv6Prefix int

	// Store, if set, makes the limit global: shared by every replica using the
	// same store, name and parameters. Nil keeps buckets in this process only.
	Store Store
	// Lease is how many tokens a replica takes from the Store at a time (at most
	// Burst). Zero means Burst/10, at least 1. See Limiter for the overshoot bound.
	Lease int
	// LeaseTTL is how long leased tokens stay spendable; unspent ones go back
	// to the store with the key's next lease request. Zero means one second.
	LeaseTTL time.Duration
	// StoreTimeout bounds each store call, and so the longest a request waits for
	// a lease. Zero means 50ms.
	StoreTimeout time.Duration
	// StoreRetry is how long after a failed store call the limiter stops asking
	// the store, deciding by OnStoreError, before one request probes it again.
	// Zero means one second.
	StoreRetry time.Duration
	// MaxFetches bounds concurrent store calls, so a flood of new keys cannot
	// queue unbounded work; a request that finds no slot is decided by
	// OnStoreError. Zero means 64.
	MaxFetches int
	// OnStoreError decides requests the store cannot: the zero value admits them.
	OnStoreError StoreErrorPolicy
	// StoreErrorHook, if set, is called (from a background goroutine) with every
	// failed store call. Calls are sparse: after a failure, further calls wait
	// StoreRetry. It must not block.
	StoreErrorHook func(err error)
	// StoreRecoverHook, if set, is called when a store call succeeds after a
	// failure, with the time since the first failure. It must not block.
	StoreRecoverHook func(down time.Duration)
}

// Result is the decision on one request and what its response headers report.
// It is three words, returned in registers.
type Result struct {
	// Allowed reports whether the request may proceed.
	Allowed bool
	// Remaining is the number of further requests the bucket would admit now.
	Remaining int
	// Reset is how long until the bucket gains a token back (zero for a full
	// bucket); for a refused request, how long until one would be admitted.
	Reset time.Duration
}

// RetryAfter is how long a refused request should wait; zero if r.Allowed.
func (r Result) RetryAfter() time.Duration {
	if r.Allowed {
		return 0
	}
	return r.Reset
}

// ErrBadConfig is wrapped by New's errors.
var ErrBadConfig = errors.New("limit: bad config")

// Limiter enforces one Config. It is safe for concurrent use; Allow and
// AllowAddr take no locks and, for local limits and leased tokens, allocate
// nothing. A Limiter with a Store owns background goroutines only while a store
// call is in flight; Close waits for them.
//
// Memory is bounded by MaxKeys: when a new key finds its slot group full, it
// takes the slot of a full bucket (exact: a full bucket carries no state), or
// failing that evicts the bucket closest to full, which loses the least state and
// spares the keys that are being limited. Stats counts such lossy evictions.
//
// Global limits (Config.Store set) do not call the store per request: a
// replica leases up to Lease tokens for a key from a GCRA bucket kept in the
// store, spends them locally, and leases again (in the background, before its
// lease runs out) at most once per key at a time. The store never grants more
// than its bucket allows, so while it answers, the replicas together admit at most
//
//	Burst + Rate x elapsed/Per + replicas x Lease
//
// requests for a key in any window: the replicas x Lease term is tokens leased
// earlier (within LeaseTTL) and spent after the store's bucket has refilled, and
// it also bounds the overshoot when the store forgets a bucket (restart, failover,
// eviction). The price is undershoot: tokens leased by a replica the client no
// longer reaches stay unusable until they expire (LeaseTTL) and go back. When the
// store fails, requests for keys without a lease follow OnStoreError.
type Limiter struct {
	name   string
	g      gcra
	local  *table
	hash   keyHasher // value keys
	ipHash keyHasher // client-address keys: a separate domain
	epoch  time.Time
	v6bits int
	policy []byte // `"name";q=burst;w=window`
	quoted []byte // `"name"`
	key    KeySpec

	store *storeState // nil for a local limit
}

// New validates cfg and returns its Limiter.
func New(cfg Config) (*Limiter, error) {
	if cfg.Name == "" {
		cfg.Name = "default"
	}
	for i := 0; i < len(cfg.Name); i++ {
		if c := cfg.Name[i]; c < ' ' || c > '~' {
			return nil, fmt.Errorf("%w: name %q: want printable ASCII", ErrBadConfig, cfg.Name)
		}
	}
	if !(cfg.Rate > 0) || math.IsInf(cfg.Rate, 0) {
		return nil, fmt.Errorf("%w: %s: rate %v: want a positive number", ErrBadConfig, cfg.Name, cfg.Rate)
	}
	if cfg.Per < 0 {
		return nil, fmt.Errorf("%w: %s: per %v: want a positive duration", ErrBadConfig, cfg.Name, cfg.Per)
	}
	if cfg.Per == 0 {
		cfg.Per = DefaultPer
	}
	interval := math.Round(float64(cfg.Per) / cfg.Rate)
	if interval < 1 || interval > float64(math.MaxInt64/4) {
		return nil, fmt.Errorf("%w: %s: rate %v per %v: one token every %vns is out of range", ErrBadConfig, cfg.Name, cfg.Rate, cfg.Per, interval)
	}
	if cfg.Burst < 0 {
		return nil, fmt.Errorf("%w: %s: burst %d: want >= 1", ErrBadConfig, cfg.Name, cfg.Burst)
	}
	if cfg.Burst == 0 {
		cfg.Burst = max(1, int(math.Ceil(cfg.Rate)))
	}
	if float64(cfg.Burst)*interval > float64(math.MaxInt64/4) {
		return nil, fmt.Errorf("%w: %s: burst %d at one token every %v overflows", ErrBadConfig, cfg.Name, cfg.Burst, time.Duration(interval))
	}
	if cfg.MaxKeys < 0 {
		return nil, fmt.Errorf("%w: %s: max_keys %d: want >= 0", ErrBadConfig, cfg.Name, cfg.MaxKeys)
	}
	if cfg.MaxKeys == 0 {
		cfg.MaxKeys = DefaultMemory / slotBytes
	}
	if cfg.IPv6Prefix < 0 || cfg.IPv6Prefix > 128 {
		return nil, fmt.Errorf("%w: %s: ipv6_prefix %d: want 1..128", ErrBadConfig, cfg.Name, cfg.IPv6Prefix)
	}
	if cfg.IPv6Prefix == 0 {
		cfg.IPv6Prefix = DefaultIPv6Prefix
	}
	if p := cfg.Key.problem(); p != "" {
		return nil, fmt.Errorf("%w: %s: key %q: %s", ErrBadConfig, cfg.Name, cfg.Key.String(), p)
	}
	l := &Limiter{
		name:   cfg.Name,
		g:      gcra{interval: int64(interval), burst: int64(cfg.Burst), tau: int64(cfg.Burst) * int64(interval), inverse: math.MaxUint64 / uint64(interval)},
		hash:   newKeyHasher(),
		ipHash: newKeyHasher(),
		epoch:  time.Now(),
		v6bits: cfg.IPv6Prefix,
		key:    cfg.Key,
	}
	l.quoted = appendSFString(nil, cfg.Name)
	l.policy = append([]byte(nil), l.quoted...)
	l.policy = append(l.policy, ";q="...)
	l.policy = strconv.AppendInt(l.policy, l.g.burst, 10)
	l.policy = append(l.policy, ";w="...)
	l.policy = strconv.AppendInt(l.policy, ceilSeconds(l.g.tau), 10)
	if cfg.Store == nil {
		l.local = newTable(cfg.MaxKeys)
		return l, nil
	}
	st, err := newStoreState(l, cfg)
	if err != nil {
		return nil, err
	}
	l.store = st
	return l, nil
}

// Name returns the limit's name.
func (l *Limiter) Name() string { return l.name }

// Lease returns how many tokens a global limit leases from its Store at a
// time (Config.Lease, or its default), or 0 for a local limit.
func (l *Limiter) Lease() int {
	if l.store == nil {
		return 0
	}
	return int(l.store.lease)
}

// Key returns the limit's key spec.
func (l *Limiter) Key() KeySpec { return l.key }

// Burst returns the bucket capacity: the q of RateLimit-Policy.
func (l *Limiter) Burst() int { return int(l.g.burst) }

// Global reports whether the limit is shared through a Store.
func (l *Limiter) Global() bool { return l.store != nil }

// Allow takes a token from the bucket of key (a header or claim value, or the
// route's identifier for KeyRoute) at now and reports the decision. key is not
// retained. For client addresses use AllowAddr.
//
// A local limit's Allow allocates only when key is the first in its 64 KiB
// table shard, at most MaxKeys/4096 times in the Limiter's life. A global
// limit's Allow allocates nothing while the key holds leased tokens; a request
// that needs a lease waits for it at most StoreTimeout.
func (l *Limiter) Allow(key []byte, now time.Time) Result {
	h := l.hash.sum(key)
	n := l.clock(now)
	if l.store != nil {
		return l.store.allow(h, key, domainValue, n, now)
	}
	tat, ok := l.local.allow(&l.g, h, n)
	return l.g.result(tat, n, ok)
}

// AllowAddr takes a token from the bucket of client address ip (aggregated per
// AppendClientIPKey with Config.IPv6Prefix) at now. It is also the fallback for
// requests that lack the limit's header or claim.
func (l *Limiter) AllowAddr(ip netip.Addr, now time.Time) Result {
	var buf [17]byte
	k := AppendClientIPKey(buf[:0], ip, l.v6bits)
	h := l.ipHash.sum(k)
	n := l.clock(now)
	if l.store != nil {
		return l.store.allow(h, k, domainIP, n, now)
	}
	tat, ok := l.local.allow(&l.g, h, n)
	return l.g.result(tat, n, ok)
}

// clock maps now onto the limiter's clock: ns since New, clamped to +-2^62 ns
// (146 years) so that TAT arithmetic cannot overflow.
func (l *Limiter) clock(now time.Time) int64 {
	return min(max(int64(now.Sub(l.epoch)), -maxClock), maxClock)
}

const maxClock = 1 << 62

// Stats is a snapshot of a Limiter's counters, for metrics.
type Stats struct {
	// Keys is the number of buckets held, Capacity the most it can hold, and
	// Bytes the memory its allocated table shards take.
	Keys, Capacity int
	Bytes          int64
	// LossyEvictions counts buckets evicted while not full (their state lost).
	LossyEvictions uint64
	// StoreCalls counts lease calls to the store; StoreErrors the failed ones.
	StoreCalls, StoreErrors uint64
	// StoreFallbacks counts requests decided by OnStoreError (store failing,
	// timing out, or MaxFetches reached).
	StoreFallbacks uint64
	// StoreDown reports whether the store's last call failed.
	StoreDown bool
}

// Stats returns the limiter's counters. It is safe to call concurrently with Allow.
func (l *Limiter) Stats() Stats {
	if l.store != nil {
		return l.store.stats()
	}
	return Stats{
		Keys:           l.local.keys(),
		Capacity:       l.local.capacity(),
		Bytes:          l.local.bytes(),
		LossyEvictions: l.local.lossy.Load(),
	}
}

// Close waits for the limiter's in-flight store calls to finish. A local
// Limiter has nothing to close. The Store itself is the caller's to close.
func (l *Limiter) Close() error {
	if l.store != nil {
		l.store.close()
	}
	return nil
}

// AppendPolicyHeader appends the RateLimit-Policy field value of
// draft-ietf-httpapi-ratelimit-headers-11: `"<name>";q=<burst>;w=<window>`. The
// window is the time, in whole seconds rounded up, a drained bucket takes to
// refill, so q/w is the sustained rate (50/s with burst 100 gives q=100;w=2).
func (l *Limiter) AppendPolicyHeader(dst []byte) []byte { return append(dst, l.policy...) }

// AppendRateLimitHeader appends the RateLimit field value of
// draft-ietf-httpapi-ratelimit-headers-11 for r: `"<name>";r=<remaining>;t=<reset>`,
// with t the seconds (rounded up) until the bucket gains a token back.
func (l *Limiter) AppendRateLimitHeader(dst []byte, r Result) []byte {
	dst = append(dst, l.quoted...)
	dst = append(dst, ";r="...)
	dst = strconv.AppendInt(dst, int64(max(r.Remaining, 0)), 10)
	dst = append(dst, ";t="...)
	return strconv.AppendInt(dst, ceilSeconds(int64(r.Reset)), 10)
}

// RetryAfterSeconds returns the Retry-After delay-seconds (RFC 9110 section
// 10.2.3) for a refused request: RetryAfter rounded up, at least 1. It returns
// 0 for an admitted one.
func RetryAfterSeconds(r Result) int {
	if r.Allowed {
		return 0
	}
	return int(max(ceilSeconds(int64(r.Reset)), 1))
}

func ceilSeconds(ns int64) int64 {
	if ns <= 0 {
		return 0
	}
	return (ns-1)/int64(time.Second) + 1
}

func nsDuration(ns int64) time.Duration { return time.Duration(ns) }

// appendSFString appends s as an RFC 8941 section 3.3.3 sf-string; s is printable ASCII.
func appendSFString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			dst = append(dst, '\\')
		}
		dst = append(dst, s[i])
	}
	return append(dst, '"')
}

// counter is an atomic counter on its own cache line, so hot counters of one
// limiter do not slow each other down.
type counter struct {
	atomic.Uint64
	_ [56]byte
}
