package proxy

import (
	"bufio"
	"errors"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// Upstream pipelining (a pool's `pipeline: N`). Most of a proxied request's
// cost is system calls, two of them on the upstream side: one write for the
// request, one read for the response. Requests from many clients that are
// in flight at once can share those calls: each pipeline connection gathers
// the requests queued while its flusher yields (group commit, one write), and
// its reader parses every response a read brought in. RFC 9112 §9.3.2 lets a
// client pipeline idempotent requests; only those, with bodies already
// buffered, take this path, so a connection that breaks mid-pipeline can
// have its requests repeated. Its price is head-of-line blocking: a slow or
// large response delays the responses queued behind it on that connection,
// which is why it is opt-in, bounded in depth, and sidestepped (the request
// takes a connection of its own) when every pipeline connection is busy
// streaming or full.

// errPipelineBroken fails the requests queued on a pipeline connection that
// broke before their responses came; they are idempotent and may be
// repeated.
var errPipelineBroken = errors.New("proxy: pipelined upstream connection broke before answering")

// pipeline is one endpoint's set of pipelining connections.
type pipeline struct {
	addr      string
	dial      func(addr string) (net.Conn, error)
	conns     []*pipeConn
	next      atomic.Uint32
	maxDepth  int
	readSize  int
	writeSize int
	waiters   sync.Pool // *pipeWaiter
	bodies    sync.Pool // *pipeBody
}

func newPipeline(addr string, n, maxDepth, readSize, writeSize int, dial func(string) (net.Conn, error)) *pipeline {
	p := &pipeline{addr: addr, dial: dial, maxDepth: maxDepth, readSize: readSize, writeSize: writeSize}
	for range n {
		p.conns = append(p.conns, &pipeConn{p: p})
	}
	return p
}

// close shuts every pipeline connection; requests in flight fail.
func (p *pipeline) close() {
	for _, pc := range p.conns {
		pc.mu.Lock()
		pc.breakLocked(errPipelineBroken)
		pc.mu.Unlock()
	}
}

// pipeConn is one pipelining connection: requests are written in order under
// mu, and one reader goroutine answers the waiters in the same order.
type pipeConn struct {
	p  *pipeline
	mu sync.Mutex
	// The fields below are guarded by mu.
	c         net.Conn
	bw        *bufio.Writer
	inflight  []*pipeWaiter // FIFO: responses come back in request order
	flushing  bool          // a writer holds the flush for the requests queued meanwhile
	streaming bool          // the reader is relaying a streamed body
	reading   *pipeWaiter   // the waiter whose response the reader is parsing: only the reader may answer it
	gen       uint64        // connection generation: bumps on every redial
	// The deadlines set on the connection: moved only forward, and only
	// when a request's own deadline passes them, so that most requests set
	// none (each set is a runtime timer operation).
	readDeadline, writeDeadline time.Time
}

// deadlineSlack is how late past a request's deadline a pipeline connection
// may notice it: deadlines are pushed this far ahead so that the requests
// that follow within it need not move them again.
const deadlineSlack = 250 * time.Millisecond

// setReadDeadlineLocked makes sure the connection's read deadline is not
// before d. While requests are queued the deadline stays armed; an idle
// connection keeps its last one, and a response that comes later than it
// on an idle connection only breaks that connection.
func (pc *pipeConn) setReadDeadlineLocked(d time.Time) {
	if d.After(pc.readDeadline) {
		pc.readDeadline = d.Add(deadlineSlack)
		pc.c.SetReadDeadline(pc.readDeadline) //nolint:errcheck // a broken conn fails the read
	}
}

// pipeWaiter is one request waiting for its response on a pipeConn.
type pipeWaiter struct {
	queued    int64 // monotonic nanoseconds when the request was queued
	resp      *fasthttp.Response
	head      bool
	deadline  time.Time
	bufferMax int
	idle      time.Duration
	obs       bodyObserver
	done      chan error
}

// exchange sends req over a pipeline connection and waits for its response,
// as connPool.exchange does. It reports ok false, having done nothing, when
// no connection can take the request without head-of-line risk beyond the
// configured depth; the caller then uses a connection of its own.
func (p *pipeline) exchange(req *fasthttp.Request, resp *fasthttp.Response, deadline time.Time, bufferMax int, idle time.Duration, obs bodyObserver) (ok bool, err error) {
	pc := p.pick()
	if pc == nil {
		return false, nil
	}
	w, _ := p.waiters.Get().(*pipeWaiter)
	if w == nil {
		w = &pipeWaiter{done: make(chan error, 1)}
	}
	w.resp, w.head, w.deadline, w.bufferMax, w.idle, w.obs = resp, req.Header.IsHead(), deadline, bufferMax, idle, obs
	w.queued = nanotime()

	pc.mu.Lock()
	if pc.c == nil {
		if err := pc.dialLocked(); err != nil {
			pc.mu.Unlock()
			p.putWaiter(w)
			return true, &dialError{err}
		}
	}
	if err := req.Write(pc.bw); err != nil {
		pc.breakLocked(errPipelineBroken)
		pc.mu.Unlock()
		p.putWaiter(w)
		return true, &sendError{err}
	}
	pc.inflight = append(pc.inflight, w)
	if len(pc.inflight) == 1 {
		// The reader may be idle in a read without a deadline.
		pc.setReadDeadlineLocked(deadline)
	}
	if !pc.flushing {
		// Group commit: yield once so that handlers made runnable by the
		// same network poll queue their requests behind this one, then
		// send them all with one write.
		pc.flushing = true
		pc.mu.Unlock()
		runtime.Gosched()
		pc.mu.Lock()
		// Flush whatever is buffered now, even on a connection redialled
		// while this writer yielded: requests written there saw flushing
		// set and left their flush to this writer.
		if pc.c != nil && pc.bw.Buffered() > 0 {
			if deadline.After(pc.writeDeadline) {
				// Lazily, like the read deadline: a flush may finish up to
				// deadlineSlack after the request's deadline.
				pc.writeDeadline = deadline.Add(deadlineSlack)
				pc.c.SetWriteDeadline(pc.writeDeadline) //nolint:errcheck
			}
			if err := pc.bw.Flush(); err != nil {
				pc.breakLocked(errPipelineBroken)
			}
		}
		pc.flushing = false
	}
	pc.mu.Unlock()

	err = <-w.done
	p.putWaiter(w)
	return true, err
}

func (p *pipeline) putWaiter(w *pipeWaiter) {
	w.resp, w.obs = nil, nil
	p.waiters.Put(w)
}

// holLimit is how long the oldest request on a pipeline connection may wait
// before the connection takes no new requests: a response that slow is
// holding up everything queued behind it, so newer requests go elsewhere.
const holLimit = 20 * time.Millisecond

// pick chooses the least loaded connection that is not streaming, not full,
// and not stuck behind a slow response, or nil.
func (p *pipeline) pick() *pipeConn {
	n := len(p.conns)
	start := int(p.next.Add(1))
	now := nanotime()
	var best *pipeConn
	bestDepth := p.maxDepth
	for i := range n {
		pc := p.conns[(start+i)%n]
		pc.mu.Lock()
		depth := len(pc.inflight)
		usable := !pc.streaming && depth < bestDepth && (depth == 0 || now-pc.inflight[0].queued < int64(holLimit))
		pc.mu.Unlock()
		if usable {
			best, bestDepth = pc, depth
			if depth == 0 {
				break
			}
		}
	}
	return best
}

func (pc *pipeConn) dialLocked() error {
	c, err := pc.p.dial(pc.p.addr)
	if err != nil {
		return err
	}
	pc.c = c
	pc.gen++
	pc.readDeadline, pc.writeDeadline = time.Time{}, time.Time{}
	pc.bw = bufio.NewWriterSize(c, pc.p.writeSize)
	go pc.read(c, pc.gen, bufio.NewReaderSize(c, pc.p.readSize))
	return nil
}

// breakLocked closes the connection and fails every request still waiting
// on it; the next request redials.
func (pc *pipeConn) breakLocked(err error) {
	if pc.c == nil {
		return
	}
	pc.c.Close()
	pc.c, pc.bw = nil, nil
	pc.gen++
	for _, w := range pc.inflight {
		if w != pc.reading {
			w.done <- err
		}
	}
	clear(pc.inflight)
	pc.inflight = pc.inflight[:0]
	pc.streaming = false
}

// read answers the waiters of one connection generation in order.
func (pc *pipeConn) read(c net.Conn, gen uint64, br *bufio.Reader) {
	for {
		// Wait for the next response (or the upstream closing an idle
		// connection, which breaks it early instead of on the next request).
		if _, err := br.Peek(1); err != nil {
			if pc.spuriousTimeout(c, gen, err) {
				continue
			}
			pc.fail(gen, err)
			return
		}
		pc.mu.Lock()
		if pc.gen != gen {
			pc.mu.Unlock()
			return
		}
		if len(pc.inflight) == 0 {
			// Bytes nobody asked for: the framing is lost.
			pc.breakLocked(errPipelineBroken)
			pc.mu.Unlock()
			return
		}
		w := pc.inflight[0]
		pc.reading = w
		pc.mu.Unlock()

		stream, err := pc.readResponse(c, br, w)

		pc.mu.Lock()
		if pc.reading == w {
			// Only its own mark: after a break and redial, the next
			// generation's reader may have set its own.
			pc.reading = nil
		}
		stale := pc.gen != gen // the connection broke meanwhile; w was left to us
		if stale {
			pc.mu.Unlock()
			if err != nil {
				w.done <- errPipelineBroken
			} else {
				w.done <- nil
			}
			return
		}
		if err != nil {
			pc.mu.Unlock()
			pc.fail(gen, err)
			return
		}
		pc.inflight[0] = nil
		pc.inflight = pc.inflight[1:]
		closeAfter := w.resp.Header.ConnectionClose()
		if stream != nil {
			pc.streaming = true
		}
		if len(pc.inflight) > 0 {
			pc.setReadDeadlineLocked(pc.inflight[0].deadline)
		}
		pc.mu.Unlock()
		w.done <- nil

		if stream != nil {
			// The connection is the stream's until fasthttp has relayed it.
			if !stream.wait() {
				pc.fail(gen, errPipelineBroken)
				return
			}
			pc.mu.Lock()
			pc.streaming = false
			pc.mu.Unlock()
		}
		if closeAfter {
			pc.fail(gen, errPipelineBroken)
			return
		}
	}
}

// spuriousTimeout reports whether a read timeout is only the lazily set
// deadline passing on an idle connection (or just before a new request's
// own deadline), and re-arms the deadline if so.
func (pc *pipeConn) spuriousTimeout(c net.Conn, gen uint64, err error) bool {
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		return false
	}
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if pc.gen != gen {
		return false
	}
	if len(pc.inflight) > 0 && !time.Now().Before(pc.inflight[0].deadline) {
		return false // the oldest request really is late
	}
	pc.readDeadline = time.Time{}
	if len(pc.inflight) > 0 {
		pc.setReadDeadlineLocked(pc.inflight[0].deadline)
	} else {
		c.SetReadDeadline(time.Time{}) //nolint:errcheck
	}
	return true
}

