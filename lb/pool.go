package lb

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// Errors Pick returns. They are plain sentinels (no pool name) so that failing picks do not allocate.
var (
	// ErrNoHealthy means no endpoint is in rotation and the pool does not fail open (503 no_healthy_upstream).
	ErrNoHealthy = errors.New("lb: no healthy endpoint")
	// ErrOverloaded means a circuit breaker is open: MaxPending is reached, or every endpoint
	// that could take the request is at MaxConnsPerEndpoint (answer 503 at once).
	ErrOverloaded = errors.New("lb: pool overloaded")
)

// Outcome is what became of a request sent to an endpoint, as reported to Pool.Done.
type Outcome uint8

// The outcomes. Every one but Success and Canceled counts toward passive outlier ejection.
const (
	// Success: the endpoint answered with anything but a server failure.
	Success Outcome = iota
	// ConnectFailure: the connection could not be made (refused, unreachable, dial timeout),
	// or broke before the request was written. Retrying it elsewhere is always safe.
	ConnectFailure
	// Failure5xx: the endpoint answered with a 5xx status the caller counts as a failure.
	Failure5xx
	// Timeout: no response within the response timeout.
	Timeout
	// Reset: the connection broke after the request was written.
	Reset
	// Canceled: the client went away; the outcome says nothing about the endpoint.
	Canceled
)

// String returns the outcome's name.
func (o Outcome) String() string {
	switch o {
	case Success:
		return "success"
	case ConnectFailure:
		return "connect_failure"
	case Failure5xx:
		return "5xx"
	case Timeout:
		return "timeout"
	case Reset:
		return "reset"
	case Canceled:
		return "canceled"
	}
	return "unknown"
}

// EventKind is the kind of a health transition reported through Config.OnEvent.
type EventKind uint8

// The health transitions.
const (
	EventHealthy   EventKind = iota // active checks brought an endpoint back (Rise passes)
	EventUnhealthy                  // active checks took an endpoint out (Fall failures)
	EventEjected                    // passive outlier detection ejected an endpoint until Event.Until
	EventReturned                   // an ejection ended
	EventPanic                      // too few healthy endpoints: the pool now balances over all of them
	EventPanicOver                  // enough endpoints are healthy again
)

// String returns the kind's name, suitable for a log field.
func (k EventKind) String() string {
	switch k {
	case EventHealthy:
		return "healthy"
	case EventUnhealthy:
		return "unhealthy"
	case EventEjected:
		return "ejected"
	case EventReturned:
		return "returned"
	case EventPanic:
		return "panic"
	case EventPanicOver:
		return "panic_over"
	}
	return "unknown"
}

// Event is one health transition of a pool.
type Event struct {
	Pool     string
	Kind     EventKind
	Endpoint *Endpoint // nil for EventPanic and EventPanicOver
	Time     time.Time // the now of the call that caused it
	Until    time.Time // for EventEjected: when the ejection ends
}

// Tried records the endpoints a request has already been sent to, so that Pick sends a retry
// elsewhere. The zero value means nothing tried; it is a small value type, cheap to keep on
// the stack. Endpoints are tracked by Index modulo 64: in pools larger than 64 a retry may
// also avoid an endpoint whose index aliases a tried one. A Tried belongs to one request and
// is not safe for concurrent use.
type Tried struct {
	mask uint64
	n    uint32
}

// Has reports whether e was picked for this request.
func (t *Tried) Has(e *Endpoint) bool { return t.has(e.Index) }

// Attempts returns how many endpoints Pick has returned for this request. Before a retry,
// callers check Attempts() <= Pool.Retries() and Pool.AllowRetry().
func (t *Tried) Attempts() int { return int(t.n) }

func (t *Tried) has(i int) bool { return t != nil && t.mask&(1<<(uint(i)&63)) != 0 }

func (t *Tried) add(i int) {
	t.mask |= 1 << (uint(i) & 63)
	t.n++
}

// skip records why candidates were passed over.
type skip uint8

const (
	skipTried skip = 1 << iota // already tried by this request
	skipDown                   // unhealthy or ejected
	skipFull                   // at MaxConnsPerEndpoint
	skipBusy                   // above the bounded-load capacity
)

type policy uint8

const (
	polRoundRobin policy = iota
	polLeastRequest
	polRandom
	polConsistentHash
)

const (
	retryUnit  = 1000           // retry tokens are kept in thousandths of a retry
	retryBurst = 10 * retryUnit // budget banked while traffic is clean
	maxOrder   = 1 << 14        // longest round-robin order; larger weight sums are scaled down
	minRamp    = 0.1            // slow start begins at this fraction of the weight
)

