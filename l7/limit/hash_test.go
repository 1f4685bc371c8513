package limit

import (
	"encoding/binary"
	"testing"
)

// TestKeyHasherReadsEveryByte flips each bit of keys of every length up to
// 130 (all code paths: <4, 4..8, 9..16, 17..48, >48 bytes) and checks the hash
// changes, so no byte of a key is ignored.
func TestKeyHasherReadsEveryByte(t *testing.T) {
	h := newKeyHasher()
	buf := make([]byte, 130)
	for i := range buf {
		buf[i] = byte(i*131 + 7)
	}
	for n := 0; n <= len(buf); n++ {
		p := buf[:n]
		base := h.sum(p)
		for i := 0; i < n; i++ {
			for bit := 0; bit < 8; bit++ {
				p[i] ^= 1 << bit
				if h.sum(p) == base {
					t.Errorf("len %d: flipping bit %d of byte %d leaves the hash unchanged", n, bit, i)
				}
				p[i] ^= 1 << bit
			}
		}
	}
	// A key and its extension by a zero byte differ (the length is mixed in).
	if h.sum([]byte{1, 2, 3}) == h.sum([]byte{1, 2, 3, 0}) {
		t.Error("hash ignores the length")
	}
}

// TestKeyHasherSeeded: hashers are independent, and sequential keys neither
// collide nor crowd slot groups (a chi-square bound on group counts).
func TestKeyHasherSeeded(t *testing.T) {
	a, b := newKeyHasher(), newKeyHasher()
	if a.sum([]byte("x")) == b.sum([]byte("x")) {
		t.Error("two hashers agree: seeds are not random")
	}
	const n, groups = 200_000, 1024
	seen := make(map[uint64]struct{}, n)
	var counts [groups]int
	var k [8]byte
	for i := 0; i < n; i++ {
		binary.BigEndian.PutUint64(k[:], uint64(i))
		v := a.sum(k[:])
		if _, dup := seen[v]; dup {
			t.Fatalf("64-bit collision at key %d", i)
		}
		seen[v] = struct{}{}
		counts[fastrange(uint32(v>>32), groups)]++
	}
	exp := float64(n) / groups
	chi := 0.0
	for _, c := range counts {
		d := float64(c) - exp
		chi += d * d / exp
	}
	// 1023 degrees of freedom: mean 1023, sd ~45; 1300 is > 6 sd out.
	if chi > 1300 {
		t.Errorf("chi-square %.0f over %d groups: keys crowd some groups", chi, groups)
	}
}
