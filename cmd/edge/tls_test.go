package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"example.com/edge/l4"
	"example.com/edge/tlsterm"
)

// Issue 5 through the real binary: TLS termination, SNI, certificate
// reload, pass-through, L4 relays, PROXY protocol in and out, connection
// limits, the handshake timeout and redirect_https, driven by real clients
// (crypto/tls, net/http, raw TCP) against listeners on 127.0.0.1:0.

// acceptModes are the two ways edge accepts connections (-accept); tests
// that run under both show they behave the same.
var acceptModes = []string{"gnet", "go"}

// testCert is a self-signed certificate and its key, PEM-encoded.
type testCert struct {
	certPEM, keyPEM []byte
	leaf            *x509.Certificate
}

func newTestCert(t *testing.T, names ...string) testCert {
	t.Helper()
	certPEM, keyPEM, err := tlsterm.GenerateSelfSigned(names, time.Now(), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(certPEM)
	if block == nil {
		t.Fatal("GenerateSelfSigned returned no PEM block")
	}
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return testCert{certPEM: certPEM, keyPEM: keyPEM, leaf: leaf}
}

// write stores the pair as dir/base.crt and dir/base.key, each replaced
// atomically (write a temporary file, rename it over), the way deployment
// tools swap certificates.
func (c testCert) write(t *testing.T, dir, base string) {
	t.Helper()
	for _, f := range []struct {
		name string
		data []byte
	}{{base + ".key", c.keyPEM}, {base + ".crt", c.certPEM}} {
		tmp := filepath.Join(dir, "."+f.name+".tmp")
		if err := os.WriteFile(tmp, f.data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, f.name)); err != nil {
			t.Fatal(err)
		}
	}
}

// tlsConfig trusts only c and names serverName in the ClientHello.
func (c testCert) tlsConfig(serverName string) *tls.Config {
	roots := x509.NewCertPool()
	roots.AddCert(c.leaf)
	return &tls.Config{RootCAs: roots, ServerName: serverName}
}

// tlsGet makes one TLS connection with cfg, sends GET path with
// Connection: close and returns the negotiated state, status and body.
func tlsGet(t *testing.T, addr string, cfg *tls.Config, path string) (tls.ConnectionState, int, string) {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		t.Fatalf("TLS handshake with %s (SNI %q): %v", addr, cfg.ServerName, err)
	}
	defer c.Close()
	host := cfg.ServerName
	if host == "" {
		host = "example.com"
	}
	c.SetDeadline(time.Now().Add(5 * time.Second)) //nolint:errcheck
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", path, host)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("GET %s over TLS (SNI %q): %v", path, cfg.ServerName, err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return c.ConnectionState(), resp.StatusCode, string(b)
}

// servedLeaf handshakes with SNI serverName (empty: none), trusting
// anything, and returns the certificate the edge presented.
func servedLeaf(t *testing.T, addr, serverName string) *x509.Certificate {
	t.Helper()
	cfg := &tls.Config{ServerName: serverName, InsecureSkipVerify: true} //nolint:gosec // the test compares the served leaf itself
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		t.Fatalf("TLS handshake with %s (SNI %q): %v", addr, serverName, err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0]
}

// plainGet sends one request with Connection: close over a new TCP
// connection, after prefix (a PROXY header, say), and returns the status and
// body, or an error when the connection closed without an answer.
func plainGet(addr string, prefix []byte, path string) (int, string, http.Header, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return 0, "", nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second)) //nolint:errcheck
	req := append(append([]byte(nil), prefix...), "GET "+path+" HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n"...)
	if _, err := c.Write(req); err != nil {
		return 0, "", nil, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, "", nil, err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, string(b), resp.Header, err
}

// closedWithoutAnswer reads c until the edge closes it. It fails when the
// edge sends anything or leaves it open past within.
func closedWithoutAnswer(c net.Conn, within time.Duration) error {
	c.SetReadDeadline(time.Now().Add(within)) //nolint:errcheck
	var buf [512]byte
	n, err := c.Read(buf[:])
	switch {
	case n > 0:
		return fmt.Errorf("got %q, want the connection closed", buf[:n])
	case err == nil:
		return errors.New("read returned nothing and no error")
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("still open after %v", within)
	}
	return nil // EOF or reset: closed
}

