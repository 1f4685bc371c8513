package tlsterm

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

func BenchmarkPick(b *testing.B) {
	x := newCertIndex([]*tls.Certificate{pairFor(b, "default.test"), pairFor(b, "exact.example.com"), pairFor(b, "*.example.com")})
	for _, sni := range []string{"exact.example.com", "a.example.com", "unknown.test"} {
		b.Run(sni, func(b *testing.B) {
			h := &tls.ClientHelloInfo{ServerName: sni}
			b.ReportAllocs()
			for b.Loop() {
				x.pick(h)
			}
		})
	}
}

func BenchmarkConfigForClient(b *testing.B) {
	term := mustNew(b, Config{Certificates: []Certificate{newTestCert(b, b.TempDir(), "example", "example.com").config()}})
	h := &tls.ClientHelloInfo{ServerName: "example.com"}
	b.ReportAllocs()
	for b.Loop() {
		term.configForClient(h)
	}
}

// handshakeCase is one client configuration for the handshake benchmarks.
type handshakeCase struct {
	name    string
	client  func() *tls.Config
	resumed bool
}

func handshakeCases(cert testCert) []handshakeCase {
	base := func() *tls.Config {
		return &tls.Config{ServerName: "example.com", RootCAs: cert.pool(), NextProtos: []string{ALPN}}
	}
	with := func(f func(*tls.Config)) func() *tls.Config {
		return func() *tls.Config { c := base(); f(c); return c }
	}
	return []handshakeCase{
		{name: "full/tls1.3/x25519mlkem768", client: base},
		{name: "full/tls1.3/x25519", client: with(func(c *tls.Config) { c.CurvePreferences = []tls.CurveID{tls.X25519} })},
		{name: "full/tls1.2/x25519", client: with(func(c *tls.Config) { c.MaxVersion = tls.VersionTLS12 })},
		{name: "resumed/tls1.3/x25519mlkem768", client: base, resumed: true},
		{name: "resumed/tls1.2", client: with(func(c *tls.Config) { c.MaxVersion = tls.VersionTLS12 }), resumed: true},
	}
}

// BenchmarkHandshake measures one handshake end to end over loopback TCP:
// dial, client and server handshake (both in this process, on the machine's
// cores), close. It is latency with both sides' CPU in it; see
// BenchmarkServerHandshake for the server's share alone.
func BenchmarkHandshake(b *testing.B) {
	cert := newTestCert(b, b.TempDir(), "example", "example.com")
	term := mustNew(b, Config{Certificates: []Certificate{cert.config()}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan error)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(done)
				return
			}
			tc := term.Server(c)
			err = tc.Handshake()
			if err == nil {
				// Let a priming client read its session ticket.
				tc.Write([]byte{0})
			}
			c.Close()
			done <- err
		}
	}()
	b.Cleanup(func() { ln.Close(); <-done })
	addr := ln.Addr().String()

	handshake := func(cfg *tls.Config) *tls.Conn {
		raw, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		c := tls.Client(raw, cfg)
		if err := c.Handshake(); err != nil {
			b.Fatal(err)
		}
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		return c
	}
	for _, hc := range handshakeCases(cert) {
		b.Run(hc.name, func(b *testing.B) {
			cfg := hc.client()
			if hc.resumed {
				cfg.ClientSessionCache = &pinnedCache{}
				c := handshake(cfg)
				c.Read(make([]byte, 1)) // take the ticket
				c.Close()
			}
			b.ReportAllocs()
			cpu := processCPU()
			for b.Loop() {
				c := handshake(cfg)
				if c.ConnectionState().DidResume != hc.resumed {
					b.Fatalf("resumed = %v", !hc.resumed)
				}
				c.Close()
			}
			reportCPU(b, cpu)
		})
	}
}

