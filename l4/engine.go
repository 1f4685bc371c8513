package l4

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"
)

// Each listener runs its own gnet engine. gnet reports a connection's
// listener only as the configured address (port 0 included), so one engine
// for several listeners could not tell two "127.0.0.1:0" listeners apart
// without a getsockname per connection; an engine per listener also keeps a
// flood on one listener off the others' loops. The cost is EventLoops
// goroutines (each parked in epoll_wait) per listener.

// gnetHandler is the gnet.EventHandler of one listener. Its callbacks run on
// the engine's event loops and never block: no dials, no TLS, no channel
// sends that can wait.
type gnetHandler struct {
	gnet.BuiltinEventEngine
	l      *listener
	booted chan struct{}
	eng    gnet.Engine

	mu    sync.Mutex                   // serialises additions to loops
	loops atomic.Pointer[[]*loopState] // copy-on-write; read on every OnOpen
}

// loopState is per event loop: the connections still being classified, in
// arrival order (hence deadline order, the handshake timeout being
// per-listener), and reassembly scratch for fragmented ClientHellos. All but
// pending are touched only on the loop.
type loopState struct {
	h          *gnetHandler
	el         gnet.EventLoop
	head, tail *gconn
	pending    atomic.Int32 // read by OnTick, which runs on its own goroutine
	scratch    []byte
	sweep      gnet.Runnable
}

// gconn is the state of one connection on its loop.
type gconn struct {
	c          gnet.Conn
	ls         *loopState
	fb         firstBytes
	acc        []byte // owned copy of what arrived so far, once one read was not enough
	prev, next *gconn
	deadline   int64 // server-relative monotonic nanoseconds
	linked     bool
	done       bool      // handed off or already released: OnClose must do nothing
	loop       *LoopConn // served on the loop (ListenerConfig.Loop), once classified
}

// loopFor returns the state of event loop el, creating it on first use.
func (h *gnetHandler) loopFor(el gnet.EventLoop) *loopState {
	if p := h.loops.Load(); p != nil {
		for _, ls := range *p {
			if ls.el == el {
				return ls
			}
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	var cur []*loopState
	if p := h.loops.Load(); p != nil {
		cur = *p
		for _, ls := range cur {
			if ls.el == el {
				return ls
			}
		}
	}
	ls := &loopState{h: h, el: el}
	ls.sweep = gnet.RunnableFunc(func(context.Context) error {
		ls.sweepExpired(h.l.srv.monotonic())
		return nil // an error here would stop the loop
	})
	next := append(append(make([]*loopState, 0, len(cur)+1), cur...), ls)
	h.loops.Store(&next)
	return ls
}

func (ls *loopState) push(g *gconn, deadline int64) {
	g.deadline, g.linked = deadline, true
	g.prev, g.next = ls.tail, nil
	if ls.tail != nil {
		ls.tail.next = g
	} else {
		ls.head = g
	}
	ls.tail = g
	ls.pending.Add(1)
}

func (ls *loopState) unlink(g *gconn) {
	if !g.linked {
		return
	}
	if g.prev != nil {
		g.prev.next = g.next
	} else {
		ls.head = g.next
	}
	if g.next != nil {
		g.next.prev = g.prev
	} else {
		ls.tail = g.prev
	}
	g.prev, g.next, g.linked = nil, nil, false
	ls.pending.Add(-1)
}

// sweepExpired closes the connections whose handshake deadline is at or
// before now. It runs on the loop (posted by OnTick through Execute).
func (ls *loopState) sweepExpired(now int64) {
	l := ls.h.l
	for g := ls.head; g != nil && g.deadline <= now; g = ls.head {
		ls.unlink(g)
		g.done = true
		g.fb.slot.release()
		l.stats.rejected[RejectHandshakeTimeout].Add(1)
		_ = ls.el.Close(g.c) // synchronous on this loop; OnClose sees done
	}
}

// OnBoot records the engine and the bound address (which differs from the
// configured one for port 0).
func (h *gnetHandler) OnBoot(eng gnet.Engine) gnet.Action {
	select {
	case <-h.l.gnetStop:
		return gnet.Shutdown // stopped while a restart was starting
	default:
	}
	h.eng = eng
	if fd, err := eng.Dup(); err == nil {
		if sa, err := unix.Getsockname(fd); err == nil {
			h.l.bound.Store(sockaddrToTCP(sa))
		}
		unix.Close(fd)
	}
	close(h.booted)
	return gnet.None
}

func sockaddrToTCP(sa unix.Sockaddr) *net.TCPAddr {
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return net.TCPAddrFromAddrPort(netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port)))
	case *unix.SockaddrInet6:
		return net.TCPAddrFromAddrPort(netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), uint16(sa.Port)))
	}
	return &net.TCPAddr{}
}

