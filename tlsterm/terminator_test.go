package tlsterm

import (
	"context"
	"crypto/tls"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestGroupNegotiation(t *testing.T) {
	dir := t.TempDir()
	cert := newTestCert(t, dir, "example", "example.com")
	tests := []struct {
		name         string
		serverGroups []tls.CurveID
		clientGroups []tls.CurveID // nil: Go's defaults, X25519MLKEM768 first
		clientMax    uint16
		wantVersion  string
		wantGroup    tls.CurveID
	}{
		{name: "default client gets post-quantum hybrid", wantVersion: "tls1.3", wantGroup: tls.X25519MLKEM768},
		{name: "x25519-only client", clientGroups: []tls.CurveID{tls.X25519}, wantVersion: "tls1.3", wantGroup: tls.X25519},
		{name: "p256-only client", clientGroups: []tls.CurveID{tls.CurveP256}, wantVersion: "tls1.3", wantGroup: tls.CurveP256},
		{name: "tls1.2 client", clientMax: tls.VersionTLS12, wantVersion: "tls1.2", wantGroup: tls.X25519},
		{name: "server narrowed to x25519", serverGroups: []tls.CurveID{tls.X25519}, wantVersion: "tls1.3", wantGroup: tls.X25519},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var log handshakeLog
			term := mustNew(t, Config{
				Certificates:     []Certificate{cert.config()},
				CurvePreferences: tt.serverGroups,
				OnHandshake:      log.record,
			})
			srv := serve(t, term)
			c := mustDial(t, srv.addr, &tls.Config{
				ServerName:       "example.com",
				RootCAs:          cert.pool(),
				NextProtos:       []string{"h2", ALPN},
				CurvePreferences: tt.clientGroups,
				MaxVersion:       tt.clientMax,
			})
			cs := c.ConnectionState()
			if cs.CurveID != tt.wantGroup {
				t.Errorf("client CurveID = %v, want %v", cs.CurveID, tt.wantGroup)
			}
			if cs.NegotiatedProtocol != ALPN {
				t.Errorf("ALPN = %q, want %q", cs.NegotiatedProtocol, ALPN)
			}
			states := log.all()
			if len(states) != 1 {
				t.Fatalf("OnHandshake called %d times, want 1", len(states))
			}
			if got := VersionName(states[0].Version); got != tt.wantVersion {
				t.Errorf("OnHandshake version = %q, want %q", got, tt.wantVersion)
			}
			if got, want := GroupName(states[0].CurveID), GroupName(tt.wantGroup); got != want {
				t.Errorf("OnHandshake group = %q, want %q", got, want)
			}
		})
	}
}

func TestALPN(t *testing.T) {
	cert := newTestCert(t, t.TempDir(), "example", "example.com")
	srv := serve(t, mustNew(t, Config{Certificates: []Certificate{cert.config()}}))
	tests := []struct {
		offer []string
		want  string
	}{
		{offer: []string{"h2", "http/1.1"}, want: "http/1.1"},
		{offer: nil, want: ""},
	}
	for _, tt := range tests {
		c := mustDial(t, srv.addr, &tls.Config{ServerName: "example.com", RootCAs: cert.pool(), NextProtos: tt.offer})
		if got := c.ConnectionState().NegotiatedProtocol; got != tt.want {
			t.Errorf("offer %q: negotiated %q, want %q", tt.offer, got, tt.want)
		}
	}
	// RFC 7301 section 3.2: no overlap is answered with no_application_protocol.
	if _, err := dial(t, srv.addr, &tls.Config{ServerName: "example.com", RootCAs: cert.pool(), NextProtos: []string{"h2"}}); err == nil ||
		!strings.Contains(err.Error(), "no application protocol") {
		t.Errorf("h2-only client: %v, want no application protocol", err)
	}
}