// sequence is an immutable snapshot of the weights in rotation, swapped atomically.
type sequence struct {
	order  []int32 // smooth weighted round-robin order of endpoint indexes; also a weighted sample space
	weight []int64 // effective weight per endpoint; 0 = out of rotation
}

// pad keeps counters that every request writes on cache lines of their own.
type pad [64]byte

// Pool is a set of endpoints with a balancing policy, health state, circuit breakers and a
// retry budget. All methods are safe for concurrent use. Pick and Done are the request path:
// they never block and never allocate. Health transitions (RecordCheck, Tick, and ejections
// triggered by Done) take a mutex and publish new immutable snapshots.
//
// A reload builds a new Pool with the old one as prev, Starts it, then Closes the old one;
// requests already picked from the old pool report to the old pool's Done.
type Pool struct {
	name   string
	cfg    Config // normalized by withDefaults; read-only
	eps    []*Endpoint
	policy policy
	table  []uint16 // consistent_hash: Maglev slot -> endpoint index

	maxConns     int64
	maxPending   int64
	factor       float64
	trackPending bool // pending is counted (MaxPending or bounded loads)
	failOpen     bool // PanicThreshold >= 0
	retryOn      bool
	retryFree    bool // no retry budget
	retryDeposit int64

	seq       atomic.Pointer[sequence]
	avail     atomic.Int64 // endpoints Pick may use (all of them while panicking)
	healthy   atomic.Int64 // endpoints in rotation on their own health
	panicking atomic.Bool

	_           pad
	rr          atomic.Uint64
	_           pad
	pending     atomic.Int64
	_           pad
	retryTokens atomic.Int64
	_           pad

	mu      sync.Mutex // serializes health transitions and snapshot rebuilds
	lastNow time.Time  // guarded by mu: the latest now seen by a transition

	life    sync.Mutex // guards started, closed, cancel, done
	started bool
	closed  bool
	cancel  context.CancelFunc
	done    chan struct{}
}

// NewPool validates cfg and builds a pool named name. If prev is not nil, each endpoint whose
// Name and Addr both match an endpoint of prev shares that endpoint's state (health, ejection
// backoff, in-flight count); an endpoint whose address changed starts fresh, since the old
// address's health says nothing about the new one. If cfg disables active checks, what they
// said is forgotten. With SlowStart, endpoints new to the pool ramp up from the first Tick.
// The pool does no background work until Start.
func NewPool(name string, cfg Config, prev *Pool) (*Pool, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := cfg.withDefaults()
	p := &Pool{
		name:         name,
		cfg:          c,
		eps:          make([]*Endpoint, len(c.Endpoints)),
		maxConns:     int64(c.MaxConnsPerEndpoint),
		maxPending:   int64(c.MaxPending),
		failOpen:     c.PanicThreshold >= 0,
		retryOn:      c.Retries > 0,
		retryFree:    c.RetryBudget < 0,
		retryDeposit: int64(math.Round(c.RetryBudget * retryUnit)),
	}
	switch c.Balance {
	case LeastRequest:
		p.policy = polLeastRequest
	case Random:
		p.policy = polRandom
	case ConsistentHash:
		p.policy = polConsistentHash
		p.factor = c.HashBalanceFactor
	}
	p.trackPending = p.maxPending > 0 || p.factor > 0
	p.retryTokens.Store(retryBurst)

	var old map[string]*Endpoint
	if prev != nil {
		old = make(map[string]*Endpoint, len(prev.eps))
		for _, e := range prev.eps {
			old[e.Name] = e
		}
		prev.mu.Lock()
		p.lastNow = prev.lastNow
		prev.mu.Unlock()
	}
	names := make([]string, len(c.Endpoints))
	weights := make([]int, len(c.Endpoints))
	for i, ec := range c.Endpoints {
		e := &Endpoint{Name: ec.Name, Addr: ec.Addr, Weight: ec.Weight, Index: i}
		if o := old[ec.Name]; o != nil && o.Addr == ec.Addr {
			e.s = o.s
			if !c.HealthCheck.Enabled() {
				// Nothing would ever check it again: forget what active checks said.
				e.s.mu.Lock()
				e.s.flags.And(^flagUnhealthy)
				e.s.checked, e.s.passes, e.s.fails = false, 0, 0
				e.s.mu.Unlock()
			}
		} else {
			e.s = &state{rampPending: prev != nil && c.SlowStart > 0}
		}
		p.eps[i] = e
		names[i], weights[i] = ec.Name, ec.Weight
	}
	if p.policy == polConsistentHash {
		p.table = buildMaglev(names, weights, MaglevSize)
	}
	p.mu.Lock()
	p.refreshLocked(p.lastNow, nil) // no events: a new generation starts from what prev reported
	p.mu.Unlock()
	return p, nil
}

