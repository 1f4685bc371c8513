package l4

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// freePort returns a port that was free a moment ago (for SO_REUSEPORT,
// which needs a fixed port).
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestReusePort(t *testing.T) {
	for _, mode := range acceptModes() {
		t.Run(string(mode), func(t *testing.T) {
			addr := freePort(t)
			s := startServer(t, Config{Accept: mode, ReusePort: true, EventLoops: 2, Listeners: []ListenerConfig{
				{Name: "web", Address: addr},
			}})
			serveHTTP(t, s, "web")
			if got := s.Addr("web").String(); got != addr {
				t.Fatalf("bound %s, want %s", got, addr)
			}
			for range 8 { // spread over the per-loop sockets
				c, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				if got := httpGet(t, c, bufio.NewReader(c), "/"); !strings.HasPrefix(got, "client=") {
					t.Fatalf("body %q", got)
				}
				c.Close()
			}
		})
	}
}

func TestRelayListenerHashOnSNI(t *testing.T) {
	backendCert := testCert(t, "db.example.com")
	backend := tcpBackend(t, func(c net.Conn) {
		tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{backendCert}})
		if tc.Handshake() == nil {
			io.WriteString(tc, "hi")
			tc.Close()
		}
	})
	for _, mode := range acceptModes() {
		t.Run(string(mode), func(t *testing.T) {
			pool := &fakePool{policy: RelayPolicy{HashOn: HashSNI}, eps: []fakeEndpoint{fakeEndpoint(backend)}}
			s := startServer(t, Config{Accept: mode, Pools: fakePools{"p": pool}, Listeners: []ListenerConfig{
				{Name: "l4", Address: "127.0.0.1:0", Kind: KindRelay, Pool: "p"},
			}})
			c, err := tls.Dial("tcp", s.Addr("l4").String(), &tls.Config{ServerName: "Db.Example.com", InsecureSkipVerify: true})
			if err != nil {
				t.Fatal(err)
			}
			if b, err := io.ReadAll(c); err != nil || string(b) != "hi" {
				t.Fatalf("got %q, %v", b, err)
			}
			c.Close()
			// Not TLS: the client address is the key instead.
			raw, err := net.Dial("tcp", s.Addr("l4").String())
			if err != nil {
				t.Fatal(err)
			}
			io.WriteString(raw, "hello, not tls")
			io.ReadAll(raw) // the backend's handshake fails and it closes
			raw.Close()
			waitFor(t, "two picks", func() bool { pool.mu.Lock(); defer pool.mu.Unlock(); return len(pool.keys) == 2 })
			if pool.keys[0] != "db.example.com" || pool.keys[1] != "127.0.0.1" {
				t.Fatalf("hash keys %q, want the SNI then the client IP", pool.keys)
			}
		})
	}
}

