package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"example.com/edge/l7/accesslog"
	"example.com/edge/lb"
)

// pod is a real upstream HTTP server on loopback that echoes what it saw.
type pod struct {
	name string
	addr string
	srv  *http.Server
	hits atomic.Int64
	// handler overrides the echo when set.
	handler http.HandlerFunc
}

type echo struct {
	Pod     string              `json:"pod"`
	Method  string              `json:"method"`
	URI     string              `json:"uri"`
	Host    string              `json:"host"`
	Headers map[string][]string `json:"headers"`
	BodyLen int64               `json:"body_len"`
	BodySHA string              `json:"body_sha256"`
}

func startPod(t testing.TB, name string) *pod {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &pod{name: name, addr: ln.Addr().String()}
	p.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.hits.Add(1)
		if p.handler != nil {
			p.handler(w, r)
			return
		}
		h := sha256.New()
		n, _ := io.Copy(h, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Pod", p.name)
		json.NewEncoder(w).Encode(echo{ //nolint:errcheck
			Pod: p.name, Method: r.Method, URI: r.RequestURI, Host: r.Host,
			Headers: r.Header, BodyLen: n, BodySHA: hex.EncodeToString(h.Sum(nil)),
		})
	})}
	go p.srv.Serve(ln) //nolint:errcheck
	t.Cleanup(func() { p.srv.Close() })
	return p
}

func newPool(t testing.TB, name string, cfg lb.Config, pods ...*pod) *Pool {
	t.Helper()
	for _, p := range pods {
		cfg.Endpoints = append(cfg.Endpoints, lb.EndpointConfig{Addr: p.addr})
	}
	if cfg.Outlier == (lb.OutlierDetection{}) {
		cfg.Outlier.Disabled = true
	}
	lp, err := lb.NewPool(name, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &Pool{LB: lp, ConnectTimeout: 500 * time.Millisecond, ResponseTimeout: 2 * time.Second}
}

// edge is a running engine on a real loopback listener.
type edge struct {
	p    *Proxy
	addr string
	log  *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startEdge(t testing.TB, opts Options, cfg Config) *edge {
	t.Helper()
	logBuf := &syncBuffer{}
	if opts.AccessLog == nil {
		opts.AccessLog = accesslog.New(accesslog.Config{Writer: logBuf, FlushInterval: 5 * time.Millisecond})
		t.Cleanup(opts.AccessLog.Close)
	}
	if len(cfg.Listeners) == 0 {
		cfg.Listeners = []Listener{{Name: "web"}}
	}
	p, err := New(opts, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := p.Server(cfg.Listeners[0].Name)
	go srv.Serve(ln)                     //nolint:errcheck
	t.Cleanup(func() { srv.Shutdown() }) //nolint:errcheck
	return &edge{p: p, addr: ln.Addr().String(), log: logBuf}
}

var client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16, DisableCompression: true}}

func (e *edge) do(t testing.TB, method, host, path string, hdr map[string]string, body io.Reader) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+e.addr+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s%s: %v", method, host, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func decodeEcho(t testing.TB, b []byte) echo {
	t.Helper()
	var e echo
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatalf("not an echo from a pod: %v: %s", err, b)
	}
	return e
}

type errorBody struct {
	Error     string `json:"error"`
	Message   string `json:"message"`
	RequestID string `json:"request_id"`
}

