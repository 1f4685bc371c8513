package lb

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"
)

// Golden tables from Envoy's Maglev tests (test/extensions/load_balancing_policies/maglev/
// maglev_lb_test.cc: Basic, BasicWithHostName, Weighted), which use the same hashes
// (XXH64 seed 0 for the offset, seed 1 for the skip), name order and weighted turns.
// Slot i of a table of size m is what hash i looks up.
func TestMaglevGoldenEnvoy(t *testing.T) {
	tests := []struct {
		name    string
		names   []string
		weights []int
		size    uint64
		want    []uint16
	}{
		{
			name:  "Basic",
			names: []string{"127.0.0.1:90", "127.0.0.1:91", "127.0.0.1:92", "127.0.0.1:93", "127.0.0.1:94", "127.0.0.1:95"},
			size:  7,
			want:  []uint16{2, 4, 0, 1, 5, 0, 3},
		},
		{
			name:  "BasicWithHostName",
			names: []string{"90", "91", "92", "93", "94", "95"},
			size:  7,
			want:  []uint16{2, 5, 0, 3, 4, 1, 0},
		},
		{
			name:    "Weighted",
			names:   []string{"127.0.0.1:90", "127.0.0.1:91"},
			weights: []int{1, 2},
			size:    17,
			want:    []uint16{1, 0, 0, 1, 0, 1, 1, 0, 1, 1, 1, 1, 1, 0, 1, 0, 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := buildMaglev(tt.names, tt.weights, tt.size); !slices.Equal(got, tt.want) {
				t.Errorf("table = %v, want %v", got, tt.want)
			}
		})
	}
}

// Golden lookups on the production table size, computed by refMaglev below (the paper's
// pseudocode over a fully materialized permutation matrix, with a from-the-spec XXH64) and
// pinned so that any change to the table build shows up here.
func TestMaglevGoldenLookups(t *testing.T) {
	names := []string{"pod-a", "pod-b", "pod-c", "10.0.3.11:5432", "10.0.3.12:5432"}
	m := NewMaglev(names)
	ref := refMaglev(names, MaglevSize)
	for _, g := range []struct {
		key  string
		want int // pinned
	}{{"", 3}, {"203.0.113.7", 1}, {"198.51.100.23", 2}, {"db.example.com", 0}, {"user-42", 4}, {"session=abc", 1}} {
		h := Hash([]byte(g.key))
		if ref := int(ref[h%MaglevSize]); ref != g.want {
			t.Errorf("reference maps %q to %d, pinned %d", g.key, ref, g.want)
		}
		if got := m.Lookup(h); got != g.want {
			t.Errorf("Lookup(Hash(%q)) = %d, want %d", g.key, got, g.want)
		}
	}
	// Pinned first slots of the table.
	wantHead := []uint16{1, 1, 0, 0, 0, 4, 1, 2, 0, 4, 1, 1, 2, 4, 0, 0}
	if got := m.table[:len(wantHead)]; !slices.Equal(got, wantHead) {
		t.Errorf("table[:16] = %v, want %v", got, wantHead)
	}
}

// The production builder must agree slot for slot with the straightforward reference.
func TestMaglevMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{1, 2, 3, 7, 16, 33} {
		names := make([]string, n)
		for i := range names {
			names[i] = fmt.Sprintf("10.%d.%d.%d:%d", rng.IntN(256), rng.IntN(256), rng.IntN(256), 1+rng.IntN(65535))
		}
		for _, size := range []uint64{7, 251, MaglevSize} {
			if uint64(n) > size {
				continue
			}
			got := buildMaglev(names, nil, size)
			want := refMaglev(names, size)
			if !slices.Equal(got, want) {
				t.Fatalf("n=%d size=%d: table differs from the reference", n, size)
			}
		}
	}
}

func TestXXH64Reference(t *testing.T) {
	// Published XXH64 vectors (xxHash's sanity checks), which anchor the reference.
	known := []struct {
		in   string
		seed uint64
		want uint64
	}{
		{"", 0, 0xEF46DB3751D8E999},
		{"a", 0, 0xD24EC4F1A98C6E5B},
		{"abc", 0, 0x44BC2CF5AD770999},
	}
	for _, k := range known {
		if got := refXXH64([]byte(k.in), k.seed); got != k.want {
			t.Errorf("refXXH64(%q, %d) = %#x, want %#x", k.in, k.seed, got, k.want)
		}
	}
	// The library's seeded hash, which builds the skips, must match the reference at every length.
	buf := make([]byte, 100)
	for i := range buf {
		buf[i] = byte(i*7 + 3)
	}
	for n := 0; n <= len(buf); n++ {
		for _, seed := range []uint64{0, 1, 0x9E3779B185EBCA87} {
			s := string(buf[:n])
			if got, want := seededHash(s, seed), refXXH64(buf[:n], seed); got != want {
				t.Fatalf("seededHash(len %d, seed %#x) = %#x, reference %#x", n, seed, got, want)
			}
		}
		if got, want := Hash(buf[:n]), refXXH64(buf[:n], 0); got != want {
			t.Fatalf("Hash(len %d) = %#x, reference %#x", n, got, want)
		}
	}
}

