package l4

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Server accepts connections on every configured listener, enforces the
// connection limits, reads PROXY headers and the first bytes, then hands each
// connection on: to L7 through Listener(name), or to a raw relay.
//
// Its methods are safe for concurrent use. Lifecycle: New, Start, then
// Shutdown once; Listener and Addr may be used from Start on.
type Server struct {
	cfg       Config
	listeners []*listener
	byName    map[string]*listener
	pools     atomic.Pointer[poolBox]
	open      atomic.Int64 // connections over all listeners, for Config.MaxConns
	lingering atomic.Int64 // connections in a lingering close (see Conn.Close)
	epoch     time.Time
	relays    relaySet
	stopping  atomic.Bool

	lifecycle sync.Mutex
	started   bool
	stopped   bool
}

type poolBox struct{ ps PoolSource }

// listener is the runtime state of one ListenerConfig.
type listener struct {
	srv   *Server
	set   atomic.Pointer[settings]
	stats counters
	ips   ipTable
	cl    *connListener // HTTP and TLS listeners
	bound atomic.Pointer[net.TCPAddr]

	// gnet
	gh           atomic.Pointer[gnetHandler] // the engine running now
	runDone      chan struct{}               // closed when the supervisor has exited
	gnetStop     chan struct{}
	gnetStopOnce sync.Once

	// accept=go
	goLn   net.Listener
	goDone chan struct{}
}

// New validates cfg and builds a Server; nothing listens until Start.
// Configuration errors wrap ErrConfig and name the offending listener.
func New(cfg Config) (*Server, error) {
	switch cfg.Accept {
	case "":
		cfg.Accept = AcceptGnet
	case AcceptGnet, AcceptGo:
	default:
		return nil, fmt.Errorf("%w: accept %q (want %q or %q)", ErrConfig, cfg.Accept, AcceptGnet, AcceptGo)
	}
	if cfg.EventLoops < 0 || cfg.MaxConns < 0 || cfg.HandoffQueue < 0 || cfg.DialTimeout < 0 {
		return nil, fmt.Errorf("%w: negative event loops, max conns, hand-off queue or dial timeout", ErrConfig)
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	if cfg.HandoffQueue == 0 {
		cfg.HandoffQueue = DefaultHandoffQueue
	}
	s := &Server{cfg: cfg, byName: make(map[string]*listener, len(cfg.Listeners)), epoch: time.Now()}
	if cfg.Pools != nil {
		s.pools.Store(&poolBox{cfg.Pools})
	}
	for i, lc := range cfg.Listeners {
		set, err := newSettings(i, lc, cfg.Pools, cfg.ReusePort)
		if err != nil {
			return nil, err
		}
		if _, dup := s.byName[lc.Name]; dup {
			return nil, configErr(i, lc.Name, "duplicate name")
		}
		l := &listener{srv: s}
		l.set.Store(set)
		if lc.Kind != KindRelay {
			l.cl = newConnListener(l, cfg.HandoffQueue)
		}
		s.listeners = append(s.listeners, l)
		s.byName[lc.Name] = l
	}
	return s, nil
}

// Start binds every listener and starts accepting. On error nothing is left
// listening.
func (s *Server) Start() error {
	s.lifecycle.Lock()
	defer s.lifecycle.Unlock()
	if s.started {
		return errors.New("l4: server already started")
	}
	s.started = true
	for i, l := range s.listeners {
		var err error
		if s.cfg.Accept == AcceptGo {
			err = l.startGo()
		} else {
			err = l.startGnet()
		}
		if l.cl != nil {
			close(l.cl.ready) // after startGo has set direct
		}
		if err != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			for _, started := range s.listeners[:i] {
				started.stopAccepting(ctx)
			}
			cancel()
			return err
		}
	}
	return nil
}

