package lb_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync/atomic"
	"time"

	"example.com/edge/lb"
)

// The request path of a proxy: pick, send, report the outcome, and retry a connect failure
// on another endpoint within the pool's retries and retry budget.
func ExamplePool() {
	cfg := lb.Config{Balance: lb.ConsistentHash, Retries: 1}
	for _, s := range []string{"app-0=10.0.1.11:8080", "app-1=10.0.1.12:8080", "app-2=10.0.1.13:8080"} {
		ec, err := lb.ParseEndpoint(s)
		if err != nil {
			panic(err)
		}
		cfg.Endpoints = append(cfg.Endpoints, ec)
	}
	pool, err := lb.NewPool("app", cfg, nil)
	if err != nil {
		panic(err)
	}
	pool.Start(context.Background(), lb.TCPChecker{}) // no HealthCheck.Interval: only Tick runs
	defer pool.Close()

	// Hash the client address without allocating: the 16-byte form of the IP.
	ip := netip.MustParseAddr("203.0.113.7").As16()
	hash := lb.Hash(ip[:])

	var tried lb.Tried
	send := func(e *lb.Endpoint) error { // stands in for dialing and proxying
		if tried.Attempts() == 1 {
			return errors.New("connection refused") // the first endpoint is down
		}
		return nil
	}
	for {
		e, err := pool.Pick(hash, &tried)
		if err != nil {
			fmt.Println("503:", err) // ErrNoHealthy or ErrOverloaded
			return
		}
		if err := send(e); err != nil {
			pool.Done(e, lb.ConnectFailure, time.Now())
			fmt.Println(e.Name, "failed:", err)
			if tried.Attempts() <= pool.Retries() && pool.AllowRetry() {
				continue
			}
			fmt.Println("502")
			return
		}
		pool.Done(e, lb.Success, time.Now())
		fmt.Println("served by", e.Name, "after", tried.Attempts(), "attempts")
		return
	}
	// Output:
	// app-1 failed: connection refused
	// served by app-0 after 2 attempts
}

// A reload builds the next generation from the current one, which keeps the health state of
// endpoints that stay.
func ExampleNewPool_reload() {
	cfg := lb.Config{
		Endpoints:   []lb.EndpointConfig{{Addr: "10.0.1.11:8080"}, {Addr: "10.0.1.12:8080"}},
		HealthCheck: lb.HealthCheck{Interval: 2 * time.Second},
	}
	old, _ := lb.NewPool("app", cfg, nil)
	old.RecordCheck(old.Endpoints()[0], errors.New("refused"), time.Now())

	cfg.Endpoints = append(cfg.Endpoints, lb.EndpointConfig{Addr: "10.0.1.13:8080"})
	next, err := lb.NewPool("app", cfg, old)
	if err != nil {
		panic(err)
	}
	// Then: next.Start(ctx, checker), publish next, old.Close().
	for _, e := range next.Endpoints() {
		fmt.Println(e.Addr, e.Healthy())
	}
	// Output:
	// 10.0.1.11:8080 false
	// 10.0.1.12:8080 true
	// 10.0.1.13:8080 true
}

// The L4 relay keeps a Maglev table in an atomic.Pointer, rebuilt off the request path when
// its endpoints change. The table depends on the names only, not on their order.
func ExampleNewMaglev() {
	var table atomic.Pointer[lb.Maglev]
	names := []string{"pg-0", "pg-1", "pg-2"}
	table.Store(lb.NewMaglev(names))
	h := lb.HashString("203.0.113.7")
	before := names[table.Load().Lookup(h)]

	reordered := []string{"pg-2", "pg-0", "pg-1"}
	table.Store(lb.NewMaglev(reordered))
	fmt.Println(before == reordered[table.Load().Lookup(h)])
	// Output: true
}