// Name returns the pool's name.
func (p *Pool) Name() string { return p.name }

// Config returns the pool's configuration with every default filled in. The Endpoints slice
// is shared and must not be modified.
func (p *Pool) Config() Config { return p.cfg }

// Balance returns the pool's policy (Config().Balance without copying the Config).
func (p *Pool) Balance() Policy { return p.cfg.Balance }

// HashOn returns what callers hash for a ConsistentHash pool (Config().HashOn without copying the Config).
func (p *Pool) HashOn() HashOn { return p.cfg.HashOn }

// Retries returns how many retries a request may make (Config().Retries without copying the Config).
func (p *Pool) Retries() int { return p.cfg.Retries }

// Endpoints returns the pool's endpoints, in configuration order (Endpoint.Index is the
// position). The slice is shared and must not be modified.
func (p *Pool) Endpoints() []*Endpoint { return p.eps }

// Panicking reports whether the pool is failing open: too few endpoints are healthy
// (Config.PanicThreshold), so Pick balances over all of them.
func (p *Pool) Panicking() bool { return p.panicking.Load() }

// Healthy returns the number of endpoints that are healthy (passing their checks,
// not ejected), whether or not the pool is failing open.
func (p *Pool) Healthy() int { return int(p.healthy.Load()) }

// Pick chooses an endpoint for a request and counts it in flight; the caller must call Done
// exactly once for every endpoint Pick returns, on this pool. hash is used only by
// ConsistentHash (see Hash). tried, if not nil, holds the endpoints this request was already
// sent to: Pick prefers others, falls back to a tried healthy endpoint when no other can take
// the request, and records its choice in tried. Pick returns ErrOverloaded when a circuit
// breaker is open and ErrNoHealthy when no endpoint is in rotation. It does not allocate.
func (p *Pool) Pick(hash uint64, tried *Tried) (*Endpoint, error) {
	if p.trackPending {
		if n := p.pending.Add(1); p.maxPending > 0 && n > p.maxPending {
			p.pending.Add(-1)
			return nil, ErrOverloaded
		}
	}
	strict := !p.panicking.Load()
	var e *Endpoint
	var why skip
	switch p.policy {
	case polRoundRobin:
		e, why = p.pickRoundRobin(strict, tried)
	case polLeastRequest:
		e, why = p.pickLeastRequest(strict, tried)
	case polRandom:
		e, why = p.pickRandom(strict, tried)
	default:
		e, why = p.pickHash(hash, strict, tried)
	}
	if e == nil {
		e, why = p.pickFallback(hash, strict, tried, why)
		if e == nil {
			if p.trackPending {
				p.pending.Add(-1)
			}
			if why&skipFull != 0 {
				return nil, ErrOverloaded
			}
			return nil, ErrNoHealthy
		}
	}
	if p.retryOn && !p.retryFree && (tried == nil || tried.n == 0) {
		p.retryTokens.Add(p.retryDeposit)
	}
	if tried != nil {
		tried.add(e.Index)
	}
	return e, nil
}

// take claims e for a request if it may take one, or says why not.
func (p *Pool) take(e *Endpoint, strict bool, t *Tried) skip {
	if t.has(e.Index) {
		return skipTried
	}
	s := e.s
	if strict && s.flags.Load() != 0 {
		return skipDown
	}
	if p.maxConns > 0 {
		if s.inFlight.Load() >= p.maxConns {
			return skipFull
		}
		if s.inFlight.Add(1) > p.maxConns {
			s.inFlight.Add(-1)
			return skipFull
		}
		return 0
	}
	s.inFlight.Add(1)
	return 0
}

// fastTries bounds the O(1) attempts of the sampling policies before Pick falls back to a scan.
const fastTries = 4

func (p *Pool) pickRoundRobin(strict bool, t *Tried) (*Endpoint, skip) {
	sq := p.seq.Load()
	n := uint64(len(sq.order))
	var why skip
	for i := uint64(0); i < min(n, fastTries); i++ {
		// Consuming the counter for a skipped entry keeps the remaining endpoints in their
		// weight ratio (a filtered periodic order), rather than doubling the next one's share.
		e := p.eps[sq.order[(p.rr.Add(1)-1)%n]]
		w := p.take(e, strict, t)
		if w == 0 {
			return e, 0
		}
		why |= w
	}
	return nil, why
}

