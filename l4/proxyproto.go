package l4

import (
	"errors"
	"net/netip"
)

// PROXY protocol errors (the HAProxy PROXY protocol specification, versions 1
// and 2, https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt).
var (
	// ErrNotProxy means the bytes start with neither PROXY protocol signature.
	ErrNotProxy = errors.New("l4: not a PROXY protocol header")
	// ErrBadProxy means the bytes start a PROXY protocol header that breaks the specification.
	ErrBadProxy = errors.New("l4: malformed PROXY protocol header")
)

// MaxProxyV2Len caps the length field of a version 2 header (addresses plus
// TLVs). The specification allows up to 65535; load balancers send a few
// dozen bytes of TLVs, and the cap bounds what a trusted peer makes us buffer.
const MaxProxyV2Len = 4096

// maxProxyV1Len is the longest version 1 line, CRLF included (spec §2.1: 107 bytes).
const maxProxyV1Len = 107

// proxyV2Sig is the 12-byte version 2 signature (spec §2.2).
const proxyV2Sig = "\r\n\r\n\x00\r\nQUIT\n"

const proxyV1Prefix = "PROXY "

// ProxyHeader is a parsed PROXY protocol header.
type ProxyHeader struct {
	// Version is 1 or 2.
	Version uint8
	// Local is true when the header carries no client address: a version 2
	// LOCAL command, an UNSPEC or AF_UNIX family, or a version 1 UNKNOWN line.
	// The receiver then uses the connection's own endpoints (spec §2.2).
	Local bool
	// Source and Destination are the client's address and the address it
	// connected to, valid only when Local is false.
	Source, Destination netip.AddrPort
	// Len is the number of header bytes to strip before the payload.
	Len int
}

// ParseProxyHeader parses a version 1 or 2 PROXY protocol header at the start
// of data. It returns ErrNeedMore while data is a valid but incomplete prefix,
// ErrNotProxy when data starts with neither signature, and ErrBadProxy for a
// header that violates the specification. Version 2 TLVs are checked for
// framing and skipped. It does not allocate and is safe for concurrent use.
func ParseProxyHeader(data []byte) (ProxyHeader, error) {
	if len(data) == 0 {
		return ProxyHeader{}, ErrNeedMore
	}
	switch data[0] {
	case proxyV1Prefix[0]:
		return parseProxyV1(data)
	case proxyV2Sig[0]:
		return parseProxyV2(data)
	}
	return ProxyHeader{}, ErrNotProxy
}

// hasPrefixOrIsPrefix reports whether data starts with prefix, or is itself a
// proper prefix of it (more bytes needed to decide).
func hasPrefixOrIsPrefix(data []byte, prefix string) (match, complete bool) {
	n := min(len(data), len(prefix))
	for i := range n {
		if data[i] != prefix[i] {
			return false, false
		}
	}
	return true, len(data) >= len(prefix)
}

func parseProxyV2(data []byte) (ProxyHeader, error) {
	match, complete := hasPrefixOrIsPrefix(data, proxyV2Sig)
	if !match {
		return ProxyHeader{}, ErrNotProxy
	}
	if !complete || len(data) < 16 {
		if len(data) > 12 && data[12]>>4 != 2 {
			return ProxyHeader{}, ErrBadProxy
		}
		return ProxyHeader{}, ErrNeedMore
	}
	verCmd, fam := data[12], data[13]
	length := int(data[14])<<8 | int(data[15])
	if verCmd>>4 != 2 {
		return ProxyHeader{}, ErrBadProxy
	}
	cmd := verCmd & 0x0F
	if cmd > 1 { // 0 LOCAL, 1 PROXY; "other values are unassigned and MUST NOT be emitted"
		return ProxyHeader{}, ErrBadProxy
	}
	family, transport := fam>>4, fam&0x0F
	if family > 3 || transport > 2 { // spec: other values MUST be rejected as invalid
		return ProxyHeader{}, ErrBadProxy
	}
	if length > MaxProxyV2Len {
		return ProxyHeader{}, ErrBadProxy
	}
	if len(data) < 16+length {
		return ProxyHeader{}, ErrNeedMore
	}
	h := ProxyHeader{Version: 2, Len: 16 + length, Local: true}
	p := data[16 : 16+length]
	var addrLen int
	switch family {
	case 1: // AF_INET
		addrLen = 12
	case 2: // AF_INET6
		addrLen = 36
	case 3: // AF_UNIX
		addrLen = 216
	}
	if len(p) < addrLen {
		return ProxyHeader{}, ErrBadProxy
	}
	if cmd == 1 {
		switch family {
		case 1:
			src := netip.AddrFrom4([4]byte(p[0:4]))
			dst := netip.AddrFrom4([4]byte(p[4:8]))
			h.Source = netip.AddrPortFrom(src, uint16(p[8])<<8|uint16(p[9]))
			h.Destination = netip.AddrPortFrom(dst, uint16(p[10])<<8|uint16(p[11]))
			h.Local = false
		case 2:
			src := netip.AddrFrom16([16]byte(p[0:16])).Unmap()
			dst := netip.AddrFrom16([16]byte(p[16:32])).Unmap()
			h.Source = netip.AddrPortFrom(src, uint16(p[32])<<8|uint16(p[33]))
			h.Destination = netip.AddrPortFrom(dst, uint16(p[34])<<8|uint16(p[35]))
			h.Local = false
		}
	}
	// TLVs (spec §2.2.7) follow the addresses; they are framed but ignored here.
	for tlv := p[addrLen:]; len(tlv) > 0; {
		if len(tlv) < 3 {
			return ProxyHeader{}, ErrBadProxy
		}
		l := int(tlv[1])<<8 | int(tlv[2])
		if len(tlv) < 3+l {
			return ProxyHeader{}, ErrBadProxy
		}
		tlv = tlv[3+l:]
	}
	return h, nil
}

