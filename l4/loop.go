package l4

import (
	"context"
	"errors"
	"net/netip"

	"github.com/panjf2000/gnet/v2"
)

// In-loop serving. A plaintext HTTP listener with ListenerConfig.Loop set
// keeps its connections on the gnet event loops instead of handing each one
// to a goroutine: once a connection's first request head has arrived, every
// read on it goes to the LoopServer, on the loop. A connection then costs
// no goroutine and no per-connection read buffer while idle, and the loop
// reads only when epoll says there is something to read.
//
// The LoopServer gets the connection as a *LoopConn (a gnet.Conn, so that
// L7 needs no import of l4) and may give it up to the Go path with Handoff,
// for what does not fit the loop (a request body to stream): the connection
// then goes to the listener's Listener like any handed-off one.

// LoopServer serves connections on the event loops. Its methods are called
// on the connection's loop, except LoopTick and LoopDrain.
type LoopServer interface {
	// LoopTraffic is called when c (a *LoopConn) has bytes in its inbound
	// buffer: first right after classification, with the first request
	// head there, then on every read. It must not block.
	LoopTraffic(c gnet.Conn) gnet.Action
	// LoopClosed is called when gnet closes c, unless c was handed off.
	LoopClosed(c gnet.Conn)
	// LoopTick is called from the engine's ticker goroutine, not a loop,
	// every tick (at most 250ms apart), for the server's own deadlines.
	LoopTick()
	// LoopDrain is called on Shutdown, before the engine stops: the server
	// finishes what is in flight (up to ctx) and closes its connections.
	LoopDrain(ctx context.Context) error
}

// LoopConn is a connection served on its event loop. Besides gnet.Conn it
// carries what l4 knows of it and a slot for the LoopServer's own state.
// Like a gnet.Conn, it may only be used on its loop (AsyncWrite, Wake and
// Close excepted).
type LoopConn struct {
	gnet.Conn
	g     *gconn
	state any
}

// State returns the LoopServer's state for the connection (nil at first).
func (c *LoopConn) State() any { return c.state }

// SetState stores the LoopServer's state for the connection.
func (c *LoopConn) SetState(s any) { c.state = s }

// ClientAddr is the client: the PROXY-declared source when a PROXY header
// was accepted, else the TCP peer.
func (c *LoopConn) ClientAddr() netip.AddrPort { return c.g.fb.client }

// PeerAddr is the TCP peer.
func (c *LoopConn) PeerAddr() netip.AddrPort { return c.g.fb.peer }

// ListenerName is the name of the listener that accepted the connection.
func (c *LoopConn) ListenerName() string { return c.g.fb.set.Name }

// CloseNow closes gnet's side of the connection at once; it must be called
// on the connection's loop. (gnet.Conn.Close only queues the close.)
func (c *LoopConn) CloseNow() error { return c.g.c.EventLoop().Close(c.g.c) }

// ErrOutputPending is returned by Handoff while gnet still holds output for
// the connection: handing the socket over then would reorder bytes.
var ErrOutputPending = errors.New("l4: connection has output pending")

// Handoff moves the connection off the loop to the Go path: the bytes in
// replay (an owned copy is made) are presented first, then the socket, to
// the listener's Listener, as for a connection handed off at
// classification. It must be called on the loop with no output pending; on
// success the connection's counts go with it and the caller must stop using
// c and let gnet close its side (return gnet.Close, or close it on the loop).
func (c *LoopConn) Handoff(replay []byte) error {
	g := c.g
	if g.done {
		return errors.New("l4: connection already handed off or closed")
	}
	if c.OutboundBuffered() > 0 {
		return ErrOutputPending
	}
	fd, err := c.Dup()
	if err != nil {
		g.fb.l.stats.rejected[RejectHandoffFailed].Add(1)
		return err
	}
	hd := newHandoff(&g.fb, append([]byte(nil), replay...))
	hd.fd = fd
	g.done = true
	if !g.fb.l.cl.offer(hd) {
		g.fb.l.stats.rejected[RejectBacklog].Add(1)
		hd.discard()
	}
	return nil
}