// below returns a uniform value in [0, n) from 32 random bits (Lemire's multiply-shift).
func below(r uint32, n int) int { return int(uint64(r) * uint64(n) >> 32) }

func (p *Pool) pickRandom(strict bool, t *Tried) (*Endpoint, skip) {
	sq := p.seq.Load()
	n := len(sq.order)
	if n == 0 {
		return nil, 0
	}
	var why skip
	for i := 0; i < fastTries/2; i++ {
		r := rand.Uint64()
		for _, r32 := range [2]uint32{uint32(r), uint32(r >> 32)} {
			e := p.eps[sq.order[below(r32, n)]]
			w := p.take(e, strict, t)
			if w == 0 {
				return e, 0
			}
			why |= w
		}
	}
	return nil, why
}

func (p *Pool) pickLeastRequest(strict bool, t *Tried) (*Endpoint, skip) {
	sq := p.seq.Load()
	n := len(sq.order)
	if n == 0 {
		return nil, 0
	}
	r := rand.Uint64()
	i := below(uint32(r), n)
	j := below(uint32(r>>32), n)
	if i == j && n > 1 {
		j++
		if j == n {
			j = 0
		}
	}
	a, b := p.eps[sq.order[i]], p.eps[sq.order[j]]
	// Fewer requests in flight per unit of weight wins; ties go to the first sample.
	if b.s.inFlight.Load()*sq.weight[a.Index] < a.s.inFlight.Load()*sq.weight[b.Index] {
		a, b = b, a
	}
	why := p.take(a, strict, t)
	if why == 0 {
		return a, 0
	}
	if w := p.take(b, strict, t); w == 0 {
		return b, 0
	} else {
		why |= w
	}
	return nil, why
}

func (p *Pool) pickHash(hash uint64, strict bool, t *Tried) (*Endpoint, skip) {
	var limit int64
	if p.factor > 0 {
		// Bounded loads: admit only while the endpoint's load stays within factor times the
		// average, counting this request (capacity = ceil(c * m / n) in the paper's terms).
		if n := p.avail.Load(); n > 0 {
			limit = int64(math.Ceil(p.factor * float64(p.pending.Load()) / float64(n)))
		}
	}
	slot := hash % MaglevSize
	probes := 2*len(p.eps) + 8
	last := -1
	var why skip
	for range probes {
		i := int(p.table[slot])
		if slot++; slot == MaglevSize {
			slot = 0
		}
		if i == last {
			continue
		}
		last = i
		e := p.eps[i]
		if limit > 0 && e.s.inFlight.Load() >= limit {
			why |= skipBusy
			continue
		}
		w := p.take(e, strict, t)
		if w == 0 {
			return e, 0
		}
		why |= w
	}
	return nil, why
}

// pickFallback scans every endpoint when the policy's fast path found none: first honouring
// tried, then retrying a tried endpoint, then (when nothing is healthy and the pool may fail
// open) using unhealthy ones.
func (p *Pool) pickFallback(hash uint64, strict bool, t *Tried, why skip) (*Endpoint, skip) {
	n := len(p.eps)
	var start int
	switch p.policy {
	case polConsistentHash:
		start = int(hash % uint64(n))
	case polRoundRobin:
		start = int(p.rr.Load() % uint64(n))
	default:
		start = rand.IntN(n)
	}
	least := p.policy == polLeastRequest
	e, w := p.scan(start, strict, t, least)
	why |= w
	if e == nil && w&skipTried != 0 {
		e, w = p.scan(start, strict, nil, least)
		why |= w
	}
	if e == nil && strict && p.failOpen && why&skipDown != 0 && why&skipFull == 0 {
		// Nothing healthy and nothing merely full: fail open, as panic mode would.
		// (Panic mode is normally entered by the transition itself; this covers the race.)
		e, w = p.scan(start, false, t, least)
		why |= w
		if e == nil && w&skipTried != 0 {
			e, w = p.scan(start, false, nil, least)
			why |= w
		}
	}
	return e, why
}

