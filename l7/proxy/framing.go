package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"example.com/edge/l7/route"
)

// This file is the edge's defence against request smuggling (RFC 9112 §6.3,
// §11.2): a request whose framing two HTTP implementations could read
// differently is refused with 400 and its connection closed, and a request's
// body is settled completely before any byte of the request goes upstream,
// so the upstream only ever sees whole requests that the client sent.
//
// fasthttp already refuses most ambiguous heads (duplicate or non-numeric
// Content-Length, Transfer-Encoding other than "chunked" or "identity",
// Transfer-Encoding in HTTP/1.0, a space before the colon, control bytes in
// values, missing or repeated Host). What it accepts and checkFraming
// refuses, reading the header block as the client sent it (RawHeaders):
// Content-Length together with Transfer-Encoding, "identity", bare LF line
// ends, obs-fold continuation lines, header names with spaces or that
// imitate a framing header with '_', HTTP versions other than 1.0 and 1.1,
// CONNECT, and an absolute-form target naming a host other than Host.
//
// Known gaps, both harmless here because the edge re-frames every message
// it forwards (request line, header block and chunked coding are written
// anew by the upstream client, never relayed): fasthttp does not expose
// the request line's terminator, so a bare LF ending the request line is
// accepted; and it skips chunk extensions without exposing them, so bytes
// there other than CR and LF are not checked.

// serveFramed is the server's handler (Server installs it as the
// fasthttp.Server's Handler, in front of serve): it refuses requests whose
// framing is ambiguous, settles the request body, then hands the request to
// serve. Like serve, it is safe for concurrent use by fasthttp's connection
// goroutines and keeps nothing from ctx after it returns.
func (h *handler) serveFramed(ctx *fasthttp.RequestCtx) {
	hdr := &ctx.Request.Header
	// The read buffer caps the head too (fasthttp answers ErrSmallBuffer,
	// 431); when it is the larger of the two, MaxHeaderBytes is checked here.
	if h.p.opts.ReadBufferSize > h.p.opts.MaxHeaderBytes && headLen(hdr) > h.p.opts.MaxHeaderBytes {
		h.refuse(ctx, fasthttp.StatusRequestHeaderFieldsTooLarge, CodeHeadersTooLarge, "request headers are over the limit")
		return
	}
	if ok, reason := checkFraming(hdr); !ok {
		h.refuse(ctx, fasthttp.StatusBadRequest, CodeBadRequest, reason)
		return
	}
	// A request without Content-Type goes upstream without one: fasthttp
	// would otherwise add application/octet-stream to any request with a
	// body, a header the client never sent.
	hdr.SetNoDefaultContentType(true)
	if status, code, msg := settleBody(ctx, h.p.opts.BufferBodyBytes); status != 0 {
		h.refuse(ctx, status, code, msg)
		return
	}
	h.serve(ctx)
}

// Listener wraps ln, whose connections Server(listener) is to serve, with
// the one framing check fasthttp cannot be made to reach: fasthttp waits for
// CRLF CRLF to end a request head, so a head whose lines end in bare LFs
// only would hang until the read timeout (408) instead of getting its 400.
// A connection l4 handed off with such a first head (l4.Conn's Peeked) is
// answered 400 bad_request here and closed. A later request of that kind on
// a kept-alive connection, or any with -accept go (no peeked bytes), still
// meets the read timeout: nothing of it is forwarded either way. The loop
// server (LoopServer) refuses every such head with 400.
func (p *Proxy) Listener(listener string, ln net.Listener) net.Listener {
	return &guardedListener{Listener: ln, h: &handler{p: p, listener: listener}}
}

type guardedListener struct {
	net.Listener
	h *handler
}

func (l *guardedListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if pc, ok := c.(interface{ Peeked() []byte }); ok && bareLFHead(pc.Peeked()) {
			go l.h.refuseConn(c, "header line ends in a bare LF")
			continue
		}
		return c, nil
	}
}

// bareLFHead reports whether b starts with a complete request head (as
// headEnd finds it) that fasthttp would never see end: no CRLF CRLF in it.
func bareLFHead(b []byte) bool {
	end := headEnd(b)
	return end > 0 && !bytes.Contains(b[:end], []byte("\r\n\r\n"))
}

