package jwt

import (
	"sync"
	"time"
)

// Claims holds the decoded claims of the last token passed to Policy.Verify. It owns
// reusable buffers, so verifying into the same Claims again does not allocate. A Claims
// is not safe for concurrent use; its zero value is empty and ready to use. Byte slices
// it returns alias its buffers and stay valid until the next Verify or Reset.
type Claims struct {
	hdr     []byte // decoded header (scratch)
	buf     []byte // decoded claims; member names and top-level strings unescaped in place
	sig     []byte // decoded signature (scratch)
	scratch []byte // unescaped array elements returned by Value
	// payload and mem are views of the claims: into buf and members after a full
	// verification, or into an immutable verified-token cache entry after a hit (so a hit
	// copies nothing). Nothing ever writes through them.
	payload []byte
	mem     []member
	parsed  parsedClaims
	members [maxClaims]member
	key     *key
	alg     algID
}

// parsedClaims is the part of Claims that the verified-token cache copies wholesale.
type parsedClaims struct {
	exp, nbf, iat int64 // exp rounded down, nbf and iat rounded up, in Unix seconds
	flags         uint8
	n             uint8 // members in use
	// Member index + 1 of claims with a meaning here; 0 when absent.
	sub, iss, aud, scope, scp uint8
}

const (
	hasExp uint8 = 1 << iota
	hasNbf
	hasIat
)

// Reset empties c, keeping its buffers.
func (c *Claims) Reset() {
	c.hdr = c.hdr[:0]
	c.buf = c.buf[:0]
	c.payload = nil
	c.mem = nil
	c.sig = c.sig[:0]
	c.scratch = c.scratch[:0]
	c.parsed = parsedClaims{}
	c.key = nil
	c.alg = algUnknown
}

// maxPooledClaimsBuf is the largest buffer a released Claims keeps; oversize ones are
// dropped so one huge token does not pin memory in the pool.
const maxPooledClaimsBuf = 16 << 10

// claimsPool recycles Claims for AcquireClaims. It is the package's only variable besides
// the sentinel errors; a sync.Pool holds no configuration and is safe for concurrent use.
var claimsPool = sync.Pool{New: func() any { return new(Claims) }}

// AcquireClaims returns an empty Claims from a pool. The caller owns it until it hands
// it back with ReleaseClaims and must not touch it, or slices obtained from it, after.
func AcquireClaims() *Claims {
	return claimsPool.Get().(*Claims)
}

// ReleaseClaims returns c to the pool; c must not be used afterwards.
func ReleaseClaims(c *Claims) {
	if cap(c.hdr) > maxPooledClaimsBuf || cap(c.buf) > maxPooledClaimsBuf ||
		cap(c.sig) > maxPooledClaimsBuf || cap(c.scratch) > maxPooledClaimsBuf {
		return
	}
	c.Reset()
	claimsPool.Put(c)
}

func (c *Claims) member(idx uint8) (member, bool) {
	if idx == 0 {
		return member{}, false
	}
	return c.mem[idx-1], true
}

// Sub returns the "sub" claim when it is a string.
func (c *Claims) Sub() ([]byte, bool) {
	m, ok := c.member(c.parsed.sub)
	if !ok || m.kind != kindString {
		return nil, false
	}
	return m.val.of(c.payload), true
}

// KeyID returns the kid of the key that verified the token ("" if it has none).
func (c *Claims) KeyID() string {
	if c.key == nil {
		return ""
	}
	return c.key.kid
}

// Alg returns the token's algorithm name, or "" before a successful Verify.
func (c *Claims) Alg() string {
	if c.alg == algUnknown {
		return ""
	}
	return c.alg.String()
}

// Expires returns the "exp" claim, if the token has one.
func (c *Claims) Expires() (time.Time, bool) {
	if c.parsed.flags&hasExp == 0 {
		return time.Time{}, false
	}
	return time.Unix(c.parsed.exp, 0), true
}

// Value returns a top-level claim rendered for an HTTP header field or a rate-limit key:
// a string as its unescaped text, a number or boolean as its JSON text, and an array of
// strings as the strings joined by single spaces (the RFC 6749 §3.3 scope form). ok is
// false when the claim is absent, null, an object, an array holding non-strings, or text
// that is not a valid field value (RFC 9110 §5.5: control characters other than HTAB),
// so a claim can never inject a header line. The result is valid until the next Verify or
// Reset.
func (c *Claims) Value(name string) ([]byte, bool) {
	for _, m := range c.mem {
		if string(m.name.of(c.payload)) != name {
			continue
		}
		switch m.kind {
		case kindString:
			v := m.val.of(c.payload)
			return v, fieldSafe(v)
		case kindNumber, kindTrue, kindFalse:
			return m.val.of(c.payload), true
		case kindArray:
			start := len(c.scratch)
			var a arrayScanner
			a.start(m.val.of(c.payload))
			for {
				el, k, ok := a.next()
				if !ok {
					break
				}
				if k != kindString {
					c.scratch = c.scratch[:start]
					return nil, false
				}
				if len(c.scratch) > start {
					c.scratch = append(c.scratch, ' ')
				}
				c.scratch = appendUnescaped(c.scratch, el[1:len(el)-1])
			}
			v := c.scratch[start:]
			return v, fieldSafe(v)
		}
		return nil, false
	}
	return nil, false
}

// fieldSafe reports whether v may be sent as an HTTP field value (RFC 9110 §5.5).
func fieldSafe(v []byte) bool {
	for _, b := range v {
		if (b < 0x20 && b != '\t') || b == 0x7f {
			return false
		}
	}
	return true
}

// HasScopes reports whether the token grants every scope in required. Scopes come from
// "scope" (a space-separated string, RFC 8693 §4.2) when present, otherwise from "scp"
// (an array of strings, or a space-separated string). A claim of another type grants
// nothing. An empty required list is always satisfied.
func (c *Claims) HasScopes(required []string) bool {
	for _, want := range required {
		if !c.hasScope(want) {
			return false
		}
	}
	return true
}

func (c *Claims) hasScope(want string) bool {
	idx := c.parsed.scope
	if idx == 0 {
		idx = c.parsed.scp
	}
	m, ok := c.member(idx)
	if !ok {
		return false
	}
	switch m.kind {
	case kindString:
		return containsField(m.val.of(c.payload), want)
	case kindArray:
		var a arrayScanner
		a.start(m.val.of(c.payload))
		for {
			el, k, ok := a.next()
			if !ok {
				return false
			}
			if k == kindString && c.stringEquals(el, want) {
				return true
			}
		}
	}
	return false
}

// containsField reports whether want is one of the space-separated words of list.
func containsField(list []byte, want string) bool {
	for len(list) > 0 {
		i := 0
		for i < len(list) && list[i] != ' ' {
			i++
		}
		if i > 0 && string(list[:i]) == want {
			return true
		}
		if i == len(list) {
			break
		}
		list = list[i+1:]
	}
	return false
}

// stringEquals compares a raw JSON string (with quotes, possibly escaped) to want,
// unescaping into the tail of scratch only when needed.
func (c *Claims) stringEquals(raw []byte, want string) bool {
	content := raw[1 : len(raw)-1]
	esc := false
	for _, b := range content {
		if b == '\\' {
			esc = true
			break
		}
	}
	if !esc {
		return string(content) == want
	}
	start := len(c.scratch)
	c.scratch = appendUnescaped(c.scratch, content)
	eq := string(c.scratch[start:]) == want
	c.scratch = c.scratch[:start]
	return eq
}
