package proxy

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"example.com/edge/lb"
)

// rawPod answers every request on a connection with the raw bytes of
// respond(n), n counting requests on the connection, so tests control the
// exact framing the edge has to parse. A response ending in closeMark is
// sent without the mark and the connection closed after it.
type rawPod struct {
	addr  string
	conns atomic.Int64
	reqs  atomic.Int64
}

func startRawPod(t *testing.T, respond func(n int, req *http.Request) string) *rawPod {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &rawPod{addr: ln.Addr().String()}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.conns.Add(1)
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for n := 0; ; n++ {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					io.Copy(io.Discard, req.Body) //nolint:errcheck
					p.reqs.Add(1)
					out := respond(n, req)
					if out == "" {
						return // hang up without answering
					}
					out, closeAfter := strings.CutSuffix(out, closeMark)
					if _, err := io.WriteString(c, out); err != nil || closeAfter {
						return
					}
				}
			}()
		}
	}()
	return p
}

const closeMark = "\x00close"

func rawPodEdge(t *testing.T, p *rawPod) *edge {
	return startEdge(t, Options{}, Config{
		Pools:  map[string]*Pool{"app": newPool(t, "app", lb.Config{}, &pod{addr: p.addr})},
		Routes: []Route{{Prefix: "/", Pool: "app"}},
	})
}

