package l4

import (
	"bytes"
	"crypto/tls"
	"errors"
	"net"
	"testing"
	"time"
)

// helloCapture is a net.Conn that records what a TLS client writes and fails
// every read, so a client handshake stops right after sending its ClientHello.
type helloCapture struct {
	bytes.Buffer
}

func (c *helloCapture) Read([]byte) (int, error)         { return 0, errors.New("capture: no server") }
func (c *helloCapture) Close() error                     { return nil }
func (c *helloCapture) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *helloCapture) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *helloCapture) SetDeadline(time.Time) error      { return nil }
func (c *helloCapture) SetReadDeadline(time.Time) error  { return nil }
func (c *helloCapture) SetWriteDeadline(time.Time) error { return nil }
func (c *helloCapture) Write(p []byte) (int, error)      { return c.Buffer.Write(p) }

// goClientHello returns the bytes crypto/tls sends as its first flight with cfg.
func goClientHello(t testing.TB, cfg *tls.Config) []byte {
	t.Helper()
	var c helloCapture
	_ = tls.Client(&c, cfg).Handshake()
	if c.Len() == 0 {
		t.Fatal("tls client wrote nothing")
	}
	return c.Bytes()
}

// refragment re-frames the handshake message of a single-record hello into
// records carrying at most size bytes each (RFC 8446 §5.1 fragmentation).
func refragment(hello []byte, size int) []byte {
	msg := hello[recordHeaderLen:]
	var out []byte
	for len(msg) > 0 {
		n := min(size, len(msg))
		out = append(out, recordTypeHandshake, 3, 1, byte(n>>8), byte(n))
		out = append(out, msg[:n]...)
		msg = msg[n:]
	}
	return out
}

func TestParseClientHelloFromGoClient(t *testing.T) {
	tests := []struct {
		name string
		cfg  *tls.Config
		sni  string
		alpn []string
	}{
		{"mlkem-default-groups", &tls.Config{ServerName: "example.com", NextProtos: []string{"h2", "http/1.1"}}, "example.com", []string{"h2", "http/1.1"}},
		{"x25519-only", &tls.Config{ServerName: "db.example.com", CurvePreferences: []tls.CurveID{tls.X25519}}, "db.example.com", nil},
		{"tls12-only", &tls.Config{ServerName: "a.b", MaxVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}}, "a.b", []string{"http/1.1"}},
		{"no-sni", &tls.Config{InsecureSkipVerify: true}, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hello := goClientHello(t, tt.cfg)
			h, _, err := ParseClientHello(nil, hello)
			if err != nil {
				t.Fatalf("ParseClientHello: %v", err)
			}
			if string(h.ServerName) != tt.sni {
				t.Errorf("ServerName = %q, want %q", h.ServerName, tt.sni)
			}
			var got []string
			for p, rest := NextALPN(h.ALPN); p != nil; p, rest = NextALPN(rest) {
				got = append(got, string(p))
			}
			if len(got) != len(tt.alpn) {
				t.Fatalf("ALPN = %q, want %q", got, tt.alpn)
			}
			for i := range got {
				if got[i] != tt.alpn[i] {
					t.Errorf("ALPN[%d] = %q, want %q", i, got[i], tt.alpn[i])
				}
			}
			if h.Len != len(hello) {
				t.Errorf("Len = %d, want %d", h.Len, len(hello))
			}
		})
	}
}

func TestParseClientHelloMLKEMSize(t *testing.T) {
	// Regression guard for the design note: a default Go hello carries an
	// X25519MLKEM768 key share and must exceed one typical MSS-sized read.
	hello := goClientHello(t, &tls.Config{ServerName: "example.com"})
	if len(hello) < 1200 {
		t.Fatalf("default hello is %d bytes; expected an X25519MLKEM768 key share (>1200)", len(hello))
	}
}

