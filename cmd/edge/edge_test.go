package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// These tests drive the real binary: built once, started as a process,
// configured by files, signalled like an operator would.

var edgeBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "edge-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	edgeBin = filepath.Join(dir, "edge")
	// A -race binary otherwise sleeps a second on exit; the tests run many.
	os.Setenv("GORACE", "atexit_sleep_ms=0")
	args := []string{"build", "-o", edgeBin}
	if raceEnabled {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, ".")...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building edge:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// pod is an upstream that names itself.
func startPod(t *testing.T, name string, h http.HandlerFunc) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if h == nil {
		h = func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, name) }
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln) //nolint:errcheck
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// proc is a running edge process.
type proc struct {
	t     *testing.T
	cmd   *exec.Cmd
	mu    sync.Mutex
	log   bytes.Buffer
	addrs map[string]string
	done  chan struct{}
	err   error
}

func (p *proc) logText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// startEdge runs `edge -config path args...` and waits until it serves.
func startEdge(t *testing.T, path string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, addrs: map[string]string{}, done: make(chan struct{})}
	p.cmd = exec.Command(edgeBin, append([]string{"-config", path, "-access-log", "off"}, args...)...)
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		once := sync.Once{}
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.log.WriteString(line + "\n")
			p.mu.Unlock()
			var rec map[string]any
			if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == "edge is serving" {
				p.mu.Lock()
				for k, v := range rec {
					if name, ok := strings.CutPrefix(k, "listener."); ok {
						p.addrs[name] = fmt.Sprint(v)
					}
					if k == "admin" {
						p.addrs["admin"] = fmt.Sprint(v)
					}
				}
				p.mu.Unlock()
				once.Do(func() { close(ready) })
			}
		}
	}()
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill() //nolint:errcheck
		<-p.done
	})
	select {
	case <-ready:
	case <-p.done:
		t.Fatalf("edge exited before serving: %v\n%s", p.err, p.logText())
	case <-time.After(20 * time.Second):
		t.Fatalf("edge did not start:\n%s", p.logText())
	}
	return p
}

func (p *proc) addr(name string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.addrs[name]
}

func (p *proc) signal(s os.Signal) {
	if err := p.cmd.Process.Signal(s); err != nil {
		p.t.Fatal(err)
	}
}

// waitLog waits for a log line containing s.
func (p *proc) waitLog(s string) bool {
	for range 200 {
		if strings.Contains(p.logText(), s) {
			return true
		}
		time.Sleep(25 * time.Millisecond)
	}
	return false
}

func writeConfig(t *testing.T, path, src string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
}

// rawGet sends one request on an open keep-alive connection.
func rawGet(t *testing.T, c net.Conn, br *bufio.Reader, path string) (int, string) {
	t.Helper()
	c.SetDeadline(time.Now().Add(5 * time.Second)) //nolint:errcheck
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: example.com\r\n\r\n", path)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("GET %s on the kept-alive connection: %v", path, err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, string(b)
}

