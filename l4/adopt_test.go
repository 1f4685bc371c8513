package l4

import (
	"io"
	"net"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// dupOf returns a non-blocking duplicate of c's descriptor, as gnet's Dup
// hands it over.
func dupOf(t testing.TB, c *net.TCPConn) int {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	fd := -1
	var derr error
	rc.Control(func(s uintptr) { fd, derr = unix.Dup(int(s)) })
	if derr != nil {
		t.Fatal(derr)
	}
	return fd
}

func tcpPair(t testing.TB) (client, server *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return c.(*net.TCPConn), s.(*net.TCPConn)
}

func TestAdoptFDLeavesSocketNonBlocking(t *testing.T) {
	client, server := tcpPair(t)
	tc, err := adoptFD(dupOf(t, server))
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	rc, _ := tc.SyscallConn()
	var flags int
	rc.Control(func(fd uintptr) { flags, _ = unix.FcntlInt(fd, unix.F_GETFL, 0) })
	if flags&unix.O_NONBLOCK == 0 {
		t.Fatal("adopted socket is blocking; Go's poller needs O_NONBLOCK")
	}
	// Deadlines work, so the conn is in Go's poller.
	io.WriteString(client, "x")
	var b [1]byte
	if _, err := io.ReadFull(tc, b[:]); err != nil || b[0] != 'x' {
		t.Fatalf("read %q, %v", b, err)
	}
}

// BenchmarkAdoptFD compares the adoption l4 does with the plain
// os.NewFile + net.FileConn on a non-blocking descriptor.
func BenchmarkAdoptFD(b *testing.B) {
	_, server := tcpPair(b)
	b.Run("blocking-first", func(b *testing.B) {
		b.ReportAllocs()
		defer reportCPU(b)()
		for b.Loop() {
			tc, err := adoptFD(dupOf(b, server))
			if err != nil {
				b.Fatal(err)
			}
			tc.Close()
		}
	})
	b.Run("plain-filecon", func(b *testing.B) {
		b.ReportAllocs()
		defer reportCPU(b)()
		for b.Loop() {
			f := os.NewFile(uintptr(dupOf(b, server)), "l4")
			c, err := net.FileConn(f)
			f.Close()
			if err != nil {
				b.Fatal(err)
			}
			c.Close()
		}
	})
}

// reportCPU adds the process CPU time per op to a benchmark's results; on a
// busy machine it is steadier than wall time. Use as defer reportCPU(b)().
func reportCPU(b *testing.B) func() {
	start := processCPU()
	return func() {
		b.ReportMetric(float64((processCPU()-start).Nanoseconds())/float64(b.N)/1e3, "cpu-us/op")
	}
}

func processCPU() time.Duration {
	var ru unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