func checkError(t testing.TB, resp *http.Response, body []byte, status int, code string) {
	t.Helper()
	if resp.StatusCode != status {
		t.Errorf("status = %d, want %d (body %s)", resp.StatusCode, status, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	var eb errorBody
	if err := json.Unmarshal(body, &eb); err != nil {
		t.Fatalf("error body is not JSON: %v: %s", err, body)
	}
	if eb.Error != code {
		t.Errorf("error = %q, want %q", eb.Error, code)
	}
	if eb.Message == "" {
		t.Error("error body has no message")
	}
	if eb.RequestID == "" || eb.RequestID != resp.Header.Get("X-Request-ID") {
		t.Errorf("request_id = %q, X-Request-ID = %q: want the same non-empty ID", eb.RequestID, resp.Header.Get("X-Request-ID"))
	}
}

func TestRoundRobinOverTwoPods(t *testing.T) {
	a, b := startPod(t, "app-1"), startPod(t, "app-2")
	e := startEdge(t, Options{}, Config{
		Pools:  map[string]*Pool{"app": newPool(t, "app", lb.Config{Balance: lb.RoundRobin}, a, b)},
		Routes: []Route{{Prefix: "/", Pool: "app"}},
	})
	var seq []string
	for range 6 {
		resp, body := e.do(t, "GET", "example.com", "/x", nil, nil)
		if resp.StatusCode != 200 {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
		seq = append(seq, decodeEcho(t, body).Pod)
	}
	for i := 2; i < len(seq); i++ {
		if seq[i] != seq[i-2] || seq[i] == seq[i-1] {
			t.Fatalf("pods in order %v, want strict alternation", seq)
		}
	}
}

func TestRoutingHostPrefixAndStripPrefix(t *testing.T) {
	app, auth, other, wild := startPod(t, "app"), startPod(t, "auth"), startPod(t, "other"), startPod(t, "wild")
	e := startEdge(t, Options{}, Config{
		Pools: map[string]*Pool{
			"app":   newPool(t, "app", lb.Config{}, app),
			"auth":  newPool(t, "auth", lb.Config{}, auth),
			"other": newPool(t, "other", lb.Config{}, other),
			"wild":  newPool(t, "wild", lb.Config{}, wild),
		},
		Routes: []Route{
			{Host: "example.com", Prefix: "/app/", Pool: "app"},
			{Host: "example.com", Prefix: "/app/admin/", Pool: "auth", StripPrefix: true},
			{Host: "example.com", Prefix: "/auth", Pool: "auth", StripPrefix: true},
			{Host: "*.example.com", Prefix: "/", Pool: "wild"},
			{Prefix: "/", Pool: "other"},
		},
	})
	tests := []struct {
		host, path string
		pod, uri   string
	}{
		{"example.com", "/app/dashboard?x=1", "app", "/app/dashboard?x=1"},
		{"EXAMPLE.com:8080", "/app/", "app", "/app/"},
		{"example.com", "/app/admin/users", "auth", "/users"},
		{"example.com", "/app/admin/", "auth", "/"},
		{"example.com", "/auth/login", "auth", "/login"},
		{"example.com", "/auth", "auth", "/"},
		{"example.com", "/other", "other", "/other"},
		{"api.example.com", "/app/x", "wild", "/app/x"},
		{"example.org", "/app/x", "other", "/app/x"},
		// The path the edge routes on is the normalized one, and that is
		// what the upstream gets: no way to reach /app/admin/ unstripped.
		{"example.com", "/app/x/../admin/y", "auth", "/y"},
		{"example.com", "/app/a%20b%2525", "app", "/app/a%20b%2525"},
	}
	for _, tt := range tests {
		resp, body := e.do(t, "GET", tt.host, tt.path, nil, nil)
		if resp.StatusCode != 200 {
			t.Errorf("%s%s: status %d: %s", tt.host, tt.path, resp.StatusCode, body)
			continue
		}
		got := decodeEcho(t, body)
		if got.Pod != tt.pod || got.URI != tt.uri {
			t.Errorf("%s%s: reached %s with %q, want %s with %q", tt.host, tt.path, got.Pod, got.URI, tt.pod, tt.uri)
		}
		if got.Host != tt.host {
			t.Errorf("%s%s: upstream Host = %q, want the client's %q", tt.host, tt.path, got.Host, tt.host)
		}
	}
}

func TestErrorBodies(t *testing.T) {
	live := startPod(t, "live")
	slow := startPod(t, "slow")
	slow.handler = func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(5 * time.Second):
		case <-r.Context().Done():
		}
	}
	// A port nobody listens on: connection refused.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	deadAddr := ln.Addr().String()
	ln.Close()
	dead := &pod{name: "dead", addr: deadAddr}

	slowPool := newPool(t, "slow", lb.Config{}, slow)
	slowPool.ResponseTimeout = 300 * time.Millisecond
	downCfg := lb.Config{HealthCheck: lb.HealthCheck{Interval: time.Hour}, PanicThreshold: -1}
	down := newPool(t, "down", downCfg, live)
	down.LB.RecordCheck(down.LB.Endpoints()[0], fmt.Errorf("down"), time.Now())

	e := startEdge(t, Options{}, Config{
		Pools: map[string]*Pool{
			"live": newPool(t, "live", lb.Config{}, live),
			"dead": newPool(t, "dead", lb.Config{}, dead),
			"slow": slowPool,
			"down": down,
		},
		Routes: []Route{
			{Host: "example.com", Prefix: "/app/", Pool: "live", Methods: []string{"GET", "POST"}},
			{Host: "example.com", Prefix: "/dead/", Pool: "dead"},
			{Host: "example.com", Prefix: "/slow/", Pool: "slow"},
			{Host: "example.com", Prefix: "/down/", Pool: "down"},
			{Host: "example.com", Prefix: "/small/", Pool: "live", MaxBodyBytes: 10},
		},
	})

	resp, body := e.do(t, "GET", "example.com", "/nothing", nil, nil)
	checkError(t, resp, body, 404, CodeNoRoute)
	resp, body = e.do(t, "GET", "example.org", "/app/", nil, nil)
	checkError(t, resp, body, 404, CodeNoRoute)

	resp, body = e.do(t, "DELETE", "example.com", "/app/x", nil, nil)
	checkError(t, resp, body, 405, CodeMethodNotAllowed)
	if got := resp.Header.Get("Allow"); got != "GET, POST" {
		t.Errorf("Allow = %q, want %q", got, "GET, POST")
	}

	resp, body = e.do(t, "GET", "example.com", "/dead/x", nil, nil)
	checkError(t, resp, body, 502, CodeUpstreamError)

	resp, body = e.do(t, "GET", "example.com", "/down/x", nil, nil)
	checkError(t, resp, body, 503, CodeNoHealthyUpstream)

	start := time.Now()
	resp, body = e.do(t, "GET", "example.com", "/slow/x", nil, nil)
	checkError(t, resp, body, 504, CodeUpstreamTimeout)
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("504 took %v; the pool's response timeout is 300ms", el)
	}

	resp, body = e.do(t, "POST", "example.com", "/small/x", nil, strings.NewReader("more than ten bytes"))
	checkError(t, resp, body, 413, CodeBodyTooLarge)
}

