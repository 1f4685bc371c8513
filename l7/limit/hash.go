package limit

import (
	"crypto/rand"
	"encoding/binary"
	"math/bits"
)

// keyHasher is a seeded 64-bit hash for bucket keys: wyhash as the Go runtime
// uses it for maps where AES is unavailable (runtime/hash64.go, after Wang Yi's
// wyhash), keyed with 256 random bits per limiter, so nobody outside the
// process can compute which keys share a slot group. hash/maphash (AES-NI) is
// as strong but measured 8 ns for an 11-byte key on the reference VM; this is ~3.5.
type keyHasher struct{ k [4]uint64 }

func newKeyHasher() keyHasher {
	var b [32]byte
	rand.Read(b[:]) // never fails (crypto/rand since Go 1.24)
	var h keyHasher
	for i := range h.k {
		h.k[i] = binary.LittleEndian.Uint64(b[8*i:])
	}
	return h
}

func wymix(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}

// sum hashes p.
func (h *keyHasher) sum(p []byte) uint64 {
	const m5 = 0x1d8e4e27c47d124f
	seed := h.k[0]
	s := len(p)
	var a, b uint64
	switch {
	case s == 0:
		return wymix(m5, seed^h.k[1])
	case s < 4:
		a = uint64(p[0]) | uint64(p[s>>1])<<8 | uint64(p[s-1])<<16
	case s <= 8:
		a = uint64(binary.LittleEndian.Uint32(p))
		b = uint64(binary.LittleEndian.Uint32(p[s-4:]))
	case s <= 16:
		a = binary.LittleEndian.Uint64(p)
		b = binary.LittleEndian.Uint64(p[s-8:])
	default:
		// off walks p; the last 16 bytes are read from s-16, overlapping
		// bytes already mixed when s is not a multiple of 16 (as in the runtime).
		off, l := 0, s
		if l > 48 {
			seed1, seed2 := seed, seed
			for ; l > 48; l, off = l-48, off+48 {
				q := p[off : off+48]
				seed = wymix(binary.LittleEndian.Uint64(q)^h.k[1], binary.LittleEndian.Uint64(q[8:])^seed)
				seed1 = wymix(binary.LittleEndian.Uint64(q[16:])^h.k[2], binary.LittleEndian.Uint64(q[24:])^seed1)
				seed2 = wymix(binary.LittleEndian.Uint64(q[32:])^h.k[3], binary.LittleEndian.Uint64(q[40:])^seed2)
			}
			seed ^= seed1 ^ seed2
		}
		for ; l > 16; l, off = l-16, off+16 {
			q := p[off : off+16]
			seed = wymix(binary.LittleEndian.Uint64(q)^h.k[1], binary.LittleEndian.Uint64(q[8:])^seed)
		}
		a = binary.LittleEndian.Uint64(p[s-16:])
		b = binary.LittleEndian.Uint64(p[s-8:])
	}
	return wymix(m5^uint64(s), wymix(a^h.k[1], b^seed))
}