func TestMinVersion(t *testing.T) {
	cert := newTestCert(t, t.TempDir(), "example", "example.com")
	old := &tls.Config{ServerName: "example.com", RootCAs: cert.pool(), MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}

	srv := serve(t, mustNew(t, Config{Certificates: []Certificate{cert.config()}}))
	if _, err := dial(t, srv.addr, old); err == nil {
		t.Fatal("TLS 1.1 client served by default")
	}
	if err := srv.nextHandshake(t); err == nil || !strings.Contains(err.Error(), "unsupported versions") {
		t.Errorf("server handshake error = %v, want unsupported versions", err)
	}

	// The refusal is the default's doing: a listener opened to TLS 1.1 serves it.
	srv = serve(t, mustNew(t, Config{Certificates: []Certificate{cert.config()}, MinVersion: tls.VersionTLS11}))
	c := mustDial(t, srv.addr, old)
	if v := c.ConnectionState().Version; v != tls.VersionTLS11 {
		t.Errorf("version = %s, want TLS 1.1", VersionName(v))
	}
}

func TestSNISelection(t *testing.T) {
	dir := t.TempDir()
	def := newTestCert(t, dir, "default", "default.test")
	exact := newTestCert(t, dir, "exact", "exact.example.com")
	wild := newTestCert(t, dir, "wild", "*.example.com", "example.org")
	srv := serve(t, mustNew(t, Config{Certificates: []Certificate{def.config(), exact.config(), wild.config()}}))
	tests := []struct {
		sni  string
		want testCert
	}{
		{"exact.example.com", exact},
		{"EXACT.Example.COM", exact},
		{"a.example.com", wild},
		{"example.org", wild},
		{"a.b.example.com", def}, // a wildcard covers one label only
		{"example.com", def},
		{"default.test", def},
		{"unknown.test", def},
		{"", def}, // no SNI
	}
	for _, tt := range tests {
		cfg := &tls.Config{ServerName: tt.sni, InsecureSkipVerify: true}
		if tt.sni == "" {
			cfg.ServerName = ""
		}
		c := mustDial(t, srv.addr, cfg)
		if !servedBy(c, tt.want) {
			t.Errorf("SNI %q: served %v, want %v", tt.sni, c.ConnectionState().PeerCertificates[0].DNSNames, tt.want.leaf.DNSNames)
		}
	}
}

