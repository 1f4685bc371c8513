package lb

import (
	"errors"
	"fmt"
	"strings"

	"github.com/cespare/xxhash/v2"
)

// Hash returns the 64-bit key hash that consistent hashing expects: XXH64 with seed 0.
// It does not allocate and is safe for concurrent use. Callers hash the key bytes they
// choose (the client IP's bytes, the SNI, a header or cookie value, a claim).
func Hash(key []byte) uint64 { return xxhash.Sum64(key) }

// HashString is Hash for a string key, without a conversion.
func HashString(key string) uint64 { return xxhash.Sum64String(key) }

// HashKind says which part of a request a consistent_hash pool hashes on.
type HashKind uint8

// The hash sources of hash_on. The zero value is HashClientIP.
const (
	HashClientIP HashKind = iota // client_ip: the client address (after trusted PROXY/X-Forwarded-For handling)
	HashSNI                      // sni: the TLS server name
	HashHeader                   // header:NAME: a request header's value
	HashCookie                   // cookie:NAME: a cookie's value
	HashClaim                    // claim:NAME: a claim of the verified JWT
)

// HashOn is a parsed hash_on setting. The zero value hashes on the client IP.
type HashOn struct {
	Kind HashKind
	// Name is the header, cookie or claim name; empty for client_ip and sni.
	Name string
}

// ErrBadHashOn is wrapped by every error ParseHashOn returns.
var ErrBadHashOn = errors.New("lb: bad hash_on")

// ParseHashOn parses client_ip, sni, header:NAME, cookie:NAME or claim:NAME.
// Header and cookie names must be RFC 9110 tokens (section 5.1; RFC 6265 section 4.1.1 uses the
// same token for cookie names); a claim name must be non-empty and free of control characters.
func ParseHashOn(s string) (HashOn, error) {
	switch s {
	case "client_ip":
		return HashOn{Kind: HashClientIP}, nil
	case "sni":
		return HashOn{Kind: HashSNI}, nil
	}
	kind, name, ok := strings.Cut(s, ":")
	if !ok {
		return HashOn{}, fmt.Errorf("%w %q: want client_ip, sni, header:NAME, cookie:NAME or claim:NAME", ErrBadHashOn, s)
	}
	var h HashOn
	switch kind {
	case "header":
		h.Kind = HashHeader
	case "cookie":
		h.Kind = HashCookie
	case "claim":
		h.Kind = HashClaim
	default:
		return HashOn{}, fmt.Errorf("%w %q: unknown source %q", ErrBadHashOn, s, kind)
	}
	if name == "" {
		return HashOn{}, fmt.Errorf("%w %q: empty %s name", ErrBadHashOn, s, kind)
	}
	if h.Kind == HashClaim {
		for i := 0; i < len(name); i++ {
			if c := name[i]; c < ' ' || c == 0x7f {
				return HashOn{}, fmt.Errorf("%w %q: claim name contains a control character", ErrBadHashOn, s)
			}
		}
	} else if !isToken(name) {
		return HashOn{}, fmt.Errorf("%w %q: %s name is not an RFC 9110 token", ErrBadHashOn, s, kind)
	}
	h.Name = name
	return h, nil
}

// String returns the hash_on spelling of h, which ParseHashOn accepts.
func (h HashOn) String() string {
	switch h.Kind {
	case HashClientIP:
		return "client_ip"
	case HashSNI:
		return "sni"
	case HashHeader:
		return "header:" + h.Name
	case HashCookie:
		return "cookie:" + h.Name
	case HashClaim:
		return "claim:" + h.Name
	}
	return fmt.Sprintf("HashKind(%d)", h.Kind)
}

// isToken reports whether s is an RFC 9110 section 5.6.2 token.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}
