//go:build !race

package proxy

import (
	"net/netip"
	"testing"

	"github.com/valyala/fasthttp"
)

func TestHeaderHelpersAllocateNothing(t *testing.T) {
	h := typicalRequestHeader()
	ids := newIDSource()
	buf := make([]byte, 0, 256)
	peer := netip.MustParseAddr("203.0.113.7")
	prefs := []encoding{encZstd, encBrotli, encGzip}
	ae := []byte("gzip, deflate, br, zstd")
	if n := testing.AllocsPerRun(1000, func() {
		stripHopByHopRequest(h)
		buf = appendXFF(buf[:0], h.Peek("X-Forwarded-For"), false, peer)
		buf = ids.appendTraceparent(buf[:0])
		buf = ids.appendRequestID(buf[:0])
		buf = appendEscapedPath(buf[:0], []byte("/app/dashboard"))
		_ = ValidRequestID(buf)
		_ = ValidTraceparent(buf)
		_ = negotiate(ae, prefs)
		buf, _ = appendHTTPSRedirect(buf[:0], []byte("[2001:db8::1]:80"), []byte("/app/?x=1"), 8443)
	}); n != 0 {
		t.Errorf("allocs per run = %v, want 0", n)
	}
	// Hop-by-hop headers to remove, Proxy-* ones among them, each run.
	var hop fasthttp.RequestHeader
	if n := testing.AllocsPerRun(1000, func() {
		hop.Reset()
		hop.Set("Host", "example.com")
		hop.Set("Connection", "keep-alive, X-Secret")
		hop.Set("X-Secret", "1")
		hop.Set("Proxy-Authorization", "Basic Zm9v")
		hop.Set("Proxy-Foo", "y")
		stripHopByHopRequest(&hop)
	}); n != 0 {
		t.Errorf("stripping hop-by-hop headers: allocs per run = %v, want 0", n)
	}
	if hop.Peek("Proxy-Foo") != nil || hop.Peek("X-Secret") != nil || hop.Peek("Proxy-Authorization") != nil {
		t.Errorf("hop-by-hop headers left: %s", hop.Header())
	}
}