func scrapeMetrics(t *testing.T, admin string) string {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// metricValue returns the value of the series of name whose labels include
// every one of want ("k", "v" pairs), and whether there is one.
func metricValue(text, name string, want ...string) (float64, bool) {
	for line := range strings.SplitSeq(text, "\n") {
		rest, ok := strings.CutPrefix(line, name+"{")
		if !ok {
			continue
		}
		labels, value, ok := strings.Cut(rest, "} ")
		if !ok {
			continue
		}
		have := map[string]string{}
		for kv := range strings.SplitSeq(labels, ",") {
			k, v, _ := strings.Cut(kv, "=")
			have[k] = strings.Trim(v, `"`)
		}
		match := true
		for i := 0; i+1 < len(want); i += 2 {
			if have[want[i]] != want[i+1] {
				match = false
			}
		}
		if match {
			f, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
			return f, err == nil
		}
	}
	return 0, false
}

// tlsListenerConfig is one TLS listener serving site.crt to pod.
func tlsListenerConfig(pod string) string {
	return fmt.Sprintf(`admin: 127.0.0.1:0
listeners:
  - name: https
    address: "127.0.0.1:0"
    tls:
      certificates:
        - {cert: site.crt, key: site.key}
pools:
  app: {endpoints: ["%s"]}
routes:
  - {prefix: /, pool: app}
`, pod)
}

// 1. Post-quantum hybrid key exchange by default, X25519 still served, and
// both counted by listener, version and group.
func TestTLSKeyExchangeGroups(t *testing.T) {
	for _, mode := range acceptModes {
		t.Run(mode, func(t *testing.T) {
			pod := startPod(t, "pod-tls", nil)
			dir := t.TempDir()
			cert := newTestCert(t, "example.com")
			cert.write(t, dir, "site")
			path := filepath.Join(dir, "edge.yaml")
			writeConfig(t, path, tlsListenerConfig(pod))
			p := startEdge(t, path, "-accept", mode)
			addr := p.addr("https")

			cases := []struct {
				name       string
				offer      []tls.CurveID
				maxVersion uint16
				want       tls.CurveID
				version    uint16
			}{
				{"hybrid first", []tls.CurveID{tls.X25519MLKEM768, tls.X25519}, 0, tls.X25519MLKEM768, tls.VersionTLS13},
				{"Go defaults", nil, 0, tls.X25519MLKEM768, tls.VersionTLS13},
				{"X25519 only", []tls.CurveID{tls.X25519}, 0, tls.X25519, tls.VersionTLS13},
				{"TLS 1.2 X25519 only", []tls.CurveID{tls.X25519}, tls.VersionTLS12, tls.X25519, tls.VersionTLS12},
			}
			for _, c := range cases {
				cfg := cert.tlsConfig("example.com")
				cfg.CurvePreferences, cfg.MaxVersion = c.offer, c.maxVersion
				cfg.NextProtos = []string{"http/1.1"}
				st, code, body := tlsGet(t, addr, cfg, "/")
				if st.CurveID != c.want || st.Version != c.version {
					t.Errorf("%s: negotiated %v over %s, want %v over %s", c.name, st.CurveID,
						tlsterm.VersionName(st.Version), c.want, tlsterm.VersionName(c.version))
				}
				if st.NegotiatedProtocol != "http/1.1" {
					t.Errorf("%s: ALPN %q, want http/1.1", c.name, st.NegotiatedProtocol)
				}
				if code != 200 || body != "pod-tls" {
					t.Errorf("%s: %d %q, want 200 pod-tls", c.name, code, body)
				}
			}

			m := scrapeMetrics(t, p.addr("admin"))
			for _, want := range []struct {
				version, group string
				n              float64
			}{{"tls1.3", "x25519mlkem768", 2}, {"tls1.3", "x25519", 1}, {"tls1.2", "x25519", 1}} {
				v, ok := metricValue(m, "edge_tls_handshakes_total", "listener", "https", "version", want.version, "group", want.group)
				if !ok || v != want.n {
					t.Errorf("edge_tls_handshakes_total{listener=https,version=%s,group=%s} = %v (present %v), want %v",
						want.version, want.group, v, ok, want.n)
				}
			}
			if t.Failed() {
				t.Logf("metrics:\n%s", grepLines(m, "edge_tls_handshakes_total"))
			}
		})
	}
}

func grepLines(text, s string) string {
	var out []string
	for line := range strings.SplitSeq(text, "\n") {
		if strings.Contains(line, s) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

// 2. SNI picks among several certificates: exact name, then wildcard, then
// the first configured (the default).
func TestTLSSNISelectsCertificate(t *testing.T) {
	for _, mode := range acceptModes {
		t.Run(mode, func(t *testing.T) {
			pod := startPod(t, "pod-sni", nil)
			dir := t.TempDir()
			def := newTestCert(t, "default.test")
			exact := newTestCert(t, "api.example.com")
			wild := newTestCert(t, "*.example.com")
			def.write(t, dir, "default")
			exact.write(t, dir, "exact")
			wild.write(t, dir, "wild")
			path := filepath.Join(dir, "edge.yaml")
			writeConfig(t, path, fmt.Sprintf(`listeners:
  - name: https
    address: "127.0.0.1:0"
    tls:
      certificates:
        - {cert: default.crt, key: default.key}
        - {cert: wild.crt, key: wild.key}
        - {cert: exact.crt, key: exact.key}
pools:
  app: {endpoints: ["%s"]}
routes:
  - {prefix: /, pool: app}
`, pod))
			p := startEdge(t, path, "-accept", mode)
			addr := p.addr("https")

			for _, c := range []struct {
				sni  string
				want testCert
				why  string
			}{
				{"api.example.com", exact, "exact name beats the wildcard listed before it"},
				{"API.Example.COM", exact, "SNI is case-insensitive"},
				{"www.example.com", wild, "wildcard covers one label"},
				{"a.b.example.com", def, "wildcard covers only one label"},
				{"example.com", def, "wildcard does not cover the bare domain"},
				{"other.org", def, "unknown name gets the first certificate"},
				{"", def, "no SNI gets the first certificate"},
			} {
				if got := servedLeaf(t, addr, c.sni); !got.Equal(c.want.leaf) {
					t.Errorf("SNI %q: served %v, want %v (%s)", c.sni, got.DNSNames, c.want.leaf.DNSNames, c.why)
				}
			}
			// The choice is one a verifying client accepts, and the request is served.
			for _, c := range []struct {
				sni  string
				cert testCert
			}{{"api.example.com", exact}, {"www.example.com", wild}, {"default.test", def}} {
				if _, code, body := tlsGet(t, addr, c.cert.tlsConfig(c.sni), "/"); code != 200 || body != "pod-sni" {
					t.Errorf("SNI %q: %d %q, want 200 pod-sni", c.sni, code, body)
				}
			}
		})
	}
}

// countLog counts the log lines containing s.
func countLog(p *proc, s string) int {
	return strings.Count(p.logText(), s)
}

// 3. A certificate replaced on disk reaches new connections (the file
// watcher, then SIGHUP) while an open keep-alive connection keeps working.
func TestTLSCertificateSwapKeepsOpenConnections(t *testing.T) {
	for _, mode := range acceptModes {
		t.Run(mode, func(t *testing.T) { testCertificateSwap(t, mode) })
	}
}

func testCertificateSwap(t *testing.T, mode string) {
	pod := startPod(t, "pod-swap", nil)
	dir := t.TempDir()
	certA := newTestCert(t, "example.com")
	certA.write(t, dir, "site")
	path := filepath.Join(dir, "edge.yaml")
	writeConfig(t, path, tlsListenerConfig(pod))
	p := startEdge(t, path, "-accept", mode)
	addr := p.addr("https")

	old, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, certA.tlsConfig("example.com"))
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	oldBR := bufio.NewReader(old)
	if code, body := rawGet(t, old, oldBR, "/"); code != 200 || body != "pod-swap" {
		t.Fatalf("before the swap: %d %q", code, body)
	}

	// The watcher (tlsWatchInterval) picks up the new files.
	certB := newTestCert(t, "example.com")
	certB.write(t, dir, "site")
	var got *x509.Certificate
	deadline := 10 * tlsWatchInterval
	for start := time.Now(); time.Since(start) < deadline; time.Sleep(100 * time.Millisecond) {
		if got = servedLeaf(t, addr, "example.com"); got.Equal(certB.leaf) {
			break
		}
	}
	if !got.Equal(certB.leaf) {
		t.Fatalf("new connections still get the old certificate %v after the file was replaced (watch interval %v):\n%s",
			deadline, tlsWatchInterval, p.logText())
	}
	if _, code, body := tlsGet(t, addr, certB.tlsConfig("example.com"), "/"); code != 200 || body != "pod-swap" {
		t.Errorf("a client trusting only the new certificate: %d %q", code, body)
	}
	if code, body := rawGet(t, old, oldBR, "/"); code != 200 || body != "pod-swap" {
		t.Errorf("the connection opened before the swap: %d %q, want it still served", code, body)
	}

	// SIGHUP reloads the files at once. The old plan's watcher might notice
	// the change first; if it did, the reload proved nothing and is retried.
	proved := false
	for attempt := range 3 {
		certC := newTestCert(t, "example.com")
		watched := countLog(p, `"msg":"TLS certificates reloaded"`)
		reloads := countLog(p, `"msg":"configuration reloaded"`)
		certC.write(t, dir, "site")
		p.signal(syscall.SIGHUP)
		for i := 0; i < 200 && countLog(p, `"msg":"configuration reloaded"`) == reloads; i++ {
			time.Sleep(25 * time.Millisecond)
		}
		if countLog(p, `"msg":"configuration reloaded"`) == reloads {
			t.Fatalf("SIGHUP: no reload logged:\n%s", p.logText())
		}
		if got := servedLeaf(t, addr, "example.com"); !got.Equal(certC.leaf) {
			t.Fatalf("right after the SIGHUP reload, new connections get serial %v, want the swapped certificate %v",
				got.SerialNumber, certC.leaf.SerialNumber)
		}
		if countLog(p, `"msg":"TLS certificates reloaded"`) == watched {
			proved = true
			break
		}
		t.Logf("attempt %d: the file watcher reloaded before SIGHUP did; retrying", attempt)
	}
	if !proved {
		t.Error("the file watcher raced every SIGHUP; the SIGHUP path was not shown")
	}
	if code, body := rawGet(t, old, oldBR, "/"); code != 200 || body != "pod-swap" {
		t.Errorf("the connection opened before both swaps: %d %q, want it still served", code, body)
	}
	if st := old.ConnectionState(); !st.PeerCertificates[0].Equal(certA.leaf) {
		t.Error("the old connection's certificate changed")
	}
}

// startTLSBackend is a TLS server (the pass-through target) that answers
// each line with "backend:" + the line and reports each connection's SNI.
func startTLSBackend(t *testing.T, cert testCert) (string, <-chan string) {
	t.Helper()
	pair, err := tls.X509KeyPair(cert.certPEM, cert.keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pair}})
	if err != nil {
		t.Fatal(err)
	}
	snis := make(chan string, 16)
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				tc := c.(*tls.Conn)
				tc.SetDeadline(time.Now().Add(10 * time.Second)) //nolint:errcheck
				if tc.Handshake() != nil {
					return
				}
				select {
				case snis <- tc.ConnectionState().ServerName:
				default:
				}
				br := bufio.NewReader(tc)
				for {
					line, err := br.ReadString('\n')
					if err != nil {
						return
					}
					if _, err := io.WriteString(tc, "backend:"+line); err != nil {
						return
					}
				}
			})
		}
	})
	return ln.Addr().String(), snis
}

