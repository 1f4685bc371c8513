package jwt

import (
	"strconv"
	"unicode/utf8"
)

// A strict RFC 8259 scanner that works in place on a decoded header or payload. It is
// stricter than encoding/json where that package is lenient, and each difference is a
// documented rule (see doc.go): invalid UTF-8 and unpaired surrogate escapes are errors
// instead of becoming U+FFFD, nesting deeper than maxDepth is an error, and duplicate
// member names at the top level of the header and the claims are errors instead of
// "last one wins" (RFC 7515 §4, RFC 7519 §4).

const (
	// maxDepth bounds nesting of arrays and objects inside a header or claims set.
	maxDepth = 32
	// maxHeaderMembers and maxClaims bound the top-level member counts, which keeps the
	// quadratic duplicate check cheap.
	maxHeaderMembers = 16
	maxClaims        = 64
)

// kind is the type of a JSON value.
type kind uint8

const (
	kindInvalid kind = iota
	kindString
	kindNumber
	kindTrue
	kindFalse
	kindNull
	kindObject
	kindArray
)

func isWS(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func skipWS(b []byte, i int) int {
	for i < len(b) && isWS(b[i]) {
		i++
	}
	return i
}

// scanString validates the string starting at b[i] == '"' and returns the index after
// its closing quote and whether it contains escapes.
func scanString(b []byte, i int) (end int, esc bool, err *Error) {
	i++ // opening quote
	for i < len(b) {
		for i < len(b) && strSpecial[b[i]] == 0 {
			i++
		}
		if i >= len(b) {
			break
		}
		c := b[i]
		switch {
		case c == '"':
			return i + 1, esc, nil
		case c == '\\':
			esc = true
			if i+1 >= len(b) {
				return 0, false, ErrMalformed
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				r, ok := hex4(b, i+2)
				if !ok {
					return 0, false, ErrMalformed
				}
				i += 6
				switch {
				case r >= 0xdc00 && r <= 0xdfff:
					return 0, false, ErrInvalidUTF8 // lone low surrogate
				case r >= 0xd800 && r <= 0xdbff:
					if i+1 >= len(b) || b[i] != '\\' || b[i+1] != 'u' {
						return 0, false, ErrInvalidUTF8 // high surrogate without a partner
					}
					lo, ok := hex4(b, i+2)
					if !ok {
						return 0, false, ErrMalformed
					}
					if lo < 0xdc00 || lo > 0xdfff {
						return 0, false, ErrInvalidUTF8
					}
					i += 6
				}
			default:
				return 0, false, ErrMalformed
			}
		case c < 0x20:
			return 0, false, ErrMalformed // control characters must be escaped
		case c < utf8.RuneSelf:
			i++
		default:
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size <= 1 {
				return 0, false, ErrInvalidUTF8
			}
			i += size
		}
	}
	return 0, false, ErrMalformed
}

// strSpecial flags the bytes a JSON string scan must look at: the quote, the backslash,
// control characters and non-ASCII bytes. Everything else is copied as is.
const strSpecial = "" +
	"\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01" +
	"\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00" +
	"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00" +
	"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00" +
	"\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01" +
	"\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01" +
	"\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01" +
	"\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01"

func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		var v byte
		switch {
		case c >= '0' && c <= '9':
			v = c - '0'
		case c >= 'a' && c <= 'f':
			v = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			v = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(v)
	}
	return r, true
}

