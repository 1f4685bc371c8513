package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/valyala/fasthttp"

	"example.com/edge/lb"
)

// parseHead parses a request head the way the server does.
func parseHead(t testing.TB, head string) (*fasthttp.RequestHeader, error) {
	t.Helper()
	var h fasthttp.RequestHeader
	err := h.Read(bufio.NewReader(strings.NewReader(head)))
	return &h, err
}

func TestCheckFraming(t *testing.T) {
	const host = "Host: example.com\r\n"
	tests := []struct {
		name, head string
		want       string // "" for accepted, else a word of the reason
	}{
		{"plain GET", "GET /a HTTP/1.1\r\n" + host + "\r\n", ""},
		{"HTTP/1.0 without headers", "GET /a HTTP/1.0\r\n\r\n", ""},
		{"Content-Length", "POST /a HTTP/1.1\r\n" + host + "Content-Length: 5\r\n\r\n", ""},
		{"chunked", "POST /a HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n", ""},
		{"chunked in capitals with OWS", "POST /a HTTP/1.1\r\n" + host + "Transfer-Encoding:\t CHUNKED \r\n\r\n", ""},
		{"absolute-form naming Host", "GET http://Example.COM/a HTTP/1.1\r\n" + host + "\r\n", ""},
		{"absolute-form https", "GET https://example.com HTTP/1.1\r\n" + host + "\r\n", ""},
		{"absolute-form without Host (HTTP/1.0)", "GET http://example.com/a HTTP/1.0\r\n\r\n", ""},
		{"asterisk-form", "OPTIONS * HTTP/1.1\r\n" + host + "\r\n", ""},
		{"every tchar in a name", "GET /a HTTP/1.1\r\n" + host + "!#$%&'*+-.^_`|~09azAZ: 1\r\n\r\n", ""},
		{"Host with a port", "GET /a HTTP/1.1\r\nHost: example.com:8080\r\n\r\n", ""},
		{"Host IPv6 literal with a port", "GET /a HTTP/1.1\r\nHost: [2001:db8::1]:8443\r\n\r\n", ""},
		{"Host IPv4", "GET /a HTTP/1.1\r\nHost: 192.0.2.7\r\n\r\n", ""},
		{"name resembling a framing field", "GET /a HTTP/1.1\r\n" + host + "Content-Lengths: 1\r\nTransfer-Encodin: x\r\n\r\n", ""},

		{"Content-Length and Transfer-Encoding", "POST /a HTTP/1.1\r\n" + host + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", "both"},
		{"Transfer-Encoding and Content-Length", "POST /a HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", "both"},
		{"Transfer-Encoding: identity", "POST /a HTTP/1.1\r\n" + host + "Transfer-Encoding: identity\r\n\r\n", "not chunked"},
		{"Transfer_Encoding", "POST /a HTTP/1.1\r\n" + host + "Transfer_Encoding: chunked\r\n\r\n", "imitates"},
		{"CONTENT_LENGTH", "POST /a HTTP/1.1\r\n" + host + "CONTENT_LENGTH: 5\r\n\r\n", "imitates"},
		{"bare LF ending a field line", "GET /a HTTP/1.1\r\nHost: example.com\nX-A: 1\r\n\r\n", "bare LF"},
		{"bare LF ending the section", "GET /a HTTP/1.1\r\n" + host + "\n\r\n\r\n", "bare LF"},
		{"obs-fold", "GET /a HTTP/1.1\r\n" + host + "X-A: 1\r\n 2\r\n\r\n", "obs-fold"},
		{"obs-fold hiding Transfer-Encoding", "GET /a HTTP/1.1\r\n" + host + "X-A: 1\r\n\tTransfer-Encoding: chunked\r\n\r\n", "obs-fold"},
		{"space inside a name", "GET /a HTTP/1.1\r\n" + host + "X A: 1\r\n\r\n", "token"},
		{"HTTP/1.2", "GET /a HTTP/1.2\r\n" + host + "\r\n", "version"},
		{"HTTP/2.0", "GET /a HTTP/2.0\r\n" + host + "\r\n", "version"},
		{"CONNECT", "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", "CONNECT"},
		{"absolute-form naming another host", "GET http://admin/a HTTP/1.1\r\n" + host + "\r\n", "absolute-form"},
		{"absolute-form with a port Host lacks", "GET http://example.com:80/a HTTP/1.1\r\n" + host + "\r\n", "absolute-form"},
		{"absolute-form with userinfo", "GET http://example.com@admin/a HTTP/1.1\r\n" + host + "\r\n", "absolute-form"},
		{"absolute-form with empty authority", "GET http:///a HTTP/1.1\r\n" + host + "\r\n", "absolute-form"},
		{"Host with userinfo", "GET /a HTTP/1.1\r\nHost: user@example.com\r\n\r\n", "Host"},
		{"Host with a path", "GET /a HTTP/1.1\r\nHost: example.com/admin\r\n\r\n", "Host"},
		{"Host with a backslash", "GET /a HTTP/1.1\r\nHost: example.com\\admin\r\n\r\n", "Host"},
		{"Host with a bad port", "GET /a HTTP/1.1\r\nHost: example.com:80x\r\n\r\n", "Host"},
		{"Host, unclosed IPv6 literal", "GET /a HTTP/1.1\r\nHost: [2001:db8::1\r\n\r\n", "Host"},
		{"Host, junk after IPv6 literal", "GET /a HTTP/1.1\r\nHost: [::1]x\r\n\r\n", "Host"},
		{"absolute-form, other scheme", "GET ws://example.com/a HTTP/1.1\r\n" + host + "\r\n", "absolute-form"},
	}
	for _, tt := range tests {
		h, err := parseHead(t, tt.head)
		if err != nil {
			t.Errorf("%s: fasthttp refused the head itself (%v); the case tests nothing", tt.name, err)
			continue
		}
		ok, reason := checkFraming(h)
		switch {
		case tt.want == "" && !ok:
			t.Errorf("%s: refused (%s), want accepted", tt.name, reason)
		case tt.want != "" && ok:
			t.Errorf("%s: accepted, want refused (%s)", tt.name, tt.want)
		case tt.want != "" && !strings.Contains(reason, tt.want):
			t.Errorf("%s: reason %q, want one mentioning %q", tt.name, reason, tt.want)
		}
	}
}

// TestCheckFramingRepeats covers what fasthttp refuses on its own today, by
// building the header block directly: checkFraming must not depend on it.
func TestCheckFramingRepeats(t *testing.T) {
	for _, tt := range []struct{ raw, want string }{
		{"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", "repeats Transfer-Encoding"},
		{"Content-Length: 5\r\nContent-Length: 5\r\n\r\n", "repeats Content-Length"},
		{"Transfer-Encoding: chunked, identity\r\n\r\n", "not chunked"},
		{"X-A: 1", "not terminated"},
		{": 1\r\n\r\n", "no field name"},
		{"X-A 1\r\n\r\n", "not a token"},
		{"X-A\r\n\r\n", "not a token"},
	} {
		if ok, reason := checkRawFields([]byte(tt.raw)); ok || !strings.Contains(reason, tt.want) {
			t.Errorf("%q: ok %v, reason %q; want refused for %q", tt.raw, ok, reason, tt.want)
		}
	}
}

func TestReadBody(t *testing.T) {
	const limit = 10
	tests := []struct {
		name string
		r    io.Reader
		want string
		err  error
	}{
		{"empty", strings.NewReader(""), "", nil},
		{"under the limit", strings.NewReader("hello"), "hello", nil},
		{"exactly the limit", strings.NewReader("0123456789"), "0123456789", nil},
		// One byte past the limit tells "more than limit" apart.
		{"over the limit", strings.NewReader("0123456789abcdef"), "0123456789a", nil},
		{"one byte at a time", iotest.OneByteReader(strings.NewReader("hello")), "hello", nil},
		{"data with EOF", iotest.DataErrReader(strings.NewReader("hello")), "hello", nil},
		{"error midway", io.MultiReader(strings.NewReader("he"), iotest.ErrReader(io.ErrUnexpectedEOF)), "he", io.ErrUnexpectedEOF},
		{"no progress", zeroReader{}, "", errNoProgress},
	}
	for _, tt := range tests {
		got, err := readBody(make([]byte, 0, 4), tt.r, limit)
		if len(got) > limit+1 {
			got = got[:limit+1] // a reader may fill the whole buffer
		}
		if string(got) != tt.want || !errors.Is(err, tt.err) {
			t.Errorf("%s: got %q, %v; want %q, %v", tt.name, got, err, tt.want, tt.err)
		}
	}
}

type zeroReader struct{}

func (zeroReader) Read([]byte) (int, error) { return 0, nil }

// settleCtx is a request as the server hands it over: head parsed, body a
// stream (as StreamRequestBody makes it for chunked bodies).
func settleCtx(t testing.TB, head, body string) *fasthttp.RequestCtx {
	t.Helper()
	var ctx fasthttp.RequestCtx
	br := bufio.NewReader(strings.NewReader(head + body))
	if err := ctx.Request.Header.Read(br); err != nil {
		t.Fatal(err)
	}
	cl := ctx.Request.Header.ContentLength()
	if cl != -2 {
		ctx.Request.SetBodyStream(&chunkedStream{br: br, chunked: cl == -1, h: &ctx.Request.Header}, cl)
	}
	return &ctx
}

// chunkedStream decodes a chunked body with fasthttp's own decoder, reading
// the trailer section into the header as the server's stream does.
type chunkedStream struct {
	br      *bufio.Reader
	chunked bool
	h       *fasthttp.RequestHeader
	body    *bytes.Reader
	err     error
}

func (s *chunkedStream) Read(p []byte) (int, error) {
	if s.body == nil {
		var req fasthttp.Request
		s.h.CopyTo(&req.Header)
		s.err = req.ContinueReadBody(s.br, 0)
		if s.chunked {
			req.Header.CopyTo(s.h) // the trailer fields
		}
		s.body = bytes.NewReader(req.Body())
	}
	n, err := s.body.Read(p)
	if err == io.EOF && s.err != nil {
		err = s.err
	}
	return n, err
}

func TestSettleBody(t *testing.T) {
	const post = "POST /a HTTP/1.1\r\nHost: example.com\r\n"
	tests := []struct {
		name, head, body string
		limit            int
		status           int
		wantBody         string
		wantCL           int // the Content-Length the request goes upstream with
		streamed         bool
	}{
		{"no body", "GET /a HTTP/1.1\r\nHost: example.com\r\n\r\n", "", 100, 0, "", 0, false},
		{"Content-Length", post + "Content-Length: 5\r\n\r\n", "hello", 100, 0, "hello", 5, false},
		{"chunked", post + "Transfer-Encoding: chunked\r\n\r\n", "5\r\nhello\r\n0\r\n\r\n", 100, 0, "hello", 5, false},
		{"chunked at the limit", post + "Transfer-Encoding: chunked\r\n\r\n", "5\r\nhello\r\n0\r\n\r\n", 5, 0, "hello", 5, false},
		{"chunked over the limit", post + "Transfer-Encoding: chunked\r\n\r\n", "5\r\nhello\r\n0\r\n\r\n", 4, 0, "hello", -1, true},
		{"chunked with a trailer", post + "Trailer: X-T\r\nTransfer-Encoding: chunked\r\n\r\n", "5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n", 100, 0, "hello", 5, false},
		{"Content-Length over the limit streams untouched", post + "Content-Length: 5\r\n\r\n", "hello", 4, 0, "hello", 5, true},
		{"bad chunk size", post + "Transfer-Encoding: chunked\r\n\r\n", "zz\r\nhello\r\n0\r\n\r\n", 100, 400, "", 0, false},
		{"chunked cut short", post + "Transfer-Encoding: chunked\r\n\r\n", "5\r\nhel", 100, 400, "", 0, false},
		{"Content-Length cut short", post + "Content-Length: 10\r\n\r\n", "hello", 100, 400, "", 0, false},
		{"trailer repeating a header", post + "X-T: 0\r\nTransfer-Encoding: chunked\r\n\r\n", "5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n", 100, 400, "", 0, false},
	}
	for _, tt := range tests {
		ctx := settleCtx(t, tt.head, tt.body)
		status, _, msg := settleBody(ctx, tt.limit)
		if status != tt.status {
			t.Errorf("%s: status %d (%s), want %d", tt.name, status, msg, tt.status)
			continue
		}
		if status != 0 {
			continue
		}
		if streamed := ctx.Request.IsBodyStream(); streamed != tt.streamed {
			t.Errorf("%s: streamed %v, want %v", tt.name, streamed, tt.streamed)
		}
		if cl := ctx.Request.Header.ContentLength(); cl != tt.wantCL {
			t.Errorf("%s: Content-Length %d, want %d", tt.name, cl, tt.wantCL)
		}
		var got []byte
		if tt.streamed {
			got, _ = io.ReadAll(ctx.Request.BodyStream())
		} else {
			got = ctx.Request.Body()
		}
		if string(got) != tt.wantBody {
			t.Errorf("%s: body %q, want %q", tt.name, got, tt.wantBody)
		}
		head := ctx.Request.Header.String()
		if strings.Contains(head, "X-T") || strings.Contains(head, "Trailer") || (!tt.streamed && strings.Contains(head, "Transfer-Encoding")) {
			t.Errorf("%s: head going upstream keeps trailer or chunked framing:\n%s", tt.name, head)
		}
	}
}

// TestServeFramed runs the handler wrapper on a real server in front of a
// real pod, whether or not Server wires it in yet.
func TestServeFramed(t *testing.T) {
	pod := startPod(t, "a")
	p, err := New(Options{}, Config{
		Listeners: []Listener{{Name: "web"}},
		Pools:     map[string]*Pool{"app": newPool(t, "app", lb.Config{}, pod)},
		Routes:    []Route{{Prefix: "/", Pool: "app"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := p.Server("web")
	srv.Handler = (&handler{p: p, listener: "web"}).serveFramed
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)                     //nolint:errcheck
	t.Cleanup(func() { srv.Shutdown() }) //nolint:errcheck

	send := func(raw string) (*http.Response, []byte) {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprint(c, raw)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		return resp, body
	}
	before := pod.hits.Load()
	resp, body := send("POST /a HTTP/1.1\r\nHost: example.com\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\nX-Request-ID: rid-1\r\n\r\n0\r\n\r\nG")
	checkError(t, resp, body, 400, CodeBadRequest)
	if !resp.Close || resp.Header.Get("X-Request-ID") != "rid-1" {
		t.Errorf("refusal: Connection close %v, X-Request-ID %q; want close and the client's rid-1", resp.Close, resp.Header.Get("X-Request-ID"))
	}
	if hits := pod.hits.Load() - before; hits != 0 {
		t.Errorf("the pod saw %d requests of a refused CL.TE request", hits)
	}

	resp, body = send("POST /a HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
	e := decodeEcho(t, body)
	if cl := e.Headers["Content-Length"]; resp.StatusCode != 200 || e.BodyLen != 5 || len(cl) != 1 || cl[0] != "5" || e.Headers["Content-Type"] != nil {
		t.Errorf("chunked POST reached the pod as %+v; want a 5-byte body with Content-Length and no Content-Type", e)
	}
}

// browserHead is a typical request head: a dozen fields, about 600 bytes.
const browserHead = "GET /app/dashboard?tab=1 HTTP/1.1\r\n" +
	"Host: example.com\r\n" +
	"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n" +
	"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n" +
	"Accept-Language: en-US,en;q=0.5\r\n" +
	"Accept-Encoding: gzip, deflate, br, zstd\r\n" +
	"Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyLTQyIn0.c2lnbmF0dXJl\r\n" +
	"Cookie: session=0123456789abcdef; theme=dark\r\n" +
	"Referer: https://example.com/app/\r\n" +
	"Sec-Fetch-Dest: document\r\n" +
	"Sec-Fetch-Mode: navigate\r\n" +
	"Sec-Fetch-Site: same-origin\r\n" +
	"X-Request-ID: 0af7651916cd43dd8448eb211c80319c\r\n" +
	"Connection: keep-alive\r\n\r\n"

func BenchmarkCheckFraming(b *testing.B) {
	h, err := parseHead(b, browserHead)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(browserHead)))
	for b.Loop() {
		if ok, reason := checkFraming(h); !ok {
			b.Fatal(reason)
		}
	}
}

// settleLoop prepares ctx to settle the same chunked body again and again.
type settleLoop struct {
	ctx  *fasthttp.RequestCtx
	r    *bytes.Reader
	body []byte
}

func newSettleLoop(t testing.TB, n int) *settleLoop {
	t.Helper()
	s := &settleLoop{body: bytes.Repeat([]byte("x"), n), r: bytes.NewReader(nil)}
	s.ctx = settleCtx(t, "POST /a HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n", "0\r\n\r\n")
	return s
}

func (s *settleLoop) run(t testing.TB) {
	s.r.Reset(s.body)
	s.ctx.Request.SetBodyStream(s.r, -1) // what the server hands over for a chunked body
	if status, _, msg := settleBody(s.ctx, 64<<10); status != 0 || s.ctx.Request.Header.ContentLength() != len(s.body) {
		t.Fatalf("settle: %d %s", status, msg)
	}
}

// BenchmarkSettleBodyChunked1K reads a 1 KiB chunked body whole and re-frames
// it with a Content-Length (the body decoding itself is fasthttp's and not
// part of this figure).
func BenchmarkSettleBodyChunked1K(b *testing.B) {
	s := newSettleLoop(b, 1024)
	b.ReportAllocs()
	b.SetBytes(1024)
	for b.Loop() {
		s.run(b)
	}
}

// peekConn is a connection whose first bytes were read to classify it, as
// l4 hands them off (l4.Conn): Read replays them, Peeked shows them.
type peekConn struct {
	net.Conn
	prefix []byte
}

func (c *peekConn) Peeked() []byte { return c.prefix }

func (c *peekConn) Read(p []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// peekListener reads each connection's first request head before handing
// it on, as l4's classification does.
type peekListener struct{ net.Listener }

func (l peekListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	c.SetReadDeadline(time.Now().Add(2 * time.Second)) //nolint:errcheck
	var buf []byte
	tmp := make([]byte, 4096)
	for headEnd(buf) < 0 {
		n, err := c.Read(tmp)
		buf = append(buf, tmp[:n]...)
		if err != nil {
			break
		}
	}
	c.SetReadDeadline(time.Time{}) //nolint:errcheck
	return &peekConn{Conn: c, prefix: buf}, nil
}

func TestListenerRefusesBareLFHead(t *testing.T) {
	a := startPod(t, "a")
	p, err := New(Options{ReadTimeout: 10 * time.Second}, Config{
		Listeners: []Listener{{Name: "web"}},
		Pools:     map[string]*Pool{"app": newPool(t, "app", lb.Config{}, a)},
		Routes:    []Route{{Prefix: "/", Pool: "app"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := p.Server("web")
	go srv.Serve(p.Listener("web", peekListener{ln})) //nolint:errcheck
	t.Cleanup(func() { srv.Shutdown() })              //nolint:errcheck
	addr := ln.Addr().String()

	// Before the fix this waited for the 10s read timeout (408); rawRoundTrip
	// gives up after 5s.
	resp, body := rawRoundTrip(t, addr, "GET /a HTTP/1.1\nHost: example.com\nConnection: close\n\n")
	checkError(t, resp, body, http.StatusBadRequest, CodeBadRequest)
	if !resp.Close {
		t.Error("the connection stays open after a refused head")
	}
	// A well-framed head still goes through the same listener.
	resp, body = rawRoundTrip(t, addr, "GET /a HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n")
	if resp.StatusCode != http.StatusOK {
		t.Errorf("well-framed request: status %d (%s)", resp.StatusCode, body)
	}
	if a.hits.Load() != 1 {
		t.Errorf("pod hits = %d, want 1 (the refused head must not reach it)", a.hits.Load())
	}
}