// TestReloadSwapsCertificate covers SIGHUP: a certificate replaced on disk is
// served to new connections once Reload runs, an open connection keeps working,
// and a broken file leaves the last good certificate in service.
func TestReloadSwapsCertificate(t *testing.T) {
	dir := t.TempDir()
	a := newTestCert(t, dir, "a", "example.com")
	b := newTestCert(t, t.TempDir(), "b", "example.com")
	var reloads []error
	term := mustNew(t, Config{
		Certificates: []Certificate{a.config()},
		OnReload:     func(err error) { reloads = append(reloads, err) },
	})
	srv := serve(t, term)
	client := &tls.Config{ServerName: "example.com", InsecureSkipVerify: true}

	old := mustDial(t, srv.addr, client)
	if !servedBy(old, a) {
		t.Fatal("first connection not served certificate a")
	}
	b.write(t, a.certFile, a.keyFile)
	if c := mustDial(t, srv.addr, client); !servedBy(c, a) {
		t.Fatal("certificate changed before Reload")
	}
	if err := term.Reload(); err != nil {
		t.Fatal(err)
	}
	if c := mustDial(t, srv.addr, client); !servedBy(c, b) {
		t.Error("new connection after Reload not served certificate b")
	}
	if err := echo(old, "still here"); err != nil {
		t.Errorf("connection opened before Reload: %v", err)
	}

	if err := os.WriteFile(a.keyFile, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := term.Reload()
	var fe *FileError
	if !errors.As(err, &fe) || fe.Path != a.keyFile {
		t.Fatalf("Reload with broken key = %v, want FileError for %s", err, a.keyFile)
	}
	if c := mustDial(t, srv.addr, client); !servedBy(c, b) {
		t.Error("after a failed Reload, not served the last good certificate")
	}
	if len(reloads) != 2 || reloads[0] != nil || reloads[1] != err {
		t.Errorf("OnReload saw %v, want [nil, %v]", reloads, err)
	}
}

func TestWatchSwapsCertificate(t *testing.T) {
	dir := t.TempDir()
	a := newTestCert(t, dir, "a", "example.com")
	b := newTestCert(t, t.TempDir(), "b", "example.com")
	reloads := make(chan error, 64)
	term := mustNew(t, Config{
		Certificates: []Certificate{a.config()},
		OnReload: func(err error) {
			select {
			case reloads <- err:
			default: // never block Watch; the test drains long before 64
			}
		},
	})
	srv := serve(t, term)
	client := &tls.Config{ServerName: "example.com", InsecureSkipVerify: true}
	old := mustDial(t, srv.addr, client)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { term.Watch(ctx, 5*time.Millisecond); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	// The key is written before the certificate, so Watch may catch the pair
	// half-written: that reload fails and the next change completes it.
	b.write(t, a.certFile, a.keyFile)
	waitReload(t, reloads)
	if c := mustDial(t, srv.addr, client); !servedBy(c, b) {
		t.Error("new connection after Watch reload not served certificate b")
	}
	if err := echo(old, "still here"); err != nil {
		t.Errorf("connection opened before the swap: %v", err)
	}

	// A broken file is reported once and not retried until it changes again.
	// It is renamed into place so Watch sees no truncated intermediate state.
	tmp := filepath.Join(dir, "garbage.tmp")
	if err := os.WriteFile(tmp, []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, a.certFile); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-reloads:
		var fe *FileError
		if !errors.As(err, &fe) || fe.Path != a.certFile {
			t.Fatalf("Watch reload of garbage = %v, want FileError for %s", err, a.certFile)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Watch did not try the broken file")
	}
	if term.poll() {
		t.Error("Watch retried files that failed and did not change")
	}
	if c := mustDial(t, srv.addr, client); !servedBy(c, b) {
		t.Error("after a failed reload, not served the last good certificate")
	}
	a.write(t, a.certFile, a.keyFile)
	waitReload(t, reloads)
	if c := mustDial(t, srv.addr, client); !servedBy(c, a) {
		t.Error("not served certificate a after it was restored")
	}
}

// waitReload waits for Watch to report a successful reload, skipping failures
// of a half-written pair.
func waitReload(t *testing.T, reloads <-chan error) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case err := <-reloads:
			if err == nil {
				return
			}
		case <-timeout:
			t.Fatal("Watch did not reload")
		}
	}
}

func TestSessionResumption(t *testing.T) {
	cert := newTestCert(t, t.TempDir(), "example", "example.com")
	var log handshakeLog
	srv := serve(t, mustNew(t, Config{Certificates: []Certificate{cert.config()}, OnHandshake: log.record}))
	for _, version := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
		t.Run(VersionName(version), func(t *testing.T) {
			cfg := &tls.Config{
				ServerName:         "example.com",
				RootCAs:            cert.pool(),
				MaxVersion:         version,
				ClientSessionCache: tls.NewLRUClientSessionCache(4),
			}
			if mustDial(t, srv.addr, cfg).ConnectionState().DidResume {
				t.Fatal("first connection resumed")
			}
			c := mustDial(t, srv.addr, cfg)
			if !c.ConnectionState().DidResume {
				t.Fatal("second connection did not resume")
			}
			states := log.all()
			last := states[len(states)-1]
			if !last.DidResume || last.Version != version || GroupName(last.CurveID) == "none" {
				t.Errorf("OnHandshake for the resumed handshake: resumed %v version %s group %s",
					last.DidResume, VersionName(last.Version), GroupName(last.CurveID))
			}
		})
	}
	if n := len(log.all()); n != 4 {
		t.Errorf("OnHandshake called %d times for 4 handshakes", n)
	}
}

