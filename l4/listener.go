package l4

import (
	"net"
	"sync"
	"sync/atomic"
)

// connListener is the net.Listener an HTTP or TLS listener delivers through:
// event loops (or accept=go goroutines) offer classified connections, and
// Accept, running on the L7 server's accept goroutine, adopts the descriptor
// into a *net.TCPConn, wraps it in a Conn and, for TLS, in Terminate. Doing
// the adoption there keeps its ~10 us of syscalls off the event loops.
//
// It is safe for concurrent use. Close is idempotent; connections still
// queued are closed.
type connListener struct {
	l        *listener
	ch       chan *handoff
	closed   chan struct{}
	once     sync.Once
	mu       sync.RWMutex // held shared by senders; exclusively by Close to fence them off
	isClosed bool
	spilling atomic.Int32
	maxSpill int32
	ready    chan struct{} // closed by Start once direct is known
	direct   net.Listener  // accept=go without classification: accept straight from here
}

func newConnListener(l *listener, queue int) *connListener {
	return &connListener{
		l:        l,
		ch:       make(chan *handoff, queue),
		closed:   make(chan struct{}),
		ready:    make(chan struct{}),
		maxSpill: int32(queue),
	}
}

// offer queues h without blocking. When the channel is full, h waits in a
// goroutine of its own, up to maxSpill of them: they are bounded, each holds
// a counted connection, and a full channel means the L7 accept goroutine is
// momentarily behind, not stuck (fasthttp's accept loop never blocks on
// workers). Past that the connection is refused (RejectBacklog) rather than
// letting the event loop wait. It reports whether h was taken; if not, the
// caller still owns h.
func (cl *connListener) offer(h *handoff) bool {
	cl.mu.RLock()
	if cl.isClosed {
		cl.mu.RUnlock()
		return false
	}
	select {
	case cl.ch <- h:
		cl.mu.RUnlock()
		return true
	default:
	}
	cl.mu.RUnlock()
	if cl.spilling.Add(1) > cl.maxSpill {
		cl.spilling.Add(-1)
		return false
	}
	cl.l.stats.spilled.Add(1)
	go cl.send(h, true)
	return true
}

// send queues h, waiting for room or for Close. It is used by goroutines
// (spilled offers and accept=go classifiers), never by event loops.
func (cl *connListener) send(h *handoff, spilled bool) bool {
	if spilled {
		defer cl.spilling.Add(-1)
	}
	cl.mu.RLock()
	defer cl.mu.RUnlock()
	if !cl.isClosed {
		select {
		case cl.ch <- h:
			return true
		case <-cl.closed:
		}
	}
	if spilled {
		cl.l.stats.rejected[RejectShutdown].Add(1)
		h.discard()
	}
	return false
}

// Accept returns the next delivered connection. Called before Start, it
// waits for Start.
func (cl *connListener) Accept() (net.Conn, error) {
	select {
	case <-cl.ready:
	case <-cl.closed:
		return nil, net.ErrClosed
	}
	if cl.direct != nil {
		return cl.l.acceptDirect(cl.direct)
	}
	for {
		select {
		case h := <-cl.ch:
			c, err := cl.l.adopt(h)
			if err != nil {
				continue // logged and counted by adopt; one bad descriptor must not stop Serve
			}
			return c, nil
		case <-cl.closed:
			return nil, net.ErrClosed
		}
	}
}

// Close stops Accept and closes every connection still queued.
func (cl *connListener) Close() error {
	cl.once.Do(func() {
		close(cl.closed) // wakes senders blocked in send
		cl.mu.Lock()     // waits for them to leave; later senders see isClosed
		cl.isClosed = true
		cl.mu.Unlock()
		if cl.direct != nil {
			cl.direct.Close()
		}
		for {
			select {
			case h := <-cl.ch:
				cl.l.stats.rejected[RejectShutdown].Add(1)
				h.discard()
			default:
				return
			}
		}
	})
	return nil
}

// Addr returns the listening address.
func (cl *connListener) Addr() net.Addr { return cl.l.addr() }