// scan takes the first endpoint from start on that may take the request, or with least the
// one with the fewest in flight.
func (p *Pool) scan(start int, strict bool, t *Tried, least bool) (*Endpoint, skip) {
	n := len(p.eps)
	var why skip
	if least {
		best, bestLoad := -1, int64(0)
		for k := range n {
			i := (start + k) % n
			s := p.eps[i].s
			switch l := s.inFlight.Load(); {
			case t.has(i):
				why |= skipTried
			case strict && s.flags.Load() != 0:
				why |= skipDown
			case p.maxConns > 0 && l >= p.maxConns:
				why |= skipFull
			case best < 0 || l < bestLoad:
				best, bestLoad = i, l
			}
		}
		if best >= 0 {
			w := p.take(p.eps[best], strict, t)
			if w == 0 {
				return p.eps[best], 0
			}
			why |= w
		}
	}
	for k := range n {
		e := p.eps[(start+k)%n]
		w := p.take(e, strict, t)
		if w == 0 {
			return e, 0
		}
		why |= w
	}
	return nil, why
}

// Done ends a request that Pick sent to e, at time now, and feeds passive outlier detection
// with its outcome. It must be called exactly once per successful Pick, on the same pool.
// It does not allocate, except when the outcome ejects the endpoint.
func (p *Pool) Done(e *Endpoint, o Outcome, now time.Time) {
	s := e.s
	s.inFlight.Add(-1)
	if p.trackPending {
		p.pending.Add(-1)
	}
	od := &p.cfg.Outlier
	switch o {
	case Success:
		// Load first: a clean endpoint's counters stay read-only, so the cache line is not bounced.
		if s.failures.Load() != 0 {
			s.failures.Store(0)
		}
		if s.connFails.Load() != 0 {
			s.connFails.Store(0)
		}
	case Canceled:
	case ConnectFailure:
		if od.Disabled {
			return
		}
		c := s.connFails.Add(1)
		f := s.failures.Add(1)
		if (od.ConsecutiveConnectFailures > 0 && int(c) >= od.ConsecutiveConnectFailures) ||
			(od.Consecutive5xx > 0 && int(f) >= od.Consecutive5xx) {
			p.eject(e, now)
		}
	default:
		if od.Disabled {
			return
		}
		if s.connFails.Load() != 0 {
			s.connFails.Store(0) // it did connect
		}
		if f := s.failures.Add(1); od.Consecutive5xx > 0 && int(f) >= od.Consecutive5xx {
			p.eject(e, now)
		}
	}
}

// eject takes e out of rotation until now plus its backoff, unless MaxEjectedPercent is reached.
func (p *Pool) eject(e *Endpoint, now time.Time) {
	od := &p.cfg.Outlier
	p.mu.Lock()
	s := e.s
	s.mu.Lock()
	s.connFails.Store(0)
	s.failures.Store(0)
	if s.flags.Load()&flagEjected != 0 {
		s.mu.Unlock()
		p.mu.Unlock()
		return
	}
	ejected := 0
	for _, x := range p.eps {
		if x.s.flags.Load()&flagEjected != 0 {
			ejected++
		}
	}
	if ejected >= max(1, len(p.eps)*od.MaxEjectedPercent/100) {
		s.mu.Unlock()
		p.mu.Unlock()
		return
	}
	d := od.BaseEjection
	for i := 0; i < s.ejections && d < od.MaxEjection; i++ {
		d *= 2
	}
	d = min(d, od.MaxEjection)
	s.ejections = min(s.ejections+1, 62)
	s.ejectedUntil = now.Add(d)
	s.decayFrom = now
	s.since = time.Time{}
	s.flags.Or(flagEjected)
	s.mu.Unlock()
	evs := []Event{{Pool: p.name, Kind: EventEjected, Endpoint: e, Time: now, Until: s.ejectedUntil}}
	evs = p.refreshLocked(now, evs)
	p.mu.Unlock()
	p.emit(evs)
}

// AllowRetry reports whether the retry budget allows one more retry, and spends it if so.
// Every first attempt Pick makes earns RetryBudget of a retry (0.2 by default), and up to 10
// retries' worth is banked, so retries stay within that fraction of extra load. It returns
// false when Config.Retries is 0. Callers also bound each request's attempts by Retries
// (see Tried.Attempts).
func (p *Pool) AllowRetry() bool {
	if !p.retryOn {
		return false
	}
	if p.retryFree {
		return true
	}
	for {
		t := p.retryTokens.Load()
		have := min(t, retryBurst)
		if have < retryUnit {
			return false
		}
		if p.retryTokens.CompareAndSwap(t, have-retryUnit) {
			return true
		}
	}
}