func TestRequestIDRules(t *testing.T) {
	a := startPod(t, "a")
	e := startEdge(t, Options{}, Config{
		Pools:  map[string]*Pool{"app": newPool(t, "app", lb.Config{}, a)},
		Routes: []Route{{Prefix: "/", Pool: "app"}},
	})
	tests := []struct {
		name, in string
		keep     bool
	}{
		{"absent", "", false},
		{"valid", "abc-DEF_123.x", true},
		{"128 chars", strings.Repeat("a", 128), true},
		{"129 chars", strings.Repeat("a", 129), false},
		{"bad chars", "abc def", false},
		{"injection", "abc\"}", false},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		hdr := map[string]string{}
		if tt.in != "" {
			hdr["X-Request-ID"] = tt.in
		}
		resp, body := e.do(t, "GET", "example.com", "/", hdr, nil)
		got := resp.Header.Get("X-Request-ID")
		up := decodeEcho(t, body).Headers["X-Request-Id"]
		if len(up) != 1 || up[0] != got {
			t.Errorf("%s: upstream saw X-Request-ID %q, client got %q; want the same one ID", tt.name, up, got)
		}
		if tt.keep && got != tt.in {
			t.Errorf("%s: X-Request-ID = %q, want the incoming %q kept", tt.name, got, tt.in)
		}
		if !tt.keep {
			if got == tt.in || !ValidRequestID([]byte(got)) || len(got) != 32 {
				t.Errorf("%s: X-Request-ID = %q, want a fresh 32-hex-digit ID", tt.name, got)
			}
			if seen[got] {
				t.Errorf("%s: generated ID %q twice", tt.name, got)
			}
			seen[got] = true
		}
	}
}

