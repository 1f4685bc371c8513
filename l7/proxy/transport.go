package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

// The upstream exchange. A fasthttp.HostClient per endpoint serves only as
// the keep-alive connection pool (AcquireConn, ReleaseConn, buffered readers
// and writers, idle cleanup); the exchange itself is done here, reading the
// response head straight into the client's response, so that:
//   - a response with a small declared length is read whole and its
//     connection pooled at once, and a larger or chunked one streams through
//     a pooled reader (fasthttp's own streaming allocates closures per
//     response);
//   - the response timeout bounds the response head, and while a body
//     streams each read gets a fresh idle deadline instead of one deadline
//     for the whole transfer;
//   - the caller learns whether the request can have reached the upstream
//     (retry safety) and whether a pooled connection was stale.

// Errors of an exchange, classified by classify.
var (
	// errStaleConn: a kept-alive connection answered nothing at all, the
	// race with an upstream closing idle connections.
	errStaleConn = errors.New("proxy: upstream closed a kept-alive connection before answering")
	// errBadChunk: the upstream's chunked framing is broken.
	errBadChunk = errors.New("proxy: malformed chunked response body")
	// errTooManyInterim: more 1xx responses than any server sends.
	errTooManyInterim = errors.New("proxy: too many interim responses")
	// errBadResponse: a response head the edge will not relay (see
	// checkResponseHead), or a 101 nobody asked for.
	errBadResponse = errors.New("proxy: invalid response from upstream")
	// errResponseHeadTooLarge: the head does not fit the upstream read buffer.
	errResponseHeadTooLarge = errors.New("proxy: upstream response head over the read buffer")
)

// sendError wraps a failure to send the request: the upstream cannot have
// acted on a request it did not fully receive.
type sendError struct{ err error }

func (e *sendError) Error() string { return "proxy: sending request: " + e.err.Error() }
func (e *sendError) Unwrap() error { return e.err }

// maxInterim bounds 1xx responses before the final one.
const maxInterim = 8

// pooledConn is fasthttp's *clientConn: HostClient hands it out and takes it
// back but does not export its type, so connPool is generic over it and
// newConnPool infers it from HostClient's methods.
type pooledConn interface {
	Conn() net.Conn
	LastUseTime() time.Time
}

// exchanger is a connPool of any connection type.
type exchanger interface {
	exchange(req *fasthttp.Request, resp *fasthttp.Response, deadline time.Time, bufferMax int, idle time.Duration, obs bodyObserver) error
}

// bodyObserver sees a streamed response body: it may wrap it (compression)
// before fasthttp gets it, and learns when it is over: how many bytes came
// from the upstream, and the error if relaying it failed.
type bodyObserver interface {
	wrapStream(h *fasthttp.ResponseHeader, body upstreamStream, size int) (io.Reader, int)
	bodyDone(sent int64, err error)
}

// connPool runs exchanges over one endpoint's HostClient connection pool.
type connPool[C pooledConn] struct {
	hc      *fasthttp.HostClient
	acquire func(time.Duration, bool) (C, error)
	release func(C)
	close   func(C)
	bodies  sync.Pool // *upstreamBody[C]
}

func newConnPool[C pooledConn](hc *fasthttp.HostClient, acquire func(time.Duration, bool) (C, error), release, closeConn func(C)) *connPool[C] {
	return &connPool[C]{hc: hc, acquire: acquire, release: release, close: closeConn}
}