func TestTransportFraming(t *testing.T) {
	big := strings.Repeat("0123456789abcdef", 8192) // 128 KiB: over the buffered-body threshold
	tests := []struct {
		name     string
		method   string
		response string
		status   int
		body     string
		// reuse says the upstream connection must be kept for the next request.
		reuse bool
	}{
		{"fixed small", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", 200, "hello", true},
		{"fixed large streams", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 131072\r\n\r\n" + big, 200, big, true},
		{"chunked", "GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n", 200, "hello world", true},
		{"chunked with trailers", "GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-Trailer: 1\r\n\r\n", 200, "abc", true},
		{"chunked uppercase hex", "GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nA\r\n0123456789\r\n0\r\n\r\n", 200, "0123456789", true},
		{"until close", "GET", "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end" + closeMark, 200, "until the end", false},
		{"interim 100 then 200", "GET", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 200, "ok", true},
		{"204 ignores length", "GET", "HTTP/1.1 204 No Content\r\n\r\n", 204, "", true},
		{"304", "GET", "HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n", 304, "", true},
		{"HEAD keeps no body", "HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n", 200, "", true},
		{"connection close honoured", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok" + closeMark, 200, "ok", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := startRawPod(t, func(int, *http.Request) string { return tt.response })
			e := rawPodEdge(t, p)
			for i := range 2 {
				resp, body := e.do(t, tt.method, "example.com", "/", nil, nil)
				if resp.StatusCode != tt.status || string(body) != tt.body {
					t.Fatalf("request %d: %d %q, want %d %q", i, resp.StatusCode, trunc(body), tt.status, trunc([]byte(tt.body)))
				}
				if resp.Header.Get("Connection") != "" || resp.Close {
					t.Errorf("request %d: the upstream's connection handling leaked to the client", i)
				}
				if tt.method == "HEAD" && resp.ContentLength != 1000 {
					t.Errorf("HEAD: Content-Length = %d, want the upstream's 1000", resp.ContentLength)
				}
			}
			if wantConns := map[bool]int64{true: 1, false: 2}[tt.reuse]; p.conns.Load() != wantConns {
				t.Errorf("upstream connections = %d, want %d (reuse %v)", p.conns.Load(), wantConns, tt.reuse)
			}
		})
	}
}

func trunc(b []byte) string {
	if len(b) > 40 {
		return string(b[:40]) + fmt.Sprintf("...(%d bytes)", len(b))
	}
	return string(b)
}

func TestTransportBrokenUpstreams(t *testing.T) {
	tests := []struct {
		name, response string
		// wantStatus is the client's status. cutBody: the body breaks after
		// the head was accepted, which can only end the client's connection
		// (before or after fasthttp flushed the head).
		wantStatus int
		cutBody    bool
	}{
		{"garbage head", "NOT HTTP\r\n\r\n", 502, false},
		{"bad chunk size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", 200, true},
		{"chunk without CRLF", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n", 200, true},
		{"short fixed body", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc" + closeMark, 502, false},
		{"too many interim", strings.Repeat("HTTP/1.1 100 Continue\r\n\r\n", 20), 502, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := startRawPod(t, func(int, *http.Request) string { return tt.response })
			e := rawPodEdge(t, p)
			req, _ := http.NewRequest("GET", "http://"+e.addr+"/", nil)
			resp, err := client.Do(req)
			if err != nil {
				if tt.cutBody {
					return // the connection ended before the head was flushed
				}
				t.Fatal(err)
			}
			_, rerr := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("status %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			if tt.cutBody && rerr == nil {
				t.Error("a broken upstream body reached the client as a complete one")
			}
		})
	}
}

// TestTransportStaleConnectionRetried: the upstream closes a kept-alive
// connection without answering (its idle timeout racing the edge's reuse);
// the request goes out again on a fresh connection and the client never
// knows. Only idempotent requests are retried this way.
func TestTransportStaleConnectionRetried(t *testing.T) {
	p := startRawPod(t, func(n int, req *http.Request) string {
		if n == 1 {
			return "" // the second request on a connection finds it closed
		}
		return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
	})
	e := rawPodEdge(t, p)
	for i := range 6 {
		resp, body := e.do(t, "GET", "example.com", "/", nil, nil)
		if resp.StatusCode != 200 || string(body) != "ok" {
			t.Fatalf("GET %d: %d %q; a stale kept-alive connection must be retried", i, resp.StatusCode, body)
		}
	}
	resp, body := e.do(t, "POST", "example.com", "/", nil, strings.NewReader("x"))
	resp2, _ := e.do(t, "POST", "example.com", "/", nil, strings.NewReader("x"))
	if resp.StatusCode == 200 && resp2.StatusCode == 200 {
		t.Logf("POSTs both answered (neither hit a stale connection): %q", body)
	} else if resp.StatusCode != 502 && resp2.StatusCode != 502 {
		t.Errorf("a POST on a stale connection: %d / %d, want 502 (not retried)", resp.StatusCode, resp2.StatusCode)
	}
}

// TestTransportStreamIdleTimeout: a body that stalls longer than the
// response timeout is cut, but one that keeps flowing may take longer than
// it in total.
func TestTransportStreamIdleTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				req, err := http.ReadRequest(bufio.NewReader(c))
				if err != nil {
					return
				}
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 200000\r\n\r\n") //nolint:errcheck
				chunk := bytes.Repeat([]byte("x"), 20000)
				for i := range 10 {
					if req.URL.Path == "/stall" && i == 3 {
						time.Sleep(time.Second)
					}
					if _, err := c.Write(chunk); err != nil {
						return
					}
					time.Sleep(40 * time.Millisecond)
				}
			}()
		}
	}()
	pool := newPool(t, "app", lb.Config{}, &pod{addr: ln.Addr().String()})
	pool.ResponseTimeout = 300 * time.Millisecond
	e := startEdge(t, Options{BufferBodyBytes: 1024}, Config{
		Pools:  map[string]*Pool{"app": pool},
		Routes: []Route{{Prefix: "/", Pool: "app"}},
	})
	resp, err := client.Get("http://" + e.addr + "/flow")
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || n != 200000 {
		t.Errorf("a body flowing for ~400ms under a 300ms response timeout: %d bytes, %v; want all 200000", n, err)
	}
	resp, err = client.Get("http://" + e.addr + "/stall")
	if err != nil {
		t.Fatal(err)
	}
	n, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err == nil || n == 200000 {
		t.Errorf("a body stalling 1s under a 300ms idle timeout arrived whole (%d bytes, %v)", n, err)
	}
}

