package lb

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"testing"
	"time"
)

// t0 is the start of every test timeline.
var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

func endpoints(n int) []EndpointConfig {
	eps := make([]EndpointConfig, n)
	for i := range eps {
		eps[i] = EndpointConfig{Name: fmt.Sprintf("pod-%d", i), Addr: fmt.Sprintf("10.0.0.%d:8080", i+1)}
	}
	return eps
}

func mustPool(t testing.TB, cfg Config) *Pool {
	t.Helper()
	p, err := NewPool("app", cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// pickDone picks and immediately completes a request, returning the endpoint's index.
func pickDone(t testing.TB, p *Pool, hash uint64) int {
	t.Helper()
	e, err := p.Pick(hash, nil)
	if err != nil {
		t.Fatalf("Pick: %v", err)
	}
	p.Done(e, Success, t0)
	return e.Index
}

// events collects Config.OnEvent calls.
type events struct {
	mu  sync.Mutex
	got []string
}

func (ev *events) record(e Event) {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	s := fmt.Sprintf("%s %s", e.Time.Sub(t0), e.Kind)
	if e.Endpoint != nil {
		s += " " + e.Endpoint.Name
	}
	if !e.Until.IsZero() {
		s += fmt.Sprintf(" until %s", e.Until.Sub(t0))
	}
	ev.got = append(ev.got, s)
}

func (ev *events) take() []string {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	got := ev.got
	ev.got = nil
	return got
}

// fakeChecker fails the endpoints whose names are listed in down.
type fakeChecker struct {
	mu   sync.Mutex
	down map[string]bool
}

func (c *fakeChecker) set(name string, down bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.down == nil {
		c.down = map[string]bool{}
	}
	c.down[name] = down
}

func (c *fakeChecker) Check(ctx context.Context, e *Endpoint) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.down[e.Name] {
		return errors.New("connection refused")
	}
	return nil
}

func TestRoundRobinSmoothNginxOrder(t *testing.T) {
	// The example of nginx's smooth weighted round robin (commit 52327e0627f4): weights
	// a=5, b=1, c=1 give a a b a c a a, not a a a a a b c.
	p := mustPool(t, Config{Endpoints: []EndpointConfig{
		{Name: "a", Addr: "10.0.0.1:80", Weight: 5},
		{Name: "b", Addr: "10.0.0.2:80", Weight: 1},
		{Name: "c", Addr: "10.0.0.3:80", Weight: 1},
	}})
	var got []string
	for range 14 {
		got = append(got, p.Endpoints()[pickDone(t, p, 0)].Name)
	}
	want := []string{"a", "a", "b", "a", "c", "a", "a", "a", "a", "b", "a", "c", "a", "a"}
	if !slices.Equal(got, want) {
		t.Errorf("order = %v, want %v", got, want)
	}
}

func TestRoundRobinEqualAndDown(t *testing.T) {
	ev := &events{}
	p := mustPool(t, Config{Endpoints: endpoints(3), OnEvent: ev.record})
	counts := make([]int, 3)
	for range 300 {
		counts[pickDone(t, p, 0)]++
	}
	if !slices.Equal(counts, []int{100, 100, 100}) {
		t.Errorf("equal weights: counts = %v, want 100 each", counts)
	}
	// Eject pod-1 with three connect failures: the other two share its traffic equally.
	e1 := p.Endpoints()[1]
	for range 3 {
		e1.s.inFlight.Add(1)
		p.Done(e1, ConnectFailure, at(time.Second))
	}
	if e1.Healthy() || !e1.Ejected() {
		t.Fatalf("pod-1 not ejected after 3 connect failures")
	}
	counts = make([]int, 3)
	for range 300 {
		counts[pickDone(t, p, 0)]++
	}
	if !slices.Equal(counts, []int{150, 0, 150}) {
		t.Errorf("pod-1 ejected: counts = %v, want [150 0 150]", counts)
	}
	if got := ev.take(); !slices.Equal(got, []string{"1s ejected pod-1 until 31s"}) {
		t.Errorf("events = %q", got)
	}
}

func TestLeastRequestAvoidsBusyEndpoint(t *testing.T) {
	p := mustPool(t, Config{Endpoints: endpoints(3), Balance: LeastRequest})
	slow := p.Endpoints()[0]
	slow.s.inFlight.Add(50) // a slow pod holding many requests
	counts := make([]int, 3)
	for range 3000 {
		counts[pickDone(t, p, 0)]++
	}
	if counts[0] != 0 {
		t.Errorf("busy endpoint got %d of 3000 picks: %v", counts[0], counts)
	}
	if counts[1] < 1200 || counts[2] < 1200 {
		t.Errorf("idle endpoints unevenly used: %v", counts)
	}
	slow.s.inFlight.Add(-50)

	// Held requests: P2C keeps in-flight counts level.
	var held []*Endpoint
	for range 300 {
		e, err := p.Pick(0, nil)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, e)
	}
	var loads []int64
	for _, e := range p.Endpoints() {
		loads = append(loads, e.InFlight())
	}
	if slices.Max(loads)-slices.Min(loads) > 30 {
		t.Errorf("in-flight after 300 held picks = %v, want level", loads)
	}
	for _, e := range held {
		p.Done(e, Success, t0)
	}
}