func TestMaglevBalance(t *testing.T) {
	for _, n := range []int{2, 3, 10, 64, 200} {
		names := podNames(n)
		m := NewMaglev(names)
		counts := slotCounts(m)
		// Every round gives each endpoint one slot, so equal weights differ by at most one slot.
		lo, hi := slices.Min(counts), slices.Max(counts)
		if hi-lo > 1 {
			t.Errorf("n=%d: slots per endpoint range %d..%d", n, lo, hi)
		}
		want := float64(MaglevSize) / float64(n)
		if float64(hi) > want*1.01 || float64(lo) < want*0.99 {
			t.Errorf("n=%d: slots %d..%d, not within 1%% of %.1f", n, lo, hi, want)
		}
	}
	// Weighted: shares within 1% of the weights.
	names := podNames(4)
	weights := []int{1, 2, 3, 4}
	counts := slotCounts(NewWeightedMaglev(names, weights))
	for i, c := range counts {
		want := float64(MaglevSize) * float64(weights[i]) / 10
		if d := float64(c)/want - 1; d > 0.01 || d < -0.01 {
			t.Errorf("weight %d: %d slots, want %.0f within 1%%", weights[i], c, want)
		}
	}
}

func TestMaglevDisruption(t *testing.T) {
	for _, n := range []int{5, 10, 50} {
		names := podNames(n)
		before := NewMaglev(names)
		removed := n / 2
		rest := slices.Delete(slices.Clone(names), removed, removed+1)
		after := NewMaglev(rest)
		moved, orphaned := 0, 0
		for slot := range uint64(MaglevSize) {
			old := names[before.Lookup(slot)]
			now := rest[after.Lookup(slot)]
			if old == names[removed] {
				orphaned++
				continue
			}
			if old != now {
				moved++
			}
		}
		// Only the removed endpoint's keys must move; Maglev tolerates a little extra churn
		// (the paper's figure 12 shows a few percent), so allow 2% of all keys.
		frac := float64(orphaned+moved) / MaglevSize
		if extra := float64(moved) / MaglevSize; extra > 0.02 {
			t.Errorf("n=%d: %.2f%% of keys of surviving endpoints moved", n, 100*extra)
		}
		if want := 1 / float64(n); frac < want*0.99 || frac > want+0.02 {
			t.Errorf("n=%d: removing one endpoint moved %.2f%% of keys, want about %.2f%%", n, 100*frac, 100*want)
		}
		t.Logf("n=%d: removing one endpoint moved %.2f%% of keys (1/n = %.2f%%)", n, 100*frac, 100/float64(n))
	}
}

func TestMaglevOrderIndependent(t *testing.T) {
	names := podNames(9)
	a := NewMaglev(names)
	shuffled := slices.Clone(names)
	rand.New(rand.NewPCG(3, 4)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	b := NewMaglev(shuffled)
	for slot := range uint64(MaglevSize) {
		if names[a.Lookup(slot)] != shuffled[b.Lookup(slot)] {
			t.Fatalf("slot %d: %s vs %s after reordering", slot, names[a.Lookup(slot)], shuffled[b.Lookup(slot)])
		}
	}
}

func TestMaglevEmptyAndProbe(t *testing.T) {
	var nilTable *Maglev
	if got := nilTable.Lookup(1); got != -1 {
		t.Errorf("nil Lookup = %d, want -1", got)
	}
	if got := NewMaglev(nil).Lookup(1); got != -1 {
		t.Errorf("empty Lookup = %d, want -1", got)
	}
	if got := NewMaglev(nil).Probe(1, 3); got != -1 {
		t.Errorf("empty Probe = %d, want -1", got)
	}
	m := NewMaglev(podNames(3))
	if m.Len() != 3 {
		t.Errorf("Len = %d, want 3", m.Len())
	}
	h := uint64(MaglevSize - 1)
	if m.Probe(h, 0) != m.Lookup(h) || m.Probe(h, 1) != int(m.table[0]) {
		t.Errorf("Probe does not walk the slots after the hash's own, wrapping around")
	}
}

func podNames(n int) []string {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("pod-%03d", i)
	}
	return names
}

