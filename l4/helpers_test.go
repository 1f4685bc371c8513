package l4

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"hash/fnv"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// acceptModes lists both accept paths, for tests that run under each.
func acceptModes() []AcceptMode { return []AcceptMode{AcceptGnet, AcceptGo} }

// testCert returns a self-signed certificate for names.
func testCert(t testing.TB, names ...string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: names[0]},
		DNSNames:     names,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// fakeEndpoint and fakePool stand in for lb's Maglev pools: the owner of a
// key is fnv(key) mod n, later attempts walk the ring.
type fakeEndpoint string

func (e fakeEndpoint) Address() string { return string(e) }

type fakePool struct {
	policy  RelayPolicy
	eps     []fakeEndpoint
	ordered bool // attempt k gets eps[k], regardless of the key

	mu   sync.Mutex
	done []fakeDone
	keys []string
}

type fakeDone struct {
	ep  string
	err error
}

func (p *fakePool) RelayPolicy() RelayPolicy { return p.policy }

func (p *fakePool) PickRelay(key []byte, tried []RelayEndpoint) (RelayEndpoint, error) {
	p.mu.Lock()
	p.keys = append(p.keys, string(key))
	p.mu.Unlock()
	if len(p.eps) == 0 || len(tried) >= len(p.eps) {
		return nil, errors.New("fake: no endpoint left")
	}
	if p.ordered {
		return p.eps[len(tried)], nil
	}
	h := fnv.New64a()
	h.Write(key)
	return p.eps[(int(h.Sum64()%uint64(len(p.eps)))+len(tried))%len(p.eps)], nil
}

func (p *fakePool) RelayDone(ep RelayEndpoint, err error, _ time.Time) {
	p.mu.Lock()
	p.done = append(p.done, fakeDone{ep.Address(), err})
	p.mu.Unlock()
}

func (p *fakePool) dones() []fakeDone {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]fakeDone(nil), p.done...)
}

type fakePools map[string]*fakePool

func (ps fakePools) RelayPool(name string) (RelayPool, bool) {
	p, ok := ps[name]
	return p, ok
}

// startServer builds and starts a Server and stops it with the test.
func startServer(t testing.TB, cfg Config) *Server {
	t.Helper()
	if cfg.Logf == nil {
		cfg.Logf = t.Logf
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return s
}

// serveHTTP runs a fasthttp server on the named listener. The handler answers
// "client=<RemoteAddr> sni=<SNI> listener=<name> proxied=<bool>".
func serveHTTP(t testing.TB, s *Server, name string) *fasthttp.Server {
	t.Helper()
	srv := &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			info, ok := InfoOf(ctx.Conn())
			if !ok {
				ctx.Error("no ConnInfo", fasthttp.StatusInternalServerError)
				return
			}
			ctx.SetBodyString("client=" + ctx.RemoteAddr().String() + " sni=" + info.SNI() +
				" listener=" + info.Listener() + " alpn=" + strings.Join(info.ALPN(), ",") +
				" body=" + string(ctx.PostBody()))
		},
		ReadTimeout:     5 * time.Second,
		IdleTimeout:     5 * time.Second,
		Logger:          testLogger{t},
		CloseOnShutdown: true,
	}
	ln := s.Listener(name)
	if ln == nil {
		t.Fatalf("no listener %q", name)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Shutdown()
		if err := <-done; err != nil {
			t.Errorf("fasthttp Serve: %v", err)
		}
	})
	return srv
}

type testLogger struct{ t testing.TB }

func (l testLogger) Printf(format string, args ...any) { l.t.Logf("fasthttp: "+format, args...) }

// waitFor polls cond until it holds or the deadline passes; it reports
// failure with what. The loop is bounded and stops by itself.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func stats(s *Server, name string) ListenerStats {
	for _, st := range s.Stats(nil) {
		if st.Name == name {
			return st
		}
	}
	return ListenerStats{}
}

// tcpBackend accepts on 127.0.0.1:0 and runs serve for each connection.
func tcpBackend(t testing.TB, serve func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				serve(c)
			}()
		}
	}()
	return ln.Addr().String()
}

// expectClosed reports whether the peer closes c (EOF or reset) with nothing
// readable first, within a generous bound.
func expectClosed(t testing.TB, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var b [64]byte
	n, err := c.Read(b[:])
	if err == nil {
		t.Fatalf("read %d bytes %q, want the connection closed", n, b[:n])
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("connection still open")
	}
}
