package l4

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// startGo listens with the Go runtime (Config.Accept = "go"). Listeners that
// need no first bytes are accepted directly by Listener's Accept, as a plain
// fasthttp server would; the others get an accept goroutine and a goroutine
// per connection that reads the first bytes with a deadline.
func (l *listener) startGo() error {
	set := l.set.Load()
	ln, err := listenTCP(set.Address, l.srv.cfg.ReusePort)
	if err != nil {
		return err
	}
	l.bound.Store(ln.Addr().(*net.TCPAddr))
	if !set.needsGoClassify() {
		l.cl.direct = ln
		return nil
	}
	l.goLn = ln
	l.goDone = make(chan struct{})
	go l.acceptLoop(ln)
	return nil
}

// listenTCP listens on address with Go's defaults (SO_REUSEADDR), and
// SO_REUSEPORT when reusePort.
func listenTCP(address string, reusePort bool) (net.Listener, error) {
	lc := net.ListenConfig{}
	if reusePort {
		lc.Control = func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
			})
			return errors.Join(err, serr)
		}
	}
	return lc.Listen(context.Background(), "tcp", address)
}

// acceptNext accepts one TCP connection, backing off on errors such as
// EMFILE as net/http does; it returns net.ErrClosed once ln is closed.
func acceptNext(ln net.Listener, srv *Server) (*net.TCPConn, error) {
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err == nil {
			return c.(*net.TCPConn), nil
		}
		if errors.Is(err, net.ErrClosed) {
			return nil, net.ErrClosed
		}
		delay = min(max(2*delay, 5*time.Millisecond), time.Second)
		srv.logf("l4: accept on %v: %v; retrying in %v", ln.Addr(), err, delay)
		time.Sleep(delay)
	}
}

// acceptDirect serves Accept for a listener without classification.
func (l *listener) acceptDirect(ln net.Listener) (net.Conn, error) {
	for {
		tc, err := acceptNext(ln, l.srv)
		if err != nil {
			return nil, err
		}
		l.stats.accepted.Add(1)
		set := l.set.Load()
		peer := addrPortOf(tc.RemoteAddr())
		s, r, ok := l.admit(set, peer.Addr(), false)
		if !ok {
			l.stats.rejected[r].Add(1)
			tc.Close()
			continue
		}
		h := &handoff{l: l, set: set, slot: s, fd: -1, tcp: tc, peer: peer, client: peer}
		if c, err := l.adopt(h); err == nil {
			return c, nil
		}
	}
}

func (l *listener) acceptLoop(ln net.Listener) {
	defer close(l.goDone)
	for {
		tc, err := acceptNext(ln, l.srv)
		if err != nil {
			return
		}
		l.stats.accepted.Add(1)
		if l.srv.stopping.Load() {
			l.stats.rejected[RejectShutdown].Add(1)
			tc.Close()
			continue
		}
		set := l.set.Load()
		peer := addrPortOf(tc.RemoteAddr())
		trusted := set.ProxyProtocol && set.trusts(peer.Addr())
		s, r, ok := l.admit(set, peer.Addr(), trusted)
		if !ok {
			l.stats.rejected[r].Add(1)
			tc.Close()
			continue
		}
		go l.classifyGo(tc, set, peer, s)
	}
}

// classifyGo reads a connection's first bytes with blocking reads under the
// handshake deadline, then delivers or relays it.
func (l *listener) classifyGo(tc *net.TCPConn, set *settings, peer netip.AddrPort, s slot) {
	var fb firstBytes
	fb.init(l, set, peer, s)
	var scratch, buf []byte
	v := fb.classify(nil, &scratch)
	if v == needMore {
		tc.SetReadDeadline(time.Now().Add(set.HandshakeTimeout))
		buf = make([]byte, 0, 2048)
		for v == needMore {
			if len(buf) >= fb.limit() {
				v = fb.fail(RejectHelloTooLarge)
				break
			}
			if len(buf) == cap(buf) {
				buf = append(buf, 0)[:len(buf)]
			}
			n, err := tc.Read(buf[len(buf):cap(buf)])
			if n > 0 {
				buf = buf[:len(buf)+n]
				v = fb.classify(buf, &scratch)
				continue
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				v = fb.fail(RejectHandshakeTimeout)
			} else {
				tc.Close() // the client went away before deciding; not a refusal
				fb.slot.release()
				return
			}
		}
		tc.SetReadDeadline(time.Time{})
	}
	if v == reject {
		l.stats.rejected[fb.reason].Add(1)
		tc.Close()
		fb.slot.release()
		return
	}
	h := newHandoff(&fb, buf[min(fb.skip, len(buf)):])
	h.tcp = tc
	if v == relay {
		l.srv.runRelay(h) // already on a goroutine of its own
		return
	}
	if !l.cl.send(h, false) {
		l.stats.rejected[RejectShutdown].Add(1)
		h.discard()
	}
}
