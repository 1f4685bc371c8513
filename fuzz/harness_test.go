package fuzz

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"example.com/edge/l7/proxy"
	"example.com/edge/lb"
)

// upstream is a raw TCP server on loopback that parses what the edge sends
// with net/http's request parser (a different implementation from the
// edge's fasthttp, so the two must agree on every message boundary), records
// the exact bytes of every connection and every request parsed, and answers
// each request with an echo of what it saw:
//
//	X-Upstream-Seq: n (1, 2, ... across all connections)
//	X-Echo-Method, X-Echo-URI, X-Echo-Body-Len, X-Echo-Body-SHA256
//
// and the request body itself as the response body (none for HEAD).
//
// Anything the parser refuses, a connection closed in the middle of a
// request, or bytes left over after a request (the edge never pipelines, so
// extra bytes mean the two sides disagree on where the request ended) is
// recorded as a desync.
type upstream struct {
	ln   net.Listener
	addr string

	// noRaw stops recording bytes (the fuzz target only needs requests).
	noRaw bool
	// streamedAfter, when positive, is the body size past which the edge
	// streams a request body instead of buffering it: a request cut off
	// after that many body bytes, its connection closed, counts as
	// aborted rather than as a desync.
	streamedAfter int

	mu      sync.Mutex
	conns   []net.Conn
	raw     [][]byte // the bytes received, per connection in accept order
	seq     int      // requests parsed so far, over the upstream's life
	aborted int      // streamed requests cut off with their connection
	reqs    []upReq
	desync  []string
	wg      sync.WaitGroup
}

// upReq is one request as the upstream parsed it.
type upReq struct {
	Seq    int
	Conn   int
	Method string
	URI    string
	Host   string
	Header http.Header
	Body   []byte
}

func startUpstream(t testing.TB) *upstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &upstream{ln: ln, addr: ln.Addr().String()}
	u.wg.Go(u.accept)
	t.Cleanup(u.close)
	return u
}

// close stops the upstream: it closes the listener and every connection
// (the edge keeps idle ones open) and waits for their goroutines.
func (u *upstream) close() {
	u.ln.Close()
	u.mu.Lock()
	for _, c := range u.conns {
		c.Close()
	}
	u.mu.Unlock()
	u.wg.Wait()
}

func (u *upstream) accept() {
	for {
		c, err := u.ln.Accept()
		if err != nil {
			return
		}
		u.mu.Lock()
		idx := len(u.raw)
		u.raw = append(u.raw, nil)
		u.conns = append(u.conns, c)
		u.mu.Unlock()
		u.wg.Go(func() { u.serve(c, idx) })
	}
}

// recorder appends every byte read from a connection to the upstream's log.
type recorder struct {
	u   *upstream
	idx int
	r   io.Reader
}

func (r *recorder) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if n > 0 && !r.u.noRaw {
		r.u.mu.Lock()
		r.u.raw[r.idx] = append(r.u.raw[r.idx], p[:n]...)
		r.u.mu.Unlock()
	}
	return n, err
}

func (u *upstream) fail(format string, args ...any) {
	u.mu.Lock()
	u.desync = append(u.desync, fmt.Sprintf(format, args...))
	u.mu.Unlock()
}

func (u *upstream) serve(c net.Conn, idx int) {
	defer c.Close()
	br := bufio.NewReader(&recorder{u: u, idx: idx, r: c})
	bw := bufio.NewWriter(c)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			if !errors.Is(err, io.EOF) || br.Buffered() > 0 {
				if !isClosedConn(err) {
					u.fail("conn %d: upstream could not parse a request: %v", idx, err)
				}
			}
			return
		}
		body, err := io.ReadAll(req.Body)
		if err != nil {
			// A body the edge streams (one bigger than it buffers) can only
			// be cut off, with the connection, when the client's breaks; a
			// buffered one must never be.
			if len(body) >= u.streamedAfter && u.streamedAfter > 0 && (errors.Is(err, io.ErrUnexpectedEOF) || isReset(err)) {
				u.mu.Lock()
				u.aborted++
				u.mu.Unlock()
				return
			}
			u.fail("conn %d: %s %s: body ended early after %d bytes: %v", idx, req.Method, req.RequestURI, len(body), err)
			return
		}
		u.mu.Lock()
		u.seq++
		seq := u.seq
		u.reqs = append(u.reqs, upReq{Seq: seq, Conn: idx, Method: req.Method, URI: req.RequestURI, Host: req.Host, Header: req.Header, Body: body})
		u.mu.Unlock()
		if n := br.Buffered(); n > 0 {
			// The edge waits for each response before it sends the next
			// request, so bytes already here belong to no request.
			extra, _ := br.Peek(n)
			u.fail("conn %d: %d bytes after request %d: %q", idx, n, seq, extra)
		}
		sum := sha256.Sum256(body)
		fmt.Fprintf(bw, "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nX-Upstream-Seq: %d\r\n"+
			"X-Echo-Method: %s\r\nX-Echo-URI: %s\r\nX-Echo-Body-Len: %d\r\nX-Echo-Body-SHA256: %s\r\nContent-Length: %d\r\n\r\n",
			seq, headerSafe(req.Method), headerSafe(req.RequestURI), len(body), hex.EncodeToString(sum[:]), len(body))
		if req.Method != http.MethodHead {
			bw.Write(body) //nolint:errcheck
		}
		if err := bw.Flush(); err != nil {
			return
		}
	}
}

// isReset reports a connection reset by the edge.
func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET)
}

// isClosedConn reports errors that only say the peer went away between
// requests.
func isClosedConn(err error) bool {
	return errors.Is(err, net.ErrClosed)
}

// headerSafe quotes bytes that cannot go into a header value.
func headerSafe(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return strconv.QuoteToASCII(s)
		}
	}
	return s
}

// snapshot returns copies of what the upstream has recorded so far.
func (u *upstream) snapshot() (raw []byte, reqs []upReq, desync []string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, r := range u.raw {
		raw = append(raw, r...)
	}
	return raw, append([]upReq(nil), u.reqs...), append([]string(nil), u.desync...)
}

// take returns the requests and desyncs recorded since the last take and
// forgets them, so a long fuzzing run does not accumulate them.
func (u *upstream) take() (reqs []upReq, desync []string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	reqs, desync = u.reqs, u.desync
	u.reqs, u.desync = nil, nil
	return reqs, desync
}

// newProxy builds an engine with one listener, "web", serving cfg (its
// Listeners are filled in). Its logger discards everything but errors, which
// go to errs (the engine logs a recovered handler panic at error level).
func newProxy(t testing.TB, opts proxy.Options, cfg proxy.Config, errs *logSink) *proxy.Proxy {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(errs, &slog.HandlerOptions{Level: slog.LevelError}))
	}
	cfg.Listeners = []proxy.Listener{{Name: "web"}}
	p, err := proxy.New(opts, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// logSink collects the engine's error log.
type logSink struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *logSink) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (s *logSink) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Len()
}

// newPool is a pool of the given upstreams without health checks or
// outlier ejection, so a test's own failures never take endpoints away.
func newPool(t testing.TB, name string, ups ...*upstream) *proxy.Pool {
	t.Helper()
	cfg := lb.Config{Outlier: lb.OutlierDetection{Disabled: true}}
	for _, u := range ups {
		cfg.Endpoints = append(cfg.Endpoints, lb.EndpointConfig{Addr: u.addr})
	}
	lp, err := lb.NewPool(name, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &proxy.Pool{LB: lp, ConnectTimeout: time.Second, ResponseTimeout: 5 * time.Second}
}