func TestSessionTicketsDisabled(t *testing.T) {
	cert := newTestCert(t, t.TempDir(), "example", "example.com")
	srv := serve(t, mustNew(t, Config{Certificates: []Certificate{cert.config()}, SessionTicketsDisabled: true}))
	cfg := &tls.Config{ServerName: "example.com", RootCAs: cert.pool(), ClientSessionCache: tls.NewLRUClientSessionCache(4)}
	mustDial(t, srv.addr, cfg)
	if mustDial(t, srv.addr, cfg).ConnectionState().DidResume {
		t.Error("resumed with session tickets disabled")
	}
}

// TestSharedTicketKeysFile: replicas sharing a keys file resume each other's
// sessions; a replica with its own generated keys cannot.
func TestSharedTicketKeysFile(t *testing.T) {
	dir := t.TempDir()
	cert := newTestCert(t, dir, "example", "example.com")
	keysFile := filepath.Join(dir, "ticket.keys")
	const k1, k2 = "7R0SObKILUnyvMn0R01HnBfb9gjLaKUBE/9xvp8mHzY=", "4DpJe848CdisNbvphk2CfbGr1BC3dtQozQt7eyZ8/ng="
	writeKeys := func(lines ...string) {
		t.Helper()
		if err := os.WriteFile(keysFile, []byte("# shared\n"+strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeKeys(k1)
	shared := Config{Certificates: []Certificate{cert.config()}, SessionTicketKeysFile: keysFile}
	replica1 := mustNew(t, shared)
	srv1 := serve(t, replica1)
	srv2 := serve(t, mustNew(t, shared))
	loner := serve(t, mustNew(t, Config{Certificates: []Certificate{cert.config()}}))

	for _, version := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
		t.Run(VersionName(version), func(t *testing.T) {
			cache := &pinnedCache{}
			cfg := &tls.Config{ServerName: "example.com", RootCAs: cert.pool(), MaxVersion: version, ClientSessionCache: cache}
			mustDial(t, srv1.addr, cfg)
			if cache.pinned == nil {
				t.Fatal("no ticket from replica 1")
			}
			if !mustDial(t, srv2.addr, cfg).ConnectionState().DidResume {
				t.Error("replica 2 did not resume replica 1's session")
			}
			if mustDial(t, loner.addr, cfg).ConnectionState().DidResume {
				t.Error("a replica without the shared keys resumed the session")
			}
		})
	}

	// Rotation through the file: a ticket under k1 resumes while k1 is listed,
	// and not once it is gone.
	cache := &pinnedCache{}
	cfg := &tls.Config{ServerName: "example.com", RootCAs: cert.pool(), ClientSessionCache: cache}
	mustDial(t, srv1.addr, cfg)
	writeKeys(k2, k1)
	if err := replica1.Reload(); err != nil {
		t.Fatal(err)
	}
	if !mustDial(t, srv1.addr, cfg).ConnectionState().DidResume {
		t.Error("ticket under a decrypt-only key did not resume")
	}
	writeKeys(k2)
	if err := replica1.Reload(); err != nil {
		t.Fatal(err)
	}
	if mustDial(t, srv1.addr, cfg).ConnectionState().DidResume {
		t.Error("ticket under a removed key resumed")
	}
}

// TestTicketKeyRotation walks a fixed timeline: a ticket stays valid while
// the key that encrypted it is within its lifetime, across rotations.
func TestTicketKeyRotation(t *testing.T) {
	cert := newTestCert(t, t.TempDir(), "example", "example.com")
	clock := &fakeClock{now: time.Now()}
	term := mustNew(t, Config{
		Certificates:      []Certificate{cert.config()},
		TicketKeyRotation: time.Hour,
		TicketKeyLifetime: 3 * time.Hour,
		Time:              clock.Now,
	})
	srv := serve(t, term)
	for _, version := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
		t.Run(VersionName(version), func(t *testing.T) {
			cache := &pinnedCache{}
			cfg := &tls.Config{ServerName: "example.com", RootCAs: cert.pool(), MaxVersion: version, ClientSessionCache: cache}
			mustDial(t, srv.addr, cfg) // ticket under the current key, k0
			steps := []struct {
				advance    time.Duration
				wantResume bool
				wantKeys   int
			}{
				{30 * time.Minute, true, 1}, // k0 still encrypting
				{60 * time.Minute, true, 2}, // k1 encrypts, k0 decrypts
				{60 * time.Minute, true, 3}, // k2 encrypts
				{29 * time.Minute, true, 3}, // k0 is 2h59m old
				{2 * time.Minute, false, 2}, // k0 expired at 3h and is dropped
				{10 * time.Hour, false, 1},  // idle for hours: one fresh key
			}
			for i, s := range steps {
				clock.Advance(s.advance)
				c := mustDial(t, srv.addr, cfg)
				if got := c.ConnectionState().DidResume; got != s.wantResume {
					t.Errorf("step %d (+%v): resumed %v, want %v", i, s.advance, got, s.wantResume)
				}
				if got := len(term.cur.Load().keys); got != s.wantKeys {
					t.Errorf("step %d: %d ticket keys, want %d", i, got, s.wantKeys)
				}
			}
		})
	}
}

func TestMutualTLS(t *testing.T) {
	dir := t.TempDir()
	cert := newTestCert(t, dir, "example", "example.com")
	ca, other := newTestCA(t, "clients"), newTestCA(t, "others")
	caFile := filepath.Join(dir, "clients.pem")
	if err := os.WriteFile(caFile, ca.pem, 0o644); err != nil {
		t.Fatal(err)
	}
	good, stranger := ca.client(t, "alice"), other.client(t, "mallory")
	client := func(certs ...tls.Certificate) *tls.Config {
		return &tls.Config{ServerName: "example.com", RootCAs: cert.pool(),
			ClientSessionCache: tls.NewLRUClientSessionCache(4),
			// Present the certificate whatever CAs the server names, as an
			// attacker would (Go's client otherwise holds back a mismatch).
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
				if len(certs) == 0 {
					return &tls.Certificate{}, nil
				}
				return &certs[0], nil
			}}
	}

	t.Run("required", func(t *testing.T) {
		var log handshakeLog
		term := mustNew(t, Config{Certificates: []Certificate{cert.config()}, ClientCAFile: caFile, OnHandshake: log.record})
		srv := serve(t, term)
		if _, err := dial(t, srv.addr, client()); err == nil {
			t.Error("client without a certificate served")
		}
		if _, err := dial(t, srv.addr, client(stranger)); err == nil {
			t.Error("client with a certificate from another CA served")
		}
		alice := client(good)
		mustDial(t, srv.addr, alice)
		states := log.all()
		if len(states) == 0 || len(states[len(states)-1].VerifiedChains) == 0 ||
			states[len(states)-1].PeerCertificates[0].Subject.CommonName != "alice" {
			t.Fatal("OnHandshake did not see alice's verified certificate")
		}
		if !mustDial(t, srv.addr, alice).ConnectionState().DidResume {
			t.Error("mTLS session did not resume")
		}

		// Trusting another CA: alice's certificate is refused, resumption
		// included (Go re-verifies a resumed session's chain).
		if err := os.WriteFile(caFile, other.pem, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := term.Reload(); err != nil {
			t.Fatal(err)
		}
		if _, err := dial(t, srv.addr, alice); err == nil {
			t.Error("alice served after her CA was removed")
		}
		mustDial(t, srv.addr, client(stranger))
		if err := os.WriteFile(caFile, ca.pem, 0o644); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("verify if given", func(t *testing.T) {
		srv := serve(t, mustNew(t, Config{Certificates: []Certificate{cert.config()}, ClientCAFile: caFile,
			ClientAuth: tls.VerifyClientCertIfGiven}))
		mustDial(t, srv.addr, client())
		mustDial(t, srv.addr, client(good))
		if _, err := dial(t, srv.addr, client(stranger)); err == nil {
			t.Error("client with a certificate from another CA served")
		}
	})
}

// TestTLSConfigListener covers edge's -accept=go path: tls.NewListener with
// TLSConfig, and a reload seen through it.
func TestTLSConfigListener(t *testing.T) {
	dir := t.TempDir()
	a := newTestCert(t, dir, "a", "example.com")
	b := newTestCert(t, t.TempDir(), "b", "example.com")
	term := mustNew(t, Config{Certificates: []Certificate{a.config()}})
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := tls.NewListener(raw, term.TLSConfig())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 64)
				for {
					n, err := c.Read(buf)
					if err != nil {
						return
					}
					if _, err := c.Write(buf[:n]); err != nil {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	client := &tls.Config{ServerName: "example.com", InsecureSkipVerify: true}
	if !servedBy(mustDial(t, raw.Addr().String(), client), a) {
		t.Error("not served certificate a")
	}
	b.write(t, a.certFile, a.keyFile)
	if err := term.Reload(); err != nil {
		t.Fatal(err)
	}
	if !servedBy(mustDial(t, raw.Addr().String(), client), b) {
		t.Error("not served certificate b after Reload")
	}
}

func TestInlineCertificate(t *testing.T) {
	certPEM, keyPEM, err := GenerateSelfSigned([]string{"example.com", "127.0.0.1"}, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	term := mustNew(t, Config{Certificates: []Certificate{{CertPEM: certPEM, KeyPEM: keyPEM}}})
	srv := serve(t, term)
	pool := newPoolPEM(t, certPEM)
	mustDial(t, srv.addr, &tls.Config{ServerName: "example.com", RootCAs: pool})
	mustDial(t, srv.addr, &tls.Config{ServerName: "127.0.0.1", RootCAs: pool}) // IP SAN, no SNI sent
	if err := term.Reload(); err != nil {
		t.Errorf("Reload with inline PEM only: %v", err)
	}
	if l := term.Leaves(); len(l) != 1 || l[0].Subject.CommonName != "example.com" {
		t.Errorf("Leaves() = %v", l)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	term.Watch(ctx, 0) // no files: returns at once
}

func TestNewErrors(t *testing.T) {
	dir := t.TempDir()
	cert := newTestCert(t, dir, "example", "example.com")
	other := newTestCert(t, dir, "other", "other.test")
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	missing := filepath.Join(dir, "missing.crt")
	garbage := write("garbage.crt", "hello\n")
	badBlock := write("bad-block.crt", string(cert.certPEM)+"\n-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
	badKeys := write("bad.keys", "# comment\n\n7R0SObKILUnyvMn0R01HnBfb9gjLaKUBE/9xvp8mHzY=\nshort\n")
	good := cert.config()
	tests := []struct {
		name     string
		cfg      Config
		wantPath string // FileError path, if any
		wantLine int
		want     string // substring of the error
	}{
		{name: "no certificates", cfg: Config{}, want: ErrNoCertificates.Error()},
		{name: "missing cert file", cfg: Config{Certificates: []Certificate{{CertFile: missing, KeyFile: cert.keyFile}}},
			wantPath: missing, want: "no such file"},
		{name: "garbage cert", cfg: Config{Certificates: []Certificate{{CertFile: garbage, KeyFile: cert.keyFile}}},
			wantPath: garbage, want: "no CERTIFICATE PEM block"},
		{name: "bad second block", cfg: Config{Certificates: []Certificate{{CertFile: badBlock, KeyFile: cert.keyFile}}},
			wantPath: badBlock, wantLine: strings.Count(string(cert.certPEM), "\n") + 2},
		{name: "key of another certificate", cfg: Config{Certificates: []Certificate{{CertFile: cert.certFile, KeyFile: other.keyFile}}},
			wantPath: other.keyFile, want: "does not match"},
		{name: "bad client CA", cfg: Config{Certificates: []Certificate{good}, ClientCAFile: garbage},
			wantPath: garbage, want: "no CERTIFICATE"},
		{name: "bad ticket keys", cfg: Config{Certificates: []Certificate{good}, SessionTicketKeysFile: badKeys},
			wantPath: badKeys, wantLine: 4, want: "got 5 characters"},
		{name: "cert file and PEM", cfg: Config{Certificates: []Certificate{{CertFile: cert.certFile, CertPEM: cert.certPEM, KeyFile: cert.keyFile}}},
			want: "certificates[0]: set exactly one of cert file"},
		{name: "no key", cfg: Config{Certificates: []Certificate{{CertFile: cert.certFile}}},
			want: "certificates[0]: set exactly one of key file"},
		{name: "unknown version", cfg: Config{Certificates: []Certificate{good}, MinVersion: 0x0305},
			want: "unknown min version 0x0305"},
		{name: "unknown group", cfg: Config{Certificates: []Certificate{good}, CurvePreferences: []tls.CurveID{tls.X25519, 999}},
			want: "unsupported curve preference"},
		{name: "client auth without CA", cfg: Config{Certificates: []Certificate{good}, ClientAuth: tls.RequireAndVerifyClientCert},
			want: "client auth RequireAndVerifyClientCert needs a client CA file"},
		{name: "unverified client auth", cfg: Config{Certificates: []Certificate{good}, ClientCAFile: cert.certFile, ClientAuth: tls.RequireAnyClientCert},
			want: "RequireAnyClientCert does not verify"},
		{name: "lifetime below rotation", cfg: Config{Certificates: []Certificate{good}, TicketKeyRotation: time.Hour, TicketKeyLifetime: time.Minute},
			want: "lifetime 1m0s shorter than rotation 1h0m0s"},
		{name: "rotation with keys file", cfg: Config{Certificates: []Certificate{good}, SessionTicketKeysFile: badKeys, TicketKeyRotation: time.Hour},
			want: "do not apply"},
		{name: "keys file with tickets disabled", cfg: Config{Certificates: []Certificate{good}, SessionTicketKeysFile: badKeys, SessionTicketsDisabled: true},
			want: "session tickets disabled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			if err == nil {
				t.Fatal("New succeeded")
			}
			if !strings.HasPrefix(err.Error(), "tlsterm: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
			var fe *FileError
			if tt.wantPath != "" {
				if !errors.As(err, &fe) || fe.Path != tt.wantPath || fe.Line != tt.wantLine {
					t.Errorf("error %q: want FileError at %s:%d", err, tt.wantPath, tt.wantLine)
				}
			} else if errors.As(err, &fe) {
				t.Errorf("error %q is a FileError", err)
			}
		})
	}
	// Every problem is reported at once, for `edge check`.
	_, err := New(Config{
		Certificates:          []Certificate{{CertFile: garbage, KeyFile: cert.keyFile}, good, {CertFile: cert.certFile, KeyFile: missing}},
		SessionTicketKeysFile: badKeys,
	})
	var joined interface{ Unwrap() []error }
	if !errors.As(err, &joined) {
		t.Fatalf("New with three bad files = %v, want joined errors", err)
	}
	var paths []string
	for _, e := range joined.Unwrap() {
		var fe *FileError
		if errors.As(e, &fe) {
			paths = append(paths, fe.Path)
		}
	}
	if want := []string{garbage, missing, badKeys}; !slices.Equal(paths, want) {
		t.Errorf("problems reported for %q, want %q", paths, want)
	}
	_, err = New(Config{MinVersion: 1, ClientAuth: tls.RequireAndVerifyClientCert})
	if !errors.Is(err, ErrNoCertificates) || strings.Count(err.Error(), "tlsterm: ") != 3 {
		t.Errorf("New with three bad settings = %v, want all three", err)
	}

	_, err = New(Config{Certificates: []Certificate{{CertFile: missing, KeyFile: cert.keyFile}}})
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file error %v is not fs.ErrNotExist", err)
	}
	if _, err := New(Config{}); !errors.Is(err, ErrNoCertificates) {
		t.Errorf("New(Config{}) = %v, want ErrNoCertificates", err)
	}
}