func (l *listener) stopAccepting(ctx context.Context) error {
	if l.goLn != nil {
		l.goLn.Close()
		select {
		case <-l.goDone:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if l.cl != nil && l.cl.direct != nil {
		l.cl.direct.Close()
	}
	var drainErr error
	if lp := l.set.Load().Loop; lp != nil && l.gnetStop != nil {
		// New connections are refused (stopping); the loop server finishes
		// the requests in flight on its connections before the engine,
		// stopping, closes them.
		drainErr = lp.LoopDrain(ctx)
	}
	if err := l.stopGnet(ctx); err != nil {
		return err
	}
	return drainErr
}

// Shutdown stops accepting, closes connections still being classified or
// queued for L7, closes the Listener channels (so fasthttp's Serve returns),
// and waits for running relays to finish until ctx is done, when it closes
// them and returns ctx's error. Connections already delivered to L7 belong to
// L7 (shut its server down too).
func (s *Server) Shutdown(ctx context.Context) error {
	s.lifecycle.Lock()
	defer s.lifecycle.Unlock()
	if s.stopped {
		return nil
	}
	s.stopped = true
	s.stopping.Store(true)
	var firstErr error
	for _, l := range s.listeners {
		if err := l.stopAccepting(ctx); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	for _, l := range s.listeners {
		if l.cl != nil {
			l.cl.Close()
		}
	}
	select {
	case <-s.relays.stop():
	case <-ctx.Done():
		s.relays.closeAll()
		if firstErr == nil {
			firstErr = ctx.Err()
		}
	}
	return firstErr
}

// Listener returns the net.Listener through which the HTTP or TLS listener
// name delivers connections (run fasthttp.Server.Serve on it), or nil for a
// relay listener or an unknown name. Its conns implement ConnInfo (beneath
// the Terminate wrapper for TLS; see InfoOf). Closing it stops delivery and
// closes the connections still queued.
func (s *Server) Listener(name string) net.Listener {
	l := s.byName[name]
	if l == nil || l.cl == nil {
		return nil
	}
	return l.cl
}

// Addr returns the bound address of listener name (the real port when the
// configured one was 0), or nil before Start or for an unknown name.
func (s *Server) Addr(name string) net.Addr {
	if l := s.byName[name]; l != nil {
		return l.addr()
	}
	return nil
}

func (l *listener) addr() net.Addr {
	if a := l.bound.Load(); a != nil {
		return a
	}
	return nil
}

// SetPools replaces the source of relay pools; connections classified from
// now on use it. Relays already running keep the pool they started with.
func (s *Server) SetPools(ps PoolSource) {
	s.pools.Store(&poolBox{ps})
}

func (s *Server) poolSource() PoolSource {
	if b := s.pools.Load(); b != nil {
		return b.ps
	}
	return nil
}

// UpdateListener replaces the settings of the listener lc.Name (pass-through
// table, pool, PROXY trust, limits, timeouts, Terminate) without touching its
// socket; connections accepted from now on use them. Address and Kind cannot
// change (that needs a new Server), nor, under accept=go, whether the
// listener must read first bytes (PROXY, pass-through or relay).
func (s *Server) UpdateListener(lc ListenerConfig) error {
	l := s.byName[lc.Name]
	if l == nil {
		return fmt.Errorf("%w: unknown listener %q", ErrConfig, lc.Name)
	}
	old := l.set.Load()
	i := 0
	for ; s.listeners[i] != l; i++ {
	}
	set, err := newSettings(i, lc, s.poolSource(), s.cfg.ReusePort)
	if err != nil {
		return err
	}
	if set.Address != old.Address || set.Kind != old.Kind {
		return configErr(i, lc.Name, "address or kind changed (%s %s -> %s %s); restart the listener", old.Address, old.Kind, set.Address, set.Kind)
	}
	if s.cfg.Accept == AcceptGo && set.needsGoClassify() != old.needsGoClassify() {
		return configErr(i, lc.Name, "accept=go cannot switch between direct and classified accept on reload")
	}
	l.set.Store(set)
	return nil
}

// Stats appends a snapshot of every listener's counters to dst, in
// configuration order. Counters are read atomically one by one, not as a
// consistent set.
func (s *Server) Stats(dst []ListenerStats) []ListenerStats {
	for _, l := range s.listeners {
		set := l.set.Load()
		st := ListenerStats{Name: set.Name, Kind: set.Kind}
		l.stats.snapshot(&st)
		dst = append(dst, st)
	}
	return dst
}

// monotonic returns nanoseconds since the server was built, on the monotonic clock.
func (s *Server) monotonic() int64 { return int64(time.Since(s.epoch)) }

func (s *Server) logf(format string, args ...any) {
	if s.cfg.Logf != nil {
		s.cfg.Logf(format, args...)
	}
}

// adopt turns a queued hand-off into the conn L7 gets. It runs on the L7
// accept goroutine.
func (l *listener) adopt(h *handoff) (net.Conn, error) {
	tc, err := h.open()
	if err != nil {
		l.srv.logf("l4: listener %q: %v", h.set.Name, err)
		l.stats.rejected[RejectHandoffFailed].Add(1)
		h.discard()
		return nil, err
	}
	c := newConn(h, tc)
	l.stats.delivered.Add(1)
	if h.set.Kind == KindTLS {
		return h.set.Terminate(c), nil
	}
	return c, nil
}
