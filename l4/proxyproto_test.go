package l4

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"
)

func TestParseProxyV1(t *testing.T) {
	tests := []struct {
		line     string
		src, dst string
		local    bool
	}{
		{"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n", "192.168.0.1:56324", "192.168.0.11:443", false},
		{"PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n", "255.255.255.255:65535", "255.255.255.255:65535", false},
		{"PROXY TCP6 2001:db8::1 2001:db8::2 1 0\r\n", "[2001:db8::1]:1", "[2001:db8::2]:0", false},
		{"PROXY TCP6 ::ffff:10.0.0.1 ::1 1000 2000\r\n", "10.0.0.1:1000", "[::1]:2000", false},
		{"PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n",
			"[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535", "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535", false},
		{"PROXY UNKNOWN\r\n", "", "", true},
		{"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n", "", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			data := []byte(tt.line + "GET / HTTP/1.1\r\n")
			h, err := ParseProxyHeader(data)
			if err != nil {
				t.Fatal(err)
			}
			if h.Version != 1 || h.Len != len(tt.line) || h.Local != tt.local {
				t.Fatalf("got %+v, want version 1 len %d local %v", h, len(tt.line), tt.local)
			}
			if !tt.local {
				if h.Source.String() != tt.src || h.Destination.String() != tt.dst {
					t.Fatalf("src %v dst %v, want %s %s", h.Source, h.Destination, tt.src, tt.dst)
				}
			}
			for k := range len(tt.line) {
				if _, err := ParseProxyHeader(data[:k]); !errors.Is(err, ErrNeedMore) {
					t.Fatalf("prefix %d: %v, want ErrNeedMore", k, err)
				}
			}
		})
	}
}

func TestParseProxyV1Errors(t *testing.T) {
	long := "PROXY TCP6 " + string(bytes.Repeat([]byte("f"), 100)) // no CRLF within 107 bytes
	tests := []struct {
		line string
		want error
	}{
		{"GET / HTTP/1.1\r\n", ErrNotProxy},
		{"PROXZ TCP4", ErrNotProxy},
		{"proxy TCP4 1.2.3.4 1.2.3.4 1 2\r\n", ErrNotProxy},
		{"PROXY TCP5 1.2.3.4 1.2.3.4 1 2\r\n", ErrBadProxy},
		{"PROXY TCP4 1.2.3.4 1.2.3.4 1 2\n", ErrBadProxy},
		{"PROXY TCP4 1.2.3.04 1.2.3.4 1 2\r\n", ErrBadProxy},
		{"PROXY TCP4 1.2.3.256 1.2.3.4 1 2\r\n", ErrBadProxy},
		{"PROXY TCP4 1.2.3 1.2.3.4 1 2\r\n", ErrBadProxy},
		{"PROXY TCP4 ::1 1.2.3.4 1 2\r\n", ErrBadProxy},
		{"PROXY TCP6 1.2.3.4 ::1 1 2\r\n", ErrBadProxy},
		{"PROXY TCP6 1::2::3 ::1 1 2\r\n", ErrBadProxy},
		{"PROXY TCP6 1:2:3:4:5:6:7:8:9 ::1 1 2\r\n", ErrBadProxy},
		{"PROXY TCP6 12345::1 ::1 1 2\r\n", ErrBadProxy},
		{"PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n", ErrBadProxy},
		{"PROXY TCP4 1.2.3.4 1.2.3.4 65536 2\r\n", ErrBadProxy},
		{"PROXY TCP4 1.2.3.4 1.2.3.4 01 2\r\n", ErrBadProxy},
		{"PROXY TCP4 1.2.3.4 1.2.3.4 1  2\r\n", ErrBadProxy},
		{"PROXY TCP4 1.2.3.4 1.2.3.4 1\r\n", ErrBadProxy},
		{"PROXY TCP4 1.2.3.4  1.2.3.4 1 2\r\n", ErrBadProxy},
		{long, ErrBadProxy},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			if _, err := ParseProxyHeader([]byte(tt.line)); !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestProxyV2RoundTrip(t *testing.T) {
	tests := []struct {
		name     string
		src, dst netip.AddrPort
		fam      byte
	}{
		{"v4", netip.MustParseAddrPort("203.0.113.7:40000"), netip.MustParseAddrPort("10.0.3.11:5432"), 0x11},
		{"v6", netip.MustParseAddrPort("[2001:db8::7]:40000"), netip.MustParseAddrPort("[2001:db8::1]:443"), 0x21},
		{"mapped-v4", netip.MustParseAddrPort("[::ffff:203.0.113.7]:1"), netip.MustParseAddrPort("10.0.0.1:2"), 0x11},
		{"mixed", netip.MustParseAddrPort("203.0.113.7:1"), netip.MustParseAddrPort("[2001:db8::1]:2"), 0x21},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := AppendProxyV2(nil, tt.src, tt.dst)
			if hdr[13] != tt.fam {
				t.Fatalf("family byte %#x, want %#x", hdr[13], tt.fam)
			}
			h, err := ParseProxyHeader(append(bytes.Clone(hdr), "payload"...))
			if err != nil {
				t.Fatal(err)
			}
			if h.Version != 2 || h.Local || h.Len != len(hdr) {
				t.Fatalf("got %+v, want v2 non-local len %d", h, len(hdr))
			}
			wantSrc := netip.AddrPortFrom(tt.src.Addr().Unmap(), tt.src.Port())
			wantDst := netip.AddrPortFrom(tt.dst.Addr().Unmap(), tt.dst.Port())
			if h.Source != wantSrc || h.Destination != wantDst {
				t.Fatalf("src %v dst %v, want %v %v", h.Source, h.Destination, wantSrc, wantDst)
			}
			for k := range len(hdr) {
				if _, err := ParseProxyHeader(hdr[:k]); !errors.Is(err, ErrNeedMore) {
					t.Fatalf("prefix %d: %v, want ErrNeedMore", k, err)
				}
			}
		})
	}
}

