package fuzz

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp/fasthttputil"

	"example.com/edge/l7/jwt"
	"example.com/edge/l7/jwt/mint"
	"example.com/edge/l7/limit"
	"example.com/edge/l7/proxy"
)

// fuzzNow is the engine's fixed clock: JWT validity and rate-limit buckets
// are judged at this instant in every iteration.
var fuzzNow = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// fuzzToken is an HS256 token for the /jwt/ route (subject "fuzzer", scope
// "read", issued an hour before fuzzNow, valid for a day), signed with
// fuzzKey: seeds carry it verbatim. TestFuzzToken re-mints it.
const fuzzToken = "eyJhbGciOiJIUzI1NiIsImtpZCI6ImsxIiwidHlwIjoiSldUIn0." +
	"eyJleHAiOjE4OTM2Mzk4NDUsImlhdCI6MTg5MzU0OTg0NSwic2NvcGUiOiJyZWFkIiwic3ViIjoiZnV6emVyIn0." +
	"4QBxCzDoR2uhIWgejNNrme7jEixHa18iH_KvTRZhKC8"

func TestFuzzToken(t *testing.T) {
	tok, err := mint.Sign(mint.Options{Alg: "HS256", Kid: "k1", Subject: "fuzzer", Scope: "read",
		Now: fuzzNow.Add(-time.Hour), TTL: 25 * time.Hour}, fuzzKey(t).Private)
	if err != nil || tok != fuzzToken {
		t.Fatalf("minted %q, %v; fuzzToken is %q", tok, err, fuzzToken)
	}
}

// fuzzKey generates the HS256 key fuzzToken is signed with, from a fixed
// byte stream instead of crypto/rand, so the token is the same every run.
func fuzzKey(tb testing.TB) *mint.KeyPair {
	tb.Helper()
	kp, err := mint.GenerateKey("HS256", "k1", strings.NewReader(strings.Repeat("edge fuzz key ", 16)))
	if err != nil {
		tb.Fatal(err)
	}
	return kp
}

// fuzzEdge is the engine FuzzRequestPipeline attacks, built once per fuzzing
// process: every feature on the request path has a route.
//
//	example.com/app/     plain
//	example.com/strip/   strip_prefix, request and response header edits
//	example.com/jwt/     HS256 JWT with scope "read", sub forwarded as X-User,
//	                     X-Route: jwtRouteMark added
//	example.com/limited/ rate limit keyed by X-Fuzz-Key, burst 3, no refill at fuzzNow
//	example.com/small/   16-byte body limit
//	*/                   GET, HEAD, POST, PUT only
type fuzzEdge struct {
	ln   *fasthttputil.InmemoryListener
	up   *upstream
	logs *logSink
}