// unescapeInPlace rewrites the already validated string content b[start:end] (quotes
// excluded) without escapes and returns its new end. The unescaped form is never longer.
func unescapeInPlace(b []byte, start, end int) int {
	w := start
	for i := start; i < end; {
		c := b[i]
		if c != '\\' {
			b[w] = c
			w++
			i++
			continue
		}
		var r rune
		switch b[i+1] {
		case 'b':
			r = '\b'
		case 'f':
			r = '\f'
		case 'n':
			r = '\n'
		case 'r':
			r = '\r'
		case 't':
			r = '\t'
		case 'u':
			r, _ = hex4(b, i+2)
			if r >= 0xd800 && r <= 0xdbff {
				lo, _ := hex4(b, i+8)
				r = 0x10000 + (r-0xd800)<<10 + (lo - 0xdc00)
				i += 6
			}
			i += 6
			w += utf8.EncodeRune(b[w:], r)
			continue
		default: // '"', '\\', '/'
			r = rune(b[i+1])
		}
		b[w] = byte(r)
		w++
		i += 2
	}
	return w
}

// appendUnescaped appends the unescaped form of the validated string content s.
func appendUnescaped(dst, s []byte) []byte {
	start := len(dst)
	dst = append(dst, s...)
	end := unescapeInPlace(dst, start, len(dst))
	return dst[:end]
}

// scanNumber validates the RFC 8259 §6 number starting at b[i]. Like encoding/json
// (and so golang-jwt), it refuses numbers beyond the float64 range.
func scanNumber(b []byte, i int) (int, *Error) {
	start := i
	if i < len(b) && b[i] == '-' {
		i++
	}
	mag := 0 // decimal exponent of the leading significant digit, roughly
	switch {
	case i < len(b) && b[i] == '0':
		i++
		mag = -1
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		d := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		mag = i - d - 1
	default:
		return 0, ErrMalformed
	}
	if i < len(b) && b[i] == '.' {
		i++
		d := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == d {
			return 0, ErrMalformed
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		neg := false
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			neg = b[i] == '-'
			i++
		}
		d := i
		e := 0
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			if e < 1_000_000 {
				e = e*10 + int(b[i]-'0')
			}
			i++
		}
		if i == d {
			return 0, ErrMalformed
		}
		if !neg {
			mag += e
		}
	}
	// Only numbers near or past 1.8e308 need the exact test, which allocates.
	if mag >= 308 {
		if _, err := strconv.ParseFloat(string(b[start:i]), 64); err != nil {
			return 0, ErrMalformed
		}
	}
	return i, nil
}

func hasPrefixAt(b []byte, i int, lit string) bool {
	return len(b)-i >= len(lit) && string(b[i:i+len(lit)]) == lit
}

// scanValue validates the value starting at b[i] (no leading whitespace) and returns
// the index after it and its kind. depth counts the enclosing arrays and objects.
func scanValue(b []byte, i, depth int) (int, kind, *Error) {
	if i >= len(b) {
		return 0, kindInvalid, ErrMalformed
	}
	switch c := b[i]; {
	case c == '"':
		end, _, err := scanString(b, i)
		return end, kindString, err
	case c == '-' || (c >= '0' && c <= '9'):
		end, err := scanNumber(b, i)
		return end, kindNumber, err
	case c == 't':
		if hasPrefixAt(b, i, "true") {
			return i + 4, kindTrue, nil
		}
	case c == 'f':
		if hasPrefixAt(b, i, "false") {
			return i + 5, kindFalse, nil
		}
	case c == 'n':
		if hasPrefixAt(b, i, "null") {
			return i + 4, kindNull, nil
		}
	case c == '[':
		if depth >= maxDepth {
			return 0, kindInvalid, ErrTooDeep
		}
		i = skipWS(b, i+1)
		if i < len(b) && b[i] == ']' {
			return i + 1, kindArray, nil
		}
		for {
			var err *Error
			if i, _, err = scanValue(b, i, depth+1); err != nil {
				return 0, kindInvalid, err
			}
			i = skipWS(b, i)
			if i >= len(b) {
				return 0, kindInvalid, ErrMalformed
			}
			if b[i] == ']' {
				return i + 1, kindArray, nil
			}
			if b[i] != ',' {
				return 0, kindInvalid, ErrMalformed
			}
			i = skipWS(b, i+1)
		}
	case c == '{':
		if depth >= maxDepth {
			return 0, kindInvalid, ErrTooDeep
		}
		i = skipWS(b, i+1)
		if i < len(b) && b[i] == '}' {
			return i + 1, kindObject, nil
		}
		for {
			if i >= len(b) || b[i] != '"' {
				return 0, kindInvalid, ErrMalformed
			}
			var err *Error
			if i, _, err = scanString(b, i); err != nil {
				return 0, kindInvalid, err
			}
			i = skipWS(b, i)
			if i >= len(b) || b[i] != ':' {
				return 0, kindInvalid, ErrMalformed
			}
			i = skipWS(b, i+1)
			if i, _, err = scanValue(b, i, depth+1); err != nil {
				return 0, kindInvalid, err
			}
			i = skipWS(b, i)
			if i >= len(b) {
				return 0, kindInvalid, ErrMalformed
			}
			if b[i] == '}' {
				return i + 1, kindObject, nil
			}
			if b[i] != ',' {
				return 0, kindInvalid, ErrMalformed
			}
			i = skipWS(b, i+1)
		}
	}
	return 0, kindInvalid, ErrMalformed
}

