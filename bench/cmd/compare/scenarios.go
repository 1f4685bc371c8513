package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"example.com/edge/bench/anchors"
)

// kind is how a scenario drives the proxy.
type kind int

const (
	kindWrk  kind = iota // HTTP requests from wrk
	kindL4               // bulk bytes through a TCP relay
	kindIdle             // many idle keep-alive connections, then memory
)

// scenario is one row group of the table.
type scenario struct {
	name     string
	about    string
	mode     anchors.Mode
	gateway  bool // JWT + rate limit on every request
	close    bool // Connection: close, so every request is a new connection
	kind     kind
	unit     string // throughput unit
	costUnit string // cost unit (lower is better)
}

// scenarios lists every scenario in the order the table shows them.
func scenarios() []scenario {
	return []scenario{
		{name: "plain", about: "HTTP/1.1 keep-alive, host + prefix routing to 2+2 pods", mode: anchors.HTTP, kind: kindWrk, unit: "req/s", costUnit: "µs/req"},
		{name: "gateway", about: "plain + HS256 JWT check + per-IP rate limit on every request", mode: anchors.HTTP, gateway: true, kind: kindWrk, unit: "req/s", costUnit: "µs/req"},
		{name: "tls-keepalive", about: "TLS 1.3 keep-alive, same routing", mode: anchors.TLS, kind: kindWrk, unit: "req/s", costUnit: "µs/req"},
		{name: "tls-handshake", about: "TLS 1.3, Connection: close: one full handshake per request", mode: anchors.TLS, close: true, kind: kindWrk, unit: "hs/s", costUnit: "µs/hs"},
		{name: "l4-bulk", about: "pure TCP relay, 1 GiB transfers back to back", mode: anchors.L4, kind: kindL4, unit: "MB/s", costUnit: "ms/GiB"},
		{name: "idle-memory", about: "memory with N idle keep-alive connections (one request each)", mode: anchors.HTTP, kind: kindIdle, unit: "conns", costUnit: "MiB PSS"},
	}
}

// sample is one run of one proxy in one scenario.
type sample struct {
	rate     float64 // in the scenario's unit
	p50, p99 float64 // µs, 0 when not measured
	cost     float64 // in the scenario's cost unit
	busy     float64 // the proxy's CPU time over wall time, % of one core
	rssMiB   float64 // idle-memory: RSS besides PSS
	connKiB  float64 // idle-memory: PSS growth per connection
	note     string  // a problem with this run worth printing
}

// runOne starts p for sc, waits until it routes, measures, and stops it.
func (h *harness) runOne(ctx context.Context, sc scenario, p *proxy) (sample, error) {
	port, err := freePort()
	if err != nil {
		return sample{}, err
	}
	d := h.data(sc, port)
	if p.prog == "nginx" && sc.mode == anchors.L4 {
		d.StreamModule = p.streamModule
	}
	c, err := p.launch(h.sup, d, h.proxyCPUs, strings.Fields(h.cfg.edgeArgs))
	if err != nil {
		return sample{}, err
	}
	defer h.sup.stop(c)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	if sc.mode == anchors.L4 {
		err = waitRelay(c, addr)
	} else {
		err = h.smoke(c, sc, addr)
	}
	if err != nil {
		return sample{}, err
	}
	var s sample
	switch sc.kind {
	case kindWrk:
		s, err = h.measureWrk(ctx, sc, addr, c.pid())
	case kindL4:
		s, err = h.measureL4(ctx, addr, c.pid())
	case kindIdle:
		s, err = h.measureIdle(ctx, addr, c.pid())
	}
	if err == nil && c.exited() {
		err = fmt.Errorf("compare: %s exited during the run: %v\n%s", c.name, c.err, c.logTail(20))
	}
	return s, err
}

// data is the template data for sc with the proxy on port.
func (h *harness) data(sc scenario, port int) anchors.Data {
	d := anchors.Data{
		Dir:           h.sup.dir,
		Listen:        port,
		Mode:          sc.mode,
		Gateway:       sc.gateway,
		App:           h.pods.app,
		Auth:          h.pods.auth,
		CertFile:      h.creds.certFile,
		KeyFile:       h.creds.keyFile,
		CertKeyFile:   h.creds.certKeyFile,
		SecretFile:    h.creds.secretFile,
		Secret:        h.creds.secret,
		Issuer:        issuer,
		Audience:      audience,
		MaxConns:      h.maxConns,
		NoFile:        h.noFile,
		WorkerConns:   h.noFile - 64, // client and upstream connections
		RateLimit:     100000000,
		JWTCacheBytes: h.cfg.jwtCacheBytes,
	}
	if h.bulk != nil {
		d.Bulk = h.bulk.addr()
	}
	return d
}

