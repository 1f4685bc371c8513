package proxy

import (
	"bytes"
	"net/netip"

	"github.com/valyala/fasthttp"

	"example.com/edge/l7/jwt"
)

// hopByHop are the headers that describe one connection, not the message
// (RFC 9110 §7.6.1), plus the Proxy-* family and Keep-Alive that older
// agents send. A proxy must not forward them. Transfer-Encoding and the
// Connection: close flag are framing that fasthttp manages itself.
var hopByHop = [...]string{
	"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Proxy-Authorization",
	"TE", "Trailer", "Transfer-Encoding", "Upgrade",
}

// maxConnectionTokens bounds the headers a Connection header may name for
// removal; more than this is an abuse, and the rest are left alone.
const maxConnectionTokens = 16

// forEachConnectionToken calls fn with each token of a Connection header
// value (a comma-separated list, RFC 9110 §7.6.1), trimmed of spaces.
func forEachConnectionToken(v []byte, fn func(tok []byte)) {
	n := 0
	for len(v) > 0 && n < maxConnectionTokens {
		var tok []byte
		if i := bytes.IndexByte(v, ','); i >= 0 {
			tok, v = v[:i], v[i+1:]
		} else {
			tok, v = v, nil
		}
		tok = bytes.TrimSpace(tok)
		if len(tok) > 0 {
			fn(tok)
			n++
		}
	}
}

// isHopByHop reports whether a header name is one of hopByHop (or a
// Proxy-* header), without allocating: a switch on length first, since most
// headers are none of them.
func isHopByHop(k []byte) bool {
	if isProxyHeader(k) {
		return true
	}
	switch len(k) {
	case 2, 7, 10, 16, 17, 18, 19:
		for _, h := range hopByHop {
			if len(h) == len(k) && bytes.EqualFold(k, []byte(h)) {
				return true
			}
		}
	}
	return false
}

// isProxyHeader reports a Proxy-* header name: the family the contract
// strips as hop-by-hop (Proxy-Authorization, Proxy-Connection, and any
// other a client or a pod made up).
func isProxyHeader(k []byte) bool {
	return len(k) > len("Proxy-") && k[0]|0x20 == 'p' && bytes.EqualFold(k[:len("Proxy-")], []byte("Proxy-"))
}

// maxProxyHeaders bounds the Proxy-* headers removed from one message; the
// header size limit bounds them already, this bounds the quadratic scan.
const maxProxyHeaders = 64

// delProxyRequestHeaders deletes every Proxy-* header of h, one name at a
// time (a header cannot be deleted while it is being iterated). Written per
// header type: a generic or func-valued version lets All's iterator escape.
func delProxyRequestHeaders(h *fasthttp.RequestHeader) {
	var scratch [128]byte
	for range maxProxyHeaders {
		name := scratch[:0]
		for k := range h.All() {
			if isProxyHeader(k) {
				name = append(name, k...)
				break
			}
		}
		if len(name) == 0 {
			return
		}
		h.DelBytes(name)
	}
}

// delProxyResponseHeaders is delProxyRequestHeaders for a response.
func delProxyResponseHeaders(h *fasthttp.ResponseHeader) {
	var scratch [128]byte
	for range maxProxyHeaders {
		name := scratch[:0]
		for k := range h.All() {
			if isProxyHeader(k) {
				name = append(name, k...)
				break
			}
		}
		if len(name) == 0 {
			return
		}
		h.DelBytes(name)
	}
}

// stripHopByHopRequest removes hop-by-hop headers, and every header the
// Connection header names, from a request about to go upstream. One pass
// finds whether there is anything to remove, so the usual request (none)
// costs one scan instead of a deletion attempt per name.
func stripHopByHopRequest(h *fasthttp.RequestHeader) {
	found := false
	for k := range h.All() {
		if isHopByHop(k) {
			found = true
			break
		}
	}
	h.ResetConnectionClose()
	if !found {
		return
	}
	if v := h.Peek("Connection"); len(v) > 0 {
		forEachConnectionToken(v, func(tok []byte) {
			// Never let a client strip the proxy's own headers by naming them.
			if !protectedRequestHeader(tok) {
				h.DelBytes(tok)
			}
		})
	}
	for _, k := range hopByHop {
		h.Del(k)
	}
	delProxyRequestHeaders(h)
}

// protectedRequestHeader reports headers a client may name in Connection
// without effect: the edge sets them after the hop-by-hop pass, and the
// framing headers fasthttp manages.
func protectedRequestHeader(k []byte) bool {
	for _, p := range [...]string{"X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "X-Request-Id", "Host", "Content-Length"} {
		if bytes.EqualFold(k, []byte(p)) {
			return true
		}
	}
	return false
}

