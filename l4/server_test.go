package l4

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// httpGet sends a GET on c and returns the response body (Content-Length framed).
func httpGet(t testing.TB, c net.Conn, br *bufio.Reader, path string) string {
	t.Helper()
	if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: example.com\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	return readResponse(t, c, br)
}

func readResponse(t testing.TB, c net.Conn, br *bufio.Reader) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	status, err := br.ReadString('\n')
	if err != nil {
		t.Fatalf("reading status: %v", err)
	}
	if !strings.HasPrefix(status, "HTTP/1.1 200") {
		t.Fatalf("status %q", status)
	}
	n := -1
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if line == "\r\n" {
			break
		}
		if v, ok := strings.CutPrefix(strings.ToLower(line), "content-length: "); ok {
			n = 0
			for _, ch := range strings.TrimSpace(v) {
				n = n*10 + int(ch-'0')
			}
		}
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(br, body); err != nil {
		t.Fatal(err)
	}
	return string(body)
}

func TestHTTPDelivery(t *testing.T) {
	for _, mode := range acceptModes() {
		t.Run(string(mode), func(t *testing.T) {
			s := startServer(t, Config{Accept: mode, EventLoops: 2, Listeners: []ListenerConfig{
				{Name: "web", Address: "127.0.0.1:0"},
			}})
			serveHTTP(t, s, "web")
			c, err := net.Dial("tcp", s.Addr("web").String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			br := bufio.NewReader(c)
			want := "client=" + c.LocalAddr().String() + " sni= listener=web alpn= body="
			for i := range 3 { // keep-alive: later requests go straight to fasthttp
				if got := httpGet(t, c, br, "/"); got != want {
					t.Fatalf("request %d: body %q, want %q", i, got, want)
				}
			}
			// A head split over many writes, with the body in the same
			// segment as the end of the head, is replayed intact.
			c2, err := net.Dial("tcp", s.Addr("web").String())
			if err != nil {
				t.Fatal(err)
			}
			defer c2.Close()
			req := "POST /x HTTP/1.1\r\nHost: example.com\r\nContent-Length: 5\r\n\r\nhello"
			for i := 0; i < len(req); i += 7 {
				if _, err := io.WriteString(c2, req[i:min(i+7, len(req))]); err != nil {
					t.Fatal(err)
				}
				time.Sleep(time.Millisecond) // separate segments, to exercise accumulation
			}
			if got := readResponse(t, c2, bufio.NewReader(c2)); !strings.HasSuffix(got, " body=hello") {
				t.Fatalf("body %q, want the POST body replayed", got)
			}
			c.Close()
			c2.Close()
			waitFor(t, "active connections back to 0", func() bool { return stats(s, "web").Active == 0 })
			st := stats(s, "web")
			if st.Accepted != 2 || st.Delivered != 2 {
				t.Fatalf("stats %+v, want 2 accepted and delivered", st)
			}
		})
	}
}

func TestTLSTerminateAndPassthrough(t *testing.T) {
	edgeCert := testCert(t, "example.com")
	backendCert := testCert(t, "db.example.com")
	backendCfg := &tls.Config{Certificates: []tls.Certificate{backendCert}}
	backend := tcpBackend(t, func(c net.Conn) {
		tc := tls.Server(c, backendCfg)
		if err := tc.Handshake(); err != nil {
			return
		}
		io.WriteString(tc, "backend:"+tc.ConnectionState().ServerName)
		tc.Close()
	})
	for _, mode := range acceptModes() {
		t.Run(string(mode), func(t *testing.T) {
			pools := fakePools{"postgres": {policy: RelayPolicy{HashOn: HashSNI}, eps: []fakeEndpoint{fakeEndpoint(backend)}}}
			edgeCfg := &tls.Config{Certificates: []tls.Certificate{edgeCert}, NextProtos: []string{"http/1.1"}}
			s := startServer(t, Config{Accept: mode, Pools: pools, Listeners: []ListenerConfig{{
				Name: "https", Address: "127.0.0.1:0", Kind: KindTLS,
				Terminate:   func(c net.Conn) net.Conn { return tls.Server(c, edgeCfg) },
				Passthrough: map[string]string{"DB.example.com": "postgres"},
			}}})
			serveHTTP(t, s, "https")
			roots := x509.NewCertPool()
			roots.AddCert(edgeCert.Leaf)
			roots.AddCert(backendCert.Leaf)

			// Terminated: the edge's certificate, and L7 sees SNI and ALPN.
			c, err := tls.Dial("tcp", s.Addr("https").String(), &tls.Config{
				ServerName: "example.com", RootCAs: roots, NextProtos: []string{"http/1.1"},
			})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if got := c.ConnectionState().PeerCertificates[0].Subject.CommonName; got != "example.com" {
				t.Fatalf("terminated connection presented %q", got)
			}
			body := httpGet(t, c, bufio.NewReader(c), "/")
			if want := " sni=example.com listener=https alpn=http/1.1 "; !strings.Contains(body, want) {
				t.Fatalf("body %q, want it to contain %q", body, want)
			}

			// Pass-through (SNI matched case-insensitively): the backend's own certificate.
			p, err := tls.Dial("tcp", s.Addr("https").String(), &tls.Config{ServerName: "db.EXAMPLE.com", RootCAs: roots})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			if got := p.ConnectionState().PeerCertificates[0].Subject.CommonName; got != "db.example.com" {
				t.Fatalf("pass-through connection presented %q, want the backend's", got)
			}
			reply, err := io.ReadAll(p)
			if err != nil || string(reply) != "backend:db.EXAMPLE.com" {
				t.Fatalf("backend reply %q, %v", reply, err)
			}
			if keys := pools["postgres"].keys; len(keys) != 1 || keys[0] != "db.example.com" {
				t.Fatalf("hash keys %q, want the lower-cased SNI", keys)
			}

			// Plaintext on a TLS listener is refused.
			raw, err := net.Dial("tcp", s.Addr("https").String())
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			io.WriteString(raw, "GET / HTTP/1.1\r\n\r\n")
			expectClosed(t, raw)
			waitFor(t, "not_tls counted", func() bool { return stats(s, "https").Rejected[RejectNotTLS] == 1 })
		})
	}
}

func TestRelayHalfClose(t *testing.T) {
	// The backend reads the whole request (until the client's FIN), then answers.
	backend := tcpBackend(t, func(c net.Conn) {
		req, err := io.ReadAll(c)
		if err != nil {
			return
		}
		io.WriteString(c, "got "+string(req))
	})
	for _, mode := range acceptModes() {
		t.Run(string(mode), func(t *testing.T) {
			pools := fakePools{"p": {eps: []fakeEndpoint{fakeEndpoint(backend)}}}
			s := startServer(t, Config{Accept: mode, Pools: pools, Listeners: []ListenerConfig{
				{Name: "l4", Address: "127.0.0.1:0", Kind: KindRelay, Pool: "p"},
			}})
			c, err := net.Dial("tcp", s.Addr("l4").String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			io.WriteString(c, "request")
			if err := c.(*net.TCPConn).CloseWrite(); err != nil {
				t.Fatal(err)
			}
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			reply, err := io.ReadAll(c)
			if err != nil || string(reply) != "got request" {
				t.Fatalf("reply %q, %v; want the answer after half-close", reply, err)
			}
			waitFor(t, "relay finished", func() bool { st := stats(s, "l4"); return st.Relays == 0 && st.Active == 0 })
			st := stats(s, "l4")
			if st.RelayBytesIn != 7 || st.RelayBytesOut != 11 {
				t.Fatalf("relay bytes in/out %d/%d, want 7/11", st.RelayBytesIn, st.RelayBytesOut)
			}
			if d := pools["p"].dones(); len(d) != 1 || d[0].err != nil {
				t.Fatalf("RelayDone calls %+v, want one success", d)
			}
		})
	}
}

func TestRelayNextEndpointAndProxyV2Out(t *testing.T) {
	// A port with nothing listening: dials to it are refused.
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	dead.Close()
	headers := make(chan ProxyHeader, 1)
	backend := tcpBackend(t, func(c net.Conn) {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 0, 256)
		for {
			n, err := c.Read(buf[len(buf):cap(buf)])
			buf = buf[:len(buf)+n]
			h, perr := ParseProxyHeader(buf)
			if perr == nil {
				headers <- h
				payload := make([]byte, 5)
				m := copy(payload, buf[h.Len:])
				if _, err := io.ReadFull(c, payload[m:]); err != nil {
					return
				}
				c.Write(payload)
				return
			}
			if !errors.Is(perr, ErrNeedMore) || err != nil {
				headers <- ProxyHeader{}
				return
			}
		}
	})
	for _, mode := range acceptModes() {
		t.Run(string(mode), func(t *testing.T) {
			// The dead endpoint is the first choice; the relay must move on.
			pool := &fakePool{policy: RelayPolicy{ProxyProtocolV2: true}, ordered: true,
				eps: []fakeEndpoint{fakeEndpoint(deadAddr), fakeEndpoint(backend)}}
			s := startServer(t, Config{Accept: mode, Pools: fakePools{"p": pool}, Listeners: []ListenerConfig{
				{Name: "l4", Address: "127.0.0.1:0", Kind: KindRelay, Pool: "p"},
			}})
			c, err := net.Dial("tcp", s.Addr("l4").String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			io.WriteString(c, "hello")
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			reply, err := io.ReadAll(c)
			if err != nil || string(reply) != "hello" {
				t.Fatalf("reply %q, %v", reply, err)
			}
			h := <-headers
			if h.Version != 2 || h.Local {
				t.Fatalf("backend got header %+v, want a v2 PROXY header", h)
			}
			if want := addrPortOf(c.LocalAddr()); h.Source != want {
				t.Fatalf("PROXY source %v, want the client %v", h.Source, want)
			}
			if want := addrPortOf(s.Addr("l4")); h.Destination != want {
				t.Fatalf("PROXY destination %v, want the listener %v", h.Destination, want)
			}
			c.Close() // the relay ends when both sides have
			waitFor(t, "relay done", func() bool { return len(pool.dones()) == 2 })
			d := pool.dones()
			if d[0].ep != deadAddr || d[0].err == nil || d[1].ep != backend || d[1].err != nil {
				t.Fatalf("RelayDone calls %+v, want a failed dial of %s then a success of %s", d, deadAddr, backend)
			}
		})
	}
}

func TestProxyProtocolIn(t *testing.T) {
	for _, mode := range acceptModes() {
		t.Run(string(mode), func(t *testing.T) {
			s := startServer(t, Config{Accept: mode, Listeners: []ListenerConfig{
				{Name: "trusting", Address: "127.0.0.1:0", ProxyProtocol: true, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}},
				{Name: "untrusting", Address: "127.0.0.1:0", ProxyProtocol: true, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}},
			}})
			serveHTTP(t, s, "trusting")
			serveHTTP(t, s, "untrusting")

			// Trusted peer, v2 header: L7 sees the declared client.
			c, err := net.Dial("tcp", s.Addr("trusting").String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.Write(AppendProxyV2(nil, netip.MustParseAddrPort("203.0.113.7:4242"), netip.MustParseAddrPort("198.51.100.1:443")))
			if got := httpGet(t, c, bufio.NewReader(c), "/"); !strings.HasPrefix(got, "client=203.0.113.7:4242 ") {
				t.Fatalf("body %q, want the PROXY-declared client", got)
			}
			// Trusted peer, v1 header.
			c1, err := net.Dial("tcp", s.Addr("trusting").String())
			if err != nil {
				t.Fatal(err)
			}
			defer c1.Close()
			io.WriteString(c1, "PROXY TCP6 2001:db8::7 2001:db8::1 1000 443\r\n")
			if got := httpGet(t, c1, bufio.NewReader(c1), "/"); !strings.HasPrefix(got, "client=[2001:db8::7]:1000 ") {
				t.Fatalf("body %q, want the PROXY-declared client", got)
			}
			// Trusted peer without a header: refused (the header is required).
			c2, err := net.Dial("tcp", s.Addr("trusting").String())
			if err != nil {
				t.Fatal(err)
			}
			defer c2.Close()
			io.WriteString(c2, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
			expectClosed(t, c2)
			// Untrusted peer with a header: refused.
			c3, err := net.Dial("tcp", s.Addr("untrusting").String())
			if err != nil {
				t.Fatal(err)
			}
			defer c3.Close()
			io.WriteString(c3, "PROXY TCP4 203.0.113.7 198.51.100.1 4242 443\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
			expectClosed(t, c3)
			// Untrusted peer without a header: served as itself.
			c4, err := net.Dial("tcp", s.Addr("untrusting").String())
			if err != nil {
				t.Fatal(err)
			}
			defer c4.Close()
			if got := httpGet(t, c4, bufio.NewReader(c4), "/"); !strings.HasPrefix(got, "client="+c4.LocalAddr().String()+" ") {
				t.Fatalf("body %q, want the peer address", got)
			}
			waitFor(t, "refusals counted", func() bool {
				return stats(s, "trusting").Rejected[RejectProxyMalformed] == 1 && stats(s, "untrusting").Rejected[RejectProxyUntrusted] == 1
			})
		})
	}
}

func TestMaxConnsPerIP(t *testing.T) {
	for _, mode := range acceptModes() {
		t.Run(string(mode), func(t *testing.T) {
			s := startServer(t, Config{Accept: mode, Listeners: []ListenerConfig{
				{Name: "web", Address: "127.0.0.1:0", MaxConnsPerIP: 3},
			}})
			serveHTTP(t, s, "web")
			addr := s.Addr("web").String()
			// Three keep-alive connections that completed a request: they are
			// in L7's hands now, and still count.
			var conns []net.Conn
			for range 3 {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				httpGet(t, c, bufio.NewReader(c), "/")
				conns = append(conns, c)
			}
			over, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer over.Close()
			io.WriteString(over, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
			expectClosed(t, over)
			if st := stats(s, "web"); st.Rejected[RejectMaxConnsPerIP] != 1 {
				t.Fatalf("rejected %v, want one max_conns_per_ip", st.Rejected)
			}
			// Closing a delivered connection (L7 closes its Conn on EOF)
			// gives the slot back.
			loopback := netip.MustParseAddr("127.0.0.1")
			if n := s.byName["web"].ips.count(loopback); n != 3 {
				t.Fatalf("per-IP count %d, want 3", n)
			}
			conns[0].Close()
			waitFor(t, "slot released", func() bool { return stats(s, "web").Active == 2 })
			if n := s.byName["web"].ips.count(loopback); n != 2 {
				t.Fatalf("per-IP count %d after a close, want 2", n)
			}
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			httpGet(t, c, bufio.NewReader(c), "/")
		})
	}
}

func TestMaxConnsPerIPCountsDeclaredClient(t *testing.T) {
	s := startServer(t, Config{Listeners: []ListenerConfig{{
		Name: "web", Address: "127.0.0.1:0", MaxConnsPerIP: 1,
		ProxyProtocol: true, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
	}}})
	serveHTTP(t, s, "web")
	dial := func(client string) (net.Conn, *bufio.Reader) {
		c, err := net.Dial("tcp", s.Addr("web").String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.Write(AppendProxyV2(nil, netip.MustParseAddrPort(client), netip.MustParseAddrPort("10.0.0.1:80")))
		return c, bufio.NewReader(c)
	}
	// The load balancer (127.0.0.1) carries two different clients: both fit.
	a, ab := dial("203.0.113.1:1")
	httpGet(t, a, ab, "/")
	b, bb := dial("203.0.113.2:1")
	httpGet(t, b, bb, "/")
	// A second connection of the same declared client does not.
	c, _ := dial("203.0.113.1:2")
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	expectClosed(t, c)
}

func TestHandshakeTimeoutTrickle(t *testing.T) {
	const trickling = 1000
	s := startServer(t, Config{EventLoops: 2, Listeners: []ListenerConfig{
		{Name: "web", Address: "127.0.0.1:0", HandshakeTimeout: 300 * time.Millisecond},
	}})
	serveHTTP(t, s, "web")
	addr := s.Addr("web").String()
	conns := make([]net.Conn, 0, trickling)
	for range trickling {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns = append(conns, c)
	}
	// Trickle: one byte of a request head per connection per round, never
	// completing it. Writes fail once l4 has closed a connection.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		head := "GET /slow HTTP/1.1\r\nHost: example.com\r\nX-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		for i := 0; i < len(head); i++ {
			for _, c := range conns {
				c.SetWriteDeadline(time.Now().Add(time.Second))
				c.Write([]byte{head[i]})
			}
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	// Normal clients are served while the trickling ones are pending.
	for range 20 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := httpGet(t, c, bufio.NewReader(c), "/"); !strings.HasPrefix(got, "client=") {
			t.Fatalf("normal client got %q", got)
		}
		c.Close()
	}
	for _, c := range conns {
		expectClosed(t, c)
	}
	close(stop)
	wg.Wait()
	waitFor(t, "all trickling connections refused", func() bool {
		return stats(s, "web").Rejected[RejectHandshakeTimeout] == trickling
	})
	waitFor(t, "no active connections", func() bool { return stats(s, "web").Active == 0 })
}

func TestRelayIdleTimeout(t *testing.T) {
	backend := tcpBackend(t, func(c net.Conn) { io.Copy(io.Discard, c) })
	pools := fakePools{"p": {eps: []fakeEndpoint{fakeEndpoint(backend)}}}
	s := startServer(t, Config{Pools: pools, Listeners: []ListenerConfig{
		{Name: "l4", Address: "127.0.0.1:0", Kind: KindRelay, Pool: "p", IdleTimeout: 200 * time.Millisecond},
	}})
	c, err := net.Dial("tcp", s.Addr("l4").String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "x")
	expectClosed(t, c)
	if st := stats(s, "l4"); st.RelayIdleClosed != 1 {
		t.Fatalf("idle closed %d, want 1", st.RelayIdleClosed)
	}
}

func TestShutdownWaitsForRelaysThenForces(t *testing.T) {
	backend := tcpBackend(t, func(c net.Conn) { io.Copy(c, c) })
	pools := fakePools{"p": {eps: []fakeEndpoint{fakeEndpoint(backend)}}}
	s, err := New(Config{Pools: pools, Logf: t.Logf, Listeners: []ListenerConfig{
		{Name: "l4", Address: "127.0.0.1:0", Kind: KindRelay, Pool: "p"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", s.Addr("l4").String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "ping")
	var b [4]byte
	if _, err := io.ReadFull(c, b[:]); err != nil {
		t.Fatal(err)
	}
	// A relay that does not finish is closed when the context ends.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := s.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v, want deadline exceeded", err)
	}
	expectClosed(t, c)
	if _, err := net.Dial("tcp", s.Addr("l4").String()); err == nil {
		t.Fatal("still accepting after Shutdown")
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	pools := fakePools{"p": {}}
	term := func(c net.Conn) net.Conn { return c }
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"accept", Config{Accept: "epoll"}, `accept "epoll"`},
		{"no-name", Config{Listeners: []ListenerConfig{{Address: "127.0.0.1:0"}}}, "empty name"},
		{"dup", Config{Listeners: []ListenerConfig{{Name: "a", Address: "127.0.0.1:0"}, {Name: "a", Address: "127.0.0.1:0"}}}, "duplicate name"},
		{"bad-address", Config{Listeners: []ListenerConfig{{Name: "a", Address: "localhost"}}}, `address "localhost"`},
		{"hostname", Config{Listeners: []ListenerConfig{{Name: "a", Address: "example.com:80"}}}, "must be an IP"},
		{"reuseport-port0", Config{ReusePort: true, Listeners: []ListenerConfig{{Name: "a", Address: "127.0.0.1:0"}}}, "fixed port"},
		{"http-with-pool", Config{Listeners: []ListenerConfig{{Name: "a", Address: ":80", Pool: "p"}}}, "takes no"},
		{"tls-nothing", Config{Listeners: []ListenerConfig{{Name: "a", Address: ":443", Kind: KindTLS}}}, "needs terminate or passthrough"},
		{"unknown-pool", Config{Pools: pools, Listeners: []ListenerConfig{{Name: "a", Address: ":5432", Kind: KindRelay, Pool: "pg"}}}, `unknown pool "pg"`},
		{"unknown-passthrough-pool", Config{Pools: pools, Listeners: []ListenerConfig{{Name: "a", Address: ":443", Kind: KindTLS, Terminate: term, Passthrough: map[string]string{"db": "pg"}}}}, `unknown pool "pg"`},
		{"negative", Config{Listeners: []ListenerConfig{{Name: "a", Address: ":80", MaxConnsPerIP: -1}}}, "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New: %v, want ErrConfig mentioning %q", err, tt.want)
			}
		})
	}
	var zero Config
	s, err := New(zero)
	if err != nil {
		t.Fatalf("zero Config: %v", err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestPendingConnectionMemory bounds what a connection that is still
// sending its first request head costs the edge, so 10k trickling
// connections stay cheap (the requirement).
func TestPendingConnectionMemory(t *testing.T) {
	const n = 2000
	s := startServer(t, Config{EventLoops: 2, Listeners: []ListenerConfig{{Name: "web", Address: "127.0.0.1:0"}}})
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range n {
		c, err := net.Dial("tcp", s.Addr("web").String())
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, "GET /trickle HTTP/1.1\r\nHost: exa")
		conns = append(conns, c)
	}
	waitFor(t, "all connections pending", func() bool { return stats(s, "web").Active == n })
	runtime.GC()
	runtime.ReadMemStats(&after)
	// The client side (net.Conn, netFD) is in this heap too, so this is an
	// upper bound on the server's share.
	perConn := (int64(after.HeapAlloc) - int64(before.HeapAlloc)) / n
	t.Logf("heap per pending connection, client side included: %d bytes", perConn)
	if perConn > 4096 {
		t.Fatalf("%d heap bytes per pending connection, want under 4 KiB", perConn)
	}
}