func TestUpdateListenerAndSetPools(t *testing.T) {
	a := tcpBackend(t, func(c net.Conn) { io.WriteString(c, "a") })
	b := tcpBackend(t, func(c net.Conn) { io.WriteString(c, "b") })
	s := startServer(t, Config{Pools: fakePools{"p": {eps: []fakeEndpoint{fakeEndpoint(a)}}}, Listeners: []ListenerConfig{
		{Name: "l4", Address: "127.0.0.1:0", Kind: KindRelay, Pool: "p"},
		{Name: "web", Address: "127.0.0.1:0"},
	}})
	read := func() string {
		c, err := net.Dial("tcp", s.Addr("l4").String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		var buf [1]byte
		if _, err := io.ReadFull(c, buf[:]); err != nil {
			t.Fatal(err)
		}
		return string(buf[:])
	}
	if got := read(); got != "a" {
		t.Fatalf("before reload: %q", got)
	}
	s.SetPools(fakePools{"p": {eps: []fakeEndpoint{fakeEndpoint(b)}}, "q": {eps: []fakeEndpoint{fakeEndpoint(a)}}})
	if got := read(); got != "b" {
		t.Fatalf("after SetPools: %q, want the new pool's endpoint", got)
	}
	if err := s.UpdateListener(ListenerConfig{Name: "l4", Address: "127.0.0.1:0", Kind: KindRelay, Pool: "q"}); err != nil {
		t.Fatal(err)
	}
	if got := read(); got != "a" {
		t.Fatalf("after UpdateListener: %q, want pool q", got)
	}
	for _, bad := range []ListenerConfig{
		{Name: "nope", Address: "127.0.0.1:0"},
		{Name: "l4", Address: "127.0.0.1:1", Kind: KindRelay, Pool: "q"},
		{Name: "web", Address: "127.0.0.1:0", Kind: KindRelay, Pool: "q"},
		{Name: "l4", Address: "127.0.0.1:0", Kind: KindRelay, Pool: "missing"},
	} {
		if err := s.UpdateListener(bad); err == nil {
			t.Errorf("UpdateListener(%+v) accepted", bad)
		}
	}
}

func TestMaxConns(t *testing.T) {
	for _, mode := range acceptModes() {
		t.Run(string(mode), func(t *testing.T) {
			s := startServer(t, Config{Accept: mode, MaxConns: 3, Listeners: []ListenerConfig{
				{Name: "a", Address: "127.0.0.1:0", MaxConns: 2},
				{Name: "b", Address: "127.0.0.1:0"},
			}})
			serveHTTP(t, s, "a")
			serveHTTP(t, s, "b")
			open := func(name string) net.Conn {
				c, err := net.Dial("tcp", s.Addr(name).String())
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { c.Close() })
				return c
			}
			for range 2 {
				c := open("a")
				httpGet(t, c, bufio.NewReader(c), "/")
			}
			over := open("a") // listener cap
			io.WriteString(over, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
			expectClosed(t, over)
			c := open("b")
			httpGet(t, c, bufio.NewReader(c), "/")
			over = open("b") // server-wide cap
			io.WriteString(over, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
			expectClosed(t, over)
			if ra, rb := stats(s, "a").Rejected[RejectMaxConns], stats(s, "b").Rejected[RejectMaxConns]; ra != 1 || rb != 1 {
				t.Fatalf("max_conns refusals a=%d b=%d, want 1 each", ra, rb)
			}
		})
	}
}

func TestHandoffBacklog(t *testing.T) {
	// A queue of one and nobody accepting: the first connection waits in
	// the channel, the second in a spill goroutine, the third is refused.
	s := startServer(t, Config{HandoffQueue: 1, Listeners: []ListenerConfig{{Name: "web", Address: "127.0.0.1:0"}}})
	var conns []net.Conn
	for i := range 3 {
		c, err := net.Dial("tcp", s.Addr("web").String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		conns = append(conns, c)
		waitFor(t, "classified", func() bool {
			st := stats(s, "web")
			return uint64(len(s.byName["web"].cl.ch))+st.HandoffSpilled+st.Rejected[RejectBacklog] == uint64(i+1)
		})
	}
	expectClosed(t, conns[2])
	if st := stats(s, "web"); st.HandoffSpilled != 1 || st.Rejected[RejectBacklog] != 1 {
		t.Fatalf("spilled %d, backlog refusals %d; want 1 and 1", st.HandoffSpilled, st.Rejected[RejectBacklog])
	}
	// Once L7 accepts, both waiting connections are served.
	serveHTTP(t, s, "web")
	for _, c := range conns[:2] {
		if got := readResponse(t, c, bufio.NewReader(c)); !strings.HasPrefix(got, "client=") {
			t.Fatalf("body %q", got)
		}
	}
}

func TestServeBeforeStart(t *testing.T) {
	for _, mode := range acceptModes() {
		t.Run(string(mode), func(t *testing.T) {
			s, err := New(Config{Accept: mode, Logf: t.Logf, Listeners: []ListenerConfig{{Name: "web", Address: "127.0.0.1:0"}}})
			if err != nil {
				t.Fatal(err)
			}
			serveHTTP(t, s, "web") // Accept waits for Start
			if err := s.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Shutdown(context.Background()) })
			c, err := net.Dial("tcp", s.Addr("web").String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if got := httpGet(t, c, bufio.NewReader(c), "/"); !strings.HasPrefix(got, "client=") {
				t.Fatalf("body %q", got)
			}
		})
	}
}

func TestHandshakeTimeoutGoClassify(t *testing.T) {
	// accept=go reads first bytes in a goroutine per connection, under the
	// same deadline.
	s := startServer(t, Config{Accept: AcceptGo, Pools: fakePools{"p": {}}, Listeners: []ListenerConfig{{
		Name: "tls", Address: "127.0.0.1:0", Kind: KindTLS, HandshakeTimeout: 300 * time.Millisecond,
		Terminate: func(c net.Conn) net.Conn { return c }, Passthrough: map[string]string{"db": "p"},
	}}})
	hello := goClientHello(t, &tls.Config{ServerName: "db"})
	var conns []net.Conn
	for range 50 {
		c, err := net.Dial("tcp", s.Addr("tls").String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write(hello[:100]) // a ClientHello that never completes
		conns = append(conns, c)
	}
	for _, c := range conns {
		expectClosed(t, c)
	}
	waitFor(t, "timeouts counted", func() bool { return stats(s, "tls").Rejected[RejectHandshakeTimeout] == 50 })
	waitFor(t, "no active connections", func() bool { return stats(s, "tls").Active == 0 })
}

// TestPortInUseSaysSo: a listener whose port is taken fails Start with the
// bind error under both accept paths (gnet used to report the EBADF of a
// setsockopt on the socket it had closed after the failed bind).
func TestPortInUseSaysSo(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	for _, mode := range acceptModes() {
		for _, reuse := range []bool{false, true} {
			if reuse && mode == AcceptGo {
				continue
			}
			t.Run(fmt.Sprintf("%s/reuseport=%v", mode, reuse), func(t *testing.T) {
				s, err := New(Config{Accept: mode, ReusePort: reuse, Logf: t.Logf, Listeners: []ListenerConfig{{Name: "x", Address: taken.Addr().String()}}})
				if err != nil {
					t.Fatal(err)
				}
				err = s.Start()
				if err == nil {
					s.Shutdown(context.Background()) //nolint:errcheck
					t.Fatal("Start on a port in use succeeded")
				}
				if !strings.Contains(err.Error(), "address already in use") || strings.Contains(err.Error(), "bad file descriptor") {
					t.Errorf("Start on a port in use: %v, want the bind error (address already in use)", err)
				}
			})
		}
	}
}
