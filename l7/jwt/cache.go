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
// the token (see hash) and confirms a hit by comparing the whole stored token byte for
// byte, so a hash collision can cost a miss but never admit an unverified token. Each entry keeps
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

// hash picks a token's slot from its length and last 64 bytes, which lie in the signature:
// constant work whatever the token size. Lookups compare the whole token, and only tokens
// whose signature verified are inserted, so tokens sharing a tail (which only the signing
// key's holder could make valid) cost at most a miss, never a false hit.
func (c *tokenCache) hash(token []byte) uint64 {
	tail := token[max(0, len(token)-64):]
	return maphash.Bytes(c.seed, tail) ^ uint64(len(token))*0x9e3779b97f4a7c15
}

func (c *tokenCache) shard(h uint64) *cacheShard {
	return &c.shards[(h>>32)&c.mask]
}

// lookup returns the live entry for token, or nil. It does not allocate.
func (c *tokenCache) lookup(token []byte, now time.Time) *cacheEntry {
	h := c.hash(token)
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
	size := len(token) + len(cl.payload) + len(cl.mem)*sizeofMember + cacheEntryOverhead
	h := c.hash(token)
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
		members: append([]member(nil), cl.mem...),
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

// fill points cl at a hit's claims; the entry is immutable, so nothing is copied.
func (e *cacheEntry) fill(cl *Claims) {
	cl.payload = e.payload
	cl.mem = e.members
	cl.parsed = e.parsed
	cl.key = e.key
	cl.alg = e.alg
}

// sizeofMember is the size of a member: two spans of two int32 and a kind, padded.
const sizeofMember = 20