func TestParseClientHelloPrefixesNeedMore(t *testing.T) {
	hello := goClientHello(t, &tls.Config{ServerName: "example.com", NextProtos: []string{"http/1.1"}})
	for _, size := range []int{0, 1, 3, 7, 100, 512} {
		data := hello
		if size > 0 {
			data = refragment(hello, size)
		}
		for k := range len(data) {
			if _, _, err := ParseClientHello(nil, data[:k]); !errors.Is(err, ErrNeedMore) {
				t.Fatalf("fragment %d: prefix %d/%d: err = %v, want ErrNeedMore", size, k, len(data), err)
			}
		}
		h, _, err := ParseClientHello(nil, data)
		if err != nil {
			t.Fatalf("fragment %d: full: %v", size, err)
		}
		if string(h.ServerName) != "example.com" || h.Len != len(data) {
			t.Fatalf("fragment %d: got sni %q len %d, want example.com %d", size, h.ServerName, h.Len, len(data))
		}
		// Bytes after the hello (early data, pipelined records) are not part of it.
		h, _, err = ParseClientHello(nil, append(bytes.Clone(data), 23, 3, 3, 0, 1, 0))
		if err != nil || h.Len != len(data) {
			t.Fatalf("fragment %d: with trailing record: len %d err %v", size, h.Len, err)
		}
	}
}

// minimalHello builds a single-record ClientHello around the given extension bytes.
func minimalHello(exts []byte) []byte {
	body := []byte{3, 3}
	body = append(body, make([]byte, 32)...) // random
	body = append(body, 0)                   // session id
	body = append(body, 0, 2, 0x13, 0x01)    // one cipher suite
	body = append(body, 1, 0)                // null compression
	if exts != nil {
		body = append(body, byte(len(exts)>>8), byte(len(exts)))
		body = append(body, exts...)
	}
	msg := append([]byte{handshakeClientHello, byte(len(body) >> 16), byte(len(body) >> 8), byte(len(body))}, body...)
	return append([]byte{recordTypeHandshake, 3, 1, byte(len(msg) >> 8), byte(len(msg))}, msg...)
}

func ext(typ int, body ...byte) []byte {
	return append([]byte{byte(typ >> 8), byte(typ), byte(len(body) >> 8), byte(len(body))}, body...)
}

func sniExt(names ...string) []byte {
	var list []byte
	for _, n := range names {
		list = append(list, serverNameTypeHost, byte(len(n)>>8), byte(len(n)))
		list = append(list, n...)
	}
	return ext(extServerName, append([]byte{byte(len(list) >> 8), byte(len(list))}, list...)...)
}