// addrPortOf converts a TCP net.Addr without allocating.
func addrPortOf(a net.Addr) netip.AddrPort {
	if ta, ok := a.(*net.TCPAddr); ok {
		ap := ta.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	return netip.AddrPort{}
}

// OnOpen enforces the connection limits before anything else is spent on the
// connection, then classifies (a relay listener may decide with no bytes).
func (h *gnetHandler) OnOpen(c gnet.Conn) ([]byte, gnet.Action) {
	l := h.l
	l.stats.accepted.Add(1)
	if l.srv.stopping.Load() {
		l.stats.rejected[RejectShutdown].Add(1)
		return nil, gnet.Close
	}
	set := l.set.Load()
	peer := addrPortOf(c.RemoteAddr())
	trusted := set.ProxyProtocol && set.trusts(peer.Addr())
	s, r, ok := l.admit(set, peer.Addr(), trusted)
	if !ok {
		l.stats.rejected[r].Add(1)
		return nil, gnet.Close
	}
	ls := h.loopFor(c.EventLoop())
	g := &gconn{c: c, ls: ls}
	g.fb.init(l, set, peer, s)
	c.SetContext(g)
	v := g.fb.classify(nil, &ls.scratch)
	if v == needMore {
		ls.push(g, l.srv.monotonic()+int64(set.HandshakeTimeout))
		return nil, gnet.None
	}
	return nil, h.finish(g, v, nil)
}

// OnTraffic accumulates the first bytes until classify decides.
func (h *gnetHandler) OnTraffic(c gnet.Conn) gnet.Action {
	g, _ := c.Context().(*gconn)
	if g == nil || g.done {
		return gnet.Close
	}
	if g.loop != nil {
		return g.fb.set.Loop.LoopTraffic(g.loop)
	}
	if g.fb.set.Loop != nil {
		return h.classifyInPlace(g)
	}
	buf, _ := c.Next(-1) // everything gnet holds; valid only during this callback
	data := buf
	if g.acc != nil {
		g.acc = append(g.acc, buf...)
		data = g.acc
	}
	v := g.fb.classify(data, &g.ls.scratch)
	if v == needMore {
		if len(data) >= g.fb.limit() {
			v = g.fb.fail(RejectHelloTooLarge)
		} else {
			if g.acc == nil {
				g.acc = append(make([]byte, 0, max(2*len(buf), 256)), buf...)
			}
			return gnet.None
		}
	}
	return h.finish(g, v, data)
}

// classifyInPlace classifies a connection of an in-loop listener: the bytes
// stay in gnet's inbound buffer (Peek), where the LoopServer reads them once
// the verdict is in, so nothing is copied or accumulated here.
func (h *gnetHandler) classifyInPlace(g *gconn) gnet.Action {
	data, _ := g.c.Peek(-1)
	v := g.fb.classify(data, &g.ls.scratch)
	switch v {
	case needMore:
		if len(data) >= g.fb.limit() {
			h.l.stats.rejected[RejectHelloTooLarge].Add(1)
			return gnet.Close
		}
		return gnet.None
	case reject:
		h.l.stats.rejected[g.fb.reason].Add(1)
		return gnet.Close
	}
	// deliver: the connection stays on the loop, without the PROXY header.
	if g.fb.skip > 0 {
		_, _ = g.c.Discard(g.fb.skip)
	}
	g.ls.unlink(g)
	g.loop = &LoopConn{Conn: g.c, g: g}
	h.l.stats.delivered.Add(1)
	return g.fb.set.Loop.LoopTraffic(g.loop)
}

// finish acts on a verdict. For deliver and relay it duplicates the
// descriptor and tells gnet to close its own: gnet then removes the fd from
// epoll and closes it without shutdown(2), so the socket lives on in the
// duplicate, which the receiving goroutine adopts into Go's poller.
func (h *gnetHandler) finish(g *gconn, v verdict, data []byte) gnet.Action {
	l := h.l
	if v == reject {
		l.stats.rejected[g.fb.reason].Add(1)
		return gnet.Close // OnClose releases the slot
	}
	payload := data[min(g.fb.skip, len(data)):]
	if g.acc == nil {
		payload = append([]byte(nil), payload...) // data is gnet's loop buffer
	}
	fd, err := g.c.Dup()
	if err != nil {
		l.srv.logf("l4: listener %q: dup: %v", g.fb.set.Name, err)
		l.stats.rejected[RejectHandoffFailed].Add(1)
		return gnet.Close
	}
	hd := newHandoff(&g.fb, payload)
	hd.fd = fd
	g.acc = nil
	g.done = true
	g.ls.unlink(g)
	if v == deliver {
		if !l.cl.offer(hd) {
			l.stats.rejected[RejectBacklog].Add(1)
			hd.discard()
		}
	} else {
		l.srv.startRelay(hd)
	}
	return gnet.Close
}

// OnClose releases a connection gnet closed before it was handed off.
func (h *gnetHandler) OnClose(c gnet.Conn, _ error) gnet.Action {
	g, _ := c.Context().(*gconn)
	if g == nil || g.done {
		return gnet.None
	}
	g.done = true
	g.ls.unlink(g)
	if g.loop != nil {
		g.fb.set.Loop.LoopClosed(g.loop)
	}
	g.fb.slot.release()
	return gnet.None
}

// OnTick runs on gnet's ticker goroutine, not on a loop, so it only posts a
// sweep to each loop that has connections waiting.
func (h *gnetHandler) OnTick() (time.Duration, gnet.Action) {
	if p := h.loops.Load(); p != nil {
		for _, ls := range *p {
			if ls.pending.Load() > 0 {
				_ = ls.el.Execute(context.Background(), ls.sweep)
			}
		}
	}
	set := h.l.set.Load()
	if set.Loop != nil {
		set.Loop.LoopTick()
	}
	return tickInterval(set.HandshakeTimeout), gnet.None
}

// tickInterval is how often handshake deadlines are swept: an eighth of the
// timeout, so connections close within ~12% of it, between 5ms and 250ms.
func tickInterval(timeout time.Duration) time.Duration {
	return min(max(timeout/8, 5*time.Millisecond), 250*time.Millisecond)
}

// gnetLogger routes gnet's warnings and errors to Config.Logf.
type gnetLogger struct{ srv *Server }

func (gnetLogger) Debugf(string, ...any)          {}
func (gnetLogger) Infof(string, ...any)           {}
func (g gnetLogger) Warnf(f string, args ...any)  { g.srv.logf("l4: gnet: "+f, args...) }
func (g gnetLogger) Errorf(f string, args ...any) { g.srv.logf("l4: gnet: "+f, args...) }
func (g gnetLogger) Fatalf(f string, args ...any) { g.srv.logf("l4: gnet: "+f, args...) }

// startGnet runs the listener's engine and waits for it to boot.
//
// gnet stops a whole engine when accept(2) fails with anything but
// EAGAIN/EINTR/ECONNRESET/ECONNABORTED, EMFILE included: one moment out of
// descriptors would end the listener for good. So a supervisor goroutine runs
// the engine again, on the address it had bound, after a backoff (100ms
// doubling to 5s), until stopGnet. Connections already handed off are Go's
// and unaffected; those still being classified are closed with the engine.
func (l *listener) startGnet() error {
	cfg := &l.srv.cfg
	loops := cfg.EventLoops
	if loops <= 0 {
		loops = runtime.GOMAXPROCS(0)
	}
	opts := []gnet.Option{
		gnet.WithMulticore(true),
		gnet.WithNumEventLoop(loops),
		gnet.WithReuseAddr(true),
		gnet.WithReusePort(cfg.ReusePort),
		gnet.WithTicker(true),
		gnet.WithTCPNoDelay(gnet.TCPNoDelay), // inherited by accepted sockets, as Go's default
		// TCP keep-alive as Go's net.ListenConfig sets it by default (15s idle
		// and interval, 9 probes), inherited from the listening socket on
		// Linux, so dead peers of long relays are noticed.
		gnet.WithTCPKeepAlive(15 * time.Second),
		gnet.WithTCPKeepInterval(15 * time.Second),
		gnet.WithTCPKeepCount(9),
		gnet.WithLogger(gnetLogger{l.srv}),
	}
	l.runDone = make(chan struct{})
	l.gnetStop = make(chan struct{})
	first := &gnetHandler{l: l, booted: make(chan struct{})}
	l.gh.Store(first)
	firstErr := make(chan error, 1)
	go l.superviseGnet(first, opts, firstErr)
	select {
	case <-first.booted:
		return nil
	case err := <-firstErr:
		set := l.set.Load()
		if perr := probeListen(set.Address, cfg.ReusePort); perr != nil {
			// gnet v2.9.7 loses a failed bind(2): with TCP keep-alive set
			// it goes on to setsockopt the socket it has just closed and
			// returns that EBADF instead. The same bind from net says why.
			err = perr
		}
		return fmt.Errorf("l4: listener %q: gnet on %s: %w", set.Name, set.Address, err)
	}
}

// probeListen binds address the way gnet would (SO_REUSEADDR, and
// SO_REUSEPORT when reusePort) and closes it at once; it returns the
// system's error (e.g. "bind: address already in use"), or nil.
func probeListen(address string, reusePort bool) error {
	ln, err := listenTCP(address, reusePort)
	if err != nil {
		var oe *net.OpError
		if errors.As(err, &oe) && oe.Err != nil {
			return oe.Err
		}
		return err
	}
	ln.Close()
	return nil
}

func (l *listener) superviseGnet(h *gnetHandler, opts []gnet.Option, firstErr chan<- error) {
	defer close(l.runDone)
	name := l.set.Load().Name
	addr := "tcp://" + l.set.Load().Address
	var delay time.Duration
	for {
		err := gnet.Run(h, addr, opts...)
		select {
		case <-h.booted:
		default:
			if firstErr != nil { // never came up: Start reports it
				if err == nil {
					err = errors.New("engine stopped before boot")
				}
				firstErr <- err
				return
			}
		}
		firstErr = nil
		select {
		case <-l.gnetStop:
			return
		default:
		}
		if a := l.bound.Load(); a != nil {
			addr = "tcp://" + a.String() // keep the port a ":0" listener got
		}
		delay = min(max(2*delay, 100*time.Millisecond), 5*time.Second)
		l.stats.engineRestarts.Add(1)
		l.srv.logf("l4: listener %q: gnet engine stopped (%v); restarting in %v", name, err, delay)
		select {
		case <-l.gnetStop:
			return
		case <-time.After(delay):
		}
		h = &gnetHandler{l: l, booted: make(chan struct{})}
		l.gh.Store(h)
	}
}

// stopGnet stops the engine (its loops close the connections still being
// classified) and waits for it up to ctx.
func (l *listener) stopGnet(ctx context.Context) error {
	if l.gnetStop == nil {
		return nil
	}
	l.gnetStopOnce.Do(func() { close(l.gnetStop) })
	// A handler that has not booted yet sees gnetStop in OnBoot and
	// declines to start; one that has is stopped here. Engine.Stop polls
	// every 500ms for completion; with a cancelled context it only triggers
	// the shutdown, and runDone tells when it is over.
	select {
	case <-l.gh.Load().booted:
		trigger, cancel := context.WithCancel(context.Background())
		cancel()
		_ = l.gh.Load().eng.Stop(trigger)
	case <-l.runDone:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-l.runDone:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