// span is a half-open byte range [off, end) in a buffer.
type span struct{ off, end int32 }

func (s span) of(b []byte) []byte { return b[s.off:s.end] }

// member is one top-level member of an object. For strings, val is the unescaped
// content without quotes; for other kinds it is the raw JSON text.
type member struct {
	name span
	val  span
	kind kind
}

// objectScanner walks the top-level members of one JSON object held in b, unescaping
// member names and string values in place. It is a value type so that scanning does not
// allocate.
type objectScanner struct {
	b     []byte
	i     int
	first bool
	done  bool
}

// start positions the scanner on the object that must make up all of b. A document that
// is JSON but not an object is ErrNotObject; one that is not JSON at all is ErrMalformed.
func (s *objectScanner) start(b []byte) *Error {
	s.b = b
	s.i = skipWS(b, 0)
	if s.i >= len(b) || b[s.i] != '{' {
		if end, _, err := scanValue(b, s.i, 0); err == nil && skipWS(b, end) == len(b) {
			return ErrNotObject
		}
		return ErrMalformed
	}
	s.i++
	s.first = true
	s.done = false
	return nil
}

// next returns the next member; ok is false after the last one, at which point the rest
// of b has been checked to be whitespace only.
func (s *objectScanner) next() (m member, ok bool, err *Error) {
	if s.done {
		return m, false, nil
	}
	b := s.b
	i := skipWS(b, s.i)
	if i >= len(b) {
		return m, false, ErrMalformed
	}
	if b[i] == '}' {
		s.done = true
		if skipWS(b, i+1) != len(b) {
			return m, false, ErrMalformed // trailing data after the object
		}
		return m, false, nil
	}
	if !s.first {
		if b[i] != ',' {
			return m, false, ErrMalformed
		}
		i = skipWS(b, i+1)
	}
	s.first = false
	if i >= len(b) || b[i] != '"' {
		return m, false, ErrMalformed
	}
	end, esc, err := scanString(b, i)
	if err != nil {
		return m, false, err
	}
	nameEnd := end - 1
	if esc {
		nameEnd = unescapeInPlace(b, i+1, end-1)
	}
	m.name = span{int32(i + 1), int32(nameEnd)}
	i = skipWS(b, end)
	if i >= len(b) || b[i] != ':' {
		return m, false, ErrMalformed
	}
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == '"' {
		end, esc, err = scanString(b, i)
		if err != nil {
			return m, false, err
		}
		valEnd := end - 1
		if esc {
			valEnd = unescapeInPlace(b, i+1, end-1)
		}
		m.val = span{int32(i + 1), int32(valEnd)}
		m.kind = kindString
	} else {
		var k kind
		end, k, err = scanValue(b, i, 1)
		if err != nil {
			return m, false, err
		}
		m.val = span{int32(i), int32(end)}
		m.kind = k
	}
	s.i = end
	return m, true, nil
}