func proxyV2(verCmd, fam byte, payload []byte) []byte {
	b := append([]byte(proxyV2Sig), verCmd, fam, byte(len(payload)>>8), byte(len(payload)))
	return append(b, payload...)
}

func TestParseProxyV2(t *testing.T) {
	v4 := []byte{10, 0, 0, 1, 10, 0, 0, 2, 0x1f, 0x90, 0x01, 0xbb}
	tlvs := []byte{0x01, 0, 2, 'h', '2', 0x04, 0, 0} // ALPN and an empty NOOP TLV
	tests := []struct {
		name  string
		data  []byte
		want  error
		local bool
		src   string
	}{
		{"local", AppendProxyV2(nil, netip.AddrPort{}, netip.AddrPort{}), nil, true, ""},
		{"local-with-addresses", proxyV2(0x20, 0x11, v4), nil, true, ""},
		{"unspec", proxyV2(0x21, 0x00, nil), nil, true, ""},
		{"unix", proxyV2(0x21, 0x31, make([]byte, 216)), nil, true, ""},
		{"tlvs-skipped", proxyV2(0x21, 0x11, append(bytes.Clone(v4), tlvs...)), nil, false, "10.0.0.1:8080"},
		{"udp-transport", proxyV2(0x21, 0x12, v4), nil, false, "10.0.0.1:8080"},
		{"version-1-in-v2", proxyV2(0x11, 0x11, v4), ErrBadProxy, false, ""},
		{"command-2", proxyV2(0x22, 0x11, v4), ErrBadProxy, false, ""},
		{"family-4", proxyV2(0x21, 0x41, v4), ErrBadProxy, false, ""},
		{"transport-3", proxyV2(0x21, 0x13, v4), ErrBadProxy, false, ""},
		{"short-addresses", proxyV2(0x21, 0x21, v4), ErrBadProxy, false, ""},
		{"truncated-tlv", proxyV2(0x21, 0x11, append(bytes.Clone(v4), 0x01, 0, 9, 'x')), ErrBadProxy, false, ""},
		{"tlv-header-cut", proxyV2(0x21, 0x11, append(bytes.Clone(v4), 0x01, 0)), ErrBadProxy, false, ""},
		{"too-long", append([]byte(proxyV2Sig), 0x21, 0x11, 0x10, 0x01), ErrBadProxy, false, ""},
		{"bad-version-early", append([]byte(proxyV2Sig), 0x31), ErrBadProxy, false, ""},
		{"signature-mismatch", []byte("\r\n\r\nX"), ErrNotProxy, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := ParseProxyHeader(tt.data)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if err != nil {
				return
			}
			if h.Local != tt.local || h.Len != len(tt.data) {
				t.Fatalf("got %+v, want local %v len %d", h, tt.local, len(tt.data))
			}
			if !tt.local && h.Source.String() != tt.src {
				t.Fatalf("src %v, want %s", h.Source, tt.src)
			}
		})
	}
}