func TestLeastRequestWeighted(t *testing.T) {
	eps := endpoints(2)
	eps[1].Weight = 3
	p := mustPool(t, Config{Endpoints: eps, Balance: LeastRequest})
	for range 400 {
		if _, err := p.Pick(0, nil); err != nil {
			t.Fatal(err)
		}
	}
	a, b := p.Endpoints()[0].InFlight(), p.Endpoints()[1].InFlight()
	// In-flight per unit of weight stays level: about 100 and 300.
	if math.Abs(float64(b)/float64(a)-3) > 0.5 {
		t.Errorf("in flight %d and %d, want about 1:3", a, b)
	}
}

func TestRandomWeighted(t *testing.T) {
	eps := endpoints(2)
	eps[1].Weight = 3
	p := mustPool(t, Config{Endpoints: eps, Balance: Random})
	counts := make([]int, 2)
	for range 40000 {
		counts[pickDone(t, p, 0)]++
	}
	// Expected 10000:30000; the standard deviation is about 87, so 5% is far outside chance.
	if math.Abs(float64(counts[0])-10000) > 500 {
		t.Errorf("random weighted counts = %v, want about [10000 30000]", counts)
	}
}

func TestConsistentHashSticky(t *testing.T) {
	eps := endpoints(5)
	p := mustPool(t, Config{Endpoints: eps, Balance: ConsistentHash, HashOn: HashOn{Kind: HashHeader, Name: "X-User"}})
	names := make([]string, len(eps))
	for i, ec := range eps {
		names[i] = ec.Name
	}
	m := NewMaglev(names)
	counts := make([]int, 5)
	for i := range 1000 {
		h := Hash(fmt.Appendf(nil, "user-%d", i))
		got := pickDone(t, p, h)
		if again := pickDone(t, p, h); again != got {
			t.Fatalf("key %d went to %d then %d", i, got, again)
		}
		if want := m.Lookup(h); got != want {
			t.Fatalf("key %d: pool picked %d, Maglev table says %d", i, got, want)
		}
		counts[got]++
	}
	for _, c := range counts {
		if c < 150 || c > 250 {
			t.Errorf("1000 keys over 5 endpoints: %v", counts)
			break
		}
	}
}

func TestConsistentHashNameIdentity(t *testing.T) {
	keys := make([]uint64, 20000)
	for i := range keys {
		keys[i] = Hash(fmt.Appendf(nil, "client-%d", i))
	}
	owners := func(p *Pool) []string {
		out := make([]string, len(keys))
		for i, h := range keys {
			e, err := p.Pick(h, nil)
			if err != nil {
				t.Fatal(err)
			}
			p.Done(e, Success, t0)
			out[i] = e.Name
		}
		return out
	}
	// With name= identity, a pod that comes back on a new IP keeps every key.
	named := endpoints(4)
	p1 := mustPool(t, Config{Endpoints: named, Balance: ConsistentHash})
	named2 := slices.Clone(named)
	named2[2].Addr = "10.0.9.9:8080"
	p2, err := NewPool("app", Config{Endpoints: named2, Balance: ConsistentHash}, p1)
	if err != nil {
		t.Fatal(err)
	}
	if a, b := owners(p1), owners(p2); !slices.Equal(a, b) {
		t.Errorf("an IP change of a named endpoint moved keys")
	}
	// Plain addresses: the new address is a new identity: the old one's keys (1/4) move, and the
	// newcomer takes its 1/4 from everyone, so about 1/4 + 1/4 - 1/16 of the keys move.
	plain := []EndpointConfig{{Addr: "10.0.0.1:80"}, {Addr: "10.0.0.2:80"}, {Addr: "10.0.0.3:80"}, {Addr: "10.0.0.4:80"}}
	q1 := mustPool(t, Config{Endpoints: plain, Balance: ConsistentHash})
	plain2 := slices.Clone(plain)
	plain2[2].Addr = "10.0.9.9:80"
	q2 := mustPool(t, Config{Endpoints: plain2, Balance: ConsistentHash})
	a, b := owners(q1), owners(q2)
	moved := 0
	for i := range a {
		if a[i] != b[i] {
			moved++
		}
	}
	if frac := float64(moved) / float64(len(keys)); frac < 0.38 || frac > 0.5 {
		t.Errorf("plain address change moved %.1f%% of keys, want about 44%%", 100*frac)
	}
}