func TestForwardedHeadersAndTrustedProxies(t *testing.T) {
	a := startPod(t, "a")
	cfg := Config{
		Pools:  map[string]*Pool{"app": newPool(t, "app", lb.Config{}, a)},
		Routes: []Route{{Prefix: "/", Pool: "app"}},
	}
	untrusting := startEdge(t, Options{}, cfg)
	cfg.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	trusting := startEdge(t, Options{}, cfg)

	spoof := map[string]string{"X-Forwarded-For": "6.6.6.6", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.com"}
	_, body := untrusting.do(t, "GET", "example.com", "/", spoof, nil)
	h := decodeEcho(t, body).Headers
	if got := h["X-Forwarded-For"]; len(got) != 1 || got[0] != "127.0.0.1" {
		t.Errorf("X-Forwarded-For from an untrusted peer = %q, want only the peer [127.0.0.1]", got)
	}
	if got := h["X-Forwarded-Proto"]; len(got) != 1 || got[0] != "http" {
		t.Errorf("X-Forwarded-Proto = %q, want [http]", got)
	}
	if got := h["X-Forwarded-Host"]; len(got) != 1 || got[0] != "example.com" {
		t.Errorf("X-Forwarded-Host = %q, want [example.com]", got)
	}

	_, body = trusting.do(t, "GET", "example.com", "/", spoof, nil)
	h = decodeEcho(t, body).Headers
	if got := h["X-Forwarded-For"]; len(got) != 1 || got[0] != "6.6.6.6, 127.0.0.1" {
		t.Errorf("X-Forwarded-For from a trusted peer = %q, want [6.6.6.6, 127.0.0.1]", got)
	}
	if got := h["X-Forwarded-Proto"]; len(got) != 1 || got[0] != "https" {
		t.Errorf("X-Forwarded-Proto from a trusted peer = %q, want it kept [https]", got)
	}
	if !strings.Contains(trusting.waitLog(t, 2), `"client_ip":"6.6.6.6"`) {
		t.Errorf("access log does not name the real client behind the trusted proxy:\n%s", trusting.log)
	}
}

// waitLog waits for n access-log lines and returns the log.
func (e *edge) waitLog(t testing.TB, n int) string {
	t.Helper()
	for range 200 {
		if s := e.log.String(); strings.Count(s, "\n") >= n {
			return s
		}
		time.Sleep(5 * time.Millisecond)
	}
	return e.log.String()
}

func TestHopByHopHeadersRemoved(t *testing.T) {
	a := startPod(t, "a")
	a.handler = func(w http.ResponseWriter, r *http.Request) {
		got, _ := json.Marshal(r.Header)
		w.Header().Set("Connection", "X-Upstream-Private")
		w.Header().Set("X-Upstream-Private", "secret")
		w.Header().Set("Keep-Alive", "timeout=5")
		w.Header().Set("Proxy-Authenticate", "Basic")
		w.Header().Set("Proxy-Foo", "p")
		w.Header().Set("proxy-bar", "q")
		w.Header().Set("X-Kept", "yes")
		w.Write(got) //nolint:errcheck
	}
	e := startEdge(t, Options{}, Config{
		Pools:  map[string]*Pool{"app": newPool(t, "app", lb.Config{}, a)},
		Routes: []Route{{Prefix: "/", Pool: "app"}},
	})
	// A raw request, since Go's client manages Connection itself.
	c, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprint(c, "GET / HTTP/1.1\r\nHost: example.com\r\nConnection: keep-alive, X-Secret, X-Forwarded-For\r\n"+
		"X-Secret: 1\r\nKeep-Alive: 300\r\nTE: trailers\r\nProxy-Authorization: Basic Zm9v\r\nProxy-Connection: keep-alive\r\n"+
		"Upgrade: websocket\r\nTrailer: X-T\r\nProxy-Foo: y\r\nproxy-bar: q\r\nProxyish: kept\r\nX-Kept: 1\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	var up map[string][]string
	if err := json.Unmarshal(body, &up); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	for _, h := range []string{"Connection", "X-Secret", "Keep-Alive", "Te", "Proxy-Authorization", "Proxy-Connection", "Proxy-Foo", "Proxy-Bar", "Upgrade", "Trailer"} {
		if v, ok := up[h]; ok {
			t.Errorf("upstream got hop-by-hop header %s: %q", h, v)
		}
	}
	if _, ok := up["X-Kept"]; !ok {
		t.Error("upstream lost an end-to-end header")
	}
	if _, ok := up["Proxyish"]; !ok {
		t.Error("upstream lost a header that only starts like Proxy-")
	}
	if _, ok := up["X-Forwarded-For"]; !ok {
		t.Error("a client removed X-Forwarded-For by naming it in Connection")
	}
	for _, h := range []string{"X-Upstream-Private", "Keep-Alive", "Proxy-Authenticate", "Proxy-Foo", "Proxy-Bar"} {
		if v := resp.Header.Get(h); v != "" {
			t.Errorf("client got hop-by-hop response header %s: %q", h, v)
		}
	}
	if resp.Header.Get("X-Kept") != "yes" {
		t.Error("client lost an end-to-end response header")
	}
	if resp.Close {
		t.Error("upstream's Connection header closed the client's connection")
	}
}

func TestTraceparent(t *testing.T) {
	a := startPod(t, "a")
	e := startEdge(t, Options{}, Config{
		Pools:  map[string]*Pool{"app": newPool(t, "app", lb.Config{}, a)},
		Routes: []Route{{Prefix: "/", Pool: "app"}},
	})
	const valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	_, body := e.do(t, "GET", "example.com", "/", map[string]string{"traceparent": valid, "tracestate": "a=1"}, nil)
	h := decodeEcho(t, body).Headers
	if got := h["Traceparent"]; len(got) != 1 || got[0] != valid {
		t.Errorf("traceparent = %q, want %q passed through", got, valid)
	}
	if got := h["Tracestate"]; len(got) != 1 || got[0] != "a=1" {
		t.Errorf("tracestate = %q, want it passed through", got)
	}
	_, body = e.do(t, "GET", "example.com", "/", map[string]string{"traceparent": "00-zz", "tracestate": "a=1"}, nil)
	h = decodeEcho(t, body).Headers
	if got := h["Traceparent"]; len(got) != 1 || !ValidTraceparent([]byte(got[0])) || got[0] == valid {
		t.Errorf("traceparent = %q, want a fresh valid one", got)
	}
	if _, ok := h["Tracestate"]; ok {
		t.Error("tracestate of an invalid traceparent was forwarded")
	}
}

// TestLargeBodiesStreamWithBoundedMemory sends a large upload through the
// edge and downloads a large response, checking both arrive intact while the
// process's heap stays far below the body size.
func TestLargeBodiesStreamWithBoundedMemory(t *testing.T) {
	size := int64(1 << 30)
	if raceEnabled || testing.Short() {
		size = 256 << 20
	}
	a := startPod(t, "a")
	a.handler = func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "GET" {
			w.Header().Set("Content-Length", fmt.Sprint(size))
			io.CopyN(w, &pattern{}, size) //nolint:errcheck
			return
		}
		h := sha256.New()
		n, _ := io.Copy(h, r.Body)
		fmt.Fprintf(w, "%d %x", n, h.Sum(nil))
	}
	// read_timeout bounds the whole upload; give a slow race-detector run room.
	e := startEdge(t, Options{ReadTimeout: 5 * time.Minute}, Config{
		Pools:        map[string]*Pool{"app": newPool(t, "app", lb.Config{}, a)},
		Routes:       []Route{{Prefix: "/", Pool: "app", Timeout: 5 * time.Minute}},
		MaxBodyBytes: -1,
	})

	var peak atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	})
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)

	want := sha256.New()
	io.CopyN(want, &pattern{}, size) //nolint:errcheck
	// Upload with a known length, then chunked (no length).
	for _, chunked := range []bool{false, true} {
		var body io.Reader = io.LimitReader(&pattern{}, size)
		req, _ := http.NewRequest("POST", "http://"+e.addr+"/upload", body)
		if !chunked {
			req.ContentLength = size
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if wantS := fmt.Sprintf("%d %x", size, want.Sum(nil)); string(got) != wantS {
			t.Errorf("upload (chunked=%v): pod saw %q, want %q", chunked, got, wantS)
		}
	}
	resp, err := client.Get("http://" + e.addr + "/download")
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	n, _ := io.Copy(h, resp.Body)
	resp.Body.Close()
	if n != size || !bytes.Equal(h.Sum(nil), want.Sum(nil)) {
		t.Errorf("download: got %d bytes (hash match %v), want %d identical bytes", n, bytes.Equal(h.Sum(nil), want.Sum(nil)), size)
	}
	close(stop)
	wg.Wait()
	growth := int64(peak.Load()) - int64(base.HeapInuse)
	t.Logf("moved 3 x %d MiB; peak heap growth %d MiB", size>>20, growth>>20)
	if growth > 64<<20 {
		t.Errorf("heap grew by %d MiB while streaming %d MiB bodies: bodies are being buffered", growth>>20, size>>20)
	}
}