func parseProxyV1(data []byte) (ProxyHeader, error) {
	match, complete := hasPrefixOrIsPrefix(data, proxyV1Prefix)
	if !match {
		return ProxyHeader{}, ErrNotProxy
	}
	if !complete {
		return ProxyHeader{}, ErrNeedMore
	}
	end := -1
	for i := len(proxyV1Prefix); i < len(data) && i < maxProxyV1Len; i++ {
		if data[i] == '\n' {
			end = i
			break
		}
	}
	if end < 0 {
		if len(data) >= maxProxyV1Len {
			return ProxyHeader{}, ErrBadProxy
		}
		return ProxyHeader{}, ErrNeedMore
	}
	if data[end-1] != '\r' {
		return ProxyHeader{}, ErrBadProxy
	}
	line := data[len(proxyV1Prefix) : end-1]
	h := ProxyHeader{Version: 1, Len: end + 1}
	proto, line, _ := cutSpace(line)
	switch string(proto) {
	case "UNKNOWN":
		// Spec §2.1: the receiver must ignore anything presented before the CRLF.
		h.Local = true
		return h, nil
	case "TCP4", "TCP6":
	default:
		return ProxyHeader{}, ErrBadProxy
	}
	srcB, line, ok1 := cutSpace(line)
	dstB, line, ok2 := cutSpace(line)
	spB, dpB, ok3 := cutSpace(line)
	if !ok1 || !ok2 || !ok3 {
		return ProxyHeader{}, ErrBadProxy
	}
	var src, dst netip.Addr
	var ok bool
	if proto[3] == '4' {
		src, ok = parseIPv4(srcB)
		if !ok {
			return ProxyHeader{}, ErrBadProxy
		}
		dst, ok = parseIPv4(dstB)
	} else {
		src, ok = parseIPv6(srcB)
		if !ok {
			return ProxyHeader{}, ErrBadProxy
		}
		dst, ok = parseIPv6(dstB)
	}
	if !ok {
		return ProxyHeader{}, ErrBadProxy
	}
	sp, ok := parsePort(spB)
	if !ok {
		return ProxyHeader{}, ErrBadProxy
	}
	dp, ok := parsePort(dpB)
	if !ok {
		return ProxyHeader{}, ErrBadProxy
	}
	h.Source = netip.AddrPortFrom(src.Unmap(), sp)
	h.Destination = netip.AddrPortFrom(dst.Unmap(), dp)
	return h, nil
}

// cutSpace splits b around its first single space.
func cutSpace(b []byte) (before, after []byte, found bool) {
	for i, c := range b {
		if c == ' ' {
			return b[:i], b[i+1:], true
		}
	}
	return b, nil, false
}

