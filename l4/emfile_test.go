package l4

import (
	"bufio"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestGnetEngineSurvivesEMFILE guards against gnet stopping a whole engine
// when accept(2) fails with EMFILE: the listener must come back. It runs in
// a child process because it lowers RLIMIT_NOFILE.
func TestGnetEngineSurvivesEMFILE(t *testing.T) {
	if os.Getenv("L4_EMFILE_CHILD") != "1" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestGnetEngineSurvivesEMFILE$", "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(), "L4_EMFILE_CHILD=1")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--- PASS") {
			t.Fatalf("child: %v\n%s", err, out)
		}
		return
	}
	s := startServer(t, Config{EventLoops: 1, Listeners: []ListenerConfig{{Name: "web", Address: "127.0.0.1:0"}}})
	serveHTTP(t, s, "web")
	addr := s.Addr("web").String()

	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	saved := rl
	rl.Cur = 128
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	// Fill the descriptor table: every dial costs one descriptor here and one
	// more when the engine accepts it, until accept(2) or socket(2) fails.
	var conns []net.Conn
	for range 128 {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			break
		}
		conns = append(conns, c)
	}
	waitFor(t, "an engine restart", func() bool { return stats(s, "web").EngineRestarts > 0 })
	for _, c := range conns {
		c.Close()
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &saved); err != nil {
		t.Fatal(err)
	}
	// The listener is back on the same address and serves.
	waitFor(t, "the listener to serve again", func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return false
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
			return false
		}
		line, err := bufio.NewReader(c).ReadString('\n')
		return err == nil && strings.HasPrefix(line, "HTTP/1.1 200")
	})
}