// pattern is an endless, cheap byte source whose bytes depend on their
// position, so reordered or lost chunks change the hash.
type pattern struct{ pos uint64 }

func (p *pattern) Read(b []byte) (int, error) {
	for i := range b {
		x := p.pos + uint64(i)
		b[i] = byte(x*7 + x>>11)
	}
	p.pos += uint64(len(b))
	return len(b), nil
}

func TestRetriesGoToAnotherEndpoint(t *testing.T) {
	live := startPod(t, "live")
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := &pod{name: "dead", addr: ln.Addr().String()}
	ln.Close()
	e := startEdge(t, Options{}, Config{
		Pools:  map[string]*Pool{"app": newPool(t, "app", lb.Config{Retries: 1, RetryBudget: -1}, dead, live)},
		Routes: []Route{{Prefix: "/", Pool: "app"}},
	})
	for i := range 10 {
		resp, body := e.do(t, "POST", "example.com", "/", nil, strings.NewReader("x"))
		if resp.StatusCode != 200 || decodeEcho(t, body).Pod != "live" {
			t.Fatalf("request %d: status %d body %s; a refused connection must be retried on the live pod", i, resp.StatusCode, body)
		}
	}
}

func TestAccessLogLine(t *testing.T) {
	a := startPod(t, "a")
	e := startEdge(t, Options{}, Config{
		Pools:  map[string]*Pool{"app": newPool(t, "app", lb.Config{}, a)},
		Routes: []Route{{Host: "example.com", Prefix: "/app/", Pool: "app"}},
	})
	e.do(t, "GET", "example.com", "/app/x", map[string]string{"Authorization": "Bearer secret-token", "X-Request-ID": "rid-1"}, nil)
	line := strings.TrimSpace(e.waitLog(t, 1))
	var rec map[string]any
	if err := json.Unmarshal([]byte(line), &rec); err != nil {
		t.Fatalf("access log line is not JSON: %v: %s", err, line)
	}
	for _, k := range []string{"time", "request_id", "client_ip", "method", "host", "path", "status", "bytes_in", "bytes_out", "duration_us", "route", "pool", "endpoint", "upstream_status"} {
		if _, ok := rec[k]; !ok {
			t.Errorf("access log lacks %q: %s", k, line)
		}
	}
	if rec["request_id"] != "rid-1" || rec["route"] != "example.com/app/" || rec["status"] != float64(200) {
		t.Errorf("access log fields wrong: %s", line)
	}
	if strings.Contains(line, "secret-token") {
		t.Errorf("access log leaked a token: %s", line)
	}

	// Requests the edge answers itself carry the same fields, empty when
	// they do not apply; a head fasthttp refused logs no invented method.
	e.do(t, "GET", "example.com", "/nowhere", nil, nil)
	rawRoundTrip(t, e.addr, "POST /app/x HTTP/1.1\r\nHost: example.com\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx")
	lines := strings.Split(strings.TrimSpace(e.waitLog(t, 3)), "\n")
	for i, want := range []struct {
		method, path string
		status       float64
	}{{"GET", "/nowhere", 404}, {"", "", 400}} {
		line := lines[1+i]
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("access log line is not JSON: %v: %s", err, line)
		}
		for _, k := range []string{"time", "request_id", "client_ip", "method", "host", "path", "status", "bytes_in", "bytes_out", "duration_us", "route", "pool", "endpoint", "upstream_status", "error"} {
			if _, ok := rec[k]; !ok {
				t.Errorf("access log lacks %q: %s", k, line)
			}
		}
		if rec["method"] != want.method || rec["path"] != want.path || rec["status"] != want.status || rec["upstream_status"] != float64(0) || rec["endpoint"] != "" {
			t.Errorf("access log fields wrong, want method %q path %q status %v: %s", want.method, want.path, want.status, line)
		}
	}
}

