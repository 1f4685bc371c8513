package jwt

import "encoding/binary"

// Strict base64url (RFC 4648 §5) without padding, as JWS compact serialization requires
// (RFC 7515 §2 "Base64url Encoding"): the standard alphabet's '+' and '/', padding '=',
// and any whitespace are rejected, and so are non-canonical encodings whose unused
// trailing bits are not zero (RFC 4648 §3.5), so every byte string has exactly one
// accepted encoding.

// b64Dec maps a byte to its 6-bit value, or 0xff when it is not in the URL-safe alphabet.
// A constant string keeps the table immutable.
const b64Dec = "" +
	"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff" +
	"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff" +
	"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x3e\xff\xff" +
	"\x34\x35\x36\x37\x38\x39\x3a\x3b\x3c\x3d\xff\xff\xff\xff\xff\xff" +
	"\xff\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e" +
	"\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\xff\xff\xff\xff\x3f" +
	"\xff\x1a\x1b\x1c\x1d\x1e\x1f\x20\x21\x22\x23\x24\x25\x26\x27\x28" +
	"\x29\x2a\x2b\x2c\x2d\x2e\x2f\x30\x31\x32\x33\xff\xff\xff\xff\xff" +
	"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff" +
	"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff" +
	"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff" +
	"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff" +
	"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff" +
	"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff" +
	"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff" +
	"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"

// decodedLen returns the decoded size of n base64url characters without padding, or -1
// when n cannot be a valid unpadded length (n % 4 == 1).
func decodedLen(n int) int {
	if n%4 == 1 {
		return -1
	}
	return n/4*3 + (n%4*3)/4
}

// appendBase64URL decodes src onto dst. ok is false on any character outside the
// alphabet, an impossible length, or non-zero trailing bits; dst is then returned with
// unspecified extra bytes and must be discarded.
func appendBase64URL(dst, src []byte) ([]byte, bool) {
	n := decodedLen(len(src))
	if n < 0 {
		return dst, false
	}
	start := len(dst)
	if cap(dst)-start < n {
		grown := make([]byte, start, start+n+n/4)
		copy(grown, dst)
		dst = grown
	}
	dst = dst[:start+n]
	out := dst[start:]
	var bad byte
	o := 0
	i := 0
	// Eight characters make six bytes; write them with one 8-byte store while the output
	// has room for the two spare bytes, which the next store or the tail overwrites.
	for ; i+8 <= len(src) && o+8 <= len(out); i += 8 {
		s := src[i : i+8 : i+8]
		a0, a1, a2, a3 := b64Dec[s[0]], b64Dec[s[1]], b64Dec[s[2]], b64Dec[s[3]]
		a4, a5, a6, a7 := b64Dec[s[4]], b64Dec[s[5]], b64Dec[s[6]], b64Dec[s[7]]
		bad |= a0 | a1 | a2 | a3 | a4 | a5 | a6 | a7
		v := uint64(a0)<<58 | uint64(a1)<<52 | uint64(a2)<<46 | uint64(a3)<<40 |
			uint64(a4)<<34 | uint64(a5)<<28 | uint64(a6)<<22 | uint64(a7)<<16
		binary.BigEndian.PutUint64(out[o:], v)
		o += 6
	}
	for ; i+4 <= len(src); i += 4 {
		a, b, c, d := b64Dec[src[i]], b64Dec[src[i+1]], b64Dec[src[i+2]], b64Dec[src[i+3]]
		bad |= a | b | c | d
		v := uint32(a)<<18 | uint32(b)<<12 | uint32(c)<<6 | uint32(d)
		out[o] = byte(v >> 16)
		out[o+1] = byte(v >> 8)
		out[o+2] = byte(v)
		o += 3
	}
	switch len(src) - i {
	case 2:
		a, b := b64Dec[src[i]], b64Dec[src[i+1]]
		bad |= a | b
		if b&0x0f != 0 {
			return dst, false
		}
		out[o] = a<<2 | b>>4
	case 3:
		a, b, c := b64Dec[src[i]], b64Dec[src[i+1]], b64Dec[src[i+2]]
		bad |= a | b | c
		if c&0x03 != 0 {
			return dst, false
		}
		out[o] = a<<2 | b>>4
		out[o+1] = b<<4 | c>>2
	}
	// Valid values are below 64, so the high bit is set only by an invalid character.
	return dst, bad&0x80 == 0
}