// 4. A pass-through SNI reaches the backend's own TLS: the client verifies
// the backend's certificate, never sees the edge's; other names on the same
// listener are terminated.
func TestTLSPassthroughReachesBackendCertificate(t *testing.T) {
	for _, mode := range acceptModes {
		t.Run(mode, func(t *testing.T) {
			pod := startPod(t, "pod-terminated", nil)
			backendCert := newTestCert(t, "db.example.com")
			backend, snis := startTLSBackend(t, backendCert)
			dir := t.TempDir()
			edgeCert := newTestCert(t, "example.com", "db.example.com")
			edgeCert.write(t, dir, "site")
			path := filepath.Join(dir, "edge.yaml")
			writeConfig(t, path, fmt.Sprintf(`listeners:
  - name: https
    address: "127.0.0.1:0"
    tls:
      certificates:
        - {cert: site.crt, key: site.key}
    passthrough:
      - {sni: db.example.com, pool: db}
pools:
  app: {endpoints: ["%s"]}
  db: {endpoints: ["%s"], balance: consistent_hash, hash_on: sni}
routes:
  - {prefix: /, pool: app}
`, pod, backend))
			p := startEdge(t, path, "-accept", mode)
			addr := p.addr("https")

			// The edge's certificate also names db.example.com: a client
			// trusting only the backend's proves the bytes went through untouched.
			c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, backendCert.tlsConfig("db.example.com"))
			if err != nil {
				t.Fatalf("pass-through handshake: %v", err)
			}
			defer c.Close()
			if st := c.ConnectionState(); !st.PeerCertificates[0].Equal(backendCert.leaf) {
				t.Errorf("pass-through client saw %v, want the backend's certificate", st.PeerCertificates[0].DNSNames)
			}
			c.SetDeadline(time.Now().Add(5 * time.Second)) //nolint:errcheck
			br := bufio.NewReader(c)
			for _, msg := range []string{"hello\n", "again\n"} {
				if _, err := io.WriteString(c, msg); err != nil {
					t.Fatal(err)
				}
				got, err := br.ReadString('\n')
				if err != nil || got != "backend:"+msg {
					t.Fatalf("pass-through echo: %q %v, want %q", got, err, "backend:"+msg)
				}
			}
			select {
			case sni := <-snis:
				if sni != "db.example.com" {
					t.Errorf("backend saw SNI %q, want db.example.com", sni)
				}
			case <-time.After(5 * time.Second):
				t.Error("backend reported no handshake")
			}

			// Mixed-case SNI is matched case-insensitively.
			c2, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, backendCert.tlsConfig("DB.Example.com"))
			if err != nil {
				t.Errorf("pass-through with mixed-case SNI: %v", err)
			} else {
				c2.Close()
			}

			// Any other name on the listener is terminated by the edge.
			st, code, body := tlsGet(t, addr, edgeCert.tlsConfig("example.com"), "/")
			if !st.PeerCertificates[0].Equal(edgeCert.leaf) || code != 200 || body != "pod-terminated" {
				t.Errorf("terminated SNI on the same listener: %d %q, cert %v", code, body, st.PeerCertificates[0].DNSNames)
			}
		})
	}
}