func waitRelay(c *child, addr string) error {
	deadline := time.Now().Add(10 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		if c.exited() {
			return fmt.Errorf("compare: %s exited: %v\n%s", c.name, c.err, c.logTail(20))
		}
		if err = bulkPing(addr); err == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("compare: %s relay at %s not ready after 10s: %v\n%s", c.name, addr, err, c.logTail(20))
}

// smoke waits until the proxy routes both prefixes to the right pods, and in
// the gateway scenario also refuses requests without a valid token, so a
// misconfigured proxy is never measured answering errors fast.
func (h *harness) smoke(c *child, sc scenario, addr string) error {
	scheme := "http"
	if sc.mode == anchors.TLS {
		scheme = "https"
	}
	client := &http.Client{
		Timeout: 2 * time.Second,
		Transport: &http.Transport{
			DisableKeepAlives: true,
			TLSClientConfig:   &tls.Config{ServerName: "example.com", InsecureSkipVerify: true},
		},
	}
	get := func(path, token string) (int, string, error) {
		req, err := http.NewRequest("GET", scheme+"://"+addr+path, nil)
		if err != nil {
			return 0, "", err
		}
		req.Host = "example.com"
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body), err
	}
	token := ""
	if sc.gateway {
		token = h.creds.token
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if c.exited() {
			return fmt.Errorf("compare: %s exited: %v\n%s", c.name, c.err, c.logTail(20))
		}
		_, _, err := get("/app/smoke", token)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("compare: %s not answering at %s after 10s: %v\n%s", c.name, addr, err, c.logTail(20))
		}
		time.Sleep(50 * time.Millisecond)
	}
	type check struct {
		path, token string
		status      int
		body        string
	}
	checks := []check{
		{"/app/smoke", token, 200, `"pod":"app-`},
		{"/auth/smoke", token, 200, `"pod":"auth-`},
		{"/other/smoke", token, 404, ""},
	}
	if sc.gateway {
		checks = append(checks,
			check{"/app/smoke", "", 401, ""},
			check{"/auth/smoke", token[:len(token)-2] + "xx", 401, ""})
	}
	for _, ck := range checks {
		status, body, err := get(ck.path, ck.token)
		if err != nil {
			return fmt.Errorf("compare: %s: GET %s: %w", c.name, ck.path, err)
		}
		if status != ck.status || !strings.Contains(body, ck.body) {
			return fmt.Errorf("compare: %s: GET %s (token %t) answered %d %q, want %d with %q", c.name, ck.path, ck.token != "", status, body, ck.status, ck.body)
		}
	}
	return nil
}

// measureWrk warms the proxy up, then runs wrk while reading the proxy's CPU
// time from /proc.
func (h *harness) measureWrk(ctx context.Context, sc scenario, addr string, pid int) (sample, error) {
	scheme := "http"
	if sc.mode == anchors.TLS {
		scheme = "https"
	}
	w := wrkRun{
		bin: h.wrkBin, script: h.wrkScript, url: scheme + "://" + addr + "/",
		conns: h.cfg.connections, cpus: h.loadCPUs, taskset: h.taskset,
		headers: []string{"Host: example.com"},
		env:     []string{"TOKEN=", "TOKEN_FILE="},
	}
	if sc.close {
		w.headers = append(w.headers, "Connection: close")
	}
	if sc.gateway {
		w.env = []string{"TOKEN=" + h.creds.token, "TOKEN_FILE="}
	}
	if h.cfg.warmup > 0 {
		w.duration = h.cfg.warmup
		if _, err := w.run(ctx); err != nil {
			return sample{}, err
		}
	}
	w.duration = h.cfg.duration
	before := cpuTicks(pid)
	start := time.Now()
	r, err := w.run(ctx)
	wall := time.Since(start)
	used := ticksSince(before, cpuTicks(pid))
	if err != nil {
		return sample{}, err
	}
	if r.Requests == 0 {
		return sample{}, fmt.Errorf("compare: wrk completed no requests (%s)", r.problems())
	}
	cpu := float64(used) / h.clk
	return sample{
		rate: r.rate(),
		p50:  r.P50US,
		p99:  r.P99US,
		cost: cpu * 1e6 / float64(r.Requests),
		busy: 100 * cpu / wall.Seconds(),
		note: r.problems(),
	}, nil
}

