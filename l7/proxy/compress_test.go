package proxy

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	brotli "github.com/molecule-man/go-brrr"

	"example.com/edge/lb"
)

func TestNegotiate(t *testing.T) {
	all := []encoding{encZstd, encBrotli, encGzip}
	tests := []struct {
		ae   string
		want encoding
	}{
		{"", encNone},
		{"gzip", encGzip},
		{"gzip, br", encBrotli},
		{"gzip, br, zstd", encZstd},
		{"GZIP;q=0.5", encGzip},
		{"zstd;q=0, br;q=0.000, gzip;q=0.001", encGzip},
		{"*", encZstd},
		{"*;q=0, gzip", encGzip},
		{"zstd;q=0, *", encBrotli},
		{"identity", encNone},
		{"gzip;q=bogus", encNone},
		{"gzip;q=1.5", encNone},
		{" gzip ; q=1.0 ", encGzip},
		{"deflate, gzip;level=1", encGzip},
	}
	for _, tt := range tests {
		if got := negotiate([]byte(tt.ae), all); got != tt.want {
			t.Errorf("negotiate(%q) = %v, want %v", tt.ae, encodingNames[got], encodingNames[tt.want])
		}
	}
	if got := negotiate([]byte("zstd, gzip"), []encoding{encGzip, encZstd}); got != encGzip {
		t.Errorf("the route's order must decide among accepted codings: got %v", encodingNames[got])
	}
}

func decode(t *testing.T, enc string, b []byte) []byte {
	t.Helper()
	var r io.Reader
	switch enc {
	case "gzip":
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		r = zr
	case "zstd":
		zr, err := zstd.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		defer zr.Close()
		r = zr
	case "br":
		r = brotli.NewReader(bytes.NewReader(b))
	default:
		return b
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("decoding %s: %v", enc, err)
	}
	return out
}

func TestCompression(t *testing.T) {
	small := strings.Repeat(`{"k":"v"},`, 300)         // 3 KB: buffered
	large := strings.Repeat(`{"key":"value"},`, 20000) // 320 KB: streamed
	p := startPod(t, "a")
	p.handler = func(w http.ResponseWriter, r *http.Request) {
		body := small
		if strings.HasPrefix(r.URL.Path, "/large") {
			body = large
		}
		switch {
		case strings.HasSuffix(r.URL.Path, "/png"):
			w.Header().Set("Content-Type", "image/png")
		case strings.HasSuffix(r.URL.Path, "/encoded"):
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Encoding", "gzip")
		case strings.HasSuffix(r.URL.Path, "/tiny"):
			w.Header().Set("Content-Type", "application/json")
			body = "{}"
		default:
			w.Header().Set("Content-Type", "application/json; charset=utf-8")
			w.Header().Set("ETag", `"v1"`)
		}
		if strings.HasPrefix(r.URL.Path, "/large/chunked") {
			w.(http.Flusher).Flush() // no Content-Length: chunked
		}
		io.WriteString(w, body) //nolint:errcheck
	}
	e := startEdge(t, Options{}, Config{
		Pools:  map[string]*Pool{"app": newPool(t, "app", lb.Config{}, p)},
		Routes: []Route{{Prefix: "/", Pool: "app", Compress: []string{"zstd", "br", "gzip"}}},
	})
	tests := []struct {
		path, ae, wantEnc, want string
	}{
		{"/small", "gzip", "gzip", small},
		{"/small", "br, gzip", "br", small},
		{"/small", "zstd, br, gzip", "zstd", small},
		{"/small", "", "", small},
		{"/large", "gzip", "gzip", large},
		{"/large", "zstd", "zstd", large},
		{"/large", "br", "br", large},
		{"/large/chunked", "gzip", "gzip", large},
		{"/small/png", "gzip", "", small},
		{"/small/tiny", "gzip", "", "{}"},
	}
	for _, tt := range tests {
		resp, body := e.do(t, "GET", "example.com", tt.path, map[string]string{"Accept-Encoding": tt.ae}, nil)
		got := resp.Header.Get("Content-Encoding")
		if got != tt.wantEnc {
			t.Errorf("%s with %q: Content-Encoding %q, want %q", tt.path, tt.ae, got, tt.wantEnc)
			continue
		}
		if plain := decode(t, got, body); string(plain) != tt.want {
			t.Errorf("%s with %q: decoded body differs (%d bytes, want %d)", tt.path, tt.ae, len(plain), len(tt.want))
		}
		if tt.wantEnc != "" {
			if len(body) >= len(tt.want) {
				t.Errorf("%s: compressed %d bytes into %d", tt.path, len(tt.want), len(body))
			}
			if !strings.Contains(strings.Join(resp.Header.Values("Vary"), ","), "Accept-Encoding") {
				t.Errorf("%s: compressed response without Vary: Accept-Encoding", tt.path)
			}
			if et := resp.Header.Get("ETag"); et != "" && !strings.HasPrefix(et, "W/") {
				t.Errorf("%s: compressed response kept the strong ETag %s", tt.path, et)
			}
		}
	}
	resp, body := e.do(t, "GET", "example.com", "/small/encoded", map[string]string{"Accept-Encoding": "br"}, nil)
	if resp.Header.Get("Content-Encoding") != "gzip" || string(body) != small {
		t.Errorf("an already encoded response was touched: %q", resp.Header.Get("Content-Encoding"))
	}
}

func BenchmarkNegotiate(b *testing.B) {
	ae := []byte("gzip, deflate, br, zstd")
	prefs := []encoding{encZstd, encBrotli, encGzip}
	b.ReportAllocs()
	for b.Loop() {
		negotiate(ae, prefs)
	}
}