func TestDrainingAnswers503(t *testing.T) {
	a := startPod(t, "a")
	e := startEdge(t, Options{}, Config{
		Pools:  map[string]*Pool{"app": newPool(t, "app", lb.Config{}, a)},
		Routes: []Route{{Prefix: "/", Pool: "app"}},
	})
	e.p.SetDraining(true)
	resp, body := e.do(t, "GET", "example.com", "/", nil, nil)
	checkError(t, resp, body, 503, CodeNoHealthyUpstream)
	if !resp.Close {
		t.Error("a draining edge must close the connection")
	}
}

func TestUpdateSwapsRoutesAtomically(t *testing.T) {
	a, b := startPod(t, "a"), startPod(t, "b")
	pools := map[string]*Pool{"a": newPool(t, "a", lb.Config{}, a), "b": newPool(t, "b", lb.Config{}, b)}
	e := startEdge(t, Options{}, Config{Pools: pools, Routes: []Route{{Prefix: "/", Pool: "a"}}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	var bad atomic.Int64
	for range 4 {
		wg.Go(func() {
			for ctx.Err() == nil {
				resp, err := client.Get("http://" + e.addr + "/")
				if err != nil {
					bad.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body) //nolint:errcheck
				resp.Body.Close()
				if resp.StatusCode != 200 {
					bad.Add(1)
				}
			}
		})
	}
	for i := range 50 {
		pool := []string{"a", "b"}[i%2]
		if err := e.p.Update(Config{Listeners: []Listener{{Name: "web"}}, Pools: pools, Routes: []Route{{Prefix: "/", Pool: pool}}}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	if bad.Load() > 0 {
		t.Errorf("%d requests failed while routes were swapped", bad.Load())
	}
	if err := e.p.Update(Config{Listeners: []Listener{{Name: "web"}}, Pools: pools, Routes: []Route{{Prefix: "/", Pool: "nope"}}}); err == nil {
		t.Error("Update accepted a route to an unknown pool")
	}
	_, body := e.do(t, "GET", "", "/", nil, nil)
	if decodeEcho(t, body).Pod != "b" {
		t.Error("a failed Update changed the serving config")
	}
}

// rawRoundTrip sends raw request bytes on a new connection and reads one response.
func rawRoundTrip(t *testing.T, addr, raw string) (*http.Response, []byte) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second)) //nolint:errcheck
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("%q: %v", raw, err)
	}
	body, _ := io.ReadAll(resp.Body)
	return resp, body
}

