package l4

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// relayChunk is how many bytes one splice(2) run moves before the byte
// counters are updated; small enough for live statistics, large enough that
// the extra ReadFrom call costs nothing.
const relayChunk = 1 << 20

// maxRelayAttempts bounds the endpoints one connection tries.
const maxRelayAttempts = 8

// relaySet tracks running relays so Shutdown can wait for them and, past its
// deadline, close them. It is safe for concurrent use.
type relaySet struct {
	mu       sync.Mutex
	m        map[*relayConn]struct{}
	stopping bool
	idle     chan struct{} // closed once stopping and empty
}

func (rs *relaySet) add(r *relayConn) bool {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.stopping {
		return false
	}
	if rs.m == nil {
		rs.m = make(map[*relayConn]struct{})
	}
	rs.m[r] = struct{}{}
	return true
}

func (rs *relaySet) remove(r *relayConn) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	delete(rs.m, r)
	if rs.stopping && len(rs.m) == 0 && rs.idle != nil {
		close(rs.idle)
		rs.idle = nil
	}
}

// stop refuses new relays and returns a channel closed when none is left.
func (rs *relaySet) stop() <-chan struct{} {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	done := make(chan struct{})
	rs.stopping = true
	if len(rs.m) == 0 {
		close(done)
	} else {
		rs.idle = done
	}
	return done
}

func (rs *relaySet) closeAll() {
	rs.mu.Lock()
	all := make([]*relayConn, 0, len(rs.m))
	for r := range rs.m {
		all = append(all, r)
	}
	rs.mu.Unlock()
	for _, r := range all {
		r.closeBoth(errRelayShutdown)
	}
}

var (
	errRelayShutdown = errors.New("l4: relay closed by shutdown")
	errRelayIdle     = errors.New("l4: relay idle timeout")
)

// relayConn is one relay: a client socket spliced to an upstream socket.
type relayConn struct {
	l      *listener
	ctx    context.Context // cancels the dial on shutdown
	cancel context.CancelFunc

	mu     sync.Mutex
	client *net.TCPConn
	up     *net.TCPConn
	closed bool
	cause  error // the first reason the relay was torn down

	idle  time.Duration
	timer *time.Timer
}

// startRelay serves h in a goroutine of its own. It never blocks, so event
// loops may call it.
func (s *Server) startRelay(h *handoff) {
	go s.runRelay(h)
}

func (s *Server) runRelay(h *handoff) {
	l := h.l
	r := &relayConn{l: l}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	defer r.cancel()
	if !s.relays.add(r) {
		l.stats.rejected[RejectShutdown].Add(1)
		h.discard()
		return
	}
	defer s.relays.remove(r)
	client, err := h.open()
	if err != nil {
		s.logf("l4: listener %q: %v", h.set.Name, err)
		l.stats.rejected[RejectHandoffFailed].Add(1)
		h.discard()
		return
	}
	defer h.slot.release()
	if !r.attach(&r.client, client) {
		return
	}
	l.stats.relays.Add(1)
	l.stats.relaysAll.Add(1)
	defer l.stats.relays.Add(-1)

	pol := h.pool.RelayPolicy()
	up, ep, err := s.dialUpstream(r, h, pol)
	if err != nil {
		l.stats.rejected[RejectNoUpstream].Add(1)
		s.logf("l4: listener %q: client %v: no upstream: %v", h.set.Name, h.client, err)
		r.closeBoth(err)
		return
	}
	if !r.attach(&r.up, up) {
		h.pool.RelayDone(ep, r.cause, time.Now())
		return
	}
	// The PROXY header and the bytes l4 read to classify go first, in one
	// write; after that both directions are socket-to-socket splices.
	if pol.ProxyProtocolV2 || len(h.peek) > 0 {
		var first []byte
		if pol.ProxyProtocolV2 {
			dest := h.dest
			if !dest.IsValid() {
				dest = addrPortOf(client.LocalAddr())
			}
			first = AppendProxyV2(make([]byte, 0, 52+len(h.peek)), h.client, dest)
		}
		first = append(first, h.peek...)
		payload := len(h.peek)
		h.peek = nil
		if _, err := up.Write(first); err != nil {
			r.closeBoth(err)
			h.pool.RelayDone(ep, err, time.Now())
			return
		}
		l.stats.bytesIn.Add(uint64(payload)) // the client's bytes; our header is not relayed traffic
	}
	r.watchIdle(h.set.IdleTimeout)

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := pipe(up, client, &l.stats.bytesIn); err != nil {
			r.closeBoth(err)
		}
	}()
	if err := pipe(client, up, &l.stats.bytesOut); err != nil {
		r.closeBoth(err)
	}
	wg.Wait()
	r.closeBoth(nil)
	outcome := r.cause
	if errors.Is(outcome, errRelayIdle) || errors.Is(outcome, errRelayShutdown) {
		outcome = nil // not the endpoint's fault
	}
	h.pool.RelayDone(ep, outcome, time.Now())
}