// measureL4 streams 1 GiB transfers through the relay back to back for the
// run's duration (at least one), reading the proxy's CPU time from /proc.
func (h *harness) measureL4(ctx context.Context, addr string, pid int) (sample, error) {
	if h.cfg.warmup > 0 {
		if _, err := bulkTransfer(ctx, addr, h.cfg.l4Bytes); err != nil {
			return sample{}, fmt.Errorf("compare: warm-up transfer: %w", err)
		}
	}
	before := cpuTicks(pid)
	start := time.Now()
	var total int64
	for total == 0 || time.Since(start) < h.cfg.duration {
		n, err := bulkTransfer(ctx, addr, h.cfg.l4Bytes)
		if err != nil {
			return sample{}, err
		}
		total += n
	}
	wall := time.Since(start)
	cpu := float64(ticksSince(before, cpuTicks(pid))) / h.clk
	gib := float64(total) / (1 << 30)
	return sample{
		rate: float64(total) / 1e6 / wall.Seconds(),
		cost: cpu * 1e3 / gib,
		busy: 100 * cpu / wall.Seconds(),
	}, nil
}

// measureIdle opens h.idleConns keep-alive connections, sends one request on
// each and reads the answer, then leaves them idle and reads the proxy's
// memory: PSS (shared pages split between nginx's master and worker) and RSS.
func (h *harness) measureIdle(ctx context.Context, addr string, pid int) (sample, error) {
	time.Sleep(300 * time.Millisecond)
	m0, err := treeMemory(pid)
	if err != nil {
		return sample{}, err
	}
	conns, err := openIdle(ctx, addr, h.idleConns)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	if err != nil {
		return sample{}, err
	}
	time.Sleep(time.Second)
	m1, err := treeMemory(pid)
	if err != nil {
		return sample{}, err
	}
	// The connections must still be there: a proxy that dropped them would
	// look cheap.
	alive := 0
	for _, c := range conns[:min(len(conns), 100)] {
		if stillOpen(c) {
			alive++
		}
	}
	s := sample{
		rate:    float64(len(conns)),
		cost:    float64(m1.pssKiB) / 1024,
		rssMiB:  float64(m1.rssKiB) / 1024,
		connKiB: (float64(m1.pssKiB) - float64(m0.pssKiB)) / float64(len(conns)),
	}
	if alive < min(len(conns), 100) {
		s.note = fmt.Sprintf("%d of the first 100 idle connections were closed by the proxy", min(len(conns), 100)-alive)
	}
	return s, nil
}

// openIdle opens n connections to addr with 32 dialers, each sending one
// request and reading its response.
func openIdle(ctx context.Context, addr string, n int) ([]net.Conn, error) {
	conns := make([]net.Conn, n)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		next     = make(chan int)
	)
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				c, err := idleConn(ctx, addr, i)
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("compare: idle connection %d of %d: %w", i+1, n, err)
					}
					mu.Unlock()
					continue
				}
				conns[i] = c
			}
		}()
	}
	for i := 0; i < n && ctx.Err() == nil; i++ {
		mu.Lock()
		failed := firstErr != nil
		mu.Unlock()
		if failed {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	out := conns[:0]
	for _, c := range conns {
		if c != nil {
			out = append(out, c)
		}
	}
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	return out, firstErr
}

func idleConn(ctx context.Context, addr string, i int) (net.Conn, error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	path := "/app/idle"
	if i%2 == 1 {
		path = "/auth/idle"
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: example.com\r\n\r\n"); err != nil {
		c.Close()
		return nil, err
	}
	resp, err := http.ReadResponse(bufio.NewReaderSize(c, 1024), nil)
	if err != nil {
		c.Close()
		return nil, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err == nil && resp.StatusCode != 200 {
		err = fmt.Errorf("status %d", resp.StatusCode)
	}
	if err == nil && resp.Close {
		err = errors.New("the proxy closed the keep-alive connection")
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	_ = c.SetDeadline(time.Time{})
	return c, nil
}

// stillOpen reports whether the peer has not closed c: a read that times out
// at once means open and quiet.
func stillOpen(c net.Conn) bool {
	_ = c.SetReadDeadline(time.Now().Add(time.Millisecond))
	var b [1]byte
	_, err := c.Read(b[:])
	_ = c.SetReadDeadline(time.Time{})
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
