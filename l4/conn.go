package l4

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// ConnInfo is what l4 learned about a delivered connection. The conns that
// Server.Listener returns implement it; use InfoOf to find it beneath TLS.
type ConnInfo interface {
	// Listener is the name of the listener that accepted the connection.
	Listener() string
	// SNI is the ClientHello's server name ("" for plaintext or no SNI).
	SNI() string
	// ALPN is the ClientHello's protocol offer, in the client's order.
	ALPN() []string
	// ClientAddr is the client: the PROXY-declared source when a PROXY
	// header was accepted, else the TCP peer. RemoteAddr returns the same.
	ClientAddr() netip.AddrPort
	// PeerAddr is the TCP peer (the load balancer for PROXY connections).
	PeerAddr() netip.AddrPort
	// Proxied reports whether a PROXY header with addresses was accepted.
	Proxied() bool
}

// InfoOf returns the ConnInfo of c, unwrapping conns that expose the conn
// beneath them with NetConn (as *tls.Conn does).
func InfoOf(c net.Conn) (ConnInfo, bool) {
	for range 8 {
		if ci, ok := c.(ConnInfo); ok {
			return ci, true
		}
		u, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			return nil, false
		}
		c = u.NetConn()
	}
	return nil, false
}

// handoff carries a classified connection from whoever accepted it to the
// goroutine that serves it. Exactly one of fd and tcp is set.
type handoff struct {
	l       *listener
	set     *settings
	slot    slot
	fd      int          // a descriptor duplicated from gnet, or -1
	tcp     *net.TCPConn // a conn accepted by Go
	peek    []byte       // bytes read after the PROXY header, replayed first; owned
	peer    netip.AddrPort
	client  netip.AddrPort
	dest    netip.AddrPort
	proxied bool
	sni     string
	alpn    []byte // owned copy of the ALPN list
	pool    RelayPool
}

// newHandoff snapshots fb; peek must already be owned by the caller.
func newHandoff(fb *firstBytes, peek []byte) *handoff {
	h := &handoff{
		l: fb.l, set: fb.set, slot: fb.slot, fd: -1, peek: peek,
		peer: fb.peer, client: fb.client, dest: fb.dest, proxied: fb.proxied,
		pool: fb.pool,
	}
	if len(fb.sni) > 0 {
		h.sni = strings.ToLower(string(fb.sni))
	}
	if len(fb.alpn) > 0 {
		h.alpn = append([]byte(nil), fb.alpn...)
	}
	return h
}

// errNotTCP is returned when a duplicated descriptor is not a TCP socket.
var errNotTCP = errors.New("l4: handed-off descriptor is not a TCP socket")

// open turns the hand-off into a *net.TCPConn (see adoptFD).
func (h *handoff) open() (*net.TCPConn, error) {
	if h.tcp != nil {
		return h.tcp, nil
	}
	fd := h.fd
	h.fd = -1
	tc, err := adoptFD(fd)
	if err != nil {
		return nil, err
	}
	h.tcp = tc
	return tc, nil
}

// adoptFD makes a *net.TCPConn of a socket descriptor duplicated from gnet,
// consuming fd. net.FileConn is the only way in: it duplicates the
// descriptor again and registers the copy with Go's poller.
//
// O_NONBLOCK is cleared first, because os.NewFile registers a non-blocking
// descriptor with the poller too, only for File.Close to remove it again:
// that epoll_ctl pair cost about 2.4 of 15.5 CPU microseconds per adoption
// (BenchmarkAdoptFD, cpu-us/op). net.FileConn sets O_NONBLOCK back on the
// shared file description before anything reads it. Nothing else does I/O on it in
// between: gnet does none on a connection after its callback returned
// gnet.Close (it closes without writing, having no output queued).
func adoptFD(fd int) (*net.TCPConn, error) {
	if err := unix.SetNonblock(fd, false); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("l4: adopting descriptor: %w", err)
	}
	f := os.NewFile(uintptr(fd), "l4")
	c, err := net.FileConn(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("l4: adopting descriptor: %w", err)
	}
	tc, ok := c.(*net.TCPConn)
	if !ok {
		c.Close()
		return nil, errNotTCP
	}
	return tc, nil
}

// discard closes whatever the hand-off holds and releases its counts.
func (h *handoff) discard() {
	if h.tcp != nil {
		h.tcp.Close()
	} else if h.fd >= 0 {
		unix.Close(h.fd)
		h.fd = -1
	}
	h.slot.release()
}

// Conn is a connection delivered to L7: the accepted TCP connection, which
// first replays the bytes l4 read to classify it. It implements ConnInfo.
// Read and Write follow net.Conn's concurrency rules; Close is idempotent and
// releases the connection's listener and per-IP counts exactly once.
type Conn struct {
	tcp    *net.TCPConn
	prefix []byte
	remote net.Addr
	closed atomic.Bool
	h      *handoff
}

