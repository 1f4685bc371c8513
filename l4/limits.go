package l4

import (
	"net/netip"
	"sync"
)

const ipShards = 64

// ipTable counts open connections per client address. Entries exist only while
// their count is positive, so its size is bounded by the open connections, not
// by how many addresses were ever seen. It is safe for concurrent use: event
// loops acquire, whichever goroutine closes a handed-off connection releases.
type ipTable struct {
	shards [ipShards]ipShard
}

type ipShard struct {
	mu sync.Mutex
	m  map[netip.Addr]int32
	_  [40]byte // keep shards on separate cache lines
}

func shardOf(ip netip.Addr) int {
	b := ip.As16()
	h := uint32(2166136261) // FNV-1a over the last 8 bytes, where IPv4 and host bits live
	for _, c := range b[8:] {
		h = (h ^ uint32(c)) * 16777619
	}
	return int(h % ipShards)
}

// acquire takes a slot for ip unless it already holds max; max <= 0 means no limit.
func (t *ipTable) acquire(ip netip.Addr, max int) bool {
	if max <= 0 {
		return true
	}
	s := &t.shards[shardOf(ip)]
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.m[ip]
	if int(n) >= max {
		return false
	}
	if s.m == nil {
		s.m = make(map[netip.Addr]int32)
	}
	s.m[ip] = n + 1
	return true
}

// release gives back a slot taken by acquire.
func (t *ipTable) release(ip netip.Addr) {
	s := &t.shards[shardOf(ip)]
	s.mu.Lock()
	if n := s.m[ip]; n > 1 {
		s.m[ip] = n - 1
	} else {
		delete(s.m, ip)
	}
	s.mu.Unlock()
}

// count returns ip's open connections (for tests).
func (t *ipTable) count(ip netip.Addr) int {
	s := &t.shards[shardOf(ip)]
	s.mu.Lock()
	defer s.mu.Unlock()
	return int(s.m[ip])
}

// slot is what one admitted connection holds: its listener's and the
// server's connection counts, and, when ip is valid, a per-IP count. Exactly
// one owner releases it: the event loop until hand-off, then the delivered
// Conn or the relay.
type slot struct {
	l  *listener
	ip netip.Addr
}

// admit reserves the connection counts for a new connection from peer. When
// deferIP is set (a trusted PROXY peer, whose real client is not known yet)
// the per-IP count is taken later by takeIP.
func (l *listener) admit(set *settings, peer netip.Addr, deferIP bool) (slot, RejectReason, bool) {
	srv := l.srv
	if srv.cfg.MaxConns > 0 {
		if srv.open.Add(1) > int64(srv.cfg.MaxConns) {
			srv.open.Add(-1)
			return slot{}, RejectMaxConns, false
		}
	} else {
		srv.open.Add(1)
	}
	if n := l.stats.active.Add(1); set.MaxConns > 0 && n > int64(set.MaxConns) {
		l.stats.active.Add(-1)
		srv.open.Add(-1)
		return slot{}, RejectMaxConns, false
	}
	s := slot{l: l}
	if !deferIP {
		if r, ok := s.takeIP(set, peer); !ok {
			return slot{}, r, false
		}
	}
	return s, 0, true
}

// takeIP takes the per-IP count for ip; on refusal the whole slot is released.
func (s *slot) takeIP(set *settings, ip netip.Addr) (RejectReason, bool) {
	if set.MaxConnsPerIP <= 0 {
		return 0, true
	}
	if !s.l.ips.acquire(ip, set.MaxConnsPerIP) {
		s.release()
		return RejectMaxConnsPerIP, false
	}
	s.ip = ip
	return 0, true
}

// release gives back everything the slot holds. It must be called once.
func (s *slot) release() {
	if s.l == nil {
		return
	}
	if s.ip.IsValid() {
		s.l.ips.release(s.ip)
	}
	s.l.stats.active.Add(-1)
	s.l.srv.open.Add(-1)
	s.l = nil
}