// exchange sends req over a pooled connection and reads the response head
// into resp. The response head must arrive by deadline. A body of at most
// bufferMax declared bytes is read into resp; a larger, chunked or
// close-delimited one is left streaming from the connection (resp's body
// stream, which returns the connection to the pool when fasthttp closes it);
// idle bounds each read of it.
func (cp *connPool[C]) exchange(req *fasthttp.Request, resp *fasthttp.Response, deadline time.Time, bufferMax int, idle time.Duration, obs bodyObserver) error {
	hc := cp.hc
	cc, err := cp.acquire(time.Until(deadline), false)
	if err != nil {
		return err
	}
	reused := !cc.LastUseTime().IsZero()
	conn := cc.Conn()
	if err := conn.SetDeadline(deadline); err != nil {
		cp.close(cc)
		return &sendError{err}
	}

	// A connection back from the pool must have stayed silent: bytes that
	// came while it sat idle (a late body, a second response) would be read
	// as this request's response, and every later one would answer the
	// request before it. Such a connection is closed and another taken.
	for tries := 0; reused && tries < maxSilentChecks; tries++ {
		pc, ok := conn.(*probedConn)
		if !ok || pc.silent() {
			break
		}
		cp.close(cc)
		if cc, err = cp.acquire(time.Until(deadline), false); err != nil {
			return err
		}
		reused, conn = !cc.LastUseTime().IsZero(), cc.Conn()
		if err := conn.SetDeadline(deadline); err != nil {
			cp.close(cc)
			return &sendError{err}
		}
	}

	bw := hc.AcquireWriter(conn)
	err = req.Write(bw)
	if err == nil {
		err = bw.Flush()
	}
	hc.ReleaseWriter(bw)
	if err != nil {
		cp.close(cc)
		var cbe *clientBodyError
		if errors.As(err, &cbe) || errors.Is(err, errBodyTooLarge) {
			return err
		}
		return &sendError{err}
	}

	br := hc.AcquireReader(conn)
	err = readResponseHead(br, &resp.Header)
	if err != nil {
		answered := br.Buffered() > 0
		hc.ReleaseReader(br)
		cp.close(cc)
		// Closed (FIN) or reset (the upstream closed it with our request
		// unread) before any byte of a response: the race with an upstream
		// closing an idle keep-alive connection, not the endpoint failing.
		if reused && !answered && (errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)) {
			return errStaleConn
		}
		return err
	}
	closeAfter := resp.Header.ConnectionClose()

	cl := resp.Header.ContentLength()
	switch {
	case req.Header.IsHead() || noBody(resp.Header.StatusCode()):
		// RFC 9112 §6.3: no body, whatever the headers say.
	case cl >= 0 && cl <= bufferMax:
		if err := readFixedBody(br, resp, cl); err != nil {
			hc.ReleaseReader(br)
			cp.close(cc)
			return err
		}
	default:
		b := cp.acquireBody(cc, br, cl, idle, closeAfter, obs)
		if cl < 0 {
			cl = -1 // chunked and close-delimited bodies both go to the client chunked
		}
		var body io.Reader = b
		if obs != nil {
			body, cl = obs.wrapStream(&resp.Header, b, cl)
		}
		resp.SetBodyStream(body, cl)
		return nil
	}
	hc.ReleaseReader(br)
	if closeAfter {
		cp.close(cc)
	} else {
		cp.release(cc)
	}
	return nil
}

// readResponseHead reads the final response head, skipping interim 1xx
// responses (RFC 9110 §15.2) other than 101, which the edge does not pass on.
func readResponseHead(br *bufio.Reader, h *fasthttp.ResponseHeader) error {
	for range maxInterim {
		if err := checkResponseHead(br); err != nil {
			return err
		}
		if err := h.Read(br); err != nil {
			return err
		}
		code := h.StatusCode()
		if code == fasthttp.StatusSwitchingProtocols {
			// The edge never forwards Upgrade, so no 101 was asked for:
			// what follows it on the connection is not HTTP.
			return errBadResponse
		}
		if code >= 200 {
			return nil
		}
	}
	return errTooManyInterim
}

// checkResponseHead waits for a whole response head in br and refuses, as
// errBadResponse, what fasthttp's parser would accept or wait on: a version
// other than HTTP/1.0 or HTTP/1.1 (RFC 9110 §6.2: the edge answers its client
// in its own version), Content-Length together with Transfer-Encoding or
// Transfer-Encoding in an HTTP/1.0 response (RFC 9112 §6.1, §6.3: faulty
// framing, which could desynchronize the connection), and a head ended by
// bare LFs (fasthttp waits for CRLF CRLF until the response timeout). It
// reads nothing; the head stays buffered for fasthttp to parse.
func checkResponseHead(br *bufio.Reader) error {
	need := 1
	for {
		if need > br.Size() {
			return errResponseHeadTooLarge
		}
		if _, err := br.Peek(need); err != nil {
			return err
		}
		b, _ := br.Peek(br.Buffered())
		if end := headEnd(b); end > 0 {
			return checkResponseFields(b[:end])
		}
		need = len(b) + 1
	}
}