func newFuzzEdge(tb testing.TB) *fuzzEdge {
	tb.Helper()
	up := startUpstream(tb)
	up.noRaw = true
	up.streamedAfter = fuzzBufferBody
	kp := fuzzKey(tb)
	pol, err := jwt.NewPolicy("gw", jwt.Config{
		Keys:          []jwt.KeyConfig{{HMACSecret: kp.Secret, Alg: "HS256", Kid: "k1"}},
		ForwardClaims: map[string]string{"sub": "X-User"},
	})
	if err != nil {
		tb.Fatal(err)
	}
	lim, err := limit.New(limit.Config{Name: "fuzz", Rate: 1, Per: time.Hour, Burst: 3,
		Key: limit.KeySpec{Kind: limit.KeyHeader, Name: "X-Fuzz-Key"}, MaxKeys: 4096})
	if err != nil {
		tb.Fatal(err)
	}
	logs := &logSink{}
	p := newProxy(tb, proxy.Options{
		// Small buffers, so that short inputs reach the streaming paths
		// and the 431 answer too.
		BufferBodyBytes: fuzzBufferBody,
		MaxHeaderBytes:  4096,
		Now:             func() time.Time { return fuzzNow },
	}, proxy.Config{
		Pools:  map[string]*proxy.Pool{"app": newPool(tb, "app", up)},
		JWT:    map[string]*jwt.Policy{"gw": pol},
		Limits: map[string]*limit.Limiter{"fuzz": lim},
		Routes: []proxy.Route{
			{Host: "example.com", Prefix: "/app/", Pool: "app"},
			{Host: "example.com", Prefix: "/strip/", Pool: "app", StripPrefix: true,
				RequestHeaders:  proxy.HeaderOps{Add: []proxy.Header{{Name: "X-Added", Value: "1"}}, Remove: []string{"X-Remove"}},
				ResponseHeaders: proxy.HeaderOps{Add: []proxy.Header{{Name: "X-Resp", Value: "1"}}, Remove: []string{"Content-Type"}}},
			{Host: "example.com", Prefix: "/jwt/", Pool: "app", JWT: "gw", Scopes: []string{"read"},
				RequestHeaders: proxy.HeaderOps{Add: []proxy.Header{{Name: "X-Route", Value: jwtRouteMark}}}},
			{Host: "example.com", Prefix: "/limited/", Pool: "app", RateLimits: []string{"fuzz"}},
			{Host: "example.com", Prefix: "/small/", Pool: "app", MaxBodyBytes: 16},
			{Prefix: "/", Pool: "app", Methods: []string{"GET", "HEAD", "POST", "PUT"}},
		},
	}, logs)
	ln := fasthttputil.NewInmemoryListener()
	srv := p.Server("web")
	go srv.Serve(halfCloseListener{ln}) //nolint:errcheck
	tb.Cleanup(func() {
		srv.Shutdown() //nolint:errcheck
		ln.Close()
	})
	return &fuzzEdge{ln: ln, up: up, logs: logs}
}

// halfCloseListener gives fasthttputil's in-memory connections, which can
// only close both ways at once, a half-close: the client first writes the
// length of what it sends (8 bytes, big-endian), and the server side reads
// io.EOF after that many bytes, as from a TCP peer that shut down writing.
// The edge then answers everything it received and closes, with no timer.
type halfCloseListener struct{ *fasthttputil.InmemoryListener }

func (l halfCloseListener) Accept() (net.Conn, error) {
	c, err := l.InmemoryListener.Accept()
	if err != nil {
		return nil, err
	}
	return &halfClosedConn{Conn: c, left: -1}, nil
}

type halfClosedConn struct {
	net.Conn
	left int64 // bytes until EOF; -1 before the length arrived
}

func (c *halfClosedConn) Read(p []byte) (int, error) {
	if c.left < 0 {
		var n [8]byte
		if _, err := io.ReadFull(c.Conn, n[:]); err != nil {
			return 0, err
		}
		c.left = int64(binary.BigEndian.Uint64(n[:]))
	}
	if c.left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.Conn.Read(p)
	c.left -= int64(n)
	return n, err
}

// jwtRouteMark is the X-Route value the /jwt/ route adds, telling the
// upstream's records of that route apart.
const jwtRouteMark = "jwt-7f3a9c"

// fuzzBufferBody is the engine's BufferBodyBytes: small, so that short
// inputs reach the streaming paths.
const fuzzBufferBody = 512

// clientAddr is the fuzzing client's address as the edge sees it.
var clientAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}

// refReq is a request as net/http's parser reads the client's bytes: the
// reference for how many complete requests the client sent and what each
// one is.
type refReq struct {
	method string
	body   []byte
}

// referenceParse reads the complete requests at the start of in, stopping at
// the first it cannot parse whole or after one that closes the connection.
// It has net/http parse them one at a time. Two things are not framing and
// are taken out of the comparison: empty lines before a request line, which
// RFC 9112 §2.2 tells a server to skip (the edge does, net/http does not);
// and the request target, whose URI rules differ (fasthttp takes "/%zz"
// literally, net/http refuses it), so a target is replaced by "/t" when the
// request line has the three parts both parsers split it into.
func referenceParse(in []byte) []refReq {
	var reqs []refReq
	for {
		for len(in) > 0 && (in[0] == '\n' || in[0] == '\r' && len(in) > 1 && in[1] == '\n') {
			if in[0] == '\r' {
				in = in[1:]
			}
			in = in[1:]
		}
		line, _, ok := bytes.Cut(in, []byte("\n"))
		if !ok {
			return reqs
		}
		msg, shift := in, 0
		if parts := bytes.Split(line, []byte(" ")); len(parts) == 3 {
			msg = slices.Concat(parts[0], []byte(" /t "), in[len(parts[0])+1+len(parts[1])+1:])
			shift = len(parts[1]) - len("/t")
		}
		r := bytes.NewReader(msg)
		br := bufio.NewReader(r)
		req, err := http.ReadRequest(br)
		if err != nil {
			return reqs
		}
		body, err := io.ReadAll(req.Body)
		if err != nil {
			return reqs
		}
		reqs = append(reqs, refReq{method: req.Method, body: body})
		if req.Close {
			return reqs
		}
		in = in[len(msg)-r.Len()-br.Buffered()+shift:]
	}
}