// FuzzChunkedBody compares the edge's chunked decoder with net/http's: it
// must never accept what net/http rejects, and where both accept they must
// agree on the bytes. The edge is stricter in documented ways: a chunk-size
// line must end in CRLF (no bare LF, RFC 9112 §7.1), and at most 64
// trailer lines.
func FuzzChunkedBody(f *testing.F) {
	for _, s := range []string{
		"5\r\nhello\r\n0\r\n\r\n",
		"5;a=b\r\nhello\r\n0\r\n\r\n",
		"A\r\n0123456789\r\n0\r\nX: y\r\n\r\n",
		"5\nhello\n0\n\n",
		"ffffffffffffffffff\r\n",
		"0x5\r\nhello\r\n0\r\n\r\n",
		"5 \r\nhello\r\n0\r\n\r\n",
		"-5\r\nhello\r\n0\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ours, ourErr := decodeChunked(data)
		theirs, theirErr := io.ReadAll(httputil.NewChunkedReader(bytes.NewReader(data)))
		if ourErr == nil && theirErr != nil {
			t.Fatalf("edge accepted %q (-> %q) that net/http rejects: %v", data, ours, theirErr)
		}
		if ourErr == nil && !bytes.Equal(ours, theirs) {
			t.Fatalf("decoded %q as %q, net/http as %q", data, ours, theirs)
		}
	})
}

// decodeChunked runs the transport's chunked decoder over data.
func decodeChunked(data []byte) ([]byte, error) {
	br := bufio.NewReaderSize(bytes.NewReader(data), 4096)
	var out []byte
	for range 1 << 16 {
		size, err := readChunkSize(br)
		if err != nil {
			return nil, err
		}
		if size == 0 {
			return out, skipTrailers(br)
		}
		if size > int64(len(data)) {
			return nil, io.ErrUnexpectedEOF
		}
		buf := make([]byte, size)
		if _, err := io.ReadFull(br, buf); err != nil {
			return nil, err
		}
		out = append(out, buf...)
		if err := readCRLF(br); err != nil {
			return nil, err
		}
	}
	return nil, errBadChunk
}

// TestIdleUpstreamBytesNeverAnswerALaterRequest: a pod that sends bytes on
// a kept-alive connection after its response (a late body, a second
// response) must not get them read as the next request's response: that
// shifted every later response onto the request after it, across clients.
func TestIdleUpstreamBytesNeverAnswerALaterRequest(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var served atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func(c net.Conn) {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					io.Copy(io.Discard, req.Body) //nolint:errcheck
					n := served.Add(1)
					if req.URL.Path == "/misbehave" {
						io.WriteString(c, "HTTP/1.1 204 No Content\r\n\r\n")
						time.Sleep(100 * time.Millisecond)
						io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nSMUGGLED")
						continue
					}
					body := fmt.Sprintf("answer to %s #%d", req.URL.Path, n)
					fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
				}
			}(c)
		}
	}()
	p := &pod{name: "raw", addr: ln.Addr().String()}
	e := startEdge(t, Options{}, Config{
		Pools:  map[string]*Pool{"app": newPool(t, "app", lb.Config{}, p)},
		Routes: []Route{{Prefix: "/", Pool: "app"}},
	})
	resp, _ := e.do(t, "GET", "example.com", "/misbehave", nil, nil)
	if resp.StatusCode != 204 {
		t.Fatalf("status %d, want the pod's 204", resp.StatusCode)
	}
	time.Sleep(300 * time.Millisecond) // the stray response is on the idle connection now
	for i := range 4 {
		for _, method := range []string{"GET", "POST"} {
			path := fmt.Sprintf("/r%d%s", i, method)
			resp, body := e.do(t, method, "example.com", path, nil, strings.NewReader("x"))
			if resp.StatusCode != 200 || !strings.HasPrefix(string(body), "answer to "+path+" ") {
				t.Fatalf("%s %s: %d %q: another request's response", method, path, resp.StatusCode, body)
			}
		}
	}
}