func TestConsistentHashDownEndpointMovesOnlyItsKeys(t *testing.T) {
	p := mustPool(t, Config{Endpoints: endpoints(4), Balance: ConsistentHash})
	keys := make([]uint64, 8000)
	before := make([]int, len(keys))
	for i := range keys {
		keys[i] = Hash(fmt.Appendf(nil, "k%d", i))
		before[i] = pickDone(t, p, keys[i])
	}
	p.RecordCheck(p.Endpoints()[3], errors.New("down"), t0)
	spread := make([]int, 4)
	for i, h := range keys {
		got := pickDone(t, p, h)
		if got == 3 {
			t.Fatalf("down endpoint picked")
		}
		if before[i] != 3 && got != before[i] {
			t.Fatalf("key %d of a healthy endpoint moved from %d to %d", i, before[i], got)
		}
		if before[i] == 3 {
			spread[got]++
		}
	}
	// The down endpoint's keys spread over all the others, and stay put while it is down.
	for i := range 3 {
		if spread[i] < 400 {
			t.Errorf("orphaned keys spread = %v, want each survivor to take a share", spread)
		}
	}
	p.RecordCheck(p.Endpoints()[3], nil, t0)
	p.RecordCheck(p.Endpoints()[3], nil, t0)
	for i, h := range keys {
		if got := pickDone(t, p, h); got != before[i] {
			t.Fatalf("after recovery key %d went to %d, not back to %d", i, got, before[i])
		}
	}
}

func TestBoundedLoad(t *testing.T) {
	const n = 4
	p := mustPool(t, Config{Endpoints: endpoints(n), Balance: ConsistentHash, HashBalanceFactor: 1.25})
	hot := Hash([]byte("hot-key"))
	home := p.table[hot%MaglevSize]
	var held []*Endpoint
	for total := 1; total <= 400; total++ {
		e, err := p.Pick(hot, nil)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, e)
		limit := int64(math.Ceil(1.25 * float64(total) / n))
		for _, x := range p.Endpoints() {
			if x.InFlight() > limit {
				t.Fatalf("after %d picks %s holds %d, above ceil(1.25*%d/%d) = %d", total, x.Name, x.InFlight(), total, n, limit)
			}
		}
	}
	if got := p.Endpoints()[home].InFlight(); got != 125 {
		t.Errorf("home endpoint holds %d of 400, want its bound 125", got)
	}
	for _, e := range held {
		p.Done(e, Success, t0)
	}
	// Below the bound keys stay home.
	if got := pickDone(t, p, hot); got != int(home) {
		t.Errorf("idle pool: hot key went to %d, not home %d", got, home)
	}

	// Without a factor every pick goes home.
	q := mustPool(t, Config{Endpoints: endpoints(n), Balance: ConsistentHash})
	for range 100 {
		if _, err := q.Pick(hot, nil); err != nil {
			t.Fatal(err)
		}
	}
	if got := q.Endpoints()[home].InFlight(); got != 100 {
		t.Errorf("unbounded: home holds %d of 100", got)
	}
}

func TestTriedSendsRetriesElsewhere(t *testing.T) {
	for _, pol := range []Policy{RoundRobin, LeastRequest, Random, ConsistentHash} {
		p := mustPool(t, Config{Endpoints: endpoints(3), Balance: pol})
		for k := range 50 {
			var tr Tried
			seen := map[int]bool{}
			for attempt := 1; attempt <= 3; attempt++ {
				e, err := p.Pick(uint64(k)*0x9E3779B97F4A7C15, &tr)
				if err != nil {
					t.Fatal(err)
				}
				p.Done(e, ConnectFailure, t0)
				if seen[e.Index] {
					t.Fatalf("%s: attempt %d went back to %s", pol, attempt, e.Name)
				}
				seen[e.Index] = true
				if tr.Attempts() != attempt || !tr.Has(e) {
					t.Fatalf("%s: Tried after attempt %d: %+v", pol, attempt, tr)
				}
			}
			// Everything tried: a fourth attempt still gets an endpoint.
			e, err := p.Pick(uint64(k), &tr)
			if err != nil {
				t.Fatalf("%s: all tried: %v", pol, err)
			}
			p.Done(e, Success, t0)
			for _, e := range p.Endpoints() { // keep the connect failures from ejecting
				e.s.connFails.Store(0)
				e.s.failures.Store(0)
			}
		}
	}
}

func TestRetryAvoidsDownEndpointFirst(t *testing.T) {
	// Retry after a connect failure, with the third endpoint down: the retry must take the
	// remaining healthy one, not the down one and not the one just tried.
	p := mustPool(t, Config{Endpoints: endpoints(3), Balance: ConsistentHash, Outlier: OutlierDetection{Disabled: true}})
	p.RecordCheck(p.Endpoints()[2], errors.New("down"), t0)
	for k := range 200 {
		var tr Tried
		h := uint64(k) * 0x9E3779B97F4A7C15
		first, _ := p.Pick(h, &tr)
		p.Done(first, ConnectFailure, t0)
		second, err := p.Pick(h, &tr)
		if err != nil {
			t.Fatal(err)
		}
		p.Done(second, Success, t0)
		if second == first || second.Index == 2 {
			t.Fatalf("retry went to %s after %s", second.Name, first.Name)
		}
	}
}

