package jwt

import (
	"bytes"
	"hash/maphash"
	"sync/atomic"
	"time"
)

// Verify checks token (the credential after "Bearer ") at time now and, on success, leaves
// its claims in c; on failure c is left empty, so nothing from a rejected token (not even
// the sub of an expired one) can leak into headers or logs. The error is nil or one of the
// sentinel *Error values: members of the ErrInvalidToken family (401), or
// ErrJWKSUnavailable (503). Scopes are checked separately with c.HasScopes. Processing
// order (RFC 7515 §5.2, RFC 7519 §7.2): size, verified-token cache, three segments, header
// (strict base64url and JSON, alg allowed, crit and b64 refused), key selection by kid
// and alg, claims syntax, signature, then claim values.
func (p *Policy) Verify(token []byte, now time.Time, c *Claims) error {
	err := p.verify(token, now, c)
	if err != nil {
		c.payload, c.mem, c.parsed, c.key, c.alg = nil, nil, parsedClaims{}, nil, algUnknown
	}
	return err
}

func (p *Policy) verify(token []byte, now time.Time, c *Claims) error {
	c.Reset()
	if len(token) > p.maxToken {
		return ErrOversized
	}
	// A token seen before is answered from the verified-token cache, which holds only
	// tokens this policy verified, so header, alg and key checks need not run again.
	if p.cache != nil {
		if e := p.cache.lookup(token, now); e != nil {
			e.fill(c)
			return p.checkClaims(c, now)
		}
	}
	d1 := bytes.IndexByte(token, '.')
	if d1 < 0 {
		return ErrMalformed
	}
	d2 := bytes.IndexByte(token[d1+1:], '.')
	if d2 < 0 {
		return ErrMalformed
	}
	d2 += d1 + 1
	if bytes.IndexByte(token[d2+1:], '.') >= 0 {
		return ErrMalformed // five segments is JWE, more is garbage
	}
	var ok bool
	var alg algID
	var kid []byte
	var hasKid bool
	memo := p.headerMemo(token[:d1])
	if memo != nil {
		alg, kid, hasKid = memo.alg, memo.kid, memo.hasKid
	} else {
		if c.hdr, ok = appendBase64URL(c.hdr[:0], token[:d1]); !ok {
			return ErrMalformed
		}
		algName, k, hk, herr := parseHeader(c.hdr)
		if herr != nil {
			return herr
		}
		alg, kid, hasKid = algByName(algName), k, hk
		if !p.allowed.has(alg) {
			return ErrAlgNotAllowed
		}
	}
	ks := p.keys.Load()
	cands, kerr := ks.candidates(alg, kid, hasKid)
	if kerr != nil {
		if kerr != ErrKeyAlgMismatch && len(p.sources) > 0 {
			p.kickRefresh(now)
			if ks.pending {
				return ErrJWKSUnavailable
			}
		}
		return kerr
	}
	if c.buf, ok = appendBase64URL(c.buf[:0], token[d1+1:d2]); !ok {
		return ErrMalformed
	}
	if err := c.parseClaims(); err != nil {
		return err
	}
	if c.sig, ok = appendBase64URL(c.sig[:0], token[d2+1:]); !ok {
		return ErrMalformed
	}
	input := token[:d2]
	var matched *key
	for _, k := range cands {
		if k.accepts(alg) && k.verify(alg, input, c.sig) {
			matched = k
			break
		}
	}
	if matched == nil {
		return ErrBadSignature
	}
	c.key, c.alg = matched, alg
	if memo == nil {
		p.rememberHeader(token[:d1], alg, kid, hasKid)
	}
	if p.cache != nil && alg.cacheable() {
		p.cache.insert(token, c, matched, p.cacheExpiry(c, now), now)
	}
	return p.checkClaims(c, now)
}

// headerMemo is a parsed JOSE header, remembered by its exact base64url segment: an
// issuer's tokens share their header byte for byte, so the header is decoded and parsed
// once per policy, not once per request. Memos are immutable; only headers of tokens
// whose signature verified are remembered, so junk headers cost no memory.
type headerMemo struct {
	seg    []byte
	kid    []byte
	alg    algID
	hasKid bool
}

