//go:build !race

package lb

import "testing"

func TestPickDoneAllocs(t *testing.T) {
	for _, cfg := range []Config{
		{Balance: RoundRobin},
		{Balance: LeastRequest, MaxConnsPerEndpoint: 100, MaxPending: 1000},
		{Balance: Random},
		{Balance: ConsistentHash},
		{Balance: ConsistentHash, HashBalanceFactor: 1.25, Retries: 2},
	} {
		cfg.Endpoints = endpoints(5)
		p := mustPool(t, cfg)
		var i uint64
		allocs := testing.AllocsPerRun(1000, func() {
			i++
			var tr Tried
			e, err := p.Pick(i*0x9E3779B97F4A7C15, &tr)
			if err != nil {
				t.Fatal(err)
			}
			p.Done(e, ConnectFailure, t0) // counts toward ejection but stays below it
			p.Done(mustPick(t, p, i, &tr), Success, t0)
			p.AllowRetry()
		})
		if allocs != 0 {
			t.Errorf("%s: Pick/Done allocate %.1f per run", cfg.Balance, allocs)
		}
	}
}

func mustPick(t *testing.T, p *Pool, h uint64, tr *Tried) *Endpoint {
	e, err := p.Pick(h, tr)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestPickErrorAllocs(t *testing.T) {
	p := mustPool(t, Config{Endpoints: endpoints(2), MaxPending: 1})
	held := mustPick(t, p, 0, nil)
	if allocs := testing.AllocsPerRun(1000, func() {
		if _, err := p.Pick(0, nil); err == nil {
			t.Fatal("over MaxPending: no error")
		}
	}); allocs != 0 {
		t.Errorf("refused Pick allocates %.1f", allocs)
	}
	p.Done(held, Success, t0)
}

func TestHashAndLookupAllocs(t *testing.T) {
	m := NewMaglev(podNames(7))
	key := []byte("203.0.113.7")
	if allocs := testing.AllocsPerRun(1000, func() {
		_ = m.Lookup(Hash(key))
		_ = m.Probe(HashString("db.example.com"), 3)
	}); allocs != 0 {
		t.Errorf("Hash/Lookup allocate %.1f per run", allocs)
	}
}