// stripHopByHopResponse does the same for a response coming back.
func stripHopByHopResponse(h *fasthttp.ResponseHeader) {
	found := false
	for k := range h.All() {
		if isHopByHop(k) {
			found = true
			break
		}
	}
	h.ResetConnectionClose()
	if !found {
		return
	}
	if v := h.Peek("Connection"); len(v) > 0 {
		forEachConnectionToken(v, func(tok []byte) {
			if !bytes.EqualFold(tok, []byte("Content-Length")) && !bytes.EqualFold(tok, []byte("X-Request-Id")) {
				h.DelBytes(tok)
			}
		})
	}
	for _, k := range hopByHop {
		h.Del(k)
	}
	delProxyResponseHeaders(h)
}

// trusted reports whether addr is in one of prefixes.
func trusted(prefixes []netip.Prefix, addr netip.Addr) bool {
	for _, p := range prefixes {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// appendXFF builds the X-Forwarded-For value to send upstream: the incoming
// value only when the peer is a trusted proxy (otherwise a client could
// claim any address), then the peer's address.
func appendXFF(dst, incoming []byte, peerTrusted bool, peer netip.Addr) []byte {
	if peerTrusted && len(incoming) > 0 {
		dst = append(dst, incoming...)
		dst = append(dst, ", "...)
	}
	return peer.AppendTo(dst)
}

// clientFromXFF returns the real client of a request that came through
// trusted proxies: walking X-Forwarded-For from the right, the first address
// that is not itself a trusted proxy (the way nginx's real_ip_recursive and
// Envoy's xff_trusted_hops pick it). It returns peer when the header holds
// no usable address.
func clientFromXFF(xff []byte, prefixes []netip.Prefix, peer netip.Addr) netip.Addr {
	client := peer
	for len(xff) > 0 {
		var part []byte
		if i := bytes.LastIndexByte(xff, ','); i >= 0 {
			part, xff = xff[i+1:], xff[:i]
		} else {
			part, xff = xff, nil
		}
		a, err := netip.ParseAddr(string(bytes.TrimSpace(part)))
		if err != nil {
			return client
		}
		client = a.Unmap()
		if !trusted(prefixes, client) {
			return client
		}
	}
	return client
}

// pathSafe marks the bytes RFC 3986 allows unescaped in a path: unreserved,
// sub-delims, ':', '@' and '/'.
var pathSafe = alnumAnd("-._~!$&'()*+,;=:@/")

// alnumAnd returns a byte class: ASCII letters and digits, and extra.
func alnumAnd(extra string) (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for _, c := range extra {
		t[c] = true
	}
	return t
}

// appendEscapedPath percent-encodes a decoded, normalized path for the
// request line, so that what the upstream decodes is exactly the path the
// edge routed on (a '%' becomes "%25" and is not decoded twice).
func appendEscapedPath(dst, path []byte) []byte {
	for _, c := range path {
		if pathSafe[c] {
			dst = append(dst, c)
			continue
		}
		dst = append(dst, '%', "0123456789ABCDEF"[c>>4], "0123456789ABCDEF"[c&0xf])
	}
	return dst
}

// deleteUnderscoreAliases removes request headers whose names spell one of
// the forwarded-claim headers with '_' for '-' ("X_User_Id" for X-User-Id).
// It allocates nothing when there are none, the usual case.
func deleteUnderscoreAliases(h *fasthttp.RequestHeader, fcs []jwt.ForwardClaim) {
	var victim []byte
	for {
		victim = nil
		for k := range h.All() {
			if bytes.IndexByte(k, '_') < 0 {
				continue
			}
			for _, fc := range fcs {
				if sameIgnoringUnderscore(k, fc.Header) {
					victim = k
					break
				}
			}
			if victim != nil {
				break
			}
		}
		if victim == nil {
			return
		}
		h.DelBytes(victim)
	}
}

// sameIgnoringUnderscore compares header names case-insensitively with '_'
// and '-' equal.
func sameIgnoringUnderscore(k []byte, name string) bool {
	if len(k) != len(name) {
		return false
	}
	for i := range k {
		a, b := k[i], name[i]
		if a == '_' {
			a = '-'
		}
		if b == '_' {
			b = '-'
		}
		if 'A' <= a && a <= 'Z' {
			a += 'a' - 'A'
		}
		if 'A' <= b && b <= 'Z' {
			b += 'a' - 'A'
		}
		if a != b {
			return false
		}
	}
	return true
}