// exchange sends in on a fresh connection, half-closes, and returns all the
// edge wrote back before closing.
func (fe *fuzzEdge) exchange(t *testing.T, in []byte) []byte {
	t.Helper()
	c, err := fe.ln.DialWithLocalAddr(clientAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	msg := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(in)), uint64(len(in)))
	if _, err := c.Write(append(msg, in...)); err != nil {
		t.Fatal(err)
	}
	// A failsafe against a hung edge, not a timing assertion: the edge has
	// everything it will get and must answer and close by itself.
	c.SetReadDeadline(time.Now().Add(30 * time.Second)) //nolint:errcheck
	out, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("the edge did not answer and close after the client's input ended: %v\ninput %q\nread so far %q", err, in, out)
	}
	return out
}

// check runs one input through the edge and checks every invariant.
func (fe *fuzzEdge) check(t *testing.T, in []byte) {
	ref := referenceParse(in)
	out := fe.exchange(t, in)
	ups, desync := fe.up.take()
	for _, d := range desync {
		t.Errorf("upstream desynchronised: %s", d)
	}
	if s := fe.logs.String(); s != "" {
		t.Fatalf("the edge logged an error (a recovered panic?):\n%s\ninput %q", s, in)
	}

	// The client's side: only well-formed HTTP/1.1 responses, one final
	// response per request, nothing after the last.
	br := bufio.NewReader(bytes.NewReader(out))
	var finals []*http.Response
	var forwarded []int // indexes into finals of responses from the upstream
	lastClose := false
	for br.Buffered() > 0 || !atEOF(br) {
		i := len(finals)
		method := http.MethodGet
		if i < len(ref) {
			method = ref[i].method
		}
		resp, err := http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			t.Fatalf("response %d is not well-formed HTTP/1.1: %v\ninput %q\noutput %q", i+1, err, in, out)
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("response %d body: %v\ninput %q\noutput %q", i+1, err, in, out)
		}
		if method == http.MethodHead && resp.ContentLength > 0 {
			// An answer to a request fasthttp could not parse carries a
			// body even when the method was HEAD: it cannot trust the
			// method, and closes the connection. Anything else must not.
			if next, _ := br.Peek(len("HTTP/1.1 ")); len(next) > 0 && string(next) != "HTTP/1.1 " {
				if !resp.Close {
					t.Fatalf("response %d to HEAD has a body and keeps the connection\ninput %q\noutput %q", i+1, in, out)
				}
				br.Discard(int(resp.ContentLength)) //nolint:errcheck
			}
		}
		if resp.Proto != "HTTP/1.1" {
			t.Fatalf("response %d protocol %q, want HTTP/1.1\noutput %q", i+1, resp.Proto, out)
		}
		if resp.StatusCode == http.StatusContinue {
			continue // the interim answer to Expect: 100-continue
		}
		if resp.StatusCode < 200 || resp.StatusCode > 599 {
			t.Fatalf("response %d status %d\ninput %q\noutput %q", i+1, resp.StatusCode, in, out)
		}
		if resp.ContentLength < 0 && len(resp.TransferEncoding) == 0 && method != http.MethodHead {
			t.Fatalf("response %d has no length: only closing the connection would end it\noutput %q", i+1, out)
		}
		if resp.Header.Get("X-Upstream-Seq") != "" {
			forwarded = append(forwarded, i)
		} else if method != http.MethodHead {
			checkEdgeError(t, i+1, resp, body, in)
		}
		finals = append(finals, resp)
		lastClose = resp.Close
	}

	// The upstream's side: exactly the requests whose answers came back, in
	// order, each as the client sent it.
	if len(ups) != len(forwarded) {
		t.Fatalf("upstream received %d requests, client got %d answers from it\ninput %q\noutput %q", len(ups), len(forwarded), in, out)
	}
	for n, i := range forwarded {
		resp, up := finals[i], ups[n]
		if got := resp.Header.Get("X-Upstream-Seq"); got != strconv.Itoa(up.Seq) {
			t.Fatalf("response %d carries upstream answer %s, want %d: answers out of order\ninput %q", i+1, got, up.Seq, in)
		}
		if i >= len(ref) {
			t.Fatalf("the edge forwarded request %d (%s %s, %d-byte body), which net/http does not read as a complete request\ninput %q", i+1, up.Method, up.URI, len(up.Body), in)
		}
		if up.Method != ref[i].method || !bytes.Equal(up.Body, ref[i].body) {
			t.Fatalf("request %d reached the upstream as %s with body %q; the client sent %s with body %q\ninput %q", i+1, up.Method, up.Body, ref[i].method, ref[i].body, in)
		}
		// Identity the upstream trusts comes from the edge alone: on the
		// JWT route, the verified token's subject (client copies of the
		// claim header are dropped), and the connection's address.
		if r := up.Header["X-Route"]; len(r) == 1 && r[0] == jwtRouteMark {
			if u := up.Header["X-User"]; len(u) != 1 || u[0] != "fuzzer" {
				t.Fatalf("request %d passed the JWT route with X-User %q, want the token's subject alone\ninput %q", i+1, u, in)
			}
		}
		if xff := up.Header["X-Forwarded-For"]; len(xff) != 1 || xff[0] != "127.0.0.1" {
			t.Fatalf("request %d reached the upstream with X-Forwarded-For %q, want the client's address alone\ninput %q", i+1, xff, in)
		}
	}
	// An edge that closes without saying so did it because the input
	// ended: by then it must have answered every complete request, and at
	// most the incomplete one after them, from its head alone (a 405 or a
	// 404 needs no body; forwarded ones were checked above).
	if len(finals) > 0 && !lastClose && (len(finals) < len(ref) || len(finals) > len(ref)+1) {
		t.Fatalf("the edge answered %d requests and closed silently; the client sent %d complete ones\ninput %q\noutput %q", len(finals), len(ref), in, out)
	}
	if len(finals) == 0 && len(ref) > 0 {
		t.Fatalf("the edge answered none of %d complete requests\ninput %q", len(ref), in)
	}
}

