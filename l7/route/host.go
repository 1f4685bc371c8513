package route

import (
	"bytes"
	"fmt"
	"net/netip"
	"strings"
)

// maxHostLen is the longest DNS name in text form (RFC 1035 §2.3.4: 255 octets on the wire).
const maxHostLen = 253

// normalizeHost turns a raw Host header value into the form table keys use, written into buf:
// port dropped, one trailing dot dropped, ASCII lowercased. ok is false when the result is longer
// than maxHostLen, so it cannot name a configured host. It allocates nothing.
func normalizeHost(buf *[maxHostLen]byte, host []byte) (h []byte, ok bool) {
	h = host
	if len(h) > 0 && h[0] == '[' {
		// IPv6 literal (RFC 3986 §3.2.2): the port, if any, follows the closing bracket.
		if i := bytes.IndexByte(h, ']'); i >= 0 {
			h = h[:i+1]
		}
	} else if i := bytes.IndexByte(h, ':'); i >= 0 {
		h = h[:i]
	}
	if len(h) > 0 && h[len(h)-1] == '.' {
		h = h[:len(h)-1]
	}
	if len(h) > maxHostLen {
		return nil, false
	}
	for i, c := range h {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[i] = c
	}
	return buf[:len(h)], true
}

// lowerASCII lowercases ASCII letters only; strings.ToLower would fold non-ASCII runes such as
// the Kelvin sign into ASCII letters and let a bad host pass validation.
func lowerASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// specHost validates a Spec.Host and returns its table key: "*" for any host, ".suffix" for a
// wildcard "*.suffix", or the normalized host. On failure reason says what is wrong.
func specHost(host string) (key, reason string) {
	if host == "" || host == "*" {
		return "*", ""
	}
	h := strings.TrimSuffix(lowerASCII(host), ".")
	switch {
	case len(h) > maxHostLen:
		return "", fmt.Sprintf("%q is longer than %d bytes (RFC 1035 §2.3.4)", host, maxHostLen)
	case strings.HasPrefix(h, "["):
		inner, ok := strings.CutSuffix(h[1:], "]")
		if !ok {
			return "", fmt.Sprintf("%q: an IPv6 literal must end with \"]\" and carry no port", host)
		}
		a, err := netip.ParseAddr(inner)
		if err != nil || !a.Is6() || a.Zone() != "" {
			return "", fmt.Sprintf("%q is not a bracketed IPv6 address like \"[::1]\"", host)
		}
		if a.String() != inner {
			// Hosts compare as text, and clients write the RFC 5952 form.
			return "", fmt.Sprintf("%q is not in canonical form (RFC 5952): write \"[%s]\"", host, a)
		}
		return h, ""
	case strings.Count(h, ":") == 1:
		return "", fmt.Sprintf("%q must not carry a port", host)
	case strings.Contains(h, ":"):
		return "", fmt.Sprintf("%q: an IPv6 literal must be bracketed, like \"[::1]\"", host)
	}
	if suffix, ok := strings.CutPrefix(h, "*."); ok {
		if !isHostname(suffix) {
			return "", fmt.Sprintf("%q: the domain after \"*.\" is not a valid host name", host)
		}
		return "." + suffix, ""
	}
	if strings.Contains(h, "*") {
		return "", fmt.Sprintf("%q: a wildcard must be the whole first label, like \"*.example.com\"", host)
	}
	if !isHostname(h) {
		return "", fmt.Sprintf("%q is not a valid host name (dot-separated labels of 1-63 letters, digits, \"-\" or \"_\")", host)
	}
	return h, ""
}

// isHostname reports whether h (lowercased) is dot-separated labels of 1-63 bytes of letters,
// digits, '-' and '_' (RFC 1123 §2.1, with '_' allowed because real service names use it).
// IPv4 literals pass too.
func isHostname(h string) bool {
	if h == "" {
		return false
	}
	for label := range strings.SplitSeq(h, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}
