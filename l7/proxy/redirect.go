package proxy

import (
	"bytes"
	"strconv"
)

// appendHTTPSRedirect appends to dst the https URL that a plaintext request is
// redirected to on a listener with `redirect_https` (the caller answers 308 with
// it as Location, RFC 9110 section 15.4.9): "https://", the name of host (the
// request's Host header, RFC 9110 section 7.2) without its port, ":port" unless
// port is 0 or 443, then requestURI, the origin-form path and query
// (fasthttp: ctx.URI().RequestURI()); a requestURI not starting with '/'
// (asterisk or absolute form) becomes "/".
//
// It returns dst unchanged and false when host is not an RFC 3986 section 3.2.2
// host (a DNS-style name or an IP literal, optionally with a numeric port) or
// when requestURI holds control characters or spaces, so nothing a client
// sends can split the Location header; the caller then answers 400. It
// allocates only to grow dst and is safe for concurrent use.
func appendHTTPSRedirect(dst, host, requestURI []byte, port int) ([]byte, bool) {
	name, ok := hostName(host)
	if !ok {
		return dst, false
	}
	for _, c := range requestURI {
		if c <= ' ' || c == 0x7f {
			return dst, false
		}
	}
	dst = append(dst, "https://"...)
	dst = append(dst, name...)
	if port != 0 && port != 443 {
		dst = append(dst, ':')
		dst = strconv.AppendInt(dst, int64(port), 10)
	}
	if len(requestURI) == 0 || requestURI[0] != '/' {
		return append(dst, '/'), true
	}
	return append(dst, requestURI...), true
}

// hostName returns host without its port after checking every byte: letters,
// digits, '-', '.', '_' for a name, an RFC 4291 IPv6 address inside brackets
// (no zone), and at most five digits of port.
func hostName(host []byte) ([]byte, bool) {
	name, port := host, []byte(nil)
	if len(host) > 0 && host[0] == '[' {
		end := bytes.IndexByte(host, ']')
		if end < 0 || !validIPv6(host[1:end]) {
			return nil, false
		}
		name, port = host[:end+1], host[end+1:]
		if len(port) > 0 {
			if port[0] != ':' {
				return nil, false
			}
			port = port[1:]
		}
	} else {
		for i, c := range host {
			if c == ':' {
				name, port = host[:i], host[i+1:]
				break
			}
			if !isNameByte(c) {
				return nil, false
			}
		}
		if len(name) == 0 {
			return nil, false
		}
	}
	if len(port) > 5 {
		return nil, false
	}
	for _, c := range port {
		if c < '0' || c > '9' {
			return nil, false
		}
	}
	return name, true
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func isNameByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_'
}

// validIPv6 reports whether b is an IPv6 address in RFC 4291 section 2.2 text
// form (RFC 3986 section 3.2.2 IPv6address): eight groups of one to four hex
// digits, or fewer around one "::", the last two optionally as dotted IPv4.
func validIPv6(b []byte) bool {
	groups, compressed, i := 0, false, 0
	if len(b) >= 2 && b[0] == ':' && b[1] == ':' {
		compressed, i = true, 2
	}
	for i < len(b) {
		j := i
		for j < len(b) && j-i < 5 && isHex(b[j]) {
			j++
		}
		if j < len(b) && b[j] == '.' {
			// An IPv4 tail ends the address and stands for two groups.
			if !validIPv4(b[i:]) {
				return false
			}
			groups += 2
			break
		}
		if j == i || j-i > 4 {
			return false
		}
		groups++
		if i = j; i == len(b) {
			break
		}
		if b[i] != ':' {
			return false
		}
		i++
		if i < len(b) && b[i] == ':' {
			if compressed {
				return false
			}
			compressed = true
			i++
		} else if i == len(b) {
			return false // a single trailing colon
		}
	}
	if compressed {
		return groups <= 7
	}
	return groups == 8
}

// validIPv4 reports whether b is four dotted decimal octets without leading
// zeros (RFC 3986 section 3.2.2 dec-octet).
func validIPv4(b []byte) bool {
	octets, n, digits := 0, 0, 0
	for i := 0; i <= len(b); i++ {
		if i == len(b) || b[i] == '.' {
			if digits == 0 || n > 255 {
				return false
			}
			octets++
			n, digits = 0, 0
			continue
		}
		c := b[i]
		if c < '0' || c > '9' || digits > 0 && n == 0 {
			return false
		}
		n = n*10 + int(c-'0')
		digits++
		if digits > 3 {
			return false
		}
	}
	return octets == 4
}