func atEOF(br *bufio.Reader) bool {
	_, err := br.Peek(1)
	return errors.Is(err, io.EOF)
}

// checkEdgeError checks a response the edge produced itself against the
// contract's error body.
func checkEdgeError(t *testing.T, n int, resp *http.Response, body, in []byte) {
	t.Helper()
	if resp.StatusCode < 400 {
		// 308 redirects are the only other answers of the edge's own; no
		// listener here redirects.
		t.Fatalf("response %d: status %d neither from the upstream nor an error\ninput %q", n, resp.StatusCode, in)
	}
	var eb struct{ Error, Message, RequestID string }
	if err := json.Unmarshal(body, &eb); err != nil || eb.Error == "" || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("response %d: status %d with body %q (Content-Type %q): not the contract's JSON error\ninput %q", n, resp.StatusCode, body, resp.Header.Get("Content-Type"), in)
	}
}

// FuzzRequestPipeline sends arbitrary bytes, usually several pipelined
// requests, through the whole engine to a real upstream and checks that the
// edge never panics, that the client gets a well-formed HTTP/1.1 response
// for each request it completed, and that the upstream sees exactly the
// requests the edge forwarded, each one complete and as net/http reads the
// client's bytes.
func FuzzRequestPipeline(f *testing.F) {
	fe := newFuzzEdge(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		fe.check(t, in)
	})
}