// refuseConn answers a connection's first request with 400 bad_request
// without parsing it, and closes the connection.
func (h *handler) refuseConn(c net.Conn, reason string) {
	defer c.Close()
	var ctx fasthttp.RequestCtx
	var req fasthttp.Request
	ctx.Init(&req, c.RemoteAddr(), nil)
	st := h.acquireState(time.Now())
	st.id = h.p.ids.appendRequestID(st.id[:0])
	st.unparsed = true
	st.reason = reason
	ctx.SetConnectionClose()
	ctx.Response.Header.SetServer("edge")
	h.reject(&ctx, st, fasthttp.StatusBadRequest, CodeBadRequest, reason)
	wt := h.p.opts.WriteTimeout
	if wt <= 0 {
		wt = 5 * time.Second
	}
	c.SetWriteDeadline(time.Now().Add(wt)) //nolint:errcheck // the write fails then
	bw := bufio.NewWriter(c)
	if ctx.Response.Write(bw) == nil {
		bw.Flush() //nolint:errcheck // the client may be gone
	}
}

// expect answers a request's Expect: 100-continue (fasthttp's ExpectHandler)
// from its head: a body declared over its route's limit is refused 413
// body_too_large before the client sends it (RFC 9110 §10.1.1), instead of
// being invited with 100 Continue and refused once it arrives. Everything
// else gets 100 Continue and meets its checks in serveFramed as usual.
func (h *handler) expect(ctx *fasthttp.RequestCtx) int {
	cl := ctx.Request.Header.ContentLength()
	if cl <= 0 {
		return fasthttp.StatusContinue
	}
	lv := h.p.snap.Load().listeners[h.listener]
	if lv == nil {
		return fasthttp.StatusContinue
	}
	idx, status := lv.table.Lookup(ctx.Host(), ctx.Path(), ctx.Method())
	if status != route.Matched {
		return fasthttp.StatusContinue
	}
	if cr := lv.routes[idx]; cr.maxBody > 0 && int64(cl) > cr.maxBody {
		// fasthttp then writes this response, status included, closes
		// the connection and does not call the handler.
		h.refuseAt(ctx, time.Now(), cr, fasthttp.StatusRequestEntityTooLarge, CodeBodyTooLarge, "request body is over the limit")
		return fasthttp.StatusRequestEntityTooLarge
	}
	return fasthttp.StatusContinue
}

// headLen is the size of a parsed request head as sent: the request line,
// the header section and the blank line ending it.
func headLen(h *fasthttp.RequestHeader) int {
	return len(h.Method()) + 1 + len(h.RequestURI()) + 1 + len(h.Protocol()) + 2 + len(h.RawHeaders())
}

// refuse answers a request the edge will not read further with the
// contract's error body and closes the connection: what follows on it
// cannot be trusted to start a request.
func (h *handler) refuse(ctx *fasthttp.RequestCtx, status int, code, msg string) {
	h.refuseAt(ctx, ctx.Time(), nil, status, code, msg)
}

// refuseAt is refuse for a request that arrived at start, matched to route
// cr when known (for its metrics and log fields).
func (h *handler) refuseAt(ctx *fasthttp.RequestCtx, start time.Time, cr *compiledRoute, status int, code, msg string) {
	st := h.acquireState(start)
	if cr != nil {
		st.route, st.pool = cr, cr.pool
	}
	if in := ctx.Request.Header.Peek("X-Request-ID"); ValidRequestID(in) {
		st.id = append(st.id[:0], in...)
	} else {
		st.id = h.p.ids.appendRequestID(st.id[:0])
	}
	st.reason = msg
	ctx.SetConnectionClose()
	h.reject(ctx, st, status, code, msg)
}

// checkFraming reports whether a parsed request head frames its message
// unambiguously (RFC 9112 §2.2, §3, §5, §6), looking past fasthttp's parsed
// view at the header block as the client sent it. When it does not, reason
// says why in words fit for the error body. It does not allocate and is safe
// for concurrent use on distinct headers.
func checkFraming(h *fasthttp.RequestHeader) (ok bool, reason string) {
	// RFC 9112 §2.3: this server speaks HTTP/1.0 and HTTP/1.1 only.
	if p := h.Protocol(); string(p) != "HTTP/1.1" && string(p) != "HTTP/1.0" {
		return false, "unsupported HTTP version"
	}
	// RFC 9110 §9.3.6: CONNECT asks for a tunnel, which a reverse proxy
	// does not make; forwarded, an upstream that grants one would take the
	// next request on its connection for tunnel data.
	if h.IsConnect() {
		return false, "CONNECT is not supported"
	}
	// RFC 9110 §7.2: Host is uri-host [":" port]; userinfo ('@') in it is an
	// authority fasthttp would turn into Basic credentials, and '/', '?',
	// '#', '\\' or spaces let two parsers see two hosts.
	if !validHost(h.Host()) {
		return false, "Host is not a valid host[:port]"
	}
	if uri := h.RequestURI(); len(uri) > 0 && uri[0] != '/' && uri[0] != '*' {
		if !absoluteFormMatchesHost(uri, h.Host()) {
			return false, "absolute-form request target does not match Host"
		}
	}

	return checkRawFields(h.RawHeaders())
}