// headerMemos is the number of header memo slots per policy.
const headerMemos = 8

func (p *Policy) headerSlot(seg []byte) *atomic.Pointer[headerMemo] {
	return &p.headers[maphash.Bytes(p.headerSeed, seg)%headerMemos]
}

// headerMemo returns the memo for the header segment seg, or nil.
func (p *Policy) headerMemo(seg []byte) *headerMemo {
	if m := p.headerSlot(seg).Load(); m != nil && bytes.Equal(m.seg, seg) {
		return m
	}
	return nil
}

func (p *Policy) rememberHeader(seg []byte, alg algID, kid []byte, hasKid bool) {
	m := &headerMemo{seg: bytes.Clone(seg), alg: alg, hasKid: hasKid}
	if hasKid {
		m.kid = bytes.Clone(kid)
	}
	p.headerSlot(seg).Store(m)
}

// candidates returns the keys a token may be verified with: a token with a kid uses
// only keys with that kid, one without tries every key bound to its alg.
func (ks *keySet) candidates(alg algID, kid []byte, hasKid bool) ([]*key, *Error) {
	if !hasKid {
		if len(ks.byAlg[alg]) == 0 {
			return nil, ErrNoKey
		}
		return ks.byAlg[alg], nil
	}
	list := ks.byKid[string(kid)]
	if len(list) == 0 {
		return nil, ErrUnknownKid
	}
	for _, k := range list {
		if k.accepts(alg) {
			return list, nil
		}
	}
	return nil, ErrKeyAlgMismatch
}

func (p *Policy) cacheExpiry(c *Claims, now time.Time) int64 {
	limit := now.Add(maxCacheTTL).Unix()
	if c.parsed.flags&hasExp == 0 {
		return limit
	}
	exp := time.Unix(c.parsed.exp, 0).Add(p.leeway)
	e := exp.Unix()
	if exp.Nanosecond() != 0 {
		e++
	}
	return min(e, limit)
}

// checkClaims applies the time and identity rules of RFC 7519 §4.1 to verified claims.
// The comparisons match golang-jwt's: valid while now < exp+leeway and
// now >= nbf-leeway and now >= iat-leeway.
func (p *Policy) checkClaims(c *Claims, now time.Time) error {
	pc := &c.parsed
	// NumericDates are whole seconds here, so with lo = now-leeway and hi = now+leeway:
	// now < exp+leeway iff lo's whole seconds < exp, and now >= nbf-leeway iff hi's whole
	// seconds >= nbf.
	if pc.flags&hasExp != 0 {
		if now.Add(-p.leeway).Unix() >= pc.exp {
			return ErrExpired
		}
	} else if !p.expOptional {
		return ErrMissingExp
	}
	if pc.flags&(hasNbf|hasIat) != 0 {
		hi := now.Add(p.leeway).Unix()
		if pc.flags&hasNbf != 0 && hi < pc.nbf {
			return ErrNotYetValid
		}
		if pc.flags&hasIat != 0 && hi < pc.iat {
			return ErrIssuedInFuture
		}
	}
	if p.issuer != "" {
		m, ok := c.member(pc.iss)
		if !ok || m.kind != kindString || string(m.val.of(c.payload)) != p.issuer {
			return ErrBadIssuer
		}
	}
	if len(p.audience) > 0 && !p.audienceOK(c) {
		return ErrBadAudience
	}
	return nil
}

// audienceOK reports whether "aud" names a configured audience. Like golang-jwt, any
// non-string array element makes the claim invalid as a whole.
func (p *Policy) audienceOK(c *Claims) bool {
	m, ok := c.member(c.parsed.aud)
	if !ok {
		return false
	}
	switch m.kind {
	case kindString:
		v := m.val.of(c.payload)
		for _, a := range p.audience {
			if string(v) == a {
				return true
			}
		}
	case kindArray:
		found := false
		var s arrayScanner
		s.start(m.val.of(c.payload))
		for {
			el, k, ok := s.next()
			if !ok {
				break
			}
			if k != kindString {
				return false
			}
			for _, a := range p.audience {
				if !found && c.stringEquals(el, a) {
					found = true
				}
			}
		}
		return found
	}
	return false
}

