package limit

import (
	"math"
	"math/bits"
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"
)

// The bucket table maps a 64-bit keyed hash of a bucket key to GCRA state. It is
// sized once, in New, and never grows: MaxKeys is a hard cap, so rotating client
// IPs or header values cannot turn the limiter's state into a memory attack.
//
// Layout: shards of groups of groupSlots slots. A key lives in exactly one group
// (chosen by its hash), anywhere among that group's slots; a group is two cache
// lines, keys first, so a lookup touches one line to find the key and one for its
// state. Shards are allocated on first use, so a limit that sees few keys costs
// little memory however large its cap.
//
// Identity: a slot stores the key's 64-bit hash (keyed with 256 random bits per
// limiter, see keyHasher), not the key. Two keys collide only if they share all 64
// bits; among the 4M keys of a full default table that chance is below 1e-6, and an
// attacker cannot aim for it without the seed. A collision merges two buckets.
//
// Concurrency: lookups and GCRA updates are lock-free (atomic loads and one CAS
// on the slot's TAT). Taking a slot for a new key holds the key's claim lock (a
// striped mutex, so one key is never claimed twice at once) and locks the slot
// briefly by swapping its TAT to tatLocked; readers that meet a locked slot spin. A reader loads the TAT,
// then re-checks the key before its CAS, so it never charges a request to a key
// that replaced its own in the meantime (short of the new key's TAT equalling the
// old one to the nanosecond).

const (
	groupSlots = 8
	groupBytes = int(unsafe.Sizeof(group{}))
	slotBytes  = groupBytes / groupSlots
	// groupsPerShard bounds a shard to 64 KiB, the unit of lazy allocation.
	groupsPerShard = 512
	tatLocked      = math.MinInt64
	// emptyKey marks a never-used slot; hashes that are 0 are stored as 1.
	emptyKey = 0
)

type group struct {
	keys [groupSlots]atomic.Uint64
	tats [groupSlots]atomic.Int64
}

type shard struct {
	groups []group
	used   atomic.Int64 // slots holding a key
}

type table struct {
	shards    []atomic.Pointer[shard]
	groupsPer uint32
	// lossy counts evictions of buckets that were not full (state was dropped).
	lossy atomic.Uint64
	// claimMu serializes the claims of one key (striped by hash): two
	// goroutines inserting the same new key could otherwise each take a
	// slot, neither seeing the other's key yet, and the key would have two
	// buckets (one request over the burst). Lookups never take it.
	claimMu [claimStripes]sync.Mutex
}

// claimStripes is the number of claim locks (a power of two).
const claimStripes = 64

// newTable returns a table of at most maxKeys slots (at least one group).
func newTable(maxKeys int) *table {
	groups := max(maxKeys/groupSlots, 1)
	per := min(groups, groupsPerShard)
	return &table{shards: make([]atomic.Pointer[shard], groups/per), groupsPer: uint32(per)}
}

// fastrange maps x uniformly onto [0, n) without a division (Lemire 2016).
func fastrange(x uint32, n uint32) uint32 { return uint32(uint64(x) * uint64(n) >> 32) }

// group returns the group that holds hash h, allocating its shard on first use.
func (t *table) group(h uint64) (*group, *shard) {
	p := &t.shards[fastrange(uint32(h), uint32(len(t.shards)))]
	s := p.Load()
	if s == nil {
		s = t.allocShard(p)
	}
	return &s.groups[fastrange(uint32(h>>32), t.groupsPer)], s
}

func (t *table) allocShard(p *atomic.Pointer[shard]) *shard {
	s := &shard{groups: make([]group, t.groupsPer)}
	if p.CompareAndSwap(nil, s) {
		return s
	}
	return p.Load()
}

func keyTag(h uint64) uint64 {
	if h == emptyKey {
		return 1
	}
	return h
}

// capacity is the number of slots the table can hold.
func (t *table) capacity() int { return len(t.shards) * int(t.groupsPer) * groupSlots }

// keys counts slots that hold a key (full buckets not yet reused included).
func (t *table) keys() int {
	n := int64(0)
	for i := range t.shards {
		if s := t.shards[i].Load(); s != nil {
			n += s.used.Load()
		}
	}
	return int(n)
}

// bytes is the memory the allocated shards hold.
func (t *table) bytes() int64 {
	n := int64(len(t.shards)) * int64(unsafe.Sizeof(atomic.Pointer[shard]{}))
	for i := range t.shards {
		if t.shards[i].Load() != nil {
			n += int64(t.groupsPer)*int64(groupBytes) + int64(unsafe.Sizeof(shard{}))
		}
	}
	return n
}