// TestInvalidUpstreamResponses: responses whose framing two parsers could
// read differently, in a version the edge does not relay, or switching
// protocols nobody asked for, are 502 at once, and the client's connection
// stays usable.
func TestInvalidUpstreamResponses(t *testing.T) {
	responses := map[string]string{
		"/cl-te":       "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
		"/te-cl":       "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
		"/http10-te":   "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
		"/http2":       "HTTP/2.0 200 OK\r\nContent-Length: 5\r\n\r\nhello",
		"/bare-lf":     "HTTP/1.1 200 OK\nContent-Length: 5\n\nhello",
		"/upgrade":     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nRAWDATA",
		"/http10-body": "HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello",
		"/ok":          "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
	}
	p := startRawPod(t, func(_ int, req *http.Request) string {
		if r, ok := responses[req.URL.Path]; ok {
			return r
		}
		return responses["/ok"]
	})
	pool := newPool(t, "app", lb.Config{}, &pod{addr: p.addr})
	pool.ResponseTimeout = 3 * time.Second
	e := startEdge(t, Options{}, Config{
		Pools:  map[string]*Pool{"app": pool},
		Routes: []Route{{Prefix: "/", Pool: "app"}},
	})
	c, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	for _, path := range []string{"/cl-te", "/te-cl", "/http10-te", "/http2", "/bare-lf", "/upgrade", "/http10-body", "/ok"} {
		start := time.Now()
		c.SetDeadline(time.Now().Add(5 * time.Second)) //nolint:errcheck
		fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: example.com\r\n\r\n", path)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		switch path {
		case "/http10-body", "/ok":
			if resp.StatusCode != 200 || resp.Proto != "HTTP/1.1" {
				t.Errorf("%s: %s %d %q, want the edge's HTTP/1.1 200", path, resp.Proto, resp.StatusCode, body)
			}
		default:
			checkError(t, resp, body, http.StatusBadGateway, CodeUpstreamError)
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("%s: the 502 took %v (the response timeout is 3s)", path, d)
			}
		}
	}
}

func TestAsteriskFormStaysAsterisk(t *testing.T) {
	var seen atomic.Value
	p := startRawPod(t, func(_ int, req *http.Request) string {
		seen.Store(req.Method + " " + req.RequestURI)
		return "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
	})
	e := startEdge(t, Options{}, Config{
		Pools:  map[string]*Pool{"app": newPool(t, "app", lb.Config{}, &pod{addr: p.addr})},
		Routes: []Route{{Prefix: "/", Pool: "app"}},
	})
	resp, body := rawRoundTrip(t, e.addr, "OPTIONS * HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d (%s)", resp.StatusCode, body)
	}
	if got, _ := seen.Load().(string); got != "OPTIONS *" {
		t.Errorf("the pod saw %q, want OPTIONS *", got)
	}
}

// TestHTTP10ClientGetsNoChunkedBody: a body of unknown length (chunked, or
// delimited by the pod's close) reaches an HTTP/1.0 client delimited by the
// close of its connection, never in a chunked coding it cannot read.
func TestHTTP10ClientGetsNoChunkedBody(t *testing.T) {
	p := startRawPod(t, func(_ int, req *http.Request) string {
		if req.URL.Path == "/until-close" {
			return "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nbody-until-close" + closeMark
		}
		return "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
	})
	e := startEdge(t, Options{}, Config{
		Pools:  map[string]*Pool{"app": newPool(t, "app", lb.Config{}, &pod{addr: p.addr})},
		Routes: []Route{{Prefix: "/", Pool: "app"}},
	})
	for _, tt := range []struct{ path, want string }{{"/chunked", "hello world"}, {"/until-close", "body-until-close"}} {
		for _, keepAlive := range []string{"", "Connection: keep-alive\r\n"} {
			c, err := net.Dial("tcp", e.addr)
			if err != nil {
				t.Fatal(err)
			}
			c.SetDeadline(time.Now().Add(5 * time.Second)) //nolint:errcheck
			fmt.Fprintf(c, "GET %s HTTP/1.0\r\nHost: example.com\r\n%s\r\n", tt.path, keepAlive)
			raw, err := io.ReadAll(c) // the edge must close: that ends the body
			c.Close()
			if err != nil {
				t.Fatalf("%s %q: %v (got %q)", tt.path, keepAlive, err, raw)
			}
			head, body, _ := strings.Cut(string(raw), "\r\n\r\n")
			if strings.Contains(strings.ToLower(head), "transfer-encoding") || body != tt.want {
				t.Errorf("%s %q: got %q, want a head without Transfer-Encoding and the body %q", tt.path, keepAlive, raw, tt.want)
			}
		}
	}
	// An HTTP/1.1 client still gets the chunked stream on a kept-alive connection.
	resp, body := e.do(t, "GET", "example.com", "/chunked", nil, nil)
	if resp.StatusCode != 200 || string(body) != "hello world" || resp.Close {
		t.Errorf("HTTP/1.1: %d %q close=%v", resp.StatusCode, body, resp.Close)
	}
}

