package proxy

import (
	"bytes"
	"net/netip"
	"net/url"
	"strings"
	"testing"
)

func TestAppendHTTPSRedirect(t *testing.T) {
	tests := []struct {
		host, uri string
		port      int
		want      string // "" means refused
	}{
		{"example.com", "/app/x?y=1", 443, "https://example.com/app/x?y=1"},
		{"example.com:80", "/", 0, "https://example.com/"},
		{"example.com:8080", "/a", 8443, "https://example.com:8443/a"},
		{"Example.COM", "/", 443, "https://Example.COM/"},
		{"127.0.0.1:8080", "/p", 8443, "https://127.0.0.1:8443/p"},
		{"[::1]:8080", "/p", 443, "https://[::1]/p"},
		{"[::1]", "/p", 443, "https://[::1]/p"},
		{"my_host.internal", "/", 443, "https://my_host.internal/"},
		{"example.com", "*", 443, "https://example.com/"},
		{"example.com", "http://evil.test/x", 443, "https://example.com/"},
		{"example.com", "", 443, "https://example.com/"},
		{"example.com", "//evil.test/x", 443, "https://example.com//evil.test/x"},
		{"", "/", 443, ""},
		{":80", "/", 443, ""},
		{"example.com:8o", "/", 443, ""},
		{"example.com:123456", "/", 443, ""},
		{"evil.test/x", "/", 443, ""},
		{"user@evil.test", "/", 443, ""},
		{"example.com\r\nSet-Cookie: a=b", "/", 443, ""},
		{"example.com", "/a\r\nSet-Cookie: a=b", 443, ""},
		{"example.com", "/a b", 443, ""},
		{"[::1", "/", 443, ""},
		{"[]", "/", 443, ""},
		{"[::1]x", "/", 443, ""},
		{"[g::1]", "/", 443, ""},
	}
	for _, tt := range tests {
		dst := []byte("Location: ")
		got, ok := appendHTTPSRedirect(dst, []byte(tt.host), []byte(tt.uri), tt.port)
		if tt.want == "" {
			if ok || string(got) != "Location: " {
				t.Errorf("host %q uri %q: got %q, %v, want refusal with dst unchanged", tt.host, tt.uri, got, ok)
			}
			continue
		}
		if !ok || string(got) != "Location: "+tt.want {
			t.Errorf("host %q uri %q port %d: got %q, %v, want %q", tt.host, tt.uri, tt.port, got, ok, tt.want)
		}
	}
}

// FuzzAppendHTTPSRedirect: an accepted redirect is one https URL, carries no
// byte that could end a header line, and keeps the request's host name.
func FuzzAppendHTTPSRedirect(f *testing.F) {
	f.Add([]byte("example.com:8080"), []byte("/app/?q=1"), 8443)
	f.Add([]byte("[::1]:80"), []byte("*"), 443)
	f.Add([]byte("a\r\nb"), []byte("/"), 0)
	f.Fuzz(func(t *testing.T, host, uri []byte, port int) {
		if port < 0 || port > 65535 {
			return
		}
		out, ok := appendHTTPSRedirect(nil, host, uri, port)
		if !ok {
			if len(out) != 0 {
				t.Fatalf("refused but wrote %q", out)
			}
			return
		}
		for _, c := range out {
			if c <= ' ' || c == 0x7f {
				t.Fatalf("%q holds byte 0x%02x", out, c)
			}
		}
		// The request URI is passed through as sent; check the origin part.
		origin := out[:len("https://")+bytes.IndexByte(out[len("https://"):], '/')]
		u, err := url.Parse(string(origin))
		if err != nil {
			t.Fatalf("%q: %v", out, err)
		}
		name := host
		if i := bytes.LastIndexByte(host, ':'); i >= 0 && !bytes.HasSuffix(host, []byte("]")) {
			name = host[:i]
		}
		if u.Scheme != "https" || !strings.EqualFold(u.Hostname(), strings.Trim(string(name), "[]")) {
			t.Fatalf("%q: scheme %q host %q, from host %q", out, u.Scheme, u.Hostname(), host)
		}
	})
}

// FuzzValidIPv6 checks validIPv6 against net/netip's parser.
func FuzzValidIPv6(f *testing.F) {
	for _, s := range []string{"::1", "::", "1::", "::ffff:1.2.3.4", "1:2:3:4:5:6:7:8", "1:2:3:4:5:6:1.2.3.4",
		"fe80::1%eth0", "1:::2", "12345::", "::01.2.3.4", "0", "1.2.3.4", "1:2:3:4:5:6:7:8:9", ":1", "1:"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		addr, err := netip.ParseAddr(s)
		want := err == nil && addr.Is6() && addr.Zone() == ""
		if got := validIPv6([]byte(s)); got != want {
			t.Fatalf("validIPv6(%q) = %v, netip says %v (%v)", s, got, want, err)
		}
	})
}