// relayBackend is a raw TCP server behind an L4 listener. Per connection it
// optionally reads a PROXY header first, then streams send to the client
// while hashing what arrives; once the client's half arrives at EOF it
// appends a trailer (8-byte length, SHA-256 of what it got) and closes.
type relayBackend struct {
	addr    string
	headers chan l4.ProxyHeader
}

func startRelayBackend(t *testing.T, expectProxy bool, send []byte) *relayBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rb := &relayBackend{addr: ln.Addr().String(), headers: make(chan l4.ProxyHeader, 4)}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(30 * time.Second)) //nolint:errcheck
				var r io.Reader = c
				if expectProxy {
					buf := make([]byte, 0, 256)
					for {
						n, err := c.Read(buf[len(buf):cap(buf)])
						buf = buf[:len(buf)+n]
						h, perr := l4.ParseProxyHeader(buf)
						if perr == nil {
							rb.headers <- h
							r = io.MultiReader(bytes.NewReader(buf[h.Len:]), c)
							break
						}
						if !errors.Is(perr, l4.ErrNeedMore) || err != nil || len(buf) == cap(buf) {
							return // no header: close without the trailer
						}
					}
				}
				wrote := make(chan error, 1)
				go func() {
					_, err := c.Write(send)
					wrote <- err
				}()
				h := sha256.New()
				n, err := io.Copy(h, r)
				if err != nil || <-wrote != nil {
					return
				}
				trailer := binary.BigEndian.AppendUint64(nil, uint64(n))
				c.Write(h.Sum(trailer)) //nolint:errcheck
			})
		}
	})
	return rb
}