// pipelineSeeds are requests for every route and the framing cases of
// TestSmuggling, so the fuzzer starts where the interesting code is.
func pipelineSeeds() []string {
	const h = "Host: example.com\r\n"
	auth := "Authorization: Bearer " + fuzzToken + "\r\n"
	return []string{
		"GET /app/x HTTP/1.1\r\n" + h + "\r\n",
		"GET /strip/a/b?q=1 HTTP/1.1\r\n" + h + "X-Remove: 1\r\nX-Added: client\r\n\r\n",
		"GET /jwt/me HTTP/1.1\r\n" + h + auth + "X-User: spoofed\r\n\r\n",
		"GET /jwt/me HTTP/1.1\r\n" + h + "Authorization: Bearer x.y.z\r\n\r\n",
		"GET /limited/a HTTP/1.1\r\n" + h + "X-Fuzz-Key: a\r\n\r\n" + "GET /limited/a HTTP/1.1\r\n" + h + "X-Fuzz-Key: a\r\n\r\n" +
			"GET /limited/a HTTP/1.1\r\n" + h + "X-Fuzz-Key: a\r\n\r\n" + "GET /limited/a HTTP/1.1\r\n" + h + "X-Fuzz-Key: a\r\n\r\n",
		"POST /small/x HTTP/1.1\r\n" + h + "Content-Length: 20\r\n\r\n01234567890123456789",
		"DELETE /x HTTP/1.1\r\n" + h + "\r\n",
		"GET /nothing HTTP/1.1\r\nHost: other.example\r\n\r\n",
		"HEAD /app/x HTTP/1.1\r\n" + h + "\r\nGET /app/y HTTP/1.1\r\n" + h + "\r\n",
		"POST /app/x HTTP/1.1\r\n" + h + "Content-Length: 5\r\n\r\nhelloPOST /app/y HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n3;e=1\r\nabc\r\n0\r\nX-T: 1\r\n\r\n",
		"POST /app/big HTTP/1.1\r\n" + h + "Content-Length: 600\r\n\r\n" + strings.Repeat("z", 600) + "GET /app/after HTTP/1.1\r\n" + h + "\r\n",
		"POST /app/bigchunked HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n258\r\n" + strings.Repeat("c", 600) + "\r\n0\r\n\r\n",
		"POST /app/x HTTP/1.1\r\n" + h + "Content-Length: 600\r\n\r\nshort",
		"POST /app/x HTTP/1.1\r\n" + h + "Expect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
		"POST /app/x HTTP/1.0\r\n" + h + "Content-Length: 3\r\n\r\nabcGET /app/y HTTP/1.1\r\n" + h + "\r\n",
		"GET /app/x HTTP/1.1\r\n" + h + "Connection: close\r\n\r\nGET /app/y HTTP/1.1\r\n" + h + "\r\n",
		"GET http://example.com/app/x HTTP/1.1\r\n" + h + "\r\n",
		"POST /app/x HTTP/1.1\r\n" + h + "Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG",
		"POST /app/x HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n",
		"POST /app/x HTTP/1.1\r\n" + h + "Transfer-Encoding: identity\r\n\r\n",
		"GET /app/x HTTP/1.1\r\nHost: example.com\nX-A: 1\n\nGET /app/y HTTP/1.1\r\n" + h + "\r\n",
		"GET /app/x HTTP/1.1\r\n" + h + "X-A: 1\r\n 2\r\n\r\n",
		"POST /app/x HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n\r\n",
		"GET /app/x HTTP/1.1\r\n" + h + "\r\nGARBAGE\r\n\r\n",
		"GET /app/%2e%2e/strip/x HTTP/1.1\r\n" + h + "Cookie: a=1\r\nTraceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\nX-Request-ID: abc\r\n\r\n",
		"GET /app/x HTTP/1.1\r\n" + h + "Connection: keep-alive, X-Forwarded-For, Content-Length\r\nUpgrade: websocket\r\n\r\n",
		"OPTIONS * HTTP/1.1\r\n" + h + "\r\n",
		"\r\n\r\nGET /app/x HTTP/1.1\r\n" + h + "\r\n",
	}
}
