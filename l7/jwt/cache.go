package jwt

import (
	"bytes"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"
)

// tokenCache remembers tokens whose signature verified, so a repeated token skips the
// public-key math and the base64 and JSON work. It is keyed by a randomly seeded hash of
// the whole token and confirms a hit by comparing the stored token byte for byte, so a
// hash collision can cost a miss but never admit an unverified token. Each entry keeps
// the decoded claims, the key that verified it (a hit requires that key still be in the
// policy's key set) and an expiry at the token's exp (plus leeway), capped at maxCacheTTL.
// Memory is capped: every entry is charged its bytes plus overhead, and inserts evict with
// the CLOCK algorithm (expired entries first, then entries not hit since the hand last
// passed). The cache is sharded, each shard under its own lock; it is safe for concurrent
// use. Entries are immutable once inserted, so a hit copies without holding the lock.
type tokenCache struct {
	seed   maphash.Seed
	mask   uint64
	shards []cacheShard
}

type cacheShard struct {
	mu    sync.RWMutex
	index map[uint64]*cacheEntry
	ring  []*cacheEntry // CLOCK order
	hand  int
	bytes int
	limit int
	_     [40]byte // keep neighbouring shards' locks off one cache line
}

type cacheEntry struct {
	hash    uint64
	token   []byte
	payload []byte
	members []member
	parsed  parsedClaims
	key     *key
	alg     algID
	expires int64 // Unix seconds
	size    int
	ref     atomic.Bool
}

const (
	// cacheEntryOverhead approximates the bytes an entry costs beyond its slices.
	cacheEntryOverhead = 160
	// maxCacheTTL bounds how long an entry lives, whatever its exp says.
	maxCacheTTL = time.Hour
	// minShardBytes keeps shards large enough to hold the biggest (ML-DSA-87) tokens.
	minShardBytes = 256 << 10
)

func newTokenCache(limit int) *tokenCache {
	n := 1
	for n < 16 && limit/(n*2) >= minShardBytes {
		n *= 2
	}
	c := &tokenCache{seed: maphash.MakeSeed(), mask: uint64(n - 1), shards: make([]cacheShard, n)}
	for i := range c.shards {
		c.shards[i].index = make(map[uint64]*cacheEntry)
		c.shards[i].limit = limit / n
	}
	return c
}

func (c *tokenCache) shard(h uint64) *cacheShard {
	return &c.shards[(h>>32)&c.mask]
}

// lookup returns the live entry for token, or nil. It does not allocate.
func (c *tokenCache) lookup(token []byte, now time.Time) *cacheEntry {
	h := maphash.Bytes(c.seed, token)
	s := c.shard(h)
	s.mu.RLock()
	e := s.index[h]
	s.mu.RUnlock()
	if e == nil || e.expires <= now.Unix() || e.key.retired.Load() || !bytes.Equal(e.token, token) {
		return nil
	}
	if !e.ref.Load() {
		e.ref.Store(true)
	}
	return e
}

// insert remembers token as verified by k with the claims in cl, until expires.
func (c *tokenCache) insert(token []byte, cl *Claims, k *key, expires int64, now time.Time) {
	if expires <= now.Unix() {
		return
	}
	n := int(cl.parsed.n)
	size := len(token) + len(cl.payload) + n*sizeofMember + cacheEntryOverhead
	h := maphash.Bytes(c.seed, token)
	s := c.shard(h)
	if size > s.limit {
		return
	}
	buf := make([]byte, len(token)+len(cl.payload))
	copy(buf, token)
	copy(buf[len(token):], cl.payload)
	e := &cacheEntry{
		hash:    h,
		token:   buf[:len(token):len(token)],
		payload: buf[len(token):],
		members: append([]member(nil), cl.members[:n]...),
		parsed:  cl.parsed,
		key:     k,
		alg:     cl.alg,
		expires: expires,
		size:    size,
	}
	nowUnix := now.Unix()
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.index[h]; old != nil {
		s.removeAt(s.indexOf(old))
	}
	// CLOCK: each pass over an entry either evicts it (expired, retired key, or not hit
	// since the last pass) or clears its reference bit; two full turns always free room.
	for turns := 2 * len(s.ring); s.bytes+size > s.limit && len(s.ring) > 0 && turns > 0; turns-- {
		if s.hand >= len(s.ring) {
			s.hand = 0
		}
		v := s.ring[s.hand]
		if v.expires <= nowUnix || v.key.retired.Load() || !v.ref.Load() {
			s.removeAt(s.hand)
			continue
		}
		v.ref.Store(false)
		s.hand++
	}
	if s.bytes+size > s.limit {
		return
	}
	s.index[h] = e
	s.ring = append(s.ring, e)
	s.bytes += size
}

func (s *cacheShard) indexOf(e *cacheEntry) int {
	for i, v := range s.ring {
		if v == e {
			return i
		}
	}
	return -1
}

// removeAt drops ring[i], moving the last entry into its place.
func (s *cacheShard) removeAt(i int) {
	if i < 0 {
		return
	}
	e := s.ring[i]
	last := len(s.ring) - 1
	s.ring[i] = s.ring[last]
	s.ring[last] = nil
	s.ring = s.ring[:last]
	delete(s.index, e.hash)
	s.bytes -= e.size
}

// len reports the number of entries and the bytes charged, for tests and metrics.
func (c *tokenCache) len() (entries, size int) {
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		entries += len(s.ring)
		size += s.bytes
		s.mu.RUnlock()
	}
	return entries, size
}

// fill copies a hit into cl.
func (e *cacheEntry) fill(cl *Claims) {
	cl.payload = append(cl.payload[:0], e.payload...)
	copy(cl.members[:], e.members)
	cl.parsed = e.parsed
	cl.key = e.key
	cl.alg = e.alg
}

// sizeofMember is the size of a member: two spans of two int32 and a kind, padded.
const sizeofMember = 20