// relayExchange sends prefix (a PROXY header for the edge, or nothing) and
// up through addr, half-closes, and checks that down arrives intact followed
// by the backend's trailer for up, which the backend writes only after it saw
// the half-close. It returns the client's address.
func relayExchange(t *testing.T, addr string, prefix, up, down []byte) netip.AddrPort {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second)) //nolint:errcheck
	wrote := make(chan error, 1)
	go func() {
		_, err := c.Write(prefix)
		if err == nil {
			_, err = c.Write(up)
		}
		if err == nil {
			err = c.(*net.TCPConn).CloseWrite()
		}
		wrote <- err
	}()
	got, err := io.ReadAll(c)
	if werr := <-wrote; werr != nil {
		t.Fatalf("client write: %v", werr)
	}
	if err != nil {
		t.Fatalf("client read after %d bytes: %v", len(got), err)
	}
	if len(got) != len(down)+8+sha256.Size {
		t.Fatalf("client got %d bytes, want %d from the backend plus a %d-byte trailer", len(got), len(down), 8+sha256.Size)
	}
	if sha256.Sum256(got[:len(down)]) != sha256.Sum256(down) {
		t.Error("backend-to-client bytes differ (hash mismatch)")
	}
	trailer := got[len(down):]
	if n := binary.BigEndian.Uint64(trailer); n != uint64(len(up)) {
		t.Errorf("backend received %d bytes, want %d", n, len(up))
	}
	if sum := sha256.Sum256(up); !bytes.Equal(trailer[8:], sum[:]) {
		t.Error("client-to-backend bytes differ (hash mismatch)")
	}
	return netip.MustParseAddrPort(c.LocalAddr().String())
}

// 5. A pure L4 listener relays both ways byte for byte, honours a client's
// half-close, and with proxy_protocol: v2 tells the backend who the client
// is: the peer itself, or the client a trusted load balancer declared.
func TestL4RelayAndProxyV2Out(t *testing.T) {
	const size = 4 << 20
	up, down := make([]byte, size), make([]byte, size+12345)
	rand.Read(up)
	rand.Read(down)
	for _, mode := range acceptModes {
		t.Run(mode, func(t *testing.T) {
			plain := startRelayBackend(t, false, down)
			withPP := startRelayBackend(t, true, down)
			dir := t.TempDir()
			path := filepath.Join(dir, "edge.yaml")
			// Listeners after the first get fixed ports: edge refuses two on
			// 127.0.0.1:0 (see TestTwoListenersOnPortZero).
			writeConfig(t, path, fmt.Sprintf(`admin: 127.0.0.1:0
trusted_proxies: [127.0.0.1/32]
listeners:
  - {name: raw, address: "127.0.0.1:0", pool: raw}
  - {name: rawpp, address: "127.0.0.1:%d", pool: rawpp}
  - {name: rawin, address: "127.0.0.1:%d", pool: rawpp, proxy_protocol: true}
pools:
  raw: {endpoints: ["%s"], balance: consistent_hash, hash_on: client_ip}
  rawpp: {endpoints: ["%s"], balance: consistent_hash, hash_on: client_ip, proxy_protocol: v2}
`, freePort(t), freePort(t), plain.addr, withPP.addr))
			p := startEdge(t, path, "-accept", mode)

			relayExchange(t, p.addr("raw"), nil, up, down)
			// A 4-byte request: the backend's trailer still comes after the client's half-close.
			relayExchange(t, p.addr("raw"), nil, []byte("ping"), down)

			client := relayExchange(t, p.addr("rawpp"), nil, up, down)
			select {
			case h := <-withPP.headers:
				listenAddr := netip.MustParseAddrPort(p.addr("rawpp"))
				if h.Version != 2 || h.Local || h.Source != client || h.Destination != listenAddr {
					t.Errorf("PROXY header %+v, want v2 from %v to %v", h, client, listenAddr)
				}
			default:
				t.Error("the proxy_protocol: v2 backend got no PROXY header")
			}

			// Behind a trusted load balancer: its PROXY v1 header is consumed
			// (the byte count and hash would show it otherwise) and the
			// declared client is what the backend is told.
			relayExchange(t, p.addr("rawin"), []byte("PROXY TCP4 203.0.113.7 127.0.0.1 51234 5432\r\n"), []byte("ping"), down)
			select {
			case h := <-withPP.headers:
				if want := netip.MustParseAddrPort("203.0.113.7:51234"); h.Version != 2 || h.Local || h.Source != want {
					t.Errorf("PROXY header after PROXY in %+v, want v2 from %v", h, want)
				}
			default:
				t.Error("the proxy_protocol: v2 backend got no PROXY header for the PROXY-in listener")
			}
			select {
			case h := <-plain.headers:
				t.Errorf("the plain backend got a PROXY header %+v", h)
			default:
			}

			m := scrapeMetrics(t, p.addr("admin"))
			for _, dir := range []string{"in", "out"} {
				if v, ok := metricValue(m, "edge_l4_relay_bytes_total", "listener", "raw", "direction", dir); !ok || v < size {
					t.Errorf("edge_l4_relay_bytes_total{listener=raw,direction=%s} = %v (present %v), want at least %d", dir, v, ok, size)
				}
			}
		})
	}
}

