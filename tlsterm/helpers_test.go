package tlsterm

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// testCert is a generated self-signed certificate, also written to files.
type testCert struct {
	certFile, keyFile string
	certPEM, keyPEM   []byte
	leaf              *x509.Certificate
}

// newTestCert generates a certificate for names and writes it to
// dir/base.crt and dir/base.key.
func newTestCert(t testing.TB, dir, base string, names ...string) testCert {
	t.Helper()
	certPEM, keyPEM, err := GenerateSelfSigned(names, time.Now(), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c := testCert{
		certFile: filepath.Join(dir, base+".crt"),
		keyFile:  filepath.Join(dir, base+".key"),
		certPEM:  certPEM,
		keyPEM:   keyPEM,
		leaf:     parseLeaf(t, certPEM),
	}
	c.write(t, c.certFile, c.keyFile)
	return c
}

// write puts the certificate and key at the given paths (a swap on disk when
// they already hold another certificate).
func (c testCert) write(t testing.TB, certFile, keyFile string) {
	t.Helper()
	if err := os.WriteFile(keyFile, c.keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, c.certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
}

func (c testCert) config() Certificate {
	return Certificate{CertFile: c.certFile, KeyFile: c.keyFile}
}

func (c testCert) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(c.leaf)
	return p
}

func parseLeaf(t testing.TB, certPEM []byte) *x509.Certificate {
	t.Helper()
	b, _ := pem.Decode(certPEM)
	if b == nil {
		t.Fatal("no PEM block in generated certificate")
	}
	leaf, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return leaf
}

func mustNew(t testing.TB, cfg Config) *Terminator {
	t.Helper()
	term, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return term
}

// testServer accepts TCP connections on 127.0.0.1:0, terminates TLS with a
// Terminator and echoes whatever the client sends.
type testServer struct {
	addr string
	// handshakes receives every server-side handshake result (nil or error).
	handshakes chan error
}

func serve(t testing.TB, term *Terminator) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &testServer{addr: ln.Addr().String(), handshakes: make(chan error, 1024)}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				tc := term.Server(c)
				err := tc.Handshake()
				select {
				case s.handshakes <- err:
				default:
				}
				if err == nil {
					io.Copy(tc, tc)
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return s
}

// dial connects to addr, completes the handshake and echoes one line through
// the connection, which also makes the client read the server's session
// tickets (TLS 1.3 sends them after the handshake, RFC 8446 section 4.6.1).
// The connection stays open until the test ends.
func dial(t testing.TB, addr string, cfg *tls.Config) (*tls.Conn, error) {
	t.Helper()
	d := &net.Dialer{Timeout: 5 * time.Second}
	raw, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	raw.SetDeadline(time.Now().Add(20 * time.Second))
	c := tls.Client(raw, cfg)
	if err := c.Handshake(); err != nil {
		return nil, err
	}
	if err := echo(c, "hello"); err != nil {
		return nil, err
	}
	return c, nil
}

func echo(c *tls.Conn, msg string) error {
	if _, err := io.WriteString(c, msg); err != nil {
		return err
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		return err
	}
	if string(got) != msg {
		return fmt.Errorf("echo = %q, want %q", got, msg)
	}
	return nil
}

func mustDial(t testing.TB, addr string, cfg *tls.Config) *tls.Conn {
	t.Helper()
	c, err := dial(t, addr, cfg)
	if err != nil {
		t.Fatalf("dial %s: %v", cfg.ServerName, err)
	}
	return c
}

// servedBy reports whether the connection's leaf certificate is want's.
func servedBy(c *tls.Conn, want testCert) bool {
	pc := c.ConnectionState().PeerCertificates
	return len(pc) > 0 && bytes.Equal(pc[0].Raw, want.leaf.Raw)
}

// fakeClock is a settable clock for Config.Time.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// pinnedCache is a client session cache that keeps offering the first ticket
// it received, so a test can present the same ticket again and again.
type pinnedCache struct {
	mu     sync.Mutex
	pinned *tls.ClientSessionState
}

func (p *pinnedCache) Get(string) (*tls.ClientSessionState, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pinned, p.pinned != nil
}

func (p *pinnedCache) Put(_ string, cs *tls.ClientSessionState) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pinned == nil && cs != nil {
		p.pinned = cs
	}
}

// testCA is a certificate authority for client certificates.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t testing.TB, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// client issues a client certificate (extended key usage clientAuth).
func (ca *testCA) client(t testing.TB, cn string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// handshakeLog records OnHandshake calls.
type handshakeLog struct {
	mu     sync.Mutex
	states []tls.ConnectionState
}

func (l *handshakeLog) record(cs tls.ConnectionState) {
	l.mu.Lock()
	l.states = append(l.states, cs)
	l.mu.Unlock()
}

func (l *handshakeLog) all() []tls.ConnectionState {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]tls.ConnectionState(nil), l.states...)
}

// nextHandshake waits for the server's result of the next handshake.
func (s *testServer) nextHandshake(t testing.TB) error {
	t.Helper()
	select {
	case err := <-s.handshakes:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("server saw no handshake")
		return errors.New("unreachable")
	}
}

func newPoolPEM(t testing.TB, certPEM []byte) *x509.CertPool {
	t.Helper()
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(certPEM) {
		t.Fatal("no certificate in PEM")
	}
	return p
}