func TestCircuitBreakers(t *testing.T) {
	p := mustPool(t, Config{Endpoints: endpoints(2), MaxConnsPerEndpoint: 2})
	var held []*Endpoint
	for range 4 {
		e, err := p.Pick(0, nil)
		if err != nil {
			t.Fatalf("under the limit: %v", err)
		}
		held = append(held, e)
	}
	if _, err := p.Pick(0, nil); !errors.Is(err, ErrOverloaded) {
		t.Errorf("both endpoints full: err = %v, want ErrOverloaded", err)
	}
	for _, e := range p.Endpoints() {
		if e.InFlight() != 2 {
			t.Errorf("%s in flight = %d after a refused pick, want 2", e.Name, e.InFlight())
		}
	}
	p.Done(held[0], Success, t0)
	e, err := p.Pick(0, nil)
	if err != nil || e != held[0] {
		t.Errorf("after Done: Pick = %v, %v; want the freed endpoint", e, err)
	}

	// MaxPending caps the whole pool.
	q := mustPool(t, Config{Endpoints: endpoints(3), MaxPending: 3, Balance: LeastRequest})
	for range 3 {
		if _, err := q.Pick(0, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := q.Pick(0, nil); !errors.Is(err, ErrOverloaded) {
		t.Errorf("pending full: err = %v, want ErrOverloaded", err)
	}
	if q.pending.Load() != 3 {
		t.Errorf("pending = %d after a refused pick, want 3", q.pending.Load())
	}
}

func TestPanicMode(t *testing.T) {
	ev := &events{}
	p := mustPool(t, Config{Endpoints: endpoints(3), OnEvent: ev.record})
	for i, e := range p.Endpoints() {
		p.RecordCheck(e, errors.New("down"), at(time.Duration(i)*time.Second))
	}
	if !p.Panicking() {
		t.Fatalf("all endpoints down, pool not panicking")
	}
	counts := make([]int, 3)
	for range 30 {
		counts[pickDone(t, p, 0)]++
	}
	if !slices.Equal(counts, []int{10, 10, 10}) {
		t.Errorf("panic mode: counts = %v, want traffic over all endpoints", counts)
	}
	p.RecordCheck(p.Endpoints()[1], nil, at(5*time.Second))
	p.RecordCheck(p.Endpoints()[1], nil, at(6*time.Second))
	if p.Panicking() {
		t.Errorf("one endpoint healthy again, still panicking")
	}
	if got := pickDone(t, p, 0); got != 1 {
		t.Errorf("after panic: picked %d, want the healthy endpoint 1", got)
	}
	want := []string{"0s unhealthy pod-0", "1s unhealthy pod-1", "2s unhealthy pod-2", "2s panic", "6s healthy pod-1", "6s panic_over"}
	if got := ev.take(); !slices.Equal(got, want) {
		t.Errorf("events = %q, want %q", got, want)
	}

	// Negative threshold: never fail open.
	q := mustPool(t, Config{Endpoints: endpoints(2), PanicThreshold: -1})
	for _, e := range q.Endpoints() {
		q.RecordCheck(e, errors.New("down"), t0)
	}
	if _, err := q.Pick(0, nil); !errors.Is(err, ErrNoHealthy) {
		t.Errorf("threshold -1, all down: err = %v, want ErrNoHealthy", err)
	}

	// Envoy-style 50%: two of three down is panic, one of three is not.
	r := mustPool(t, Config{Endpoints: endpoints(3), PanicThreshold: 0.5})
	r.RecordCheck(r.Endpoints()[0], errors.New("down"), t0)
	if r.Panicking() {
		t.Errorf("threshold 0.5 with 2 of 3 healthy: panicking")
	}
	r.RecordCheck(r.Endpoints()[1], errors.New("down"), t0)
	if !r.Panicking() {
		t.Errorf("threshold 0.5 with 1 of 3 healthy: not panicking")
	}
}

func TestActiveHealthTimeline(t *testing.T) {
	ev := &events{}
	const every = 2 * time.Second
	p := mustPool(t, Config{Endpoints: endpoints(2), HealthCheck: HealthCheck{Interval: every, Fall: 3, Rise: 2}, OnEvent: ev.record})
	c := &fakeChecker{}
	pod0 := p.Endpoints()[0]
	// tick k runs the round at k*interval; down lists when pod-0 fails its check.
	down := map[int]bool{2: true, 3: true, 4: true, 5: true, 8: true}
	wantHealthy := []bool{true, true, true, true, false, false, false, true, true, true}
	for k := range wantHealthy {
		c.set("pod-0", down[k])
		p.CheckAll(context.Background(), c, at(time.Duration(k)*every))
		if pod0.Healthy() != wantHealthy[k] {
			t.Errorf("after round %d (%s): healthy = %v, want %v", k, time.Duration(k)*every, pod0.Healthy(), wantHealthy[k])
		}
	}
	// Out after Fall=3 failures (rounds 2, 3, 4: within 3 intervals), back after Rise=2 passes.
	want := []string{"8s unhealthy pod-0", "14s healthy pod-0"}
	if got := ev.take(); !slices.Equal(got, want) {
		t.Errorf("events = %q, want %q", got, want)
	}
	if !p.Endpoints()[1].Healthy() {
		t.Errorf("pod-1 left rotation")
	}

	// The first result decides at once: a pod already down when checks begin is out after one round.
	q := mustPool(t, Config{Endpoints: endpoints(2), HealthCheck: HealthCheck{Interval: every}})
	c.set("pod-0", true)
	q.CheckAll(context.Background(), c, t0)
	if q.Endpoints()[0].Healthy() {
		t.Errorf("first check failed but endpoint healthy")
	}
	// A cancelled round records nothing.
	c.set("pod-0", false)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	q.CheckAll(ctx, c, at(every))
	q.CheckAll(ctx, c, at(2*every))
	if q.Endpoints()[0].Healthy() {
		t.Errorf("cancelled rounds were recorded")
	}
}

func TestOutlierEjectionBackoff(t *testing.T) {
	ev := &events{}
	p := mustPool(t, Config{
		Endpoints: endpoints(3),
		Outlier:   OutlierDetection{BaseEjection: 10 * time.Second, MaxEjection: 40 * time.Second},
		OnEvent:   ev.record,
	})
	e := p.Endpoints()[0]
	fail := func(now time.Duration, o Outcome, n int) {
		for range n {
			e.s.inFlight.Add(1)
			p.Done(e, o, at(now))
		}
	}
	fail(0, ConnectFailure, 2)
	if !e.Healthy() {
		t.Fatalf("ejected after 2 connect failures, want 3")
	}
	fail(0, ConnectFailure, 1)
	if !e.Ejected() {
		t.Fatalf("not ejected after 3 connect failures")
	}
	p.Tick(at(9 * time.Second))
	if !e.Ejected() {
		t.Errorf("returned before its 10s ejection ended")
	}
	p.Tick(at(10 * time.Second))
	if !e.Healthy() {
		t.Errorf("still ejected when its ejection ended")
	}
	// Ejected again soon: the backoff doubles, then caps at MaxEjection.
	fail(11*time.Second, ConnectFailure, 3)
	p.Tick(at(31 * time.Second))
	fail(32*time.Second, Timeout, 5)
	p.Tick(at(72 * time.Second))
	fail(73*time.Second, Failure5xx, 5)
	p.Tick(at(113 * time.Second))
	// 80 seconds in rotation at 10s base: the level decays back to zero, one step per Tick.
	for s := 123; s <= 163; s += 10 {
		p.Tick(at(time.Duration(s) * time.Second))
	}
	fail(170*time.Second, ConnectFailure, 3)
	want := []string{
		"0s ejected pod-0 until 10s", "10s returned pod-0",
		"11s ejected pod-0 until 31s", "31s returned pod-0",
		"32s ejected pod-0 until 1m12s", "1m12s returned pod-0",
		"1m13s ejected pod-0 until 1m53s", "1m53s returned pod-0",
		"2m50s ejected pod-0 until 3m0s",
	}
	if got := ev.take(); !slices.Equal(got, want) {
		t.Errorf("events:\n got %q\nwant %q", got, want)
	}
}

func TestOutlierCounting(t *testing.T) {
	p := mustPool(t, Config{Endpoints: endpoints(3)})
	e := p.Endpoints()[0]
	done := func(o Outcome) {
		e.s.inFlight.Add(1)
		p.Done(e, o, t0)
	}
	// A success resets the streak; a cancel says nothing.
	for range 4 {
		done(Failure5xx)
	}
	done(Success)
	for range 4 {
		done(Failure5xx)
		done(Canceled)
	}
	if !e.Healthy() {
		t.Fatalf("ejected without 5 consecutive failures")
	}
	done(Reset)
	if !e.Ejected() {
		t.Fatalf("not ejected after 5 consecutive failures")
	}
	// Disabled: never ejects.
	q := mustPool(t, Config{Endpoints: endpoints(2), Outlier: OutlierDetection{Disabled: true}})
	for range 100 {
		x := q.Endpoints()[0]
		x.s.inFlight.Add(1)
		q.Done(x, ConnectFailure, t0)
	}
	if !q.Endpoints()[0].Healthy() {
		t.Errorf("disabled outlier detection ejected")
	}
}

func TestMaxEjectedPercent(t *testing.T) {
	p := mustPool(t, Config{Endpoints: endpoints(4)}) // default 50%: two of four
	for _, e := range p.Endpoints() {
		for range 3 {
			e.s.inFlight.Add(1)
			p.Done(e, ConnectFailure, t0)
		}
	}
	ejected := 0
	for _, e := range p.Endpoints() {
		if e.Ejected() {
			ejected++
		}
	}
	if ejected != 2 {
		t.Errorf("%d of 4 ejected, want 2 (50%%)", ejected)
	}
	// A single-endpoint pool may still eject its one endpoint (then fails open).
	q := mustPool(t, Config{Endpoints: endpoints(1)})
	e := q.Endpoints()[0]
	for range 3 {
		e.s.inFlight.Add(1)
		q.Done(e, ConnectFailure, t0)
	}
	if !e.Ejected() || !q.Panicking() {
		t.Errorf("single endpoint: ejected=%v panicking=%v, want both", e.Ejected(), q.Panicking())
	}
	if _, err := q.Pick(0, nil); err != nil {
		t.Errorf("single ejected endpoint: Pick = %v, want fail open", err)
	}
}

func TestSlowStart(t *testing.T) {
	p := mustPool(t, Config{
		Endpoints: endpoints(2),
		SlowStart: 10 * time.Second,
		Outlier:   OutlierDetection{BaseEjection: 5 * time.Second},
	})
	e := p.Endpoints()[0]
	for range 3 {
		e.s.inFlight.Add(1)
		p.Done(e, ConnectFailure, t0)
	}
	share := func() float64 {
		w := p.seq.Load().weight
		return float64(w[0]) / float64(w[1])
	}
	if share() != 0 {
		t.Fatalf("ejected endpoint has weight")
	}
	p.Tick(at(5 * time.Second)) // returns: ramp starts at 10%
	for _, step := range []struct {
		at   time.Duration
		want float64
	}{{5 * time.Second, 0.1}, {6 * time.Second, 0.1}, {10 * time.Second, 0.5}, {12 * time.Second, 0.7}, {15 * time.Second, 1}, {30 * time.Second, 1}} {
		p.Tick(at(step.at))
		if got := share(); math.Abs(got-step.want) > 0.011 {
			t.Errorf("at %s: relative weight %.3f, want %.2f", step.at, got, step.want)
		}
	}
	// The ramp shows in round robin: at 50% the endpoint gets a third of the picks.
	p.Tick(at(30 * time.Second))
	e.s.mu.Lock()
	e.s.since = at(30 * time.Second)
	e.s.mu.Unlock()
	p.Tick(at(35 * time.Second))
	counts := make([]int, 2)
	for range 300 {
		counts[pickDone(t, p, 0)]++
	}
	if counts[0] != 100 {
		t.Errorf("at 50%% ramp: counts %v, want [100 200]", counts)
	}

	// An endpoint added by a reload ramps from the first Tick.
	q, err := NewPool("app", Config{Endpoints: endpoints(3), SlowStart: 10 * time.Second}, p)
	if err != nil {
		t.Fatal(err)
	}
	q.Tick(at(100 * time.Second))
	q.Tick(at(105 * time.Second))
	w := q.seq.Load().weight
	if math.Abs(float64(w[2])/float64(w[1])-0.5) > 0.011 {
		t.Errorf("new endpoint at half its ramp: weights %v", w)
	}
}

func TestReloadCarriesState(t *testing.T) {
	p := mustPool(t, Config{Endpoints: endpoints(3), HealthCheck: HealthCheck{Interval: time.Second}})
	pod0, pod1 := p.Endpoints()[0], p.Endpoints()[1]
	p.RecordCheck(pod0, errors.New("down"), t0)
	held, _ := p.Pick(0, &Tried{mask: 1})
	if held != pod1 {
		t.Fatalf("setup: picked %s", held.Name)
	}
	eps := endpoints(4)
	eps[2].Addr = "10.0.9.9:8080" // pod-2 came back on a new IP
	q, err := NewPool("app", Config{Endpoints: eps, HealthCheck: HealthCheck{Interval: time.Second}}, p)
	if err != nil {
		t.Fatal(err)
	}
	n := q.Endpoints()
	if n[0].Healthy() {
		t.Errorf("pod-0's unhealthy state was not carried")
	}
	if n[1].InFlight() != 1 {
		t.Errorf("pod-1's in-flight count = %d, want 1 carried", n[1].InFlight())
	}
	if !n[2].Healthy() || n[2].s == p.Endpoints()[2].s {
		t.Errorf("pod-2 on a new address shares the old address's state")
	}
	if !n[3].Healthy() {
		t.Errorf("new pod-3 not healthy")
	}
	// The request picked from the old pool ends on the old pool and is seen by the new one.
	p.Done(held, Success, t0)
	if n[1].InFlight() != 0 {
		t.Errorf("in flight after Done on the old pool = %d", n[1].InFlight())
	}
	// Without active checks in the next generation, an unhealthy verdict is dropped.
	r, err := NewPool("app", Config{Endpoints: endpoints(2)}, q)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Endpoints()[0].Healthy() {
		t.Errorf("health checks disabled by reload, pod-0 still unhealthy")
	}
	q.RecordCheck(n[0], errors.New("down"), t0) // back to unhealthy for the old generation
	// Rise is counted on from the carried state.
	q.RecordCheck(n[0], nil, t0)
	q.RecordCheck(n[0], nil, t0)
	if !n[0].Healthy() {
		t.Errorf("pod-0 did not recover in the new pool")
	}
}

func TestRetryBudget(t *testing.T) {
	p := mustPool(t, Config{Endpoints: endpoints(2), Retries: 2})
	allowed := 0
	for range 100 {
		if p.AllowRetry() {
			allowed++
		}
	}
	if allowed != 10 {
		t.Errorf("idle pool allowed %d retries, want the burst of 10", allowed)
	}
	for range 100 {
		pickDone(t, p, 0)
	}
	allowed = 0
	for range 100 {
		if p.AllowRetry() {
			allowed++
		}
	}
	if allowed != 10 {
		t.Errorf("after 100 requests: %d retries allowed, want 20%% = 20 capped by the burst of 10", allowed)
	}
	for range 25 {
		pickDone(t, p, 0)
	}
	allowed = 0
	for p.AllowRetry() {
		allowed++
	}
	if allowed != 5 {
		t.Errorf("after 25 requests: %d retries allowed, want 5", allowed)
	}
	// Retries do not earn budget.
	var tr Tried
	for range 2 {
		e, _ := p.Pick(0, &tr)
		p.Done(e, Success, t0)
	}
	if p.AllowRetry() {
		t.Errorf("a retry earned budget")
	}
	if mustPool(t, Config{Endpoints: endpoints(1)}).AllowRetry() {
		t.Errorf("Retries 0 allows a retry")
	}
	free := mustPool(t, Config{Endpoints: endpoints(1), Retries: 1, RetryBudget: -1})
	for range 100 {
		if !free.AllowRetry() {
			t.Fatalf("no budget: retry refused")
		}
	}
}

func TestPickAllDownNoFailOpenMeansNoHealthy(t *testing.T) {
	for _, pol := range []Policy{RoundRobin, LeastRequest, Random, ConsistentHash} {
		p := mustPool(t, Config{Endpoints: endpoints(3), Balance: pol, PanicThreshold: -1})
		for _, e := range p.Endpoints()[:2] {
			p.RecordCheck(e, errors.New("down"), t0)
		}
		for k := range 50 {
			if got := pickDone(t, p, uint64(k)); got != 2 {
				t.Fatalf("%s: picked down endpoint %d", pol, got)
			}
		}
		p.RecordCheck(p.Endpoints()[2], errors.New("down"), t0)
		if _, err := p.Pick(1, nil); !errors.Is(err, ErrNoHealthy) {
			t.Errorf("%s: all down: %v", pol, err)
		}
	}
}

func TestOnEventOptional(t *testing.T) {
	p := mustPool(t, Config{Endpoints: endpoints(1)})
	p.RecordCheck(p.Endpoints()[0], errors.New("down"), t0) // no OnEvent: must not panic
	if !p.Panicking() {
		t.Errorf("single down endpoint: not panicking")
	}
	for k, want := range map[EventKind]string{EventHealthy: "healthy", EventUnhealthy: "unhealthy", EventEjected: "ejected", EventReturned: "returned", EventPanic: "panic", EventPanicOver: "panic_over", 99: "unknown"} {
		if k.String() != want {
			t.Errorf("EventKind(%d) = %q, want %q", k, k.String(), want)
		}
	}
	for o, want := range map[Outcome]string{Success: "success", ConnectFailure: "connect_failure", Failure5xx: "5xx", Timeout: "timeout", Reset: "reset", Canceled: "canceled", 99: "unknown"} {
		if o.String() != want {
			t.Errorf("Outcome(%d) = %q, want %q", o, o.String(), want)
		}
	}
}

// Concurrent Pick/Done from many goroutines with health changes underneath: the in-flight
// counts return to zero and the race detector sees no race.
func TestConcurrentPickDone(t *testing.T) {
	for _, pol := range []Policy{RoundRobin, LeastRequest, Random, ConsistentHash} {
		p := mustPool(t, Config{Endpoints: endpoints(4), Balance: pol, MaxConnsPerEndpoint: 50, MaxPending: 150, HashBalanceFactor: 1.5 * b2f(pol == ConsistentHash), Retries: 1})
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Go(func() {
				var tr Tried
				for i := range 2000 {
					e, err := p.Pick(uint64(g*1000+i), &tr)
					if err != nil {
						continue
					}
					o := Success
					if i%97 == 0 {
						o = Failure5xx
					}
					p.Done(e, o, at(time.Duration(i)*time.Millisecond))
					if tr.Attempts() > 2 {
						tr = Tried{}
					}
					p.AllowRetry()
				}
			})
		}
		wg.Go(func() {
			for i := range 200 {
				var err error
				if i%3 == 0 {
					err = errors.New("down")
				}
				p.RecordCheck(p.Endpoints()[i%4], err, at(time.Duration(i)*time.Millisecond))
				p.Tick(at(time.Duration(i) * time.Second))
			}
		})
		wg.Wait()
		for _, e := range p.Endpoints() {
			if e.InFlight() != 0 {
				t.Errorf("%s: %s in flight = %d after all Done", pol, e.Name, e.InFlight())
			}
		}
		if p.trackPending && p.pending.Load() != 0 {
			t.Errorf("%s: pending = %d after all Done", pol, p.pending.Load())
		}
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func BenchmarkPick(b *testing.B) {
	cases := []struct {
		name string
		cfg  Config
	}{
		{"round_robin", Config{Balance: RoundRobin}},
		{"round_robin_weighted", Config{Balance: RoundRobin}},
		{"least_request", Config{Balance: LeastRequest}},
		{"random", Config{Balance: Random}},
		{"consistent_hash", Config{Balance: ConsistentHash}},
		{"consistent_hash_bounded", Config{Balance: ConsistentHash, HashBalanceFactor: 1.25}},
		{"least_request_limits", Config{Balance: LeastRequest, MaxConnsPerEndpoint: 1000, MaxPending: 10000, Retries: 1}},
	}
	for _, c := range cases {
		c.cfg.Endpoints = endpoints(10)
		if c.name == "round_robin_weighted" {
			for i := range c.cfg.Endpoints {
				c.cfg.Endpoints[i].Weight = i + 1
			}
		}
		p := mustPool(b, c.cfg)
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			h := uint64(0x9E3779B97F4A7C15)
			for i := 0; b.Loop(); i++ {
				e, err := p.Pick(h*uint64(i), nil)
				if err != nil {
					b.Fatal(err)
				}
				p.Done(e, Success, t0)
			}
		})
	}
}

func BenchmarkPickParallel(b *testing.B) {
	for _, pol := range []Policy{RoundRobin, LeastRequest, Random, ConsistentHash} {
		p := mustPool(b, Config{Endpoints: endpoints(10), Balance: pol})
		b.Run(string(pol), func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				h := uint64(0x9E3779B97F4A7C15)
				for i := uint64(1); pb.Next(); i++ {
					e, err := p.Pick(h*i, nil)
					if err != nil {
						b.Error(err)
						return
					}
					p.Done(e, Success, t0)
				}
			})
		})
	}
}