// dialUpstream picks endpoints by consistent hash and dials them in turn.
func (s *Server) dialUpstream(r *relayConn, h *handoff, pol RelayPolicy) (*net.TCPConn, RelayEndpoint, error) {
	var kb [256]byte
	key := kb[:0]
	if pol.HashOn == HashSNI && h.sni != "" {
		key = append(key, h.sni...)
	} else {
		key = h.client.Addr().AppendTo(key)
	}
	timeout := pol.ConnectTimeout
	if timeout <= 0 {
		timeout = s.cfg.DialTimeout
	}
	d := net.Dialer{Timeout: timeout}
	var triedBuf [maxRelayAttempts]RelayEndpoint
	tried := triedBuf[:0]
	var lastErr error
	for len(tried) < maxRelayAttempts {
		ep, err := h.pool.PickRelay(key, tried)
		if err != nil {
			if lastErr == nil {
				lastErr = err
			}
			break
		}
		tried = append(tried, ep)
		c, err := d.DialContext(r.ctx, "tcp", ep.Address())
		if err != nil {
			h.pool.RelayDone(ep, err, time.Now())
			lastErr = err
			if r.ctx.Err() != nil {
				break
			}
			continue
		}
		return c.(*net.TCPConn), ep, nil
	}
	return nil, nil, lastErr
}

// attach stores c in *field unless the relay was already torn down, in which
// case c is closed.
func (r *relayConn) attach(field **net.TCPConn, c *net.TCPConn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		c.Close()
		return false
	}
	*field = c
	return true
}

// closeBoth tears the relay down once, recording the first cause.
func (r *relayConn) closeBoth(cause error) {
	r.mu.Lock()
	if cause != nil && r.cause == nil {
		r.cause = cause
	}
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.closed = true
	client, up, t := r.client, r.up, r.timer
	r.mu.Unlock()
	r.cancel()
	if t != nil {
		t.Stop()
	}
	if client != nil {
		client.Close()
	}
	if up != nil {
		up.Close()
	}
}

// pipe copies src to dst until src's EOF, then half-closes dst so the other
// side sees the EOF while the opposite direction keeps flowing. Both are
// *net.TCPConn, so ReadFrom splices without copying through user space; the
// LimitedReader only cuts the transfer into chunks for the counters (splice
// accepts it).
func pipe(dst, src *net.TCPConn, counter *atomic.Uint64) error {
	lr := io.LimitedReader{R: src}
	for {
		lr.N = relayChunk
		n, err := dst.ReadFrom(&lr)
		counter.Add(uint64(n))
		if err != nil {
			return err
		}
		if lr.N > 0 { // fewer bytes than asked and no error: EOF
			return dst.CloseWrite()
		}
	}
}

// watchIdle closes the relay after d without data in either direction. The
// kernel already tracks it: TCP_INFO's tcpi_last_data_recv/sent (ms since the
// last data segment) on both sockets, read when the timer fires, so the
// splice loops need no per-chunk bookkeeping.
func (r *relayConn) watchIdle(d time.Duration) {
	if d <= 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	r.idle = d
	r.timer = time.AfterFunc(d, r.checkIdle)
}

func (r *relayConn) checkIdle() {
	r.mu.Lock()
	client, up, closed := r.client, r.up, r.closed
	r.mu.Unlock()
	if closed {
		return
	}
	quiet := min(tcpQuietFor(client), tcpQuietFor(up))
	if quiet >= r.idle {
		r.l.stats.idleClosed.Add(1)
		r.closeBoth(errRelayIdle)
		return
	}
	r.mu.Lock()
	if !r.closed {
		r.timer.Reset(r.idle - quiet)
	}
	r.mu.Unlock()
}

// tcpQuietFor returns how long c has neither sent nor received data. On error
// it returns 0 (treat as active; the copy loops will see the error).
func tcpQuietFor(c *net.TCPConn) time.Duration {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0
	}
	var info *unix.TCPInfo
	var gerr error
	if err := rc.Control(func(fd uintptr) {
		info, gerr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
	}); err != nil || gerr != nil {
		return 0
	}
	return time.Duration(min(info.Last_data_recv, info.Last_data_sent)) * time.Millisecond
}