func TestReloadKeepsOpenConnectionsAndRejectsBadConfig(t *testing.T) {
	a, b := startPod(t, "pod-a", nil), startPod(t, "pod-b", nil)
	dir := t.TempDir()
	path := filepath.Join(dir, "edge.yaml")
	cfg := func(pool string) string {
		return fmt.Sprintf(`admin: 127.0.0.1:0
listeners:
  - {name: web, address: "127.0.0.1:0"}
pools:
  a: {endpoints: ["%s"]}
  b: {endpoints: ["%s"]}
routes:
  - {host: example.com, prefix: /, pool: %s}
`, a, b, pool)
	}
	writeConfig(t, path, cfg("a"))
	p := startEdge(t, path)

	c, err := net.Dial("tcp", p.addr("web"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	if code, body := rawGet(t, c, br, "/"); code != 200 || body != "pod-a" {
		t.Fatalf("before reload: %d %q, want 200 pod-a", code, body)
	}

	writeConfig(t, path, cfg("b"))
	p.signal(syscall.SIGHUP)
	if !p.waitLog("configuration reloaded") {
		t.Fatalf("no reload logged:\n%s", p.logText())
	}
	if code, body := rawGet(t, c, br, "/"); code != 200 || body != "pod-b" {
		t.Fatalf("after reload, same connection: %d %q, want 200 pod-b", code, body)
	}

	writeConfig(t, path, cfg("nope"))
	p.signal(syscall.SIGHUP)
	if !p.waitLog("reload failed") {
		t.Fatalf("bad config not reported:\n%s", p.logText())
	}
	if !strings.Contains(p.logText(), `edge.yaml:8: routes[0].pool: unknown pool \"nope\"`) {
		t.Errorf("reload failure does not point at the line:\n%s", p.logText())
	}
	if code, body := rawGet(t, c, br, "/"); code != 200 || body != "pod-b" {
		t.Fatalf("after a bad reload: %d %q, want the old config still serving (pod-b)", code, body)
	}
	resp, err := http.Get("http://" + p.addr("admin") + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	m, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`edge_config_reloads_total{result="success"} 1`, `edge_config_reloads_total{result="failure"} 1`} {
		if !strings.Contains(string(m), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestSIGTERMDrainsInFlightRequests(t *testing.T) {
	started := make(chan struct{}, 1)
	slow := startPod(t, "slow", func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		time.Sleep(700 * time.Millisecond)
		fmt.Fprint(w, "finished")
	})
	dir := t.TempDir()
	path := filepath.Join(dir, "edge.yaml")
	writeConfig(t, path, fmt.Sprintf(`admin: 127.0.0.1:0
tuning: {drain_timeout: 5s}
listeners:
  - {name: web, address: "127.0.0.1:0"}
pools:
  slow: {endpoints: ["%s"]}
routes:
  - {prefix: /, pool: slow}
`, slow))
	p := startEdge(t, path)
	addr := p.addr("web")

	type result struct {
		code int
		body string
		err  error
	}
	res := make(chan result, 1)
	go func() {
		resp, err := http.Get("http://" + addr + "/")
		if err != nil {
			res <- result{err: err}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		res <- result{code: resp.StatusCode, body: string(b)}
	}()
	<-started
	p.signal(syscall.SIGTERM)
	if !p.waitLog(`"msg":"draining"`) {
		t.Fatalf("no drain logged:\n%s", p.logText())
	}
	// New connections are refused once draining starts.
	refused := false
	for range 50 {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err != nil {
			refused = true
			break
		}
		c.Close()
		time.Sleep(10 * time.Millisecond)
	}
	if !refused {
		t.Error("the listener still accepts connections while draining")
	}
	r := <-res
	if r.err != nil || r.code != 200 || r.body != "finished" {
		t.Errorf("in-flight request: %d %q %v, want 200 finished", r.code, r.body, r.err)
	}
	select {
	case <-p.done:
		if p.err != nil {
			t.Errorf("edge exited with %v after draining", p.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("edge did not exit after draining")
	}
}

// TestDrainAnswers503ToArrivingRequests: a request whose head is still
// arriving on an open connection when the drain starts gets the contract's
// 503 no_healthy_upstream with Connection: close, not a dropped connection.
// A first request head with bare LFs only is refused 400 at once (fasthttp
// alone would wait for the read timeout).
func TestDrainAnswers503ToArrivingRequests(t *testing.T) {
	for _, serve := range []string{"goroutine", "loop"} {
		t.Run(serve, func(t *testing.T) { testDrainAnswers503(t, serve) })
	}
}

func testDrainAnswers503(t *testing.T, serve string) {
	pod := startPod(t, "fast", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") })
	dir := t.TempDir()
	path := filepath.Join(dir, "edge.yaml")
	writeConfig(t, path, fmt.Sprintf(`admin: 127.0.0.1:0
tuning: {drain_timeout: 5s, read_timeout: 10s}
listeners:
  - {name: web, address: "127.0.0.1:0"}
pools:
  app: {endpoints: ["%s"]}
routes:
  - {prefix: /, pool: app}
`, pod))
	p := startEdge(t, path, "-serve", serve)
	addr := p.addr("web")

	bare, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer bare.Close()
	bare.SetDeadline(time.Now().Add(5 * time.Second)) //nolint:errcheck
	fmt.Fprint(bare, "GET / HTTP/1.1\nHost: example.com\n\n")
	resp, err := http.ReadResponse(bufio.NewReader(bare), nil)
	if err != nil {
		t.Fatalf("bare-LF head: %v (before the fix: no answer until the read timeout)", err)
	}
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("bare-LF head: status %d, want 400", resp.StatusCode)
	}

	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second)) //nolint:errcheck
	br := bufio.NewReader(c)
	fmt.Fprint(c, "GET /first HTTP/1.1\r\nHost: example.com\r\n\r\n")
	resp, err = http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("first request: %v %v", resp, err)
	}
	io.Copy(io.Discard, resp.Body) //nolint:errcheck
	resp.Body.Close()
	fmt.Fprint(c, "GET /second HTTP/1.1\r\nHost: example.com\r\n")
	time.Sleep(100 * time.Millisecond) // the edge has read the first bytes: the connection is active

	p.signal(syscall.SIGTERM)
	if !p.waitLog(`"msg":"draining"`) {
		t.Fatalf("no drain logged:\n%s", p.logText())
	}
	time.Sleep(100 * time.Millisecond)
	fmt.Fprint(c, "\r\n")
	resp, err = http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("request finished during the drain: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	var eb map[string]string
	if resp.StatusCode != http.StatusServiceUnavailable || json.Unmarshal(body, &eb) != nil || eb["error"] != "no_healthy_upstream" {
		t.Errorf("request finished during the drain: %d %s, want 503 no_healthy_upstream", resp.StatusCode, body)
	}
	if !resp.Close {
		t.Error("a draining edge must close the connection")
	}
	select {
	case <-p.done:
		if p.err != nil {
			t.Errorf("edge exited with %v after draining", p.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("edge did not exit after draining")
	}
}

func TestCheckCommand(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	writeConfig(t, good, "listeners:\n  - {name: web, address: \"127.0.0.1:0\"}\npools:\n  app: {endpoints: [\"127.0.0.1:1\"]}\nroutes:\n  - {prefix: /, pool: app}\n")
	out, err := exec.Command(edgeBin, "check", "-config", good).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Errorf("check of a good file: %v %q, want exit 0 and ok", err, out)
	}

	bad := filepath.Join(dir, "bad.yaml")
	writeConfig(t, bad, `listeners:
  - {name: web, address: "127.0.0.1:0", tls: {certificates: [{cert: missing.crt, key: missing.key}]}}
pools:
  app: {endpoints: ["not-an-endpoint"], balance: fastest}
jwt:
  users:
    keys:
      - {pem_file: missing.pub, alg: EdDSA}
routes:
  - {prefix: /, pool: app, jwt: users}
  - {prefix: /x, pool: ap}
`)
	out, err = exec.Command(edgeBin, "check", "-config", bad).CombinedOutput()
	var ee *exec.ExitError
	if err == nil || !errorsAs(err, &ee) || ee.ExitCode() != 1 {
		t.Errorf("check of a bad file: exit %v, want 1", err)
	}
	for _, want := range []string{
		"bad.yaml:4: pools.app.endpoints[0]:",
		"bad.yaml:4: pools.app.balance:",
		"bad.yaml:8: jwt.users.keys[0]: open ",
		"bad.yaml:11: routes[1].pool: unknown pool \"ap\"",
		"bad.yaml:2:",
		"missing.crt",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("check output lacks %q:\n%s", want, out)
		}
	}
}

func errorsAs(err error, target **exec.ExitError) bool {
	e, ok := err.(*exec.ExitError)
	if ok {
		*target = e
	}
	return ok
}

func TestHelpDocumentsEveryTuningFlag(t *testing.T) {
	out, _ := exec.Command(edgeBin, "-h").CombinedOutput()
	for _, flag := range []string{"-event-loops", "-read-buffer-size", "-write-buffer-size", "-max-conns", "-max-conns-per-ip",
		"-idle-timeout", "-read-timeout", "-write-timeout", "-max-header-bytes", "-max-body-bytes", "-upstream-max-conns",
		"-log-level", "-access-log", "-log-format", "-admin"} {
		if !strings.Contains(string(out), flag+" ") && !strings.Contains(string(out), flag+"\n") {
			t.Errorf("edge -h does not document %s:\n%s", flag, out)
		}
	}
	if !strings.Contains(string(out), "(default 16384)") {
		t.Errorf("edge -h does not show defaults:\n%s", out)
	}
}

func TestFlagWinsOverFile(t *testing.T) {
	pod := startPod(t, "pod", nil)
	dir := t.TempDir()
	path := filepath.Join(dir, "edge.yaml")
	writeConfig(t, path, fmt.Sprintf(`tuning: {max_header_bytes: 65536}
listeners:
  - {name: web, address: "127.0.0.1:0"}
pools:
  app: {endpoints: ["%s"]}
routes:
  - {prefix: /, pool: app}
`, pod))
	p := startEdge(t, path, "-max-header-bytes", "2048")
	req, _ := http.NewRequest("GET", "http://"+p.addr("web")+"/", nil)
	req.Header.Set("X-Big", strings.Repeat("x", 4000))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 431 || !strings.Contains(string(b), `"error":"headers_too_large"`) {
		t.Errorf("4 KB header with -max-header-bytes 2048 over a file's 65536: %d %s, want 431 headers_too_large", resp.StatusCode, b)
	}
}

func TestVersion(t *testing.T) {
	out, err := exec.Command(edgeBin, "version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "go1.") || !strings.Contains(string(out), "features:") {
		t.Errorf("edge version: %v %q", err, out)
	}
}

func TestAdminEndpoints(t *testing.T) {
	pod := startPod(t, "pod", nil)
	dir := t.TempDir()
	path := filepath.Join(dir, "edge.yaml")
	writeConfig(t, path, fmt.Sprintf(`admin: 127.0.0.1:0
listeners:
  - {name: web, address: "127.0.0.1:0"}
pools:
  app: {endpoints: ["%s"]}
rate_limits:
  global: {key: client_ip, rate: 100, store: redis}
redis: {address: "127.0.0.1:1", password: hunter2}
routes:
  - {prefix: /, pool: app, rate_limit: global}
`, pod))
	p := startEdge(t, path)
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + p.addr("admin") + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(b)
	}
	if code, body := get("/healthz"); code != 200 || strings.TrimSpace(body) != "ok" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	if code, body := get("/readyz"); code != 200 || strings.TrimSpace(body) != "ready" {
		t.Errorf("/readyz: %d %q", code, body)
	}
	code, cfg := get("/config")
	if code != 200 || !strings.Contains(cfg, "127.0.0.1:1") || !strings.Contains(cfg, "prefix: /") {
		t.Errorf("/config: %d\n%s", code, cfg)
	}
	if strings.Contains(cfg, "hunter2") || !strings.Contains(cfg, "REDACTED") {
		t.Errorf("/config shows the Redis password:\n%s", cfg)
	}
	http.Get("http://" + p.addr("web") + "/") //nolint:errcheck
	_, metrics := get("/metrics")
	// edge_config_reloads_total is there before the first SIGHUP, at 0.
	for _, want := range []string{`edge_requests_total{code="200",route="*/"}`, "edge_request_duration_seconds_bucket", "edge_upstream_healthy", "go_goroutines", "edge_l4_connections_active",
		`edge_config_reloads_total{result="success"} 0`, `edge_config_reloads_total{result="failure"} 0`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	// The admin endpoints are not on the public listener.
	resp, err := http.Get("http://" + p.addr("web") + "/metrics")
	if err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(b), "edge_requests_total") {
			t.Error("metrics served on the public listener")
		}
	}
	p.signal(syscall.SIGTERM)
	<-p.done
}