// fail breaks the connection of generation gen, if it is still current. The
// first waiter gets err (its own response failed); the rest were merely
// queued behind it.
func (pc *pipeConn) fail(gen uint64, err error) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if pc.gen != gen {
		return
	}
	if len(pc.inflight) > 0 {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			err = fasthttp.ErrTimeout
		} else if errors.Is(err, io.EOF) {
			err = errPipelineBroken
		}
		pc.inflight[0].done <- err
		pc.inflight[0] = nil
		pc.inflight = pc.inflight[1:]
	}
	pc.breakLocked(errPipelineBroken)
}

// readResponse reads one response for w: its head into w.resp, and a small
// body too; a larger or unframed one becomes w.resp's body stream, returned
// so the reader can wait for it.
func (pc *pipeConn) readResponse(c net.Conn, br *bufio.Reader, w *pipeWaiter) (*pipeBody, error) {
	resp := w.resp
	if err := readResponseHead(br, &resp.Header); err != nil {
		return nil, err
	}
	cl := resp.Header.ContentLength()
	switch {
	case w.head || noBody(resp.Header.StatusCode()):
		return nil, nil
	case cl >= 0 && cl <= w.bufferMax:
		return nil, readFixedBody(br, resp, cl)
	}
	if cl == -2 {
		// Delimited by the connection's end: it cannot be pipelined past.
		resp.Header.SetConnectionClose()
	}
	b, _ := pc.p.bodies.Get().(*pipeBody)
	if b == nil {
		b = &pipeBody{doneCh: make(chan bool, 1)}
	}
	b.dec = bodyDecoder{br: br, conn: c, idle: w.idle}
	b.dec.init(cl)
	b.obs = w.obs
	b.pool = &pc.p.bodies
	var body io.Reader = b
	size := max(cl, -1)
	if w.obs != nil {
		body, size = w.obs.wrapStream(&resp.Header, b, size)
	}
	resp.SetBodyStream(body, size)
	return b, nil
}

// pipeBody is a streamed response body on a pipeline connection; closing it
// hands the connection back to the reader.
type pipeBody struct {
	dec    bodyDecoder
	obs    bodyObserver
	doneCh chan bool // true: the body was read whole and the connection can go on
	pool   *sync.Pool
}

func (b *pipeBody) Read(p []byte) (int, error) { return b.dec.Read(p) }

// CloseWithError implements fasthttp.ReadCloserWithError.
func (b *pipeBody) CloseWithError(err error) error {
	reusable := err == nil && b.dec.done && b.dec.err == nil
	obs, sent := b.obs, b.dec.sent
	if err == nil {
		err = b.dec.err
	}
	b.obs = nil
	b.doneCh <- reusable
	if obs != nil {
		obs.bodyDone(sent, err)
	}
	return nil
}

// wait blocks the reader until the body is closed, and recycles it.
func (b *pipeBody) wait() bool {
	ok := <-b.doneCh
	b.dec = bodyDecoder{}
	b.pool.Put(b)
	return ok
}

// nanotime is a monotonic clock reading in nanoseconds.
func nanotime() int64 { return int64(time.Since(clockBase)) }

var clockBase = time.Now()