func slotCounts(m *Maglev) []int {
	counts := make([]int, m.Len())
	for _, i := range m.table {
		counts[i]++
	}
	return counts
}

// refMaglev is the paper's Listing 1 written out plainly: a full permutation matrix
// (offset = XXH64(name, 0) mod M, skip = XXH64(name, 1) mod (M-1) + 1), names sorted.
func refMaglev(names []string, m uint64) []uint16 {
	sorted := slices.Clone(names)
	sort.Strings(sorted)
	index := make(map[string]int, len(names))
	for i, n := range names {
		index[n] = i
	}
	perm := make([][]uint64, len(sorted))
	for i, name := range sorted {
		offset := refXXH64([]byte(name), 0) % m
		skip := refXXH64([]byte(name), 1)%(m-1) + 1
		perm[i] = make([]uint64, m)
		for j := range m {
			perm[i][j] = (offset + j*skip) % m
		}
	}
	next := make([]uint64, len(sorted))
	entry := make([]int, m)
	for i := range entry {
		entry[i] = -1
	}
	var n uint64
	for {
		for i := range sorted {
			c := perm[i][next[i]]
			for entry[c] >= 0 {
				next[i]++
				c = perm[i][next[i]]
			}
			entry[c] = i
			next[i]++
			n++
			if n == m {
				out := make([]uint16, m)
				for s, i := range entry {
					out[s] = uint16(index[sorted[i]])
				}
				return out
			}
		}
	}
}

// refXXH64 is XXH64 written from the specification (xxHash doc/xxhash_spec.md), independent
// of the library used in production.
func refXXH64(b []byte, seed uint64) uint64 {
	const (
		p1 uint64 = 0x9E3779B185EBCA87
		p2 uint64 = 0xC2B2AE3D27D4EB4F
		p3 uint64 = 0x165667B19E3779F9
		p4 uint64 = 0x85EBCA77C2B2AE63
		p5 uint64 = 0x27D4EB2F165667C5
	)
	round := func(acc, lane uint64) uint64 {
		acc += lane * p2
		acc = bits.RotateLeft64(acc, 31)
		return acc * p1
	}
	merge := func(acc, v uint64) uint64 {
		acc ^= round(0, v)
		return acc*p1 + p4
	}
	n := uint64(len(b))
	var acc uint64
	if len(b) >= 32 {
		v1, v2, v3, v4 := seed+p1+p2, seed+p2, seed, seed-p1
		for len(b) >= 32 {
			v1 = round(v1, binary.LittleEndian.Uint64(b[0:]))
			v2 = round(v2, binary.LittleEndian.Uint64(b[8:]))
			v3 = round(v3, binary.LittleEndian.Uint64(b[16:]))
			v4 = round(v4, binary.LittleEndian.Uint64(b[24:]))
			b = b[32:]
		}
		acc = bits.RotateLeft64(v1, 1) + bits.RotateLeft64(v2, 7) + bits.RotateLeft64(v3, 12) + bits.RotateLeft64(v4, 18)
		acc = merge(acc, v1)
		acc = merge(acc, v2)
		acc = merge(acc, v3)
		acc = merge(acc, v4)
	} else {
		acc = seed + p5
	}
	acc += n
	for len(b) >= 8 {
		acc ^= round(0, binary.LittleEndian.Uint64(b))
		acc = bits.RotateLeft64(acc, 27)*p1 + p4
		b = b[8:]
	}
	if len(b) >= 4 {
		acc ^= uint64(binary.LittleEndian.Uint32(b)) * p1
		acc = bits.RotateLeft64(acc, 23)*p2 + p3
		b = b[4:]
	}
	for _, c := range b {
		acc ^= uint64(c) * p5
		acc = bits.RotateLeft64(acc, 11) * p1
	}
	acc ^= acc >> 33
	acc *= p2
	acc ^= acc >> 29
	acc *= p3
	acc ^= acc >> 32
	return acc
}

func BenchmarkMaglevLookup(b *testing.B) {
	m := NewMaglev(podNames(10))
	b.ReportAllocs()
	h := uint64(0x9E3779B97F4A7C15)
	sink := 0
	for i := 0; b.Loop(); i++ {
		sink += m.Lookup(h * uint64(i))
	}
	_ = sink
}

func BenchmarkNewMaglev(b *testing.B) {
	for _, n := range []int{3, 100} {
		names := podNames(n)
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				NewMaglev(names)
			}
		})
	}
}

func BenchmarkHash(b *testing.B) {
	key := []byte("203.0.113.7")
	b.ReportAllocs()
	b.SetBytes(int64(len(key)))
	var sink uint64
	for b.Loop() {
		sink += Hash(key)
	}
	_ = sink
}