// parsePort parses a decimal port 0..65535 without sign or leading zeros.
func parsePort(b []byte) (uint16, bool) {
	if len(b) == 0 || len(b) > 5 || (b[0] == '0' && len(b) > 1) {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	if n > 65535 {
		return 0, false
	}
	return uint16(n), true
}

// parseIPv4 parses dotted-quad text (no leading zeros, as netip requires).
func parseIPv4(b []byte) (netip.Addr, bool) {
	var a [4]byte
	i := 0
	for k := range 4 {
		if k > 0 {
			if i >= len(b) || b[i] != '.' {
				return netip.Addr{}, false
			}
			i++
		}
		start, v := i, 0
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			v = v*10 + int(b[i]-'0')
			i++
			if i-start > 3 {
				return netip.Addr{}, false
			}
		}
		if i == start || v > 255 || (b[start] == '0' && i-start > 1) {
			return netip.Addr{}, false
		}
		a[k] = byte(v)
	}
	if i != len(b) {
		return netip.Addr{}, false
	}
	return netip.AddrFrom4(a), true
}

// parseIPv6 parses the text forms of RFC 4291 §2.2: eight groups of 1-4 hex
// digits, one "::" for a run of zero groups, and an optional trailing dotted
// IPv4 address. Zones are not accepted.
func parseIPv6(b []byte) (netip.Addr, bool) {
	var a [16]byte
	ellipsis := -1 // byte index in a where "::" was seen
	i, n := 0, 0   // i indexes b, n indexes a
	if len(b) >= 2 && b[0] == ':' && b[1] == ':' {
		ellipsis = 0
		i = 2
		if i == len(b) {
			return netip.AddrFrom16(a), true
		}
	}
	for i < len(b) {
		start, v := i, 0
		for i < len(b) && i-start < 5 {
			d, ok := hexDigit(b[i])
			if !ok {
				break
			}
			v = v<<4 | d
			i++
		}
		if i-start > 4 || i == start {
			return netip.Addr{}, false
		}
		if i < len(b) && b[i] == '.' {
			// Trailing dotted IPv4: it needs the last 4 bytes.
			if n > 12 {
				return netip.Addr{}, false
			}
			v4, ok := parseIPv4(b[start:])
			if !ok {
				return netip.Addr{}, false
			}
			q := v4.As4()
			copy(a[n:], q[:])
			n += 4
			break // the IPv4 part runs to the end of b
		}
		if n > 14 {
			return netip.Addr{}, false
		}
		a[n], a[n+1] = byte(v>>8), byte(v)
		n += 2
		if i == len(b) {
			break
		}
		if b[i] != ':' {
			return netip.Addr{}, false
		}
		i++
		if i < len(b) && b[i] == ':' {
			if ellipsis >= 0 {
				return netip.Addr{}, false
			}
			ellipsis = n
			i++
			if i == len(b) {
				break
			}
		} else if i == len(b) {
			return netip.Addr{}, false // trailing single colon
		}
	}
	if n < 16 {
		if ellipsis < 0 {
			return netip.Addr{}, false
		}
		gap := 16 - n
		copy(a[ellipsis+gap:], a[ellipsis:n])
		clear(a[ellipsis : ellipsis+gap])
	} else if ellipsis >= 0 {
		return netip.Addr{}, false // "::" must stand for at least one group
	}
	return netip.AddrFrom16(a), true
}

// AppendProxyV2 appends a version 2 PROXY header (spec §2.2) announcing a
// STREAM connection from src to dst. Both are unmapped; when their families
// differ both are sent as IPv6 (IPv4 in its mapped form). When either is
// invalid a LOCAL header is written instead, telling the receiver to use the
// connection's own endpoints. It does not allocate when dst has room.
func AppendProxyV2(dst []byte, src, to netip.AddrPort) []byte {
	dst = append(dst, proxyV2Sig...)
	if !src.IsValid() || !to.IsValid() {
		return append(dst, 0x20, 0x00, 0x00, 0x00) // version 2, LOCAL, UNSPEC, no addresses
	}
	s, d := src.Addr().Unmap(), to.Addr().Unmap()
	if s.Is4() && d.Is4() {
		dst = append(dst, 0x21, 0x11, 0x00, 12) // version 2, PROXY, AF_INET, STREAM
		s4, d4 := s.As4(), d.As4()
		dst = append(dst, s4[:]...)
		dst = append(dst, d4[:]...)
	} else {
		dst = append(dst, 0x21, 0x21, 0x00, 36) // version 2, PROXY, AF_INET6, STREAM
		s16, d16 := s.As16(), d.As16()
		dst = append(dst, s16[:]...)
		dst = append(dst, d16[:]...)
	}
	return append(dst, byte(src.Port()>>8), byte(src.Port()), byte(to.Port()>>8), byte(to.Port()))
}

func hexDigit(c byte) (int, bool) {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0'), true
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10, true
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10, true
	}
	return 0, false
}