// TestOddRequestHeads covers heads a client library would not send: an
// HTTP/1.0 request without Host, a Host with userinfo, repeated X-Request-ID.
func TestOddRequestHeads(t *testing.T) {
	a := startPod(t, "a")
	pool := newPool(t, "app", lb.Config{}, a)
	e := startEdge(t, Options{}, Config{
		Pools:  map[string]*Pool{"app": pool},
		Routes: []Route{{Prefix: "/", Pool: "app"}},
	})

	t.Run("HTTP/1.0 without Host", func(t *testing.T) {
		for range 8 { // more than outlier ejection's consecutive failures
			resp, body := rawRoundTrip(t, e.addr, "GET /x HTTP/1.0\r\n\r\n")
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d (%s), want 200", resp.StatusCode, body)
			}
			if got := decodeEcho(t, body).Host; got != e.addr {
				t.Errorf("pod saw Host %q, want the address the client connected to (%s)", got, e.addr)
			}
		}
		if !pool.LB.Endpoints()[0].Healthy() {
			t.Error("requests without Host took the pod out of rotation")
		}
	})
	t.Run("HTTP/1.0 without Host, redirect_https", func(t *testing.T) {
		r := startEdge(t, Options{}, Config{
			Listeners: []Listener{{Name: "web", RedirectHTTPS: true, HTTPSPort: 8443}},
			Pools:     map[string]*Pool{"app": pool},
			Routes:    []Route{{Prefix: "/", Pool: "app"}},
		})
		resp, body := rawRoundTrip(t, r.addr, "GET /x?y=1 HTTP/1.0\r\n\r\n")
		if resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != "https://127.0.0.1:8443/x?y=1" {
			t.Errorf("status %d, Location %q (%s); want 308 to https://127.0.0.1:8443/x?y=1", resp.StatusCode, resp.Header.Get("Location"), body)
		}
	})
	t.Run("Host with userinfo", func(t *testing.T) {
		hits := a.hits.Load()
		resp, body := rawRoundTrip(t, e.addr, "GET /x HTTP/1.1\r\nHost: user@example.com\r\n\r\n")
		checkError(t, resp, body, http.StatusBadRequest, CodeBadRequest)
		if a.hits.Load() != hits {
			t.Error("the request reached the pod")
		}
	})
	t.Run("repeated X-Request-ID", func(t *testing.T) {
		for _, ids := range [][2]string{{"one", "two"}, {"bad id", "two"}} {
			resp, body := rawRoundTrip(t, e.addr, "GET /x HTTP/1.1\r\nHost: example.com\r\nX-Request-ID: "+ids[0]+"\r\nX-Request-ID: "+ids[1]+"\r\n\r\n")
			got := resp.Header.Get("X-Request-ID")
			up := decodeEcho(t, body).Headers["X-Request-Id"]
			if len(up) != 1 || up[0] != got {
				t.Errorf("%q: pod saw X-Request-ID %q, client got %q; want one, the same", ids, up, got)
			}
			if ids[0] == "one" && got != "one" {
				t.Errorf("%q: X-Request-ID = %q, want the first, valid one", ids, got)
			}
		}
	})
}

func TestRouteIPFilters(t *testing.T) {
	a := startPod(t, "a")
	pfx := func(s ...string) []netip.Prefix {
		var ps []netip.Prefix
		for _, v := range s {
			ps = append(ps, netip.MustParsePrefix(v))
		}
		return ps
	}
	e := startEdge(t, Options{}, Config{
		Pools: map[string]*Pool{"app": newPool(t, "app", lb.Config{}, a)},
		Routes: []Route{
			{Prefix: "/denied/", Pool: "app", DenyIPs: pfx("127.0.0.0/8")},
			{Prefix: "/allowed/", Pool: "app", AllowIPs: pfx("10.0.0.0/8", "127.0.0.1/32")},
			{Prefix: "/elsewhere/", Pool: "app", AllowIPs: pfx("10.0.0.0/8")},
			{Prefix: "/both/", Pool: "app", AllowIPs: pfx("127.0.0.0/8"), DenyIPs: pfx("127.0.0.1/32")},
			{Prefix: "/", Pool: "app", DenyIPs: pfx("192.0.2.0/24")},
		},
		// X-Forwarded-For is believed from loopback: the filters see the real client.
		TrustedProxies: pfx("127.0.0.0/8"),
	})
	tests := []struct {
		path, xff string
		status    int
	}{
		{"/denied/x", "", http.StatusForbidden},
		{"/allowed/x", "", http.StatusOK},
		{"/elsewhere/x", "", http.StatusForbidden},
		{"/elsewhere/x", "10.1.2.3", http.StatusOK},
		{"/both/x", "", http.StatusForbidden},
		{"/x", "", http.StatusOK},
		{"/x", "192.0.2.9", http.StatusForbidden},
		{"/x", "192.0.2.9, 203.0.113.1", http.StatusOK}, // the client is the last untrusted hop
	}
	for _, tt := range tests {
		hdr := map[string]string{}
		if tt.xff != "" {
			hdr["X-Forwarded-For"] = tt.xff
		}
		resp, body := e.do(t, "GET", "example.com", tt.path, hdr, nil)
		if tt.status == http.StatusForbidden {
			checkError(t, resp, body, http.StatusForbidden, CodeForbidden)
		} else if resp.StatusCode != tt.status {
			t.Errorf("%s from %q: status %d, want %d (%s)", tt.path, tt.xff, resp.StatusCode, tt.status, body)
		}
	}
}