// 6. PROXY protocol in: believed from trusted_proxies (the declared client
// becomes X-Forwarded-For and the access log's client_ip), required from
// them, refused from anyone else.
func TestProxyProtocolIn(t *testing.T) {
	echoXFF := func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.Header.Get("X-Forwarded-For")) } //nolint:errcheck
	v1 := []byte("PROXY TCP4 203.0.113.7 127.0.0.1 51234 80\r\n")
	v2 := l4.AppendProxyV2(nil, netip.MustParseAddrPort("198.51.100.9:4000"), netip.MustParseAddrPort("127.0.0.1:80"))
	cfg := func(pod, trusted string) string {
		return fmt.Sprintf(`admin: 127.0.0.1:0
trusted_proxies: [%s]
listeners:
  - {name: web, address: "127.0.0.1:0", proxy_protocol: true}
  - name: https
    address: "127.0.0.1:%d"
    proxy_protocol: true
    tls:
      certificates:
        - {cert: site.crt, key: site.key}
pools:
  app: {endpoints: ["%s"]}
routes:
  - {prefix: /, pool: app}
`, trusted, freePort(t), pod)
	}
	for _, mode := range acceptModes {
		t.Run(mode+"/trusted", func(t *testing.T) {
			pod := startPod(t, "", echoXFF)
			dir := t.TempDir()
			cert := newTestCert(t, "example.com")
			cert.write(t, dir, "site")
			path := filepath.Join(dir, "edge.yaml")
			accessLog := filepath.Join(dir, "access.log")
			writeConfig(t, path, cfg(pod, "127.0.0.1/32"))
			p := startEdge(t, path, "-accept", mode, "-access-log", accessLog)
			addr := p.addr("web")

			for _, c := range []struct {
				name   string
				header []byte
				want   string
			}{{"v1", v1, "203.0.113.7"}, {"v2", v2, "198.51.100.9"}} {
				code, body, _, err := plainGet(addr, c.header, "/"+c.name)
				if err != nil || code != 200 || body != c.want {
					t.Errorf("PROXY %s from a trusted peer: %d %q %v, want 200 and X-Forwarded-For %s", c.name, code, body, err, c.want)
				}
			}
			// A PROXY header, then the ClientHello: the declared client reaches L7.
			if got, err := proxiedTLSGet(p.addr("https"), v1, cert); err != nil || got != "203.0.113.7" {
				t.Errorf("PROXY v1 before TLS from a trusted peer: %q %v, want X-Forwarded-For 203.0.113.7", got, err)
			}
			// From a trusted peer the header is required.
			if code, body, _, err := plainGet(addr, nil, "/none"); err == nil {
				t.Errorf("no PROXY header from a trusted peer: %d %q, want the connection refused", code, body)
			}

			var logged string
			for range 100 {
				b, _ := os.ReadFile(accessLog)
				if logged = string(b); strings.Contains(logged, `"path":"/v2"`) {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			for _, want := range []string{`"client_ip":"203.0.113.7"`, `"client_ip":"198.51.100.9"`} {
				if !strings.Contains(logged, want) {
					t.Errorf("access log lacks %s:\n%s", want, logged)
				}
			}
		})
		t.Run(mode+"/untrusted", func(t *testing.T) {
			pod := startPod(t, "", echoXFF)
			dir := t.TempDir()
			cert := newTestCert(t, "example.com")
			cert.write(t, dir, "site")
			path := filepath.Join(dir, "edge.yaml")
			writeConfig(t, path, cfg(pod, "10.0.0.0/8"))
			p := startEdge(t, path, "-accept", mode)
			addr := p.addr("web")

			for _, c := range []struct {
				name   string
				header []byte
			}{{"v1", v1}, {"v2", v2}} {
				conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				conn.Write(append(append([]byte(nil), c.header...), "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"...)) //nolint:errcheck
				if err := closedWithoutAnswer(conn, 5*time.Second); err != nil {
					t.Errorf("PROXY %s from an untrusted peer: %v", c.name, err)
				}
				conn.Close()
			}
			// Without a header the untrusted peer is an ordinary client.
			if code, body, _, err := plainGet(addr, nil, "/"); err != nil || code != 200 || body != "127.0.0.1" {
				t.Errorf("plain request from an untrusted peer: %d %q %v, want 200 and X-Forwarded-For 127.0.0.1", code, body, err)
			}
			m := scrapeMetrics(t, p.addr("admin"))
			if v, ok := metricValue(m, "edge_l4_rejections_total", "listener", "web", "reason", "proxy_untrusted"); !ok || v != 2 {
				t.Errorf("edge_l4_rejections_total{listener=web,reason=proxy_untrusted} = %v (present %v), want 2", v, ok)
			}
		})
	}
}

// proxiedTLSGet writes header on a new connection, then speaks TLS trusting
// cert over it and returns the body of GET /.
func proxiedTLSGet(addr string, header []byte, cert testCert) (string, error) {
	raw, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return "", err
	}
	defer raw.Close()
	raw.SetDeadline(time.Now().Add(5 * time.Second)) //nolint:errcheck
	if _, err := raw.Write(header); err != nil {
		return "", err
	}
	c := tls.Client(raw, cert.tlsConfig("example.com"))
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n"); err != nil {
		return "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return string(b), fmt.Errorf("status %d", resp.StatusCode)
	}
	return string(b), err
}

