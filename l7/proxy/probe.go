package proxy

import (
	"net"
	"syscall"
	"unsafe"
)

// maxSilentChecks bounds the pooled connections one exchange discards for
// having spoken out of turn before it uses what the pool gives it.
const maxSilentChecks = 8

// probedConn is an upstream connection that can tell, without blocking or
// consuming anything, whether its peer sent bytes or closed while the
// connection sat idle in the pool. nginx's upstream keepalive closes such a
// connection when its read event fires; a pooled Go connection has no
// reader while idle, so the edge asks the socket before reusing it.
type probedConn struct {
	net.Conn
	rc    syscall.RawConn // nil when the connection is not a socket
	probe func(fd uintptr) bool
	state int // what probe saw: probeSilent, probeData, probeClosed
	b     [1]byte
}

const (
	probeSilent = iota
	probeData
	probeClosed
)

func newProbedConn(c net.Conn) *probedConn {
	pc := &probedConn{Conn: c}
	if sc, ok := c.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			pc.rc = rc
		}
	}
	pc.probe = func(fd uintptr) bool {
		// recv(MSG_PEEK|MSG_DONTWAIT): one byte looked at, none taken.
		n, _, errno := syscall.Syscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&pc.b[0])), 1,
			syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
		switch {
		case errno == syscall.EAGAIN || errno == syscall.EINTR:
			pc.state = probeSilent
		case errno != 0 || n == 0:
			pc.state = probeClosed
		default:
			pc.state = probeData
		}
		return true // never wait for readiness
	}
	return pc
}

// silent reports whether nothing arrived on the connection and the peer has
// not closed it. A connection that cannot be probed counts as silent.
func (c *probedConn) silent() bool {
	if c.rc == nil {
		return true
	}
	c.state = probeSilent
	if err := c.rc.Read(c.probe); err != nil {
		return false
	}
	return c.state == probeSilent
}