// checkRawFields is checkFraming's pass over the header section as sent:
// CRLF line ends, no folding, token names, and one unambiguous framing.
func checkRawFields(raw []byte) (ok bool, reason string) {
	if len(raw) == 0 {
		return true, "" // no fields at all (an HTTP/1.0 request may have none)
	}
	var te, cl int
	chunked := false
	for {
		// The field name: token bytes up to the colon, in one pass.
		j := 0
		for j < len(raw) && tchar[raw[j]] {
			j++
		}
		if j == len(raw) {
			return false, "header section is not terminated"
		}
		if j == 0 {
			if len(raw) > 1 && raw[0] == '\r' && raw[1] == '\n' {
				break // the empty line ending the header section
			}
			switch raw[0] {
			case '\n':
				// RFC 9112 §2.2: a bare LF is a line end to some parsers
				// and not to others.
				return false, "header line ends in a bare LF"
			case ' ', '\t':
				// RFC 9112 §5.2: obs-fold; a server may reject it with 400,
				// and folding a Transfer-Encoding into the previous line
				// hides it from some parsers.
				return false, "header line folding (obs-fold) is not allowed"
			}
			return false, "header line has no field name"
		}
		if raw[j] != ':' {
			return false, "header field name is not a token"
		}
		name, rest := raw[:j], raw[j+1:]
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			return false, "header section is not terminated"
		}
		if i == 0 || rest[i-1] != '\r' {
			return false, "header line ends in a bare LF"
		}
		value := rest[:i-1]
		raw = rest[i+1:]
		switch f := framingField(name); f {
		case fieldTransferEncoding, fieldContentLength:
			if bytes.IndexByte(name, '_') >= 0 {
				// Content_Length is a different field to HTTP, but CGI-style
				// upstreams map '_' and '-' to the same variable.
				return false, "header field name imitates a framing header"
			}
			if f == fieldContentLength {
				cl++
				continue
			}
			te++
			chunked = bytes.EqualFold(trimOWS(value), []byte("chunked"))
		}
	}
	switch {
	case te > 0 && cl > 0:
		// RFC 9112 §6.3 item 3: the classic CL.TE / TE.CL ambiguity.
		return false, "request has both Content-Length and Transfer-Encoding"
	case te > 1:
		return false, "request repeats Transfer-Encoding"
	case te == 1 && !chunked:
		// RFC 9112 §6.3 item 4 leaves no length for other codings; "identity"
		// is gone from the registry (RFC 9112 §7).
		return false, "request Transfer-Encoding is not chunked"
	case cl > 1:
		return false, "request repeats Content-Length"
	}
	return true, ""
}

const (
	fieldOther = iota
	fieldContentLength
	fieldTransferEncoding
)

// framingField tells whether a field name is Content-Length or
// Transfer-Encoding, case-insensitively and counting '_' as '-'.
func framingField(name []byte) int {
	var want string
	var f int
	switch len(name) {
	case len("Content-Length"):
		want, f = "content-length", fieldContentLength
	case len("Transfer-Encoding"):
		want, f = "transfer-encoding", fieldTransferEncoding
	default:
		return fieldOther
	}
	for i, c := range name {
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		} else if c == '_' {
			c = '-'
		}
		if c != want[i] {
			return fieldOther
		}
	}
	return f
}

// trimOWS drops optional whitespace around a field value (RFC 9110 §5.6.3).
func trimOWS(v []byte) []byte {
	for len(v) > 0 && (v[0] == ' ' || v[0] == '\t') {
		v = v[1:]
	}
	for len(v) > 0 && (v[len(v)-1] == ' ' || v[len(v)-1] == '\t') {
		v = v[:len(v)-1]
	}
	return v
}