// 7. max_conns_per_ip: N connections are served, the next is closed at
// once, and a freed slot is usable again.
func TestMaxConnsPerIP(t *testing.T) {
	const limit = 3
	for _, mode := range acceptModes {
		t.Run(mode, func(t *testing.T) {
			pod := startPod(t, "pod-limit", nil)
			dir := t.TempDir()
			path := filepath.Join(dir, "edge.yaml")
			writeConfig(t, path, fmt.Sprintf(`admin: 127.0.0.1:0
tuning: {max_conns_per_ip: %d}
listeners:
  - {name: web, address: "127.0.0.1:0"}
pools:
  app: {endpoints: ["%s"]}
routes:
  - {prefix: /, pool: app}
`, limit, pod))
			p := startEdge(t, path, "-accept", mode)
			addr := p.addr("web")

			type kept struct {
				c  net.Conn
				br *bufio.Reader
			}
			var open []kept
			defer func() {
				for _, k := range open {
					k.c.Close()
				}
			}()
			for range limit {
				c, err := net.DialTimeout("tcp", addr, 5*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				k := kept{c, bufio.NewReader(c)}
				open = append(open, k)
				if code, body := rawGet(t, k.c, k.br, "/"); code != 200 || body != "pod-limit" {
					t.Fatalf("connection %d of %d: %d %q", len(open), limit, code, body)
				}
			}

			over, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			over.Write([]byte("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")) //nolint:errcheck
			if err := closedWithoutAnswer(over, 5*time.Second); err != nil {
				t.Errorf("connection %d with max_conns_per_ip %d: %v", limit+1, limit, err)
			}
			over.Close()

			for i, k := range open {
				if code, body := rawGet(t, k.c, k.br, "/"); code != 200 || body != "pod-limit" {
					t.Errorf("connection %d within the limit, after the refusal: %d %q", i, code, body)
				}
			}

			// Closing one frees its slot (released when the edge sees the close).
			open[0].c.Close()
			open = open[1:]
			served := false
			for range 50 {
				if code, body, _, err := plainGet(addr, nil, "/"); err == nil && code == 200 && body == "pod-limit" {
					served = true
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			if !served {
				t.Error("after closing one connection, a new one is still refused")
			}
			m := scrapeMetrics(t, p.addr("admin"))
			if v, ok := metricValue(m, "edge_l4_rejections_total", "listener", "web", "reason", "max_conns_per_ip"); !ok || v < 1 {
				t.Errorf("edge_l4_rejections_total{listener=web,reason=max_conns_per_ip} = %v (present %v), want at least 1", v, ok)
			}
		})
	}
}

// 8. Connections that trickle a request head or a ClientHello without ever
// finishing it are closed at handshake_timeout, while normal clients are
// served meanwhile. (gnet only: -accept go hands plain HTTP and TLS
// listeners straight to L7, whose read_timeout bounds them; see l4.AcceptGo.)
func TestHandshakeTimeoutClosesTricklers(t *testing.T) {
	const httpTricklers, tlsTricklers = 200, 50
	pod := startPod(t, "pod-normal", nil)
	dir := t.TempDir()
	cert := newTestCert(t, "example.com")
	cert.write(t, dir, "site")
	path := filepath.Join(dir, "edge.yaml")
	writeConfig(t, path, fmt.Sprintf(`admin: 127.0.0.1:0
tuning: {handshake_timeout: 300ms, read_timeout: 30s}
listeners:
  - {name: web, address: "127.0.0.1:0"}
  - name: https
    address: "127.0.0.1:%d"
    tls:
      certificates:
        - {cert: site.crt, key: site.key}
pools:
  app: {endpoints: ["%s"]}
routes:
  - {prefix: /, pool: app}
`, freePort(t), pod))
	p := startEdge(t, path)

	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	open := func(addr string, n int, first []byte) {
		for range n {
			c, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			conns = append(conns, c)
			c.Write(first) //nolint:errcheck
		}
	}
	open(p.addr("web"), httpTricklers, []byte("GET / HTTP/1.1\r\nHost: example.com\r\nX-Slow: "))
	// A handshake record announcing 512 bytes, of which a few ever arrive.
	open(p.addr("https"), tlsTricklers, []byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03})

	// One goroutine trickles a byte to every connection every 50ms (bounded
	// rounds); one reader per connection records how it ended.
	stop := make(chan struct{})
	var bg sync.WaitGroup
	defer bg.Wait()
	defer close(stop)
	bg.Go(func() {
		for range 100 {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			for _, c := range conns {
				c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond)) //nolint:errcheck
				c.Write([]byte("a"))                                       //nolint:errcheck // fails once closed
			}
		}
	})
	results := make(chan error, len(conns))
	for _, c := range conns {
		bg.Go(func() { results <- closedWithoutAnswer(c, 5*time.Second) })
	}

	// Meanwhile normal clients are served, each on a new connection, over
	// plain HTTP and TLS.
	for i := range 5 {
		if code, body, _, err := plainGet(p.addr("web"), nil, "/"); err != nil || code != 200 || body != "pod-normal" {
			t.Errorf("normal request %d while connections trickle: %d %q %v", i, code, body, err)
		}
		if _, code, body := tlsGet(t, p.addr("https"), cert.tlsConfig("example.com"), "/"); code != 200 || body != "pod-normal" {
			t.Errorf("normal TLS request %d while connections trickle: %d %q", i, code, body)
		}
	}
	t.Logf("%d of %d trickling connections were already closed when the normal requests were done", len(results), len(conns))

	var stillOpen int
	for range conns {
		if err := <-results; err != nil {
			stillOpen++
			if stillOpen <= 3 {
				t.Errorf("trickling connection: %v", err)
			}
		}
	}
	if stillOpen > 0 {
		t.Errorf("%d of %d trickling connections were not closed by a 300ms handshake_timeout within 5s", stillOpen, len(conns))
	}
	if code, body, _, err := plainGet(p.addr("web"), nil, "/"); err != nil || code != 200 || body != "pod-normal" {
		t.Errorf("normal request after the sweep: %d %q %v", code, body, err)
	}
	m := scrapeMetrics(t, p.addr("admin"))
	for _, want := range []struct {
		listener string
		n        float64
	}{{"web", httpTricklers}, {"https", tlsTricklers}} {
		if v, ok := metricValue(m, "edge_l4_rejections_total", "listener", want.listener, "reason", "handshake_timeout"); !ok || v != want.n {
			t.Errorf("edge_l4_rejections_total{listener=%s,reason=handshake_timeout} = %v (present %v), want %v", want.listener, v, ok, want.n)
		}
	}
}