// checkResponseFields is checkResponseHead's look at a complete head.
func checkResponseFields(head []byte) error {
	if len(head) < 4 || string(head[len(head)-4:]) != "\r\n\r\n" {
		return errBadResponse // ended by a bare LF
	}
	http10 := bytes.HasPrefix(head, []byte("HTTP/1.0 "))
	if !http10 && !bytes.HasPrefix(head, []byte("HTTP/1.1 ")) {
		return errBadResponse
	}
	cl, te := false, false
	for rest := head[bytes.IndexByte(head, '\n')+1:]; len(rest) > 0; {
		line := rest
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			line, rest = rest[:i], rest[i+1:]
		} else {
			rest = nil
		}
		if i := bytes.IndexByte(line, ':'); i > 0 {
			switch framingField(line[:i]) {
			case fieldContentLength:
				cl = true
			case fieldTransferEncoding:
				te = true
			}
		}
	}
	if te && (cl || http10) {
		return errBadResponse
	}
	return nil
}

// noBody reports statuses whose responses never carry a body.
func noBody(code int) bool {
	return code < 200 || code == fasthttp.StatusNoContent || code == fasthttp.StatusNotModified
}

// readFixedBody reads exactly n body bytes into resp, straight from the
// reader's buffer (no intermediate copy buffer).
func readFixedBody(br *bufio.Reader, resp *fasthttp.Response, n int) error {
	resp.ResetBody()
	for n > 0 {
		chunk, err := br.Peek(min(n, br.Size()))
		if len(chunk) == 0 && err != nil {
			if errors.Is(err, io.EOF) {
				return io.ErrUnexpectedEOF
			}
			return err
		}
		resp.AppendBody(chunk)
		br.Discard(len(chunk)) //nolint:errcheck // peeked
		n -= len(chunk)
	}
	return nil
}

// bodyDecoder reads one response body off a connection: a fixed length,
// chunked (RFC 9112 §7.1), or until the connection closes. While it reads,
// each read gets a fresh idle deadline (refreshed when a quarter of it is
// used up, not on every read).
type bodyDecoder struct {
	br         *bufio.Reader
	conn       net.Conn
	left       int64 // bytes left in the fixed body or the current chunk
	chunked    bool
	untilClose bool
	done       bool
	idle       time.Duration
	deadline   time.Time
	err        error
	sent       int64
}

// init prepares the decoder for a body whose Content-Length is cl (fasthttp's
// -1 chunked, -2 until close).
func (d *bodyDecoder) init(cl int) {
	switch {
	case cl >= 0:
		d.left = int64(cl)
		d.done = cl == 0
	case cl == -1:
		d.chunked = true
	default:
		d.untilClose = true
	}
}

func (d *bodyDecoder) Read(p []byte) (int, error) {
	if d.err != nil {
		return 0, d.err
	}
	if d.done {
		return 0, io.EOF
	}
	if d.idle > 0 {
		if now := time.Now(); d.deadline.Sub(now) < d.idle*3/4 {
			d.deadline = now.Add(d.idle)
			d.conn.SetReadDeadline(d.deadline) //nolint:errcheck // a broken conn fails the read
		}
	}
	if d.chunked && d.left == 0 {
		size, err := readChunkSize(d.br)
		if err != nil {
			return 0, d.fail(err)
		}
		if size == 0 {
			if err := skipTrailers(d.br); err != nil {
				return 0, d.fail(err)
			}
			d.done = true
			return 0, io.EOF
		}
		d.left = size
	}
	if !d.untilClose && int64(len(p)) > d.left {
		p = p[:d.left]
	}
	n, err := d.br.Read(p)
	d.left -= int64(n)
	d.sent += int64(n)
	switch {
	case d.untilClose:
		if err == io.EOF {
			d.done = true
			return n, io.EOF
		}
	case err == io.EOF:
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return n, d.fail(err)
	}
	if d.left == 0 {
		if d.chunked {
			if err := readCRLF(d.br); err != nil {
				return n, d.fail(err)
			}
		} else {
			d.done = true
		}
	}
	return n, nil
}