// arrayScanner walks the elements of a validated JSON array's raw text.
type arrayScanner struct {
	b     []byte
	i     int
	first bool
}

func (s *arrayScanner) start(raw []byte) {
	s.b = raw
	s.i = skipWS(raw, 1) // past '['
	s.first = true
}

// next returns the raw text of the next element (strings with quotes) and its kind.
func (s *arrayScanner) next() (raw []byte, k kind, ok bool) {
	b := s.b
	i := skipWS(b, s.i)
	if i >= len(b) || b[i] == ']' {
		return nil, kindInvalid, false
	}
	if !s.first {
		i = skipWS(b, i+1) // ','
	}
	s.first = false
	end, k, err := scanValue(b, i, 1)
	if err != nil {
		return nil, kindInvalid, false
	}
	s.i = end
	return b[i:end], k, true
}

// maxNumericDate is 9999-12-31T23:59:59Z; NumericDates beyond it, or negative, are
// rejected (a documented stricter rule) so that time arithmetic never overflows.
const maxNumericDate = 253402300799

// parseNumericDate converts a validated JSON number (RFC 7519 §2 NumericDate, which may
// have a fraction or exponent) to whole seconds rounded down, reporting whether a
// non-zero fraction was dropped. ok is false for values outside [0, maxNumericDate].
func parseNumericDate(b []byte) (secs int64, frac bool, ok bool) {
	// Fast path: a plain integer of at most 12 digits, which is what issuers write.
	if len(b) <= 12 {
		var v int64
		plain := true
		for _, c := range b {
			if c < '0' || c > '9' {
				plain = false
				break
			}
			v = v*10 + int64(c-'0')
		}
		if plain {
			return v, false, v <= maxNumericDate
		}
	}
	neg := false
	i := 0
	if b[0] == '-' {
		neg = true
		i++
	}
	// Collect the significant digits of mantissa and the position of the decimal point.
	var digits [24]byte
	nd := 0          // significant digits kept
	dropped := false // a non-zero digit beyond the kept ones
	point := 0       // decimal exponent adjustment: value = digits * 10^(point+exp)
	seenNonZero := false
	inFrac := false
	for ; i < len(b); i++ {
		c := b[i]
		if c == '.' {
			inFrac = true
			continue
		}
		if c < '0' || c > '9' {
			break
		}
		if inFrac {
			point--
		}
		if c == '0' && !seenNonZero {
			continue
		}
		seenNonZero = true
		if nd < len(digits) {
			digits[nd] = c - '0'
			nd++
		} else {
			if c != '0' {
				dropped = true
			}
			point++
		}
	}
	exp := 0
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		eneg := false
		if b[i] == '+' || b[i] == '-' {
			eneg = b[i] == '-'
			i++
		}
		for ; i < len(b); i++ {
			if exp < 1_000_000 {
				exp = exp*10 + int(b[i]-'0')
			}
		}
		if eneg {
			exp = -exp
		}
	}
	if nd == 0 {
		return 0, false, true // zero, whatever its sign or exponent
	}
	if neg {
		return 0, false, false
	}
	// Integer digits: nd + point + exp of the kept digits lie before the decimal point.
	intDigits := nd + point + exp
	if intDigits > 12 { // >= 10^12 > maxNumericDate
		return 0, false, false
	}
	var v int64
	for k := 0; k < intDigits; k++ {
		v *= 10
		if k < nd {
			v += int64(digits[k])
		}
	}
	frac = dropped
	for k := max(intDigits, 0); k < nd; k++ {
		if digits[k] != 0 {
			frac = true
		}
	}
	if v > maxNumericDate || (v == maxNumericDate && frac) {
		return 0, false, false
	}
	return v, frac, true
}