// parseHeader reads the JOSE header (RFC 7515 §4). alg is required and kid optional, both
// strings; crit is refused because this verifier implements no extension (§4.1.11); b64
// (RFC 7797) is accepted only as true, the default. A header with crit is ErrCrit even if
// b64 is also wrong, whatever the member order.
func parseHeader(b []byte) (alg, kid []byte, hasKid bool, err *Error) {
	var s objectScanner
	if err = s.start(b); err != nil {
		return nil, nil, false, err
	}
	var names [maxHeaderMembers]span
	n := 0
	crit, b64 := false, true
	for {
		m, ok, err := s.next()
		if err != nil {
			return nil, nil, false, err
		}
		if !ok {
			break
		}
		if n == maxHeaderMembers {
			return nil, nil, false, ErrTooManyMembers
		}
		name := m.name.of(b)
		for _, prev := range names[:n] {
			if sameName(prev.of(b), name) {
				return nil, nil, false, ErrDuplicateMember
			}
		}
		names[n] = m.name
		n++
		switch string(name) {
		case "alg":
			if m.kind != kindString {
				return nil, nil, false, ErrMalformed
			}
			alg = m.val.of(b)
		case "kid":
			if m.kind != kindString {
				return nil, nil, false, ErrMalformed
			}
			kid, hasKid = m.val.of(b), true
		case "crit":
			crit = true
		case "b64":
			b64 = m.kind == kindTrue
		}
	}
	// Decided after the whole header, so the answer does not depend on member order.
	switch {
	case crit:
		return nil, nil, false, ErrCrit
	case !b64:
		return nil, nil, false, ErrB64
	case alg == nil:
		return nil, nil, false, ErrAlgNotAllowed // absent alg: nothing to allow
	}
	return alg, kid, hasKid, nil
}

// parseClaims scans c.buf (RFC 7519 §7.2 step 10) into c.members, rejecting
// duplicate names and reading the NumericDates (RFC 7519 §2): exp rounds down, nbf and
// iat round up, so a fraction never extends a token's validity.
func (c *Claims) parseClaims() *Error {
	b := c.buf
	var s objectScanner
	if err := s.start(b); err != nil {
		return err
	}
	pc := &c.parsed
	for {
		m, ok, err := s.next()
		if err != nil {
			return err
		}
		if !ok {
			c.payload, c.mem = b, c.members[:pc.n]
			return nil
		}
		if int(pc.n) == maxClaims {
			return ErrTooManyMembers
		}
		name := m.name.of(b)
		for _, prev := range c.members[:pc.n] {
			if sameName(prev.name.of(b), name) {
				return ErrDuplicateMember
			}
		}
		c.members[pc.n] = m
		pc.n++
		switch string(name) {
		case "exp", "nbf", "iat":
			if m.kind != kindNumber {
				return ErrBadDate
			}
			v, frac, ok := parseNumericDate(m.val.of(b))
			if !ok {
				return ErrBadDate
			}
			switch name[0] {
			case 'e':
				pc.exp = v
				pc.flags |= hasExp
			case 'n':
				pc.nbf = v + b2i(frac)
				pc.flags |= hasNbf
			default:
				pc.iat = v + b2i(frac)
				pc.flags |= hasIat
			}
		case "sub":
			pc.sub = pc.n
		case "iss":
			pc.iss = pc.n
		case "aud":
			pc.aud = pc.n
		case "scope":
			pc.scope = pc.n
		case "scp":
			pc.scp = pc.n
		}
	}
}

// sameName compares two member names, looking at their lengths and end bytes first since
// most names differ there.
func sameName(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	if len(a) == 0 {
		return true
	}
	return a[0] == b[0] && a[len(a)-1] == b[len(b)-1] && string(a) == string(b)
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}