// TestInterruptedBodyIsLogged: a streamed body the pod cuts short is logged
// with error body_interrupted, not as a whole 200.
func TestInterruptedBodyIsLogged(t *testing.T) {
	p := startRawPod(t, func(int, *http.Request) string {
		return "HTTP/1.1 200 OK\r\nContent-Length: 200000\r\n\r\n" + strings.Repeat("x", 100000) + closeMark
	})
	e := startEdge(t, Options{BufferBodyBytes: 1024}, Config{
		Pools:  map[string]*Pool{"app": newPool(t, "app", lb.Config{}, &pod{addr: p.addr})},
		Routes: []Route{{Prefix: "/", Pool: "app"}},
	})
	resp, err := client.Get("http://" + e.addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err == nil {
		t.Errorf("the client read %d bytes of 200000 as a whole body", n)
	}
	line := e.waitLog(t, 1)
	if !strings.Contains(line, `"error":"body_interrupted"`) {
		t.Errorf("access log: %s; want error body_interrupted", line)
	}
}

// typicalResponseHead is an upstream response head as a pod sends it.
const typicalResponseHead = "HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: Thu, 26 Nov 2026 03:00:00 GMT\r\n" +
	"Content-Type: application/json\r\nContent-Length: 42\r\nConnection: keep-alive\r\nCache-Control: no-store\r\n\r\n"

// probedPair returns the edge's side of a loopback connection, probed, and
// the peer's side.
func probedPair(t testing.TB) (*probedConn, net.Conn) {
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
	t.Cleanup(func() { c.Close() })
	peer, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	return newProbedConn(c), peer
}

func TestProbedConnSeesDataAndClose(t *testing.T) {
	pc, peer := probedPair(t)
	if !pc.silent() {
		t.Fatal("a quiet connection probed as not silent")
	}
	io.WriteString(peer, "x") //nolint:errcheck
	for range 100 {
		if !pc.silent() {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if pc.silent() || pc.state != probeData {
		t.Fatalf("unsolicited byte: silent %v, state %d", pc.silent(), pc.state)
	}
	var b [1]byte
	if n, err := pc.Read(b[:]); n != 1 || err != nil {
		t.Fatalf("the probe consumed the byte: %d, %v", n, err)
	}
	peer.Close()
	for range 100 {
		if !pc.silent() {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if pc.state != probeClosed {
		t.Errorf("peer closed: state %d, want probeClosed", pc.state)
	}
}

func BenchmarkCheckResponseHead(b *testing.B) {
	src := strings.NewReader(typicalResponseHead)
	br := bufio.NewReaderSize(src, 8192)
	b.ReportAllocs()
	b.SetBytes(int64(len(typicalResponseHead)))
	for b.Loop() {
		src.Reset(typicalResponseHead)
		br.Reset(src)
		if err := checkResponseHead(br); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkProbeSilent(b *testing.B) {
	pc, peer := probedPair(b)
	defer peer.Close()
	b.ReportAllocs()
	for b.Loop() {
		if !pc.silent() {
			b.Fatal("not silent")
		}
	}
}