// TestParseIPAgainstNetip checks the allocation-free address parsers against
// net/netip on a table of tricky forms.
func TestParseIPAgainstNetip(t *testing.T) {
	for _, s := range []string{
		"0.0.0.0", "1.2.3.4", "255.255.255.255", "256.1.1.1", "1.2.3", "1.2.3.4.5", "01.2.3.4", "1..2.3", "",
		"::", "::1", "1::", "1::2", "fe80::1:2:3", "1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7::", "::2:3:4:5:6:7:8",
		"1:2:3:4:5:6:7:8:9", "1::2::3", ":1", "1:", ":::", "::ffff:1.2.3.4", "1:2:3:4:5:6:1.2.3.4",
		"1:2:3:4:5:6:7:1.2.3.4", "::1.2.3.4", "ABCD:ef01::", "12345::", "1:2:3:4:5:6:7:8::", "::1.2.3",
		"1.2.3.4::", "g::1", "fe80::1%eth0",
	} {
		want, werr := netip.ParseAddr(s)
		if werr == nil && want.Zone() != "" {
			werr = errors.New("zone")
		}
		var got netip.Addr
		var ok bool
		if want.Is4() || (werr != nil && !bytes.ContainsRune([]byte(s), ':')) {
			got, ok = parseIPv4([]byte(s))
		} else {
			got, ok = parseIPv6([]byte(s))
		}
		if ok != (werr == nil) || (ok && got != want) {
			t.Errorf("%q: got %v ok=%v, netip %v err=%v", s, got, ok, want, werr)
		}
	}
}

func FuzzParseProxyHeader(f *testing.F) {
	f.Add([]byte("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"))
	f.Add(AppendProxyV2(nil, netip.MustParseAddrPort("[2001:db8::7]:1"), netip.MustParseAddrPort("[::1]:2")))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := ParseProxyHeader(data)
		if err != nil {
			return
		}
		if h.Len <= 0 || h.Len > len(data) {
			t.Fatalf("Len %d outside 1..%d", h.Len, len(data))
		}
		if !h.Local && (!h.Source.IsValid() || !h.Destination.IsValid()) {
			t.Fatalf("non-local header without addresses: %+v", h)
		}
		for k := range h.Len {
			if _, err := ParseProxyHeader(data[:k]); !errors.Is(err, ErrNeedMore) {
				t.Fatalf("prefix %d of accepted header: %v", k, err)
			}
		}
		if !h.Local {
			// What we parse, we can re-emit, and it parses back the same.
			out := AppendProxyV2(nil, h.Source, h.Destination)
			h2, err := ParseProxyHeader(out)
			if err != nil || h2.Source != h.Source || h2.Destination != h.Destination {
				t.Fatalf("re-emitted header: %+v %v, want %v %v", h2, err, h.Source, h.Destination)
			}
		}
	})
}

// FuzzParseIP is a differential target: the hand-written, allocation-free
// address parsers used for PROXY v1 must agree with net/netip.
func FuzzParseIP(f *testing.F) {
	for _, s := range []string{"1.2.3.4", "::ffff:1.2.3.4", "2001:db8::1", "1::2::3", "01.2.3.4"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, err := netip.ParseAddr(s)
		if err == nil && want.Zone() != "" {
			return // zones are not part of the PROXY v1 grammar
		}
		got4, ok4 := parseIPv4([]byte(s))
		got6, ok6 := parseIPv6([]byte(s))
		switch {
		case err != nil:
			if ok4 || ok6 {
				t.Fatalf("%q: netip rejects (%v) but we accept (v4 %v %v, v6 %v %v)", s, err, got4, ok4, got6, ok6)
			}
		case want.Is4():
			if !ok4 || got4 != want || ok6 {
				t.Fatalf("%q: v4 %v %v v6 ok %v, want %v", s, got4, ok4, ok6, want)
			}
		default:
			if !ok6 || got6 != want || ok4 {
				t.Fatalf("%q: v6 %v %v v4 ok %v, want %v", s, got6, ok6, ok4, want)
			}
		}
	})
}

func BenchmarkParseProxyHeader(b *testing.B) {
	for _, bc := range []struct {
		name string
		data []byte
	}{
		{"v1-tcp4", []byte("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n")},
		{"v1-tcp6", []byte("PROXY TCP6 2001:db8:85a3::8a2e:370:7334 2001:db8::1 56324 443\r\n")},
		{"v2-tcp6", AppendProxyV2(nil, netip.MustParseAddrPort("[2001:db8::7]:1"), netip.MustParseAddrPort("[::1]:2"))},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ParseProxyHeader(bc.data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkAppendProxyV2(b *testing.B) {
	src, dst := netip.MustParseAddrPort("203.0.113.7:40000"), netip.MustParseAddrPort("10.0.3.11:5432")
	buf := make([]byte, 0, 64)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendProxyV2(buf[:0], src, dst)
	}
}