// BenchmarkServerHandshake measures the server's CPU alone for TLS 1.3: a
// ClientHello captured once from a real client is replayed to a fresh server
// connection, which does all of its handshake work (key exchange, certificate
// signature or ticket decryption, its whole flight and a new session ticket)
// and then meets EOF where the client's Finished would be, leaving out only
// that Finished's HMAC check. TLS 1.3 has no replay protection for 1-RTT
// ClientHellos, so each replay is a complete, valid server handshake.
func BenchmarkServerHandshake(b *testing.B) {
	cert := newTestCert(b, b.TempDir(), "example", "example.com")
	var resumed atomic.Bool
	term := mustNew(b, Config{
		Certificates: []Certificate{cert.config()},
		OnHandshake:  func(cs tls.ConnectionState) { resumed.Store(cs.DidResume) },
	})
	for _, hc := range handshakeCases(cert) {
		if hc.client().MaxVersion == tls.VersionTLS12 {
			continue // the TLS 1.2 server finishes its key exchange after the client's next flight
		}
		b.Run(hc.name, func(b *testing.B) {
			cfg := hc.client()
			if hc.resumed {
				cfg.ClientSessionCache = &pinnedCache{}
				primeSession(b, term, cfg)
			}
			hello := captureClientHello(b, cfg)
			replay := func() int {
				conn := &replayConn{in: hello}
				err := term.Server(conn).Handshake()
				if !errors.Is(err, io.EOF) {
					b.Fatalf("replayed handshake ended with %v, want EOF after the server flight", err)
				}
				return conn.wrote
			}
			if n := replay(); n < 100 || resumed.Load() != hc.resumed {
				b.Fatalf("replay wrote %d bytes, resumed %v: not a real handshake", n, resumed.Load())
			}
			b.ReportAllocs()
			cpu := processCPU()
			for b.Loop() {
				replay()
			}
			reportCPU(b, cpu)
		})
	}
}

// reportCPU reports the process CPU time per op since start (client and
// server together in BenchmarkHandshake, the server alone in
// BenchmarkServerHandshake), the figure to trust on a busy machine.
func reportCPU(b *testing.B, start time.Duration) {
	if start > 0 && b.N > 0 {
		b.ReportMetric(float64(processCPU()-start)/float64(b.N), "cpu-ns/op")
	}
}

// primeSession runs a handshake over an in-memory pipe so that cfg's session
// cache holds a ticket from term.
func primeSession(b *testing.B, term *Terminator, cfg *tls.Config) {
	b.Helper()
	cc, sc := net.Pipe()
	srvErr := make(chan error, 1)
	go func() {
		tc := term.Server(sc)
		err := tc.Handshake()
		if err == nil {
			_, err = tc.Write([]byte{0})
		}
		sc.Close()
		srvErr <- err
	}()
	c := tls.Client(cc, cfg)
	if _, err := c.Read(make([]byte, 1)); err != nil {
		b.Fatal(err)
	}
	cc.Close()
	if err := <-srvErr; err != nil {
		b.Fatal(err)
	}
}

// captureClientHello returns the first flight a client with cfg sends.
func captureClientHello(b *testing.B, cfg *tls.Config) []byte {
	b.Helper()
	conn := &replayConn{capture: true}
	tls.Client(conn, cfg).Handshake() // fails reading the server's answer
	if len(conn.out) == 0 {
		b.Fatal("client sent nothing")
	}
	return conn.out
}

// replayConn is a net.Conn that reads in, then EOF, and counts writes.
type replayConn struct {
	in      []byte
	capture bool // keep writes in out
	out     []byte
	wrote   int
}

func (c *replayConn) Read(p []byte) (int, error) {
	if len(c.in) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.in)
	c.in = c.in[n:]
	return n, nil
}

func (c *replayConn) Write(p []byte) (int, error) {
	if c.capture {
		c.out = append(c.out, p...)
	}
	c.wrote += len(p)
	return len(p), nil
}

func (c *replayConn) Close() error                     { return nil }
func (c *replayConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *replayConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *replayConn) SetDeadline(time.Time) error      { return nil }
func (c *replayConn) SetReadDeadline(time.Time) error  { return nil }
func (c *replayConn) SetWriteDeadline(time.Time) error { return nil }