func (d *bodyDecoder) fail(err error) error {
	d.err = err
	return err
}

// upstreamBody streams a response body from a pooled upstream connection.
// It is pooled; fasthttp closes it (CloseWithError) once the body is relayed
// or the client went away, and the connection goes back to the pool only
// when the body was read to its end.
type upstreamBody[C pooledConn] struct {
	bodyDecoder
	cp         *connPool[C]
	cc         C
	closeAfter bool
	obs        bodyObserver
}

func (cp *connPool[C]) acquireBody(cc C, br *bufio.Reader, cl int, idle time.Duration, closeAfter bool, obs bodyObserver) *upstreamBody[C] {
	b, _ := cp.bodies.Get().(*upstreamBody[C])
	if b == nil {
		b = new(upstreamBody[C])
	}
	*b = upstreamBody[C]{cp: cp, cc: cc, closeAfter: closeAfter || cl == -2, obs: obs}
	b.bodyDecoder = bodyDecoder{br: br, conn: cc.Conn(), idle: idle}
	b.init(cl)
	return b
}

// CloseWithError implements fasthttp.ReadCloserWithError: the connection is
// pooled again only if the body was read to its end and nothing failed.
func (b *upstreamBody[C]) CloseWithError(err error) error {
	cp := b.cp
	cp.hc.ReleaseReader(b.br)
	if b.done && err == nil && b.err == nil && !b.closeAfter {
		cp.release(b.cc)
	} else {
		cp.close(b.cc)
	}
	obs, sent := b.obs, b.sent
	if err == nil {
		err = b.err
	}
	*b = upstreamBody[C]{}
	cp.bodies.Put(b)
	if obs != nil {
		obs.bodyDone(sent, err)
	}
	return nil
}

// maxChunkLine bounds a chunk-size line (size and extensions).
const maxChunkLine = 4096

// readChunkSize reads a chunk-size line (RFC 9112 §7.1): hex digits, then
// optional extensions after ';', then CRLF.
func readChunkSize(br *bufio.Reader) (int64, error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return 0, errBadChunk
		}
		if errors.Is(err, io.EOF) {
			return 0, io.ErrUnexpectedEOF
		}
		return 0, err
	}
	if len(line) < 3 || len(line) > maxChunkLine || line[len(line)-2] != '\r' {
		return 0, errBadChunk
	}
	line = line[:len(line)-2]
	var size int64
	i := 0
	for ; i < len(line); i++ {
		c := line[i]
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			d = c - 'A' + 10
		default:
			goto rest
		}
		if size > (1<<59)-1 {
			return 0, errBadChunk
		}
		size = size<<4 | int64(d)
	}
rest:
	if i == 0 {
		return 0, errBadChunk
	}
	for ; i < len(line) && (line[i] == ' ' || line[i] == '\t'); i++ {
	}
	if i < len(line) && line[i] != ';' {
		return 0, errBadChunk
	}
	// Extensions are ignored, but must be visible characters and
	// whitespace: a CR or other control byte inside the line is framing
	// confusion (RFC 9112 §7.1.1).
	for ; i < len(line); i++ {
		if c := line[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return 0, errBadChunk
		}
	}
	return size, nil
}

func readCRLF(br *bufio.Reader) error {
	b, err := br.Peek(2)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return io.ErrUnexpectedEOF
		}
		return err
	}
	if b[0] != '\r' || b[1] != '\n' {
		return errBadChunk
	}
	br.Discard(2) //nolint:errcheck // peeked
	return nil
}

// skipTrailers reads and drops the trailer section after the last chunk:
// the edge does not forward trailers (they are hop-by-hop unless announced,
// and fasthttp writes its own chunked framing).
func skipTrailers(br *bufio.Reader) error {
	for range 64 {
		line, err := br.ReadSlice('\n')
		if err != nil {
			if errors.Is(err, io.EOF) {
				return io.ErrUnexpectedEOF
			}
			return errBadChunk
		}
		if len(line) == 2 && line[0] == '\r' {
			return nil
		}
		if len(line) < 2 || line[len(line)-2] != '\r' {
			return errBadChunk
		}
	}
	return errBadChunk
}
