//go:build !race

package l4

import (
	"crypto/tls"
	"net/netip"
	"testing"
)

func TestParseClientHelloAllocs(t *testing.T) {
	hello := goClientHello(t, &tls.Config{ServerName: "example.com", NextProtos: []string{"h2", "http/1.1"}})
	frag := refragment(hello, 300)
	scratch := make([]byte, 0, MaxClientHelloLen+handshakeHeaderLen)
	for name, data := range map[string][]byte{"single": hello, "fragmented": frag} {
		if n := testing.AllocsPerRun(100, func() {
			if _, _, err := ParseClientHello(scratch, data); err != nil {
				t.Fatal(err)
			}
		}); n != 0 {
			t.Errorf("%s: %v allocs per parse, want 0", name, n)
		}
	}
}

func TestParseProxyHeaderAllocs(t *testing.T) {
	inputs := [][]byte{
		[]byte("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"),
		[]byte("PROXY TCP6 2001:db8::1 ::ffff:1.2.3.4 56324 443\r\n"),
		[]byte("PROXY UNKNOWN\r\n"),
		AppendProxyV2(nil, netip.MustParseAddrPort("[2001:db8::7]:1"), netip.MustParseAddrPort("[::1]:2")),
	}
	for _, data := range inputs {
		if n := testing.AllocsPerRun(100, func() {
			if _, err := ParseProxyHeader(data); err != nil {
				t.Fatal(err)
			}
		}); n != 0 {
			t.Errorf("%q: %v allocs per parse, want 0", data, n)
		}
	}
	src, dst := netip.MustParseAddrPort("203.0.113.7:40000"), netip.MustParseAddrPort("[2001:db8::1]:5432")
	buf := make([]byte, 0, 64)
	if n := testing.AllocsPerRun(100, func() { buf = AppendProxyV2(buf[:0], src, dst) }); n != 0 {
		t.Errorf("AppendProxyV2: %v allocs, want 0", n)
	}
}

func TestClassifyAllocs(t *testing.T) {
	hello := goClientHello(t, &tls.Config{ServerName: "db.example.com"})
	head := []byte("GET /app/dashboard HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n")
	env, scratch := classifyFixture(t)
	for name, tc := range map[string]struct {
		set  *settings
		data []byte
		want verdict
	}{
		"http-head":   {env.httpSet, head, deliver},
		"tls-deliver": {env.tlsSet, goClientHello(t, &tls.Config{ServerName: "example.com"}), deliver},
		"tls-relay":   {env.tlsSet, hello, relay},
	} {
		var fb firstBytes
		if n := testing.AllocsPerRun(100, func() {
			fb.init(env.l, tc.set, netip.MustParseAddrPort("203.0.113.7:1"), slot{})
			if v := fb.classify(tc.data, &scratch); v != tc.want {
				t.Fatalf("%s: verdict %d, want %d", name, v, tc.want)
			}
		}); n != 0 {
			t.Errorf("%s: %v allocs per classify, want 0", name, n)
		}
	}
}