// absoluteFormMatchesHost reports whether an absolute-form request target
// (RFC 9112 §3.2.2) is an http or https URI without userinfo whose
// authority is the Host field (case-insensitively), or there is no Host
// field. The edge routes on the target's host and the upstream reads Host,
// so the two must not differ.
func absoluteFormMatchesHost(uri, host []byte) bool {
	var rest []byte
	switch {
	case len(uri) > len("http://") && bytes.EqualFold(uri[:len("http://")], []byte("http://")):
		rest = uri[len("http://"):]
	case len(uri) > len("https://") && bytes.EqualFold(uri[:len("https://")], []byte("https://")):
		rest = uri[len("https://"):]
	default:
		return false
	}
	end := len(rest)
	for i, c := range rest {
		if c == '/' || c == '?' || c == '#' {
			end = i
			break
		}
	}
	authority := rest[:end]
	if len(authority) == 0 || bytes.IndexByte(authority, '@') >= 0 {
		// RFC 9110 §4.2.4: userinfo in an http URI is to be treated as an
		// error; it is a classic way to make two parsers see two hosts.
		return false
	}
	return len(host) == 0 || bytes.EqualFold(authority, host)
}

// validHost reports whether a Host field value is uri-host [":" port] (RFC
// 9110 §7.2, RFC 3986 §3.2.2): a reg-name or IPv4 address of unreserved,
// pct-encoded and sub-delims bytes, or an IP-literal in brackets; then an
// optional port of digits. An empty value passes (HTTP/1.0 may omit Host;
// fasthttp refuses an HTTP/1.1 request without one).
func validHost(v []byte) bool {
	host := v
	if len(v) > 0 && v[0] == '[' {
		end := bytes.IndexByte(v, ']')
		if end < 0 {
			return false
		}
		for _, c := range v[1:end] {
			if !hostByte[c] && c != ':' {
				return false
			}
		}
		host, v = nil, v[end+1:]
		if len(v) > 0 && v[0] != ':' {
			return false
		}
	} else if i := bytes.IndexByte(v, ':'); i >= 0 {
		host, v = v[:i], v[i:]
	} else {
		v = nil
	}
	for _, c := range host {
		if !hostByte[c] {
			return false
		}
	}
	if len(v) > 0 { // ":" port
		for _, c := range v[1:] {
			if c < '0' || c > '9' {
				return false
			}
		}
	}
	return true
}

// hostByte marks the bytes of a reg-name: unreserved, '%' of pct-encoded,
// and sub-delims (RFC 3986 §3.2.2).
var hostByte = alnumAnd("-._~%!$&'()*+,;=")

// tchar marks the bytes of a token (RFC 9110 §5.6.2), which field names are.
var tchar = alnumAnd("!#$%&'*+-.^_`|~")

// settleBody makes a request's body final before anything is forwarded
// (RFC 9112 §6.3). fasthttp hands the handler a stream for chunked bodies
// and for fixed-length ones beyond its first read; read lazily while the
// request goes upstream, a body that turns out truncated or badly chunked
// has already sent the upstream a request the client never completed. So
// every body of up to limit bytes is read here, whole, and refused if it is
// not whole: a chunked one then goes upstream with a Content-Length (RFC
// 9112 §7.1.3; its trailer fields are dropped, which §7.1.2 allows). Larger
// bodies still stream, as they must. A request without body framing gets
// length 0, so it is not forwarded with an empty chunked body.
//
// It returns a zero status when the request may proceed, else the status,
// error code and message to refuse it with.
func settleBody(ctx *fasthttp.RequestCtx, limit int) (status int, code, msg string) {
	hdr := &ctx.Request.Header
	cl := hdr.ContentLength()
	switch {
	case cl == -2:
		// No Content-Length and no Transfer-Encoding: no body (RFC 9112
		// §6.3 item 7). Deleting the field sets length 0 without writing a
		// "Content-Length: 0" the client never sent on a GET or HEAD.
		hdr.Del(fasthttp.HeaderContentLength)
		return 0, "", ""
	case cl == 0 || cl > limit:
		return 0, "", ""
	}
	stream := ctx.RequestBodyStream()
	if stream == nil {
		return 0, "", "" // already whole in memory
	}
	buf := acquireBodyBuffer()
	b, err := readBody(buf.b[:0], stream, limit)
	buf.b = b
	switch {
	case err != nil:
		releaseBodyBuffer(buf)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return fasthttp.StatusRequestTimeout, CodeRequestTimeout, "request body was not received in time"
		}
		if cl < 0 {
			return fasthttp.StatusBadRequest, CodeBadRequest, "request body has invalid chunked framing"
		}
		return fasthttp.StatusBadRequest, CodeBadRequest, "request body could not be read"
	case cl >= 0 && len(b) != cl:
		// The client closed its side before sending Content-Length bytes.
		releaseBodyBuffer(buf)
		return fasthttp.StatusBadRequest, CodeBadRequest, "request body is shorter than its Content-Length"
	case len(b) > limit:
		// A chunked body too big to hold: what was read goes first, the
		// rest streams behind it.
		ctx.Request.SetBodyStream(&prefixedBody{buf: buf, rest: stream}, -1)
		return 0, "", ""
	}
	ctx.Request.SetBody(b)
	releaseBodyBuffer(buf)
	if cl < 0 {
		hdr.SetContentLength(len(b))
		if !dropTrailers(hdr) {
			return fasthttp.StatusBadRequest, CodeBadRequest, "request trailer field repeats a header field"
		}
	}
	return 0, "", ""
}

