package lb

import (
	"slices"

	"github.com/cespare/xxhash/v2"
)

// MaglevSize is the number of slots of a Maglev lookup table: a prime, as the algorithm
// requires, and large enough (about 100 slots per endpoint up to 650 endpoints) that every
// endpoint's share stays within 1% of its weight (Eisenbud et al., "Maglev: A Fast and
// Reliable Software Network Load Balancer", NSDI 2016, section 3.4).
const MaglevSize = 65537

// MaxEndpoints is the largest number of endpoints a Pool or a Maglev table accepts.
const MaxEndpoints = 65535

// Maglev is an immutable Maglev consistent-hashing lookup table. Build one off the request
// path with NewMaglev, publish it with an atomic.Pointer, and call Lookup from any goroutine.
// A nil or empty table looks up -1.
//
// Each endpoint name gets a permutation of the slots from two hashes of the name, as in the
// paper: offset = XXH64(name, seed 0) mod M and skip = XXH64(name, seed 1) mod (M-1) + 1
// (the same choice as Envoy's Maglev load balancer). Endpoints take turns claiming their next
// preferred free slot, in name order, so the table depends only on the set of names, not on
// the order they were given in. With weights, an endpoint of weight w takes a turn in w of
// every max-weight rounds (Envoy's weighted variant); equal weights give the paper's table.
type Maglev struct {
	table []uint16 // slot -> index into the names given to NewMaglev
	n     int
}

// NewMaglev builds the table for names, all of weight 1. Lookup returns indexes into names.
// It panics if there are more than MaxEndpoints names.
func NewMaglev(names []string) *Maglev { return NewWeightedMaglev(names, nil) }

// NewWeightedMaglev builds the table for names with the given weights (nil means all 1;
// weights below 1 count as 1). It panics if len(weights) is neither 0 nor len(names), or
// if there are more than MaxEndpoints names.
func NewWeightedMaglev(names []string, weights []int) *Maglev {
	if len(weights) != 0 && len(weights) != len(names) {
		panic("lb: NewWeightedMaglev: len(weights) != len(names)")
	}
	if len(names) > MaxEndpoints {
		panic("lb: NewWeightedMaglev: more than MaxEndpoints names")
	}
	return &Maglev{table: buildMaglev(names, weights, MaglevSize), n: len(names)}
}

// Len returns the number of endpoints the table was built for.
func (m *Maglev) Len() int {
	if m == nil {
		return 0
	}
	return m.n
}

// Lookup returns the index of the endpoint that owns hash, or -1 for an empty table.
func (m *Maglev) Lookup(hash uint64) int {
	if m == nil || m.n == 0 {
		return -1
	}
	return int(m.table[hash%MaglevSize])
}

// Probe returns the owner of the i-th slot after hash's own (Probe(h, 0) == Lookup(h)).
// Consecutive slots belong to unrelated endpoints, so probing i = 1, 2, ... until an
// endpoint that is up spreads a down endpoint's keys evenly over the others while every
// other key keeps its endpoint. Probe returns -1 for an empty table.
func (m *Maglev) Probe(hash uint64, i int) int {
	if m == nil || m.n == 0 {
		return -1
	}
	return int(m.table[(hash%MaglevSize+uint64(i)%MaglevSize)%MaglevSize])
}

// buildMaglev fills a table of m slots (m prime) for names with weights.
func buildMaglev(names []string, weights []int, m uint64) []uint16 {
	n := len(names)
	if n == 0 {
		return nil
	}
	// Build in name order so the table depends only on the set of names.
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		switch {
		case names[a] < names[b]:
			return -1
		case names[a] > names[b]:
			return 1
		}
		return 0
	})
	type entry struct {
		index  uint16
		offset uint64
		skip   uint64
		next   uint64 // position in the permutation
		weight uint64
		target uint64
	}
	entries := make([]entry, n)
	var maxW uint64 = 1
	for k, i := range order {
		w := uint64(1)
		if len(weights) != 0 && weights[i] > 1 {
			w = uint64(weights[i])
		}
		maxW = max(maxW, w)
		entries[k] = entry{
			index:  uint16(i),
			offset: xxhash.Sum64String(names[i]) % m,
			skip:   seededHash(names[i], 1)%(m-1) + 1,
			weight: w,
		}
	}
	const empty = 0xffff // never a valid index: MaxEndpoints is 65535, indexes stop at 65534
	table := make([]uint16, m)
	for i := range table {
		table[i] = empty
	}
	filled := uint64(0)
	for round := uint64(1); ; round++ {
		for k := range entries {
			e := &entries[k]
			// An endpoint of weight w claims a slot in w of every maxW rounds.
			if round*e.weight < e.target {
				continue
			}
			e.target += maxW
			c := (e.offset + e.next*e.skip) % m
			for table[c] != empty {
				e.next++
				c = (e.offset + e.next*e.skip) % m
			}
			table[c] = e.index
			e.next++
			filled++
			if filled == m {
				return table
			}
		}
	}
}

// seededHash is XXH64 of s with the given seed.
func seededHash(s string, seed uint64) uint64 {
	d := xxhash.NewWithSeed(seed)
	d.WriteString(s)
	return d.Sum64()
}