// TestNoHealthyUpstream: a pool whose every endpoint failed its checks fails
// open to them (lb's panic mode); when they fail again the answer is the
// contract's 503 no_healthy_upstream, not 502.
func TestNoHealthyUpstream(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close() // nothing listens there now: connections are refused
	lp, err := lb.NewPool("dead", lb.Config{
		Endpoints:   []lb.EndpointConfig{{Addr: dead}},
		HealthCheck: lb.HealthCheck{Interval: time.Hour, Fall: 1, Rise: 1},
		Outlier:     lb.OutlierDetection{Disabled: true},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	e := startEdge(t, Options{}, Config{
		Pools:  map[string]*Pool{"dead": {LB: lp, ConnectTimeout: 500 * time.Millisecond, ResponseTimeout: time.Second}},
		Routes: []Route{{Prefix: "/", Pool: "dead"}},
	})
	// While the endpoint is believed healthy, a refused connection is a 502.
	resp, body := e.do(t, "GET", "example.com", "/", nil, nil)
	checkError(t, resp, body, http.StatusBadGateway, CodeUpstreamError)

	lp.RecordCheck(lp.Endpoints()[0], errors.New("check failed"), time.Now())
	if lp.Healthy() != 0 || !lp.Panicking() {
		t.Fatalf("healthy = %d, panicking = %v; want 0, true", lp.Healthy(), lp.Panicking())
	}
	resp, body = e.do(t, "GET", "example.com", "/", nil, nil)
	checkError(t, resp, body, http.StatusServiceUnavailable, CodeNoHealthyUpstream)
}

// TestBodyOverLimitRefusedWhenCrossed: a body over the route's limit is
// refused when the limit is crossed, not after the client sent it all or
// stopped sending: chunked (the 413 came at the read timeout before), and
// with Expect: 100-continue (the edge answered 100 Continue before).
func TestBodyOverLimitRefusedWhenCrossed(t *testing.T) {
	a := startPod(t, "a")
	e := startEdge(t, Options{ReadTimeout: 10 * time.Second}, Config{
		Pools:  map[string]*Pool{"app": newPool(t, "app", lb.Config{}, a)},
		Routes: []Route{{Prefix: "/", Pool: "app", MaxBodyBytes: 1 << 20}},
	})
	t.Run("chunked, then the client stalls", func(t *testing.T) {
		c, err := net.Dial("tcp", e.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second)) //nolint:errcheck
		io.WriteString(c, "PUT /x HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n")
		// Exactly 1 MiB, then a small chunk that crosses the limit; then
		// nothing. (Ending just past the limit lets the edge read all that was
		// sent before it closes: unread bytes would make the close a reset,
		// which can destroy the response in flight on this plain listener.)
		chunk := fmt.Sprintf("%x\r\n%s\r\n", 64<<10, strings.Repeat("a", 64<<10))
		if _, err := io.WriteString(c, strings.Repeat(chunk, 16)+"64\r\n"+strings.Repeat("b", 100)+"\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("no answer before the 5s deadline (the read timeout is 10s): %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		checkError(t, resp, body, http.StatusRequestEntityTooLarge, CodeBodyTooLarge)
	})
	t.Run("Expect: 100-continue", func(t *testing.T) {
		c, err := net.Dial("tcp", e.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second)) //nolint:errcheck
		io.WriteString(c, "PUT /x HTTP/1.1\r\nHost: example.com\r\nContent-Length: 2000000\r\nExpect: 100-continue\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		checkError(t, resp, body, http.StatusRequestEntityTooLarge, CodeBodyTooLarge)
		if !resp.Close {
			t.Error("the connection stays open with an unsent body behind it")
		}
	})
	t.Run("Expect: 100-continue within the limit", func(t *testing.T) {
		c, err := net.Dial("tcp", e.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second)) //nolint:errcheck
		br := bufio.NewReader(c)
		io.WriteString(c, "PUT /x HTTP/1.1\r\nHost: example.com\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
		line, err := br.ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "HTTP/1.1 100") {
			t.Fatalf("interim response %q, %v; want 100 Continue", line, err)
		}
		br.ReadString('\n') // the blank line ending the 100 response
		io.WriteString(c, "hello")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || decodeEcho(t, body).BodyLen != 5 {
			t.Errorf("status %d, body %s; want 200 with the 5-byte body upstream", resp.StatusCode, body)
		}
	})
}

// TestHeaderLimit: max_header_bytes holds whether or not the read buffer is
// larger (a larger buffer used to lift the limit to its own size).
func TestHeaderLimit(t *testing.T) {
	a := startPod(t, "a")
	cfg := Config{
		Pools:  map[string]*Pool{"app": newPool(t, "app", lb.Config{}, a)},
		Routes: []Route{{Prefix: "/", Pool: "app"}},
	}
	for _, opts := range []Options{
		{MaxHeaderBytes: 8192},                        // the buffer is the limit
		{MaxHeaderBytes: 8192, ReadBufferSize: 32768}, // the buffer is larger
	} {
		e := startEdge(t, opts, cfg)
		resp, body := e.do(t, "GET", "example.com", "/", map[string]string{"X-Big": strings.Repeat("a", 7000)}, nil)
		if resp.StatusCode != 200 {
			t.Errorf("%+v: a 7 KB head: status %d (%s), want 200", opts, resp.StatusCode, body)
		}
		for _, n := range []int{9000, 20000} {
			resp, body = e.do(t, "GET", "example.com", "/", map[string]string{"X-Big": strings.Repeat("a", n)}, nil)
			checkError(t, resp, body, http.StatusRequestHeaderFieldsTooLarge, CodeHeadersTooLarge)
		}
	}
}