// gcra is the per-limit arithmetic of the generic cell rate algorithm (ITU-T
// I.371): each admitted request pushes the theoretical arrival time (TAT) one
// emission interval further; a request is admitted while TAT stays within tau of
// now, which lets burst requests through at once. A TAT at or before now is a
// full bucket.
type gcra struct {
	interval int64 // ns per token
	tau      int64 // burst * interval
	burst    int64
	inverse  uint64 // (2^64-1) / interval, see divmod
}

// allow runs GCRA for hash h at now (ns on the limiter's clock) and reports
// whether the request is admitted, with the bucket's TAT after the decision.
// (Callers build the Result with g.result: returning the raw pair and building
// the struct once, in the outermost frame, avoids copying it through frames.)
func (t *table) allow(g *gcra, h uint64, now int64) (int64, bool) {
	tag := keyTag(h)
	grp, sh := t.group(h)
	for {
		i := 0
		for ; i < groupSlots; i++ {
			if grp.keys[i].Load() == tag {
				break
			}
		}
		if i == groupSlots {
			mu := &t.claimMu[(h^h>>32)&(claimStripes-1)]
			mu.Lock()
			tat, ok := t.claim(g, grp, sh, tag, now)
			mu.Unlock()
			if ok {
				return tat, true
			}
			continue
		}
		tatp := &grp.tats[i]
		for {
			old := tatp.Load()
			if old == tatLocked {
				runtime.Gosched()
				continue
			}
			if grp.keys[i].Load() != tag {
				break // the slot was given to another key: look again
			}
			tat := max(old, now)
			next := tat + g.interval
			if next-now > g.tau {
				return tat, false
			}
			if tatp.CompareAndSwap(old, next) {
				return next, true
			}
		}
	}
}

// claim takes a slot of grp for tag and admits the key's first request. It
// prefers an empty or full slot (exact: a full bucket carries no state); if every
// slot holds a depleted bucket it evicts the one closest to full, which loses
// the least state and spares the keys that are actually being limited. It
// returns the new TAT, or false if it lost a race and the caller must look again.
func (t *table) claim(g *gcra, grp *group, sh *shard, tag uint64, now int64) (int64, bool) {
	// Under the key's claim lock: an earlier claim of the same key may have
	// finished since the caller looked.
	for i := 0; i < groupSlots; i++ {
		if grp.keys[i].Load() == tag {
			return 0, false
		}
	}
	victim, vtat, vkey := -1, int64(math.MaxInt64), uint64(0)
	for i := 0; i < groupSlots; i++ {
		tat := grp.tats[i].Load()
		if tat == tatLocked {
			continue
		}
		k := grp.keys[i].Load()
		if k == emptyKey || tat <= now {
			victim, vtat, vkey = i, tat, k
			break
		}
		if tat < vtat {
			victim, vtat, vkey = i, tat, k
		}
	}
	if victim < 0 {
		runtime.Gosched() // every slot is mid-claim
		return 0, false
	}
	if !grp.tats[victim].CompareAndSwap(vtat, tatLocked) {
		return 0, false
	}
	// Another goroutine may have inserted tag while we chose a victim.
	for i := 0; i < groupSlots; i++ {
		if i != victim && grp.keys[i].Load() == tag {
			grp.tats[victim].Store(vtat)
			return 0, false
		}
	}
	if grp.keys[victim].Load() != vkey {
		grp.tats[victim].Store(vtat)
		return 0, false
	}
	switch {
	case vkey == emptyKey:
		sh.used.Add(1)
	case vtat > now:
		t.lossy.Add(1)
	}
	grp.keys[victim].Store(tag)
	next := now + g.interval
	grp.tats[victim].Store(next)
	return next, true
}

// result is the Result of a decision allow returned.
func (g *gcra) result(tat, now int64, ok bool) Result {
	if !ok {
		wait := tat + g.interval - g.tau - now
		return Result{Reset: nsDuration(wait)}
	}
	used := tat - now // > 0 after an admitted request
	q, r := g.divmod(used - 1)
	return Result{
		Allowed:   true,
		Remaining: int(g.burst - 1 - q),
		Reset:     nsDuration(r + 1),
	}
}

// divmod returns x / interval and x % interval for 0 <= x < 2^63 without a
// hardware division (tens of cycles): multiplying by inverse, the precomputed
// floor((2^64-1) / interval), gives the quotient or one less (Granlund and
// Montgomery 1994 without the exactness refinement), and one step corrects it.
func (g *gcra) divmod(x int64) (q, r int64) {
	hi, _ := bits.Mul64(uint64(x), g.inverse)
	q = int64(hi)
	r = x - q*g.interval
	if r >= g.interval {
		q, r = q+1, r-g.interval
	}
	return q, r
}
