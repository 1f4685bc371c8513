//go:build !race

package tlsterm

import (
	"crypto/tls"
	"testing"
)

// The per-handshake work tlsterm adds to crypto/tls allocates nothing.
func TestAllocs(t *testing.T) {
	term := mustNew(t, Config{Certificates: []Certificate{
		newTestCert(t, t.TempDir(), "default", "default.test").config(),
		newTestCert(t, t.TempDir(), "exact", "exact.example.com").config(),
		newTestCert(t, t.TempDir(), "wild", "*.example.com").config(),
	}})
	certs := term.cur.Load().files.certs
	hellos := []*tls.ClientHelloInfo{
		{ServerName: "exact.example.com"},
		{ServerName: "Exact.Example.COM"},
		{ServerName: "a.example.com"},
		{ServerName: "unknown.test"},
		{},
	}
	tests := []struct {
		name string
		f    func()
	}{
		{"pick", func() {
			for _, h := range hellos {
				certs.pick(h)
			}
		}},
		{"configForClient", func() { term.configForClient(hellos[0]) }},
		{"names", func() { _, _ = VersionName(tls.VersionTLS13), GroupName(tls.X25519MLKEM768) }},
	}
	for _, tt := range tests {
		if n := testing.AllocsPerRun(100, tt.f); n != 0 {
			t.Errorf("%s: %v allocs per run, want 0", tt.name, n)
		}
	}
}