func BenchmarkPickRetry(b *testing.B) {
	p := mustPool(b, Config{Endpoints: endpoints(10), Balance: ConsistentHash})
	b.ReportAllocs()
	h := uint64(0x9E3779B97F4A7C15)
	for i := 0; b.Loop(); i++ {
		var tr Tried
		e, _ := p.Pick(h*uint64(i), &tr)
		p.Done(e, Success, t0)
		e, _ = p.Pick(h*uint64(i), &tr)
		p.Done(e, Success, t0)
	}
}

func TestExtremeWeights(t *testing.T) {
	for _, pol := range []Policy{RoundRobin, LeastRequest, Random, ConsistentHash} {
		eps := endpoints(2)
		eps[0].Weight, eps[1].Weight = 1, MaxWeight
		p := mustPool(t, Config{Endpoints: eps, Balance: pol})
		counts := make([]int, 2)
		for k := range 20000 {
			counts[pickDone(t, p, Hash(fmt.Appendf(nil, "%d", k)))]++
		}
		// The round-robin order is capped at 16384 entries, so weight 1 keeps at least 1/16384.
		if counts[0] > 20 || counts[1] < 19980 {
			t.Errorf("%s: weights 1:%d gave %v", pol, MaxWeight, counts)
		}
	}
	// Many endpoints with mixed weights still build quickly and keep their ratios.
	eps := make([]EndpointConfig, 500)
	for i := range eps {
		eps[i] = EndpointConfig{Addr: fmt.Sprintf("10.1.%d.%d:80", i/250, i%250+1), Weight: 1 + i%3}
	}
	p := mustPool(t, Config{Endpoints: eps})
	sq := p.seq.Load()
	counts := make([]int, len(eps))
	for _, i := range sq.order {
		counts[i]++
	}
	for i := range eps {
		if counts[i] != eps[i].Weight {
			t.Fatalf("endpoint %d appears %d times in one round-robin period, want its weight %d", i, counts[i], eps[i].Weight)
		}
	}
}

