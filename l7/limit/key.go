package limit

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// KeyKind says which part of a request names a limit's bucket.
type KeyKind uint8

const (
	// KeyClientIP is the real client address (the zero KeyKind): the connection's
	// peer, or the address a trusted proxy reported. IPv6 addresses are aggregated
	// to Config.IPv6Prefix bits, because one IPv6 subscriber usually holds a whole /64.
	KeyClientIP KeyKind = iota
	// KeyHeader is the value of request header Name.
	KeyHeader
	// KeyClaim is the value of JWT claim Name; the limit must run after JWT validation.
	KeyClaim
	// KeyRoute is one bucket per route: every request of the route shares it.
	KeyRoute
)

// KeySpec is a parsed `key:` setting of a rate limit. The zero value is client_ip.
//
// A request that lacks the key's value (no such header, no such claim, no token)
// is limited by its client IP instead: the caller uses Limiter.AllowAddr for it.
// Client-IP buckets are hashed in their own domain, so a header value can never
// be crafted to land in (and drain) a client-IP bucket.
type KeySpec struct {
	Kind KeyKind
	// Name is the header or claim name for KeyHeader and KeyClaim; empty otherwise.
	Name string
}

// ErrBadKey is wrapped by ParseKey's errors.
var ErrBadKey = errors.New("limit: bad key")

// ParseKey parses a `key:` setting: "client_ip", "route", "header:NAME" (NAME an
// RFC 9110 section 5.1 field-name token) or "claim:NAME" (any non-empty name of
// printable ASCII without spaces). The result's String returns s unchanged.
func ParseKey(s string) (KeySpec, error) {
	var k KeySpec
	switch s {
	case "client_ip":
		return KeySpec{Kind: KeyClientIP}, nil
	case "route":
		return KeySpec{Kind: KeyRoute}, nil
	}
	kind, name, ok := strings.Cut(s, ":")
	switch {
	case !ok:
		return KeySpec{}, fmt.Errorf("%w %q: want client_ip, route, header:NAME or claim:NAME", ErrBadKey, s)
	case kind == "header":
		k = KeySpec{Kind: KeyHeader, Name: name}
	case kind == "claim":
		k = KeySpec{Kind: KeyClaim, Name: name}
	default:
		return KeySpec{}, fmt.Errorf("%w %q: unknown kind %q", ErrBadKey, s, kind)
	}
	if p := k.problem(); p != "" {
		return KeySpec{}, fmt.Errorf("%w %q: %s", ErrBadKey, s, p)
	}
	return k, nil
}

// String returns the spec in ParseKey's syntax.
func (k KeySpec) String() string {
	switch k.Kind {
	case KeyClientIP:
		return "client_ip"
	case KeyRoute:
		return "route"
	case KeyHeader:
		return "header:" + k.Name
	case KeyClaim:
		return "claim:" + k.Name
	}
	return fmt.Sprintf("KeyKind(%d)", k.Kind)
}

// problem says what is wrong with k, or "".
func (k KeySpec) problem() string {
	switch k.Kind {
	case KeyClientIP, KeyRoute:
		if k.Name != "" {
			return "takes no name"
		}
	case KeyHeader:
		if !isToken(k.Name) {
			return "header name must be an RFC 9110 token"
		}
	case KeyClaim:
		if !isClaimName(k.Name) {
			return "claim name must be non-empty printable ASCII without spaces"
		}
	default:
		return "unknown kind"
	}
	return ""
}

// isToken reports whether s is an RFC 9110 section 5.6.2 token.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

func isClaimName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

// AppendClientIPKey appends the canonical bucket key of client address ip to dst:
// 4 bytes for IPv4 (IPv4-mapped IPv6 addresses count as IPv4), or the first
// v6prefix bits of an IPv6 address (the rest zeroed, zone dropped) as 16 bytes
// followed by the prefix length, so /64 and /48 aggregations never share a key.
// v6prefix outside 1..128 means 64. An invalid ip appends one zero byte: every
// request without a known address shares that bucket.
//
// Limiter.AllowAddr uses these bytes; they are exported for callers that need the
// same identity elsewhere (logs, consistent hashing).
func AppendClientIPKey(dst []byte, ip netip.Addr, v6prefix int) []byte {
	ip = ip.Unmap()
	switch {
	case ip.Is4():
		a := ip.As4()
		return append(dst, a[:]...)
	case ip.Is6():
		if v6prefix < 1 || v6prefix > 128 {
			v6prefix = 64
		}
		a := ip.As16()
		full := v6prefix / 8
		if full < 16 {
			a[full] &= ^byte(0xff >> (v6prefix % 8))
			for i := full + 1; i < 16; i++ {
				a[i] = 0
			}
		}
		dst = append(dst, a[:]...)
		return append(dst, byte(v6prefix))
	}
	return append(dst, 0)
}
