package lb

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"
)

func TestTCPChecker(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	up := &Endpoint{Name: "up", Addr: ln.Addr().String()}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := (TCPChecker{}).Check(ctx, up); err != nil {
		t.Errorf("listening endpoint: %v", err)
	}
	ln.Close()
	if err := (TCPChecker{}).Check(ctx, up); err == nil {
		t.Errorf("closed endpoint passed the check")
	}
	// A check gives up when its context does.
	done, stop := context.WithCancel(context.Background())
	stop()
	if err := (TCPChecker{}).Check(done, &Endpoint{Addr: "192.0.2.1:9"}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled check: %v, want context.Canceled", err)
	}
}

// Start runs real TCP checks: a pod that stops listening leaves rotation, one that listens
// again comes back, and Close stops the loop.
func TestStartChecksRealListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	serve := func(ln net.Listener) {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}
	go serve(ln)
	ev := make(chan Event, 16)
	p, err := NewPool("app", Config{
		Endpoints:   []EndpointConfig{{Name: "pod", Addr: addr}, {Name: "other", Addr: "127.0.0.1:1"}},
		HealthCheck: HealthCheck{Interval: 20 * time.Millisecond, Timeout: time.Second, Fall: 2, Rise: 2},
		OnEvent:     func(e Event) { ev <- e },
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	p.Start(context.Background(), nil)
	defer p.Close()
	pod, other := p.Endpoints()[0], p.Endpoints()[1]
	// Port 1 on loopback refuses: the first failed check takes "other" out.
	if e := waitEvent(t, ev); e.Kind != EventUnhealthy || e.Endpoint != other {
		t.Fatalf("first event %v %v, want other unhealthy", e.Kind, e.Endpoint)
	}
	if !pod.Healthy() {
		t.Errorf("listening pod unhealthy")
	}
	ln.Close()
	if e := waitEvent(t, ev); e.Kind != EventUnhealthy || e.Endpoint != pod {
		t.Fatalf("after close: event %v %v, want pod unhealthy", e.Kind, e.Endpoint)
	}
	if e := waitEvent(t, ev); e.Kind != EventPanic {
		t.Fatalf("both down: event %v, want panic", e.Kind)
	}
	ln2, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("could not listen on %s again: %v", addr, err)
	}
	defer ln2.Close()
	go serve(ln2)
	if e := waitEvent(t, ev); e.Kind != EventHealthy || e.Endpoint != pod {
		t.Fatalf("listening again: event %v %v, want pod healthy", e.Kind, e.Endpoint)
	}
	p.Close()
	p.Close()                          // idempotent
	p.Start(context.Background(), nil) // after Close: no-op
}

func waitEvent(t *testing.T, ev <-chan Event) Event {
	t.Helper()
	select {
	case e := <-ev:
		return e
	case <-time.After(10 * time.Second):
		t.Fatalf("no health event within 10s")
		return Event{}
	}
}

// Start also runs Tick: an ejection ends on its own.
func TestStartEndsEjections(t *testing.T) {
	ev := make(chan Event, 16)
	p, err := NewPool("app", Config{
		Endpoints: endpoints(2),
		Outlier:   OutlierDetection{BaseEjection: 50 * time.Millisecond},
		OnEvent:   func(e Event) { ev <- e },
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p.Start(ctx, nil)
	e := p.Endpoints()[0]
	for range 3 {
		e.s.inFlight.Add(1)
		p.Done(e, ConnectFailure, time.Now())
	}
	if got := waitEvent(t, ev); got.Kind != EventEjected {
		t.Fatalf("event %v, want ejected", got.Kind)
	}
	if got := waitEvent(t, ev); got.Kind != EventReturned || got.Endpoint != e {
		t.Fatalf("event %v, want returned", got.Kind)
	}
	cancel()
	p.Close() // returns once the loop has seen the cancelled context
}
