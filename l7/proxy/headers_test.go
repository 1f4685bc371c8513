package proxy

import (
	"net/netip"
	"sort"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"example.com/edge/l7/jwt"
)

func TestValidTraceparent(t *testing.T) {
	tests := []struct {
		v    string
		want bool
	}{
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", true},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", true},
		{"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", true}, // later versions may append
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", false},
		{"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", false},
		{"00-00000000000000000000000000000000-00f067aa0ba902b7-01", false},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", false},
		{"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", false},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := ValidTraceparent([]byte(tt.v)); got != tt.want {
			t.Errorf("ValidTraceparent(%q) = %v, want %v", tt.v, got, tt.want)
		}
	}
	ids := newIDSource()
	for range 100 {
		if tp := ids.appendTraceparent(nil); !ValidTraceparent(tp) {
			t.Fatalf("generated traceparent %q is invalid", tp)
		}
	}
}

func TestClientFromXFF(t *testing.T) {
	trustedNets := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	peer := netip.MustParseAddr("10.0.0.1")
	tests := []struct {
		xff, want string
	}{
		{"", "10.0.0.1"},
		{"203.0.113.7", "203.0.113.7"},
		{"1.1.1.1, 203.0.113.7", "203.0.113.7"},  // the rightmost untrusted hop, not the client's claim
		{"203.0.113.7, 10.0.0.9", "203.0.113.7"}, // trusted hops are skipped
		{"garbage, 203.0.113.7", "203.0.113.7"},  // left of the client does not matter
		{"203.0.113.7, garbage", "10.0.0.1"},     // an unparsable hop stops the walk at the last good one
		{"::ffff:203.0.113.7", "203.0.113.7"},    // mapped addresses unmapped
		{" 2001:db8::1 ", "2001:db8::1"},         // spaces trimmed
	}
	for _, tt := range tests {
		if got := clientFromXFF([]byte(tt.xff), trustedNets, peer); got.String() != tt.want {
			t.Errorf("clientFromXFF(%q) = %v, want %v", tt.xff, got, tt.want)
		}
	}
}

func TestAppendEscapedPath(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/app/x", "/app/x"},
		{"/a b/%", "/a%20b/%25"},
		{"/ü?#", "/%C3%BC%3F%23"},
		{"/-._~!$&'()*+,;=:@", "/-._~!$&'()*+,;=:@"},
	}
	for _, tt := range tests {
		if got := string(appendEscapedPath(nil, []byte(tt.in))); got != tt.want {
			t.Errorf("appendEscapedPath(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestIsHopByHop(t *testing.T) {
	for _, h := range hopByHop {
		for _, v := range []string{h, strings.ToLower(h), strings.ToUpper(h)} {
			if !isHopByHop([]byte(v)) {
				t.Errorf("isHopByHop(%q) = false", v)
			}
		}
	}
	for _, h := range []string{"Host", "X-Forwarded-For", "Content-Length", "Trailers", "TEx", "Authorization", ""} {
		if isHopByHop([]byte(h)) {
			t.Errorf("isHopByHop(%q) = true", h)
		}
	}
}

func typicalRequestHeader() *fasthttp.RequestHeader {
	var h fasthttp.RequestHeader
	h.SetMethod("GET")
	h.SetRequestURI("/app/dashboard")
	h.SetHost("example.com")
	h.Set("User-Agent", "bench/1.0")
	h.Set("Accept", "application/json")
	h.Set("Authorization", "Bearer x.y.z")
	h.Set("X-Request-ID", "0123456789abcdef")
	return &h
}

func BenchmarkStripHopByHopRequest(b *testing.B) {
	h := typicalRequestHeader()
	b.ReportAllocs()
	for b.Loop() {
		stripHopByHopRequest(h)
	}
}

func BenchmarkPrepareHeaders(b *testing.B) {
	h := typicalRequestHeader()
	ids := newIDSource()
	var buf []byte
	peer := netip.MustParseAddr("203.0.113.7")
	b.ReportAllocs()
	for b.Loop() {
		buf = appendXFF(buf[:0], h.Peek("X-Forwarded-For"), false, peer)
		h.SetBytesV("X-Forwarded-For", buf)
		buf = ids.appendTraceparent(buf[:0])
		h.SetBytesV("traceparent", buf)
		buf = appendEscapedPath(buf[:0], []byte("/app/dashboard"))
	}
}

func TestDeleteUnderscoreAliases(t *testing.T) {
	var h fasthttp.RequestHeader
	h.DisableNormalizing()
	for _, k := range []string{"X_User_Id", "x_user-id", "X-User-Id", "X_Other", "X_Tenant"} {
		h.Add(k, "spoof")
	}
	deleteUnderscoreAliases(&h, []jwt.ForwardClaim{{Claim: "sub", Header: "X-User-Id"}, {Claim: "tenant", Header: "X-Tenant"}})
	var left []string
	for k := range h.All() {
		left = append(left, string(k))
	}
	sort.Strings(left)
	if strings.Join(left, ",") != "X-User-Id,X_Other" {
		t.Errorf("headers left: %v, want the exact X-User-Id (deleted separately) and the unrelated X_Other", left)
	}
}

func BenchmarkAppendHTTPSRedirect(b *testing.B) {
	dst := make([]byte, 0, 256)
	host, uri := []byte("example.com:80"), []byte("/app/dashboard?tab=1")
	b.ReportAllocs()
	for b.Loop() {
		dst, _ = appendHTTPSRedirect(dst[:0], host, uri, 8443)
	}
}