// A transition made through the old generation (a late Done or check) is seen by the new one
// at once through the shared endpoint state, even before its own Tick recomputes panic mode.
func TestCrossGenerationTransitions(t *testing.T) {
	for _, pol := range []Policy{RoundRobin, LeastRequest, Random, ConsistentHash} {
		old := mustPool(t, Config{Endpoints: endpoints(2), Balance: pol})
		next, err := NewPool("app", Config{Endpoints: endpoints(2), Balance: pol}, old)
		if err != nil {
			t.Fatal(err)
		}
		old.RecordCheck(old.Endpoints()[0], errors.New("down"), t0)
		for k := range 20 {
			if got := pickDone(t, next, uint64(k)); got != 1 {
				t.Fatalf("%s: new generation picked %d, down in the old one", pol, got)
			}
		}
		old.RecordCheck(old.Endpoints()[1], errors.New("down"), t0)
		if next.Panicking() {
			t.Fatalf("%s: new generation entered panic before its own Tick", pol)
		}
		// Nothing healthy: Pick fails open anyway, and Tick catches up.
		var tr Tried
		if _, err := next.Pick(7, &tr); err != nil {
			t.Errorf("%s: all down through the old generation: %v", pol, err)
		}
		if _, err := next.Pick(7, &tr); err != nil {
			t.Errorf("%s: all down and the other endpoint tried: %v", pol, err)
		}
		if _, err := next.Pick(7, &tr); err != nil {
			t.Errorf("%s: all down and all tried: %v", pol, err)
		}
		next.Tick(at(time.Second))
		if !next.Panicking() {
			t.Errorf("%s: Tick did not enter panic mode", pol)
		}
	}
}