// freePort returns a TCP port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// 9. redirect_https answers every plaintext request with 308 to the same
// host and request URI on https, at the TLS listener's port.
func TestRedirectHTTPS(t *testing.T) {
	for _, mode := range acceptModes {
		t.Run(mode, func(t *testing.T) {
			pod := startPod(t, "pod-https", nil)
			dir := t.TempDir()
			cert := newTestCert(t, "example.com")
			cert.write(t, dir, "site")
			port := freePort(t)
			path := filepath.Join(dir, "edge.yaml")
			writeConfig(t, path, fmt.Sprintf(`listeners:
  - name: https
    address: "127.0.0.1:%d"
    tls:
      certificates:
        - {cert: site.crt, key: site.key}
  - {name: http, address: "127.0.0.1:0", redirect_https: true}
pools:
  app: {endpoints: ["%s"]}
routes:
  - {prefix: /, pool: app}
`, port, pod))
			p := startEdge(t, path, "-accept", mode)

			client := &http.Client{
				CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
				Timeout:       5 * time.Second,
			}
			defer client.CloseIdleConnections()
			for _, c := range []struct{ host, uri, want string }{
				{"example.com", "/app/x?q=1&r=%20", fmt.Sprintf("https://example.com:%d/app/x?q=1&r=%%20", port)},
				{"example.com:8080", "/", fmt.Sprintf("https://example.com:%d/", port)},
			} {
				req, _ := http.NewRequest("GET", "http://"+p.addr("http")+c.uri, nil)
				req.Host = c.host
				resp, err := client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body) //nolint:errcheck
				resp.Body.Close()
				if resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != c.want {
					t.Errorf("GET %s (Host %s) on the redirect listener: %d Location %q, want 308 %q",
						c.uri, c.host, resp.StatusCode, resp.Header.Get("Location"), c.want)
				}
			}
			// Following it lands on the TLS listener, which serves the pod.
			if _, code, body := tlsGet(t, p.addr("https"), cert.tlsConfig("example.com"), "/app/x?q=1"); code != 200 || body != "pod-https" {
				t.Errorf("the https side: %d %q", code, body)
			}
		})
	}
}

// Two listeners on 127.0.0.1:0 get two ephemeral ports; they cannot collide.
func TestTwoListenersOnPortZero(t *testing.T) {
	pod := startPod(t, "pod-zero", nil)
	dir := t.TempDir()
	path := filepath.Join(dir, "edge.yaml")
	writeConfig(t, path, fmt.Sprintf(`listeners:
  - {name: a, address: "127.0.0.1:0"}
  - {name: b, address: "127.0.0.1:0"}
pools:
  app: {endpoints: ["%s"]}
routes:
  - {prefix: /, pool: app}
`, pod))
	p := startEdge(t, path)
	if p.addr("a") == p.addr("b") {
		t.Fatalf("both listeners report %s", p.addr("a"))
	}
	for _, name := range []string{"a", "b"} {
		if code, body, _, err := plainGet(p.addr(name), nil, "/"); err != nil || code != 200 || body != "pod-zero" {
			t.Errorf("listener %s: %d %q %v", name, code, body, err)
		}
	}
}
