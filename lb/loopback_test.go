package lb

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// tcpPod is a real backend on 127.0.0.1: it answers each connection's one-byte request with
// one byte and closes. kill closes the listener and every open connection, as a pod dying.
type tcpPod struct {
	ln     net.Listener
	served atomic.Int64
	mu     sync.Mutex
	conns  map[net.Conn]bool
	wg     sync.WaitGroup
}

func startPod(t *testing.T) *tcpPod {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpPod{ln: ln, conns: map[net.Conn]bool{}}
	p.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			p.conns[c] = true
			p.mu.Unlock()
			p.wg.Go(func() {
				defer func() {
					p.mu.Lock()
					delete(p.conns, c)
					p.mu.Unlock()
					c.Close()
				}()
				var b [1]byte
				if _, err := io.ReadFull(c, b[:]); err != nil {
					return
				}
				if _, err := c.Write(b[:]); err == nil {
					p.served.Add(1)
				}
			})
		}
	})
	t.Cleanup(p.kill)
	return p
}

func (p *tcpPod) kill() {
	p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// roundTrip is what a proxy does with the pool for one request: pick, dial, exchange, report.
// A connection that cannot be made is retried on another endpoint within Retries and the
// budget; so is a request that was sent, only if it is idempotent (a GET).
func roundTrip(p *Pool, hash uint64, idempotent bool) error {
	var tried Tried
	for {
		e, err := p.Pick(hash, &tried)
		if err != nil {
			return err
		}
		conn, err := net.DialTimeout("tcp", e.Addr, time.Second)
		if err != nil {
			p.Done(e, ConnectFailure, time.Now())
			if tried.Attempts() <= p.Retries() && p.AllowRetry() {
				continue
			}
			return err
		}
		_, err = conn.Write([]byte{'x'})
		var b [1]byte
		if err == nil {
			_, err = io.ReadFull(conn, b[:])
		}
		conn.Close()
		if err != nil {
			p.Done(e, Reset, time.Now())
			if idempotent && tried.Attempts() <= p.Retries() && p.AllowRetry() {
				continue
			}
			return err
		}
		p.Done(e, Success, time.Now())
		return nil
	}
}

// A pod killed under steady load costs no failed GET: connect failures and the requests it
// was serving when it died are retried on another pod, and passive ejection and active TCP
// checks take it out of rotation.
func TestLoopbackKilledPodCostsNothing(t *testing.T) {
	for _, pol := range []Policy{RoundRobin, LeastRequest, Random, ConsistentHash} {
		t.Run(string(pol), func(t *testing.T) {
			pods := []*tcpPod{startPod(t), startPod(t), startPod(t)}
			eps := make([]EndpointConfig, len(pods))
			for i, pod := range pods {
				eps[i] = EndpointConfig{Addr: pod.ln.Addr().String()}
			}
			p, err := NewPool("app", Config{
				Endpoints:   eps,
				Balance:     pol,
				HealthCheck: HealthCheck{Interval: 50 * time.Millisecond, Fall: 2, Rise: 2},
				Retries:     2,
			}, nil)
			if err != nil {
				t.Fatal(err)
			}
			p.Start(context.Background(), TCPChecker{})
			defer p.Close()

			const clients, perClient = 4, 300
			var failed atomic.Int64
			var sent atomic.Int64
			var wg sync.WaitGroup
			for c := range clients {
				wg.Go(func() {
					for i := range perClient {
						if c == 0 && i == perClient/3 {
							pods[1].kill()
						}
						if err := roundTrip(p, Hash([]byte{byte(c), byte(i), byte(i >> 8)}), true); err != nil {
							failed.Add(1)
							t.Errorf("request failed: %v", err)
						}
						sent.Add(1)
					}
				})
			}
			wg.Wait()
			if failed.Load() != 0 {
				t.Fatalf("%d of %d requests failed", failed.Load(), sent.Load())
			}
			for _, i := range []int{0, 2} {
				if pods[i].served.Load() == 0 {
					t.Errorf("surviving pod %d served nothing", i)
				}
			}
			if e := p.Endpoints()[1]; e.Healthy() {
				t.Errorf("killed pod still in rotation")
			}
		})
	}
}

// A hanging pod fills its MaxConnsPerEndpoint; further requests are refused at once with
// ErrOverloaded instead of queueing behind it.
func TestLoopbackHangingPodTripsBreaker(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var held []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c) // accept, never answer
			mu.Unlock()
		}
	}()
	defer func() {
		mu.Lock()
		for _, c := range held {
			c.Close()
		}
		mu.Unlock()
	}()
	p, err := NewPool("hang", Config{Endpoints: []EndpointConfig{{Addr: ln.Addr().String()}}, MaxConnsPerEndpoint: 2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	for range 2 {
		e, err := p.Pick(0, nil)
		if err != nil {
			t.Fatal(err)
		}
		c, err := net.Dial("tcp", e.Addr)
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte{'x'})
		conns = append(conns, c)
	}
	if _, err := p.Pick(0, nil); !errors.Is(err, ErrOverloaded) {
		t.Fatalf("pod hung with 2 requests: Pick = %v, want ErrOverloaded", err)
	}
	for _, c := range conns {
		c.Close()
		p.Done(p.Endpoints()[0], Timeout, time.Now())
	}
	if _, err := p.Pick(0, nil); err != nil {
		t.Errorf("after the hung requests ended: %v", err)
	}
}