// emit hands events to Config.OnEvent. Callers hold no locks.
func (p *Pool) emit(evs []Event) {
	if p.cfg.OnEvent == nil {
		return
	}
	for _, ev := range evs {
		p.cfg.OnEvent(ev)
	}
}

// refreshLocked recomputes panic mode and the weights in rotation at now, publishing a new
// sequence if they changed, and appends the resulting events. p.mu must be held.
func (p *Pool) refreshLocked(now time.Time, evs []Event) []Event {
	if now.After(p.lastNow) {
		p.lastNow = now
	}
	n := len(p.eps)
	up := 0
	for _, e := range p.eps {
		if e.s.flags.Load() == 0 {
			up++
		}
	}
	p.healthy.Store(int64(up))
	panicking := p.failOpen && (up == 0 || float64(up) < p.cfg.PanicThreshold*float64(n))
	if panicking != p.panicking.Load() {
		p.panicking.Store(panicking)
		kind := EventPanicOver
		if panicking {
			kind = EventPanic
		}
		if !now.IsZero() {
			evs = append(evs, Event{Pool: p.name, Kind: kind, Time: now})
		}
	}
	if panicking {
		p.avail.Store(int64(n))
	} else {
		p.avail.Store(int64(up))
	}
	if p.policy == polConsistentHash {
		if p.seq.Load() == nil {
			p.seq.Store(&sequence{})
		}
		return evs
	}
	weight := make([]int64, n)
	ramp := make([]float64, n)
	ramping := false
	for i, e := range p.eps {
		if !panicking && e.s.flags.Load() != 0 {
			continue
		}
		weight[i] = int64(e.Weight)
		ramp[i] = p.rampLocked(e.s, now)
		ramping = ramping || ramp[i] < 1
	}
	if ramping {
		// Weights in hundredths, so that a ramp moves in 1% steps.
		for i, e := range p.eps {
			if weight[i] > 0 {
				weight[i] = max(1, int64(math.Round(float64(e.Weight)*100*ramp[i])))
			}
		}
	}
	reduceWeights(weight)
	if old := p.seq.Load(); old != nil && equalWeights(old.weight, weight) {
		return evs
	}
	p.seq.Store(&sequence{order: smoothOrder(weight), weight: weight})
	return evs
}

// rampLocked returns the slow-start fraction of s's weight at now (1 when not ramping) and
// ends finished ramps. p.mu must be held.
func (p *Pool) rampLocked(s *state, now time.Time) float64 {
	win := p.cfg.SlowStart
	if win <= 0 {
		return 1
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rampPending {
		return minRamp
	}
	if s.since.IsZero() {
		return 1
	}
	el := now.Sub(s.since)
	if el >= win {
		s.since = time.Time{}
		return 1
	}
	return max(minRamp, float64(el)/float64(win))
}

// reduceWeights divides the weights by their greatest common divisor and scales them down
// proportionally if their sum would make the round-robin order longer than maxOrder.
func reduceWeights(w []int64) {
	var g, sum, nonzero int64
	for _, x := range w {
		if x > 0 {
			g = gcd(g, x)
			nonzero++
		}
	}
	if g == 0 {
		return
	}
	for i := range w {
		w[i] /= g
		sum += w[i]
	}
	if limit := max(maxOrder, nonzero); sum > limit {
		for i, x := range w {
			if x > 0 {
				w[i] = max(1, x*limit/sum)
			}
		}
	}
}

func gcd(a, b int64) int64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

func equalWeights(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// smoothOrder returns one period of nginx's smooth weighted round robin over the endpoints
// with a positive weight: each step adds every weight to its endpoint's current weight, picks
// the largest (the first on ties) and subtracts the total from it. Over sum(weights) steps
// every endpoint appears exactly weight times, interleaved.
func smoothOrder(w []int64) []int32 {
	var total int64
	uniform := true
	var first int64
	for _, x := range w {
		if x > 0 {
			total += x
			if first == 0 {
				first = x
			}
			uniform = uniform && x == first
		}
	}
	order := make([]int32, 0, total)
	if uniform {
		// Equal weights: the algorithm visits the endpoints in index order, once each.
		for i, x := range w {
			if x > 0 {
				order = append(order, int32(i))
			}
		}
		return order
	}
	cur := make([]int64, len(w))
	for range total {
		best := -1
		for i, x := range w {
			if x == 0 {
				continue
			}
			cur[i] += x
			if best < 0 || cur[i] > cur[best] {
				best = i
			}
		}
		cur[best] -= total
		order = append(order, int32(best))
	}
	return order
}