func newConn(h *handoff, tc *net.TCPConn) *Conn {
	c := &Conn{tcp: tc, prefix: h.peek, h: h}
	h.peek = nil
	if h.proxied {
		c.remote = net.TCPAddrFromAddrPort(h.client)
	} else {
		c.remote = tc.RemoteAddr()
	}
	return c
}

// Read returns the replayed bytes first, then reads the socket.
func (c *Conn) Read(p []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		if len(c.prefix) == 0 {
			c.prefix = nil
		}
		return n, nil
	}
	return c.tcp.Read(p)
}

// Peeked returns the classified bytes not yet replayed by Read: before the
// first Read, everything l4 read to classify the connection (for a plaintext
// HTTP listener, the first request head at least). The caller must not
// modify them.
func (c *Conn) Peeked() []byte { return c.prefix }

// Write writes to the socket.
func (c *Conn) Write(p []byte) (int, error) { return c.tcp.Write(p) }

// ReadFrom lets io.Copy into the connection use sendfile/splice.
func (c *Conn) ReadFrom(r io.Reader) (int64, error) { return c.tcp.ReadFrom(r) }

// Close closes the socket and releases the connection's counts. When the
// client has sent bytes nobody read (a request body the edge answered
// without reading, typically an error to an upload), the close lingers, as
// nginx's lingering_close does: closing a socket with unread data sends a
// reset, which can destroy the response still in flight to the client. So
// the write side is shut (FIN after the response) and what the client still
// sends is read and dropped, for at most lingerTime and lingerBytes, in the
// background (RFC 9112 §9.6).
func (c *Conn) Close() error {
	if !c.closed.CompareAndSwap(false, true) {
		return nil
	}
	if c.unreadPending() {
		if srv := c.h.l.srv; srv.lingering.Add(1) <= maxLingering {
			go c.lingerClose(srv)
			return nil
		} else {
			srv.lingering.Add(-1)
		}
	}
	err := c.tcp.Close()
	c.h.slot.release()
	return err
}

// Lingering close bounds: per connection, and connections at once (beyond
// which a close is immediate).
// A lingering close ends when the client closes its side, or after
// lingerTime, or after lingerBytes (then with a reset): closing while the
// client still sends would discard the unsent part of the answer, so the
// byte bound is generous and the time bound does most of the work.
const (
	lingerTime   = 5 * time.Second
	lingerBytes  = 64 << 20
	maxLingering = 1024
)

// unreadPending reports whether the socket's receive buffer holds bytes.
func (c *Conn) unreadPending() bool {
	raw, err := c.tcp.SyscallConn()
	if err != nil {
		return false
	}
	pending := false
	raw.Control(func(fd uintptr) { //nolint:errcheck // on error nothing is pending
		n, err := unix.IoctlGetInt(int(fd), unix.SIOCINQ)
		pending = err == nil && n > 0
	})
	return pending
}

func (c *Conn) lingerClose(srv *Server) {
	defer srv.lingering.Add(-1)
	c.tcp.CloseWrite()                                //nolint:errcheck // the peer may be gone
	c.tcp.SetReadDeadline(time.Now().Add(lingerTime)) //nolint:errcheck
	io.CopyN(io.Discard, c.tcp, lingerBytes)          //nolint:errcheck // whatever the client still sends, dropped
	c.tcp.Close()
	c.h.slot.release()
}

// CloseWrite shuts down the sending side (half-close).
func (c *Conn) CloseWrite() error { return c.tcp.CloseWrite() }

// LocalAddr returns the socket's local address.
func (c *Conn) LocalAddr() net.Addr { return c.tcp.LocalAddr() }

// RemoteAddr returns the client address: the PROXY-declared one when a PROXY
// header was accepted, so L7 sees the real client.
func (c *Conn) RemoteAddr() net.Addr { return c.remote }

// SetDeadline implements net.Conn.
func (c *Conn) SetDeadline(t time.Time) error { return c.tcp.SetDeadline(t) }

// SetReadDeadline implements net.Conn.
func (c *Conn) SetReadDeadline(t time.Time) error { return c.tcp.SetReadDeadline(t) }

// SetWriteDeadline implements net.Conn.
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.tcp.SetWriteDeadline(t) }

// TCPConn returns the underlying socket. Bytes still to be replayed are not
// in it; read through the Conn.
func (c *Conn) TCPConn() *net.TCPConn { return c.tcp }

// Listener implements ConnInfo.
func (c *Conn) Listener() string { return c.h.set.Name }

// SNI implements ConnInfo.
func (c *Conn) SNI() string { return c.h.sni }

// ALPN implements ConnInfo.
func (c *Conn) ALPN() []string {
	var out []string
	for p, rest := NextALPN(c.h.alpn); p != nil; p, rest = NextALPN(rest) {
		out = append(out, string(p))
	}
	return out
}

// ClientAddr implements ConnInfo.
func (c *Conn) ClientAddr() netip.AddrPort { return c.h.client }

// PeerAddr implements ConnInfo.
func (c *Conn) PeerAddr() netip.AddrPort { return c.h.peer }

// Proxied implements ConnInfo.
func (c *Conn) Proxied() bool { return c.h.proxied }