func TestParseClientHelloErrors(t *testing.T) {
	ok := minimalHello(sniExt("x.example"))
	tooLarge := bytes.Clone(ok)
	tooLarge[6], tooLarge[7], tooLarge[8] = 0x01, 0x00, 0x01 // 65537 > MaxClientHelloLen
	interleaved := refragment(ok, 10)
	interleaved[15] = 21 // second record turned into an alert
	oddSuites := minimalHello(nil)
	oddSuites[5+4+35+1] = 3
	tests := []struct {
		name string
		data []byte
		want error
	}{
		{"http", []byte("GET / HTTP/1.1\r\n"), ErrNotTLS},
		{"sslv2", []byte{0x80, 0x2e, 0x01, 0x03, 0x01}, ErrNotTLS},
		{"record-version", []byte{22, 2, 0}, ErrNotTLS},
		{"empty-record", []byte{22, 3, 1, 0, 0}, ErrBadHello},
		{"record-too-long", []byte{22, 3, 1, 0x40, 0x01}, ErrBadHello},
		{"server-hello", []byte{22, 3, 1, 0, 50, 2, 0, 0, 46}, ErrBadHello},
		{"too-large", tooLarge, ErrHelloTooLarge},
		{"interleaved-alert", interleaved, ErrBadHello},
		{"odd-cipher-suites", oddSuites, ErrBadHello},
		{"session-id-33", func() []byte { b := minimalHello(nil); b[5+4+34] = 33; return b }(), ErrBadHello},
		{"ext-length-mismatch", func() []byte { b := bytes.Clone(ok); b[len(b)-len(sniExt("x.example"))-1]++; return b }(), ErrBadHello},
		{"duplicate-sni", minimalHello(append(sniExt("a"), sniExt("b")...)), ErrBadHello},
		{"two-host-names", minimalHello(sniExt("a", "b")), ErrBadHello},
		{"empty-sni-list", minimalHello(ext(extServerName, 0, 0)), ErrBadHello},
		{"duplicate-alpn", minimalHello(append(ext(extALPN, 0, 2, 1, 'a'), ext(extALPN, 0, 2, 1, 'b')...)), ErrBadHello},
		{"empty-alpn-name", minimalHello(ext(extALPN, 0, 2, 0, 'a')), ErrBadHello},
		{"alpn-overrun", minimalHello(ext(extALPN, 0, 3, 5, 'a', 'b')), ErrBadHello},
		{"truncated-ext", minimalHello([]byte{0, 16, 0}), ErrBadHello},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, err := ParseClientHello(nil, tt.data); !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestParseClientHelloMinimal(t *testing.T) {
	tests := []struct {
		name string
		data []byte
		sni  string
	}{
		{"no-extensions", minimalHello(nil), ""},
		{"sni", minimalHello(sniExt("x.example")), "x.example"},
		{"unknown-ext-kept-going", minimalHello(append(ext(0xfe0d, 1, 2, 3), sniExt("y.example")...)), "y.example"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, _, err := ParseClientHello(nil, tt.data)
			if err != nil {
				t.Fatal(err)
			}
			if string(h.ServerName) != tt.sni {
				t.Fatalf("ServerName = %q, want %q", h.ServerName, tt.sni)
			}
		})
	}
}

func FuzzParseClientHello(f *testing.F) {
	f.Add(minimalHello(sniExt("x.example")))
	f.Add(refragment(minimalHello(sniExt("x.example")), 9))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, scratch, err := ParseClientHello(nil, data)
		if err != nil {
			if h.Len != 0 || h.ServerName != nil || h.ALPN != nil {
				t.Fatalf("error %v with non-zero result %+v", err, h)
			}
			return
		}
		if h.Len <= 0 || h.Len > len(data) {
			t.Fatalf("Len %d outside 1..%d", h.Len, len(data))
		}
		for p, rest := NextALPN(h.ALPN); len(rest) > 0 || p != nil; p, rest = NextALPN(rest) {
			if p == nil {
				t.Fatalf("ALPN list %q does not split cleanly", h.ALPN)
			}
		}
		// The parse is a function of data[:Len] only, and every strict prefix
		// of an accepted hello is a valid prefix.
		h2, _, err := ParseClientHello(scratch, data[:h.Len])
		if err != nil || !bytes.Equal(h2.ServerName, h.ServerName) {
			t.Fatalf("reparse of data[:Len]: %v (sni %q vs %q)", err, h2.ServerName, h.ServerName)
		}
		for k := range h.Len {
			if _, _, err := ParseClientHello(scratch, data[:k]); !errors.Is(err, ErrNeedMore) {
				t.Fatalf("prefix %d of accepted hello: %v", k, err)
			}
		}
	})
}

func BenchmarkParseClientHello(b *testing.B) {
	hello := goClientHello(b, &tls.Config{ServerName: "example.com", NextProtos: []string{"h2", "http/1.1"}})
	for _, bc := range []struct {
		name string
		data []byte
	}{
		{"single-record-mlkem", hello},
		{"fragmented-512", refragment(hello, 512)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			scratch := make([]byte, 0, MaxClientHelloLen+handshakeHeaderLen)
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.data)))
			for b.Loop() {
				h, s, err := ParseClientHello(scratch, bc.data)
				if err != nil || len(h.ServerName) == 0 {
					b.Fatal(err)
				}
				scratch = s
			}
		})
	}
}
