package l4

import (
	"crypto/tls"
	"net"
	"net/netip"
	"testing"
)

type classifyEnv struct {
	l       *listener
	httpSet *settings
	tlsSet  *settings
}

// classifyFixture builds settings for an HTTP and a TLS listener with one
// pass-through entry, without starting anything.
func classifyFixture(t testing.TB) (classifyEnv, []byte) {
	t.Helper()
	pools := fakePools{"postgres": {}}
	srv, err := New(Config{Pools: pools})
	if err != nil {
		t.Fatal(err)
	}
	httpSet, err := newSettings(0, ListenerConfig{Name: "web", Address: ":80"}, pools, false)
	if err != nil {
		t.Fatal(err)
	}
	tlsSet, err := newSettings(1, ListenerConfig{Name: "tls", Address: ":443", Kind: KindTLS,
		Terminate:   func(c net.Conn) net.Conn { return c },
		Passthrough: map[string]string{"db.example.com": "postgres"}}, pools, false)
	if err != nil {
		t.Fatal(err)
	}
	return classifyEnv{&listener{srv: srv}, httpSet, tlsSet}, make([]byte, 0, maxAccumulated)
}

func TestClassifyHTTPHeadAcrossReads(t *testing.T) {
	env, scratch := classifyFixture(t)
	tests := []struct {
		name  string
		parts []string
		want  verdict
	}{
		{"crlf", []string{"GET / HTTP/1.1\r\nHost: x\r\n", "\r", "\n"}, deliver},
		{"bare-lf", []string{"GET / HTTP/1.1\nHost: x\n", "\n"}, deliver},
		{"split-terminator", []string{"GET / HTTP/1.1\r\nHost: x\r", "\n\r", "\n"}, deliver},
		{"incomplete", []string{"GET / HTTP/1.1\r\nHost: x\r\n"}, needMore},
		{"not-a-method", []string{"\x16\x03\x01"}, deliver},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var fb firstBytes
			fb.init(env.l, env.httpSet, netip.MustParseAddrPort("203.0.113.7:1"), slot{})
			var data []byte
			v := needMore
			for _, p := range tt.parts {
				if v != needMore {
					t.Fatalf("decided %d before all parts arrived", v)
				}
				data = append(data, p...)
				v = fb.classify(data, &scratch)
			}
			if v != tt.want {
				t.Fatalf("verdict %d, want %d", v, tt.want)
			}
		})
	}
	// A head that never ends is delivered at MaxHeadBytes; L7 answers 431.
	var fb firstBytes
	fb.init(env.l, env.httpSet, netip.MustParseAddrPort("203.0.113.7:1"), slot{})
	big := append([]byte("GET / HTTP/1.1\r\nX: "), make([]byte, DefaultMaxHeadBytes)...)
	if v := fb.classify(big, &scratch); v != deliver {
		t.Fatalf("oversized head: verdict %d, want deliver", v)
	}
}

func TestClassifyTLS(t *testing.T) {
	env, scratch := classifyFixture(t)
	for _, tt := range []struct {
		sni  string
		want verdict
		pool string
	}{
		{"example.com", deliver, ""},
		{"DB.Example.COM", relay, "postgres"},
		{"db.example.com.evil", deliver, ""},
	} {
		var fb firstBytes
		fb.init(env.l, env.tlsSet, netip.MustParseAddrPort("203.0.113.7:1"), slot{})
		hello := goClientHello(t, &tls.Config{ServerName: tt.sni})
		if v := fb.classify(hello[:100], &scratch); v != needMore {
			t.Fatalf("%s: partial hello: verdict %d, want needMore", tt.sni, v)
		}
		if v := fb.classify(hello, &scratch); v != tt.want || fb.poolName != tt.pool {
			t.Fatalf("%s: verdict %d pool %q, want %d %q", tt.sni, v, fb.poolName, tt.want, tt.pool)
		}
	}
}

func BenchmarkClassify(b *testing.B) {
	env, scratch := classifyFixture(b)
	head := []byte("GET /app/dashboard HTTP/1.1\r\nHost: example.com\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n")
	hello := goClientHello(b, &tls.Config{ServerName: "db.example.com"})
	peer := netip.MustParseAddrPort("203.0.113.7:1")
	for _, bc := range []struct {
		name string
		set  *settings
		data []byte
	}{
		{"http-head", env.httpSet, head},
		{"tls-passthrough-hello", env.tlsSet, hello},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			var fb firstBytes
			for b.Loop() {
				fb.init(env.l, bc.set, peer, slot{})
				if fb.classify(bc.data, &scratch) == needMore {
					b.Fatal("need more")
				}
			}
		})
	}
}
