package main

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"example.com/edge/cmd/edge/config"
)

var demoStepRE = regexp.MustCompile(`^# (\d)\. `)

// demoStep returns the lines of the welcome's step n, from its "# n. ..."
// line up to the next step.
func demoStep(welcome string, n int) string {
	var b strings.Builder
	in := false
	for line := range strings.Lines(welcome) {
		trimmed := strings.TrimSpace(line)
		if m := demoStepRE.FindStringSubmatch(trimmed); m != nil {
			in = m[1] == string(rune('0'+n))
		}
		if in && strings.HasPrefix(trimmed, "Stop with") {
			break
		}
		if in {
			b.WriteString(line)
		}
	}
	return b.String()
}

// Audit: the demo's edge.yaml named admin 127.0.0.1:9901 whatever -admin
// said; step 3 promised a post-quantum key exchange that curl on OpenSSL
// 3.0 does not make; step 4's "forged" token was malformed, so it never
// reached the signature check.
func TestDemoFileAndPrintedLines(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(edgeBin, "demo", "-http", "127.0.0.1:0", "-https", "127.0.0.1:0", "-admin", "127.0.0.1:0", "-dir", dir, "-access-log", "off")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill() //nolint:errcheck
		cmd.Wait()         //nolint:errcheck
	})
	var mu sync.Mutex
	var welcome strings.Builder
	done := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		var once sync.Once
		for sc.Scan() { // to the end, so the demo never blocks writing
			mu.Lock()
			welcome.WriteString(sc.Text() + "\n")
			mu.Unlock()
			if strings.HasPrefix(sc.Text(), "Stop with Ctrl-C") {
				once.Do(func() { close(done) })
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("no welcome from edge demo:\n%s", stderr.String())
	}
	mu.Lock()
	out := welcome.String()
	mu.Unlock()

	cfg, err := os.ReadFile(filepath.Join(dir, "edge.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(cfg), "\nadmin: \"127.0.0.1:0\"\n") {
		t.Errorf("edge.yaml does not name the -admin given (127.0.0.1:0):\n%s", cfg)
	}
	// Listeners asked for port 0 are printed with the ports they bound.
	if strings.Contains(out, ":0 ") || strings.Contains(out, ":0/") || strings.Contains(out, ":0:") {
		t.Errorf("welcome prints a port 0:\n%s", out)
	}
	// The demo's running configuration (TLS, JWT, limits, health checks)
	// as /config shows it loads back as a configuration file.
	m := regexp.MustCompile(`admin  http://(\S+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("welcome names no admin address:\n%s", out)
	}
	resp, err := http.Get("http://" + m[1] + "/config")
	if err != nil {
		t.Fatal(err)
	}
	shown, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if _, err := config.Parse(filepath.Join(dir, "shown.yaml"), shown); err != nil {
		t.Errorf("the demo's /config does not load back: %v\n%s", err, shown)
	}
	for _, want := range []string{"min_version: \"1.2\"", "ticket_key_rotation: 1h0m0s", "require_exp: true", "cache_bytes: 8388608", "balance: round_robin"} {
		if !strings.Contains(string(shown), want) {
			t.Errorf("the demo's /config lacks %s:\n%s", want, shown)
		}
	}

	step3 := demoStep(out, 3)
	for _, want := range []string{"OpenSSL >= 3.5", "falls back to X25519", "edge_tls_handshakes_total{group="} {
		if !strings.Contains(step3, want) {
			t.Errorf("step 3 does not say %q:\n%s", want, step3)
		}
	}

	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl not installed: the printed lines are not run")
	}
	script := demoStep(out, 1) + demoStep(out, 4)
	got, err := exec.Command("sh", "-c", script).CombinedOutput()
	if err != nil {
		t.Fatalf("steps 1 and 4: %v\n%s\n%s", err, script, got)
	}
	for _, want := range []string{"HTTP/1.1 401", `"error":"missing_token"`, `"error":"invalid_token","message":"signature verification failed"`} {
		if !strings.Contains(string(got), want) {
			t.Errorf("steps 1 and 4 output lacks %s:\n%s\n%s", want, script, got)
		}
	}
}

func TestDialAddr(t *testing.T) {
	bound := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 43210}
	for _, tt := range []struct {
		addr       string
		bound      net.Addr
		host, port string
	}{
		{"127.0.0.1:8080", nil, "127.0.0.1", "8080"},
		{":19080", nil, "127.0.0.1", "19080"},
		{"0.0.0.0:8443", nil, "127.0.0.1", "8443"},
		{"[::]:19901", nil, "127.0.0.1", "19901"},
		{"[::1]:9901", nil, "[::1]", "9901"},
		{"127.0.0.1:0", bound, "127.0.0.1", "43210"},
		{"localhost:8080", nil, "localhost", "8080"},
	} {
		if host, port := dialAddr(tt.addr, tt.bound); host != tt.host || port != tt.port {
			t.Errorf("dialAddr(%q, %v) = %q, %q; want %q, %q", tt.addr, tt.bound, host, port, tt.host, tt.port)
		}
	}
}