// dropTrailers discards the trailer fields read after a chunked body (RFC
// 9112 §7.1.2 lets a recipient that removes the chunked coding do so). RFC
// 9110 §6.5.1 forbids merging them into the header section, which fasthttp
// does when the Trailer field is deleted, as the hop-by-hop pass does; so
// they go first. A trailer field named like a field of the header section
// cannot be dropped alone and makes it report false.
func dropTrailers(hdr *fasthttp.RequestHeader) bool {
	keys := hdr.PeekTrailerKeys()
	if len(keys) == 0 {
		return true
	}
	for _, k := range keys {
		if hasRawField(hdr.RawHeaders(), k) {
			return false
		}
	}
	for _, k := range keys {
		hdr.DelBytes(k)
	}
	// With the trailer section empty, forgetting the announced names
	// merges nothing.
	hdr.Del(fasthttp.HeaderTrailer)
	return true
}

// hasRawField reports whether a header block as sent (CRLF lines, already
// checked by checkFraming) has a field named name, case-insensitively.
func hasRawField(raw, name []byte) bool {
	for len(raw) > 0 {
		i := bytes.IndexByte(raw, '\n')
		if i < 0 {
			return false
		}
		line := raw[:i]
		raw = raw[i+1:]
		if colon := bytes.IndexByte(line, ':'); colon > 0 && bytes.EqualFold(line[:colon], name) {
			return true
		}
	}
	return false
}

// errNoProgress is returned by readBody for a stream that keeps returning
// nothing.
var errNoProgress = errors.New("proxy: request body stream makes no progress")

// readBody appends r's bytes to dst until io.EOF, or until dst holds more
// than limit bytes (so a caller tells "exactly limit" from "more"). It
// allocates only to grow dst.
func readBody(dst []byte, r io.Reader, limit int) ([]byte, error) {
	empty := 0
	for len(dst) <= limit {
		if len(dst) == cap(dst) {
			dst = append(dst, make([]byte, min(max(cap(dst), 512), limit+1-len(dst)))...)[:len(dst)]
		}
		n, err := r.Read(dst[len(dst):cap(dst)])
		dst = dst[:len(dst)+n]
		if err == io.EOF {
			return dst, nil
		}
		if err != nil {
			return dst, err
		}
		if n > 0 {
			empty = 0
		} else if empty++; empty > 100 {
			return dst, errNoProgress
		}
	}
	return dst, nil
}

// bodyBuffer is a pooled scratch buffer for settleBody.
type bodyBuffer struct{ b []byte }

// maxPooledBody is the largest buffer kept for reuse; bigger ones (a
// BufferBodyBytes raised past the default) are left to the collector.
const maxPooledBody = 64<<10 + 1024

var bodyBufferPool = sync.Pool{New: func() any { return &bodyBuffer{b: make([]byte, 0, 4096)} }}

// acquireBodyBuffer returns an empty buffer owned by the caller until it
// passes it to releaseBodyBuffer (or to a prefixedBody, which releases it).
func acquireBodyBuffer() *bodyBuffer { return bodyBufferPool.Get().(*bodyBuffer) }

func releaseBodyBuffer(b *bodyBuffer) {
	if cap(b.b) > maxPooledBody {
		return
	}
	b.b = b.b[:0]
	bodyBufferPool.Put(b)
}

// prefixedBody streams a chunked request body whose first bytes settleBody
// already read: those, then the rest of the client's stream. It owns buf
// and releases it once the prefix is passed on; a body abandoned earlier
// leaves buf to the collector. Read is called by one goroutine at a time.
type prefixedBody struct {
	buf  *bodyBuffer
	off  int
	rest io.Reader
}

func (p *prefixedBody) Read(dst []byte) (int, error) {
	if p.buf == nil {
		return p.rest.Read(dst)
	}
	n := copy(dst, p.buf.b[p.off:])
	p.off += n
	if p.off == len(p.buf.b) {
		releaseBodyBuffer(p.buf)
		p.buf = nil
	}
	return n, nil
}
