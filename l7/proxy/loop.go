package proxy

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/netip"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"
	"github.com/valyala/fasthttp"
)

// Serving on the event loop (tuning serve: loop). A plaintext listener's
// connections stay on l4's gnet event loops: the loop reads a request when
// epoll says it has arrived, parses it, runs it through everything before
// the upstream exchange (the same code as the goroutine path: framing,
// route, JWT, limits, header edits), and writes the answer. Only the
// upstream exchange leaves the loop, on a goroutine, and its response comes
// back to the loop to be written. An idle connection then costs no
// goroutine and no read buffer, and no read is ever tried on a socket that
// has nothing (the goroutine path pays a failing read, and a park, per
// request).
//
// What does not fit the loop goes to the goroutine path (fasthttp.Server,
// through the listener) for the rest of the connection: a request body to
// stream (chunked, or longer than the buffered-body size), Expect:
// 100-continue, and HTTP/1.0 framing. Large or chunked response bodies
// stream through the loop, a chunk at a time, with the connection's pending
// output kept under streamHighWater: gnet never stops writing into its own
// buffer, so the relaying goroutine waits for the output to drain.

// loopConn is the connection as l4 hands it over (l4.LoopConn), seen
// through the methods L7 uses, so that l7 does not import l4.
type loopConn interface {
	gnet.Conn
	State() any
	SetState(any)
	ClientAddr() netip.AddrPort
	Handoff(replay []byte) error
	CloseNow() error
}

// Stream relaying limits: what one relayed chunk and the connection's
// pending output may hold.
const (
	streamChunk     = 32 << 10
	streamHighWater = 256 << 10
)

// LoopServer serves one listener's plaintext HTTP/1.1 on the event loops.
// It implements l4.LoopServer. Its methods are safe for concurrent use
// across loops; per-connection work runs on the connection's loop.
type LoopServer struct {
	h        *handler
	draining atomic.Bool
	inflight atomic.Int64 // requests between parse and the end of their answer
	conns    atomic.Int64 // connections being served

	mu   sync.Mutex
	sets atomic.Pointer[[]*loopSet] // copy-on-write, one per event loop

	reqs    sync.Pool // *loopReq
	workers exchangeWorkers
}

// LoopServer returns the in-loop server for the named listener, to be set
// as its l4.ListenerConfig.Loop.
func (p *Proxy) LoopServer(listener string) *LoopServer {
	return &LoopServer{h: &handler{p: p, listener: listener}}
}

// loopSet is the state of one event loop: its connections (for deadlines)
// and parsing scratch. It is touched only on its loop.
type loopSet struct {
	s          *LoopServer
	el         gnet.EventLoop
	head, tail *loopClient
	count      atomic.Int32 // read by LoopTick off the loop
	rd         bytes.Reader
	br         *bufio.Reader
	sweep      gnet.Runnable
}

// loopClient is one connection's state.
type loopClient struct {
	c          loopConn
	set        *loopSet
	fake       loopAddrs
	busy       bool  // a request is being answered
	deadline   int64 // monotonic ns: close at this time unless busy (read or idle timeout); 0 none
	reading    bool  // part of a request has arrived
	closed     bool
	prev, next *loopClient
}

// loopAddrs is the net.Conn a loop request's fasthttp.RequestCtx sees: only
// its addresses mean anything (the client's, PROXY-declared when so).
type loopAddrs struct {
	remote, local net.Addr
}

func (a *loopAddrs) Read([]byte) (int, error)         { return 0, net.ErrClosed }
func (a *loopAddrs) Write([]byte) (int, error)        { return 0, net.ErrClosed }
func (a *loopAddrs) Close() error                     { return nil }
func (a *loopAddrs) LocalAddr() net.Addr              { return a.local }
func (a *loopAddrs) RemoteAddr() net.Addr             { return a.remote }
func (a *loopAddrs) SetDeadline(time.Time) error      { return nil }
func (a *loopAddrs) SetReadDeadline(time.Time) error  { return nil }
func (a *loopAddrs) SetWriteDeadline(time.Time) error { return nil }

// loopReq is one request answered off the loop: its fasthttp.RequestCtx and
// what carries its answer back. Pooled; owned by the request from parse to
// the end of its answer.
type loopReq struct {
	s        *LoopServer
	cl       *loopClient
	ctx      fasthttp.RequestCtx
	st       *reqState
	buffered bool
	close    bool // the connection closes after this answer
	out      []byte
	bw       *bufio.Writer
	ob       outBuf
	written  gnet.AsyncCallback // lr.onWritten, bound once
	flowed   gnet.AsyncCallback // lr.onFlow, bound once
	flow     chan flowSignal
}

type flowSignal struct {
	pending int
	err     error
}

// outBuf is an io.Writer appending to a loopReq's out buffer.
type outBuf struct{ lr *loopReq }

func (o outBuf) Write(p []byte) (int, error) {
	o.lr.out = append(o.lr.out, p...)
	return len(p), nil
}

func (s *LoopServer) acquireReq(cl *loopClient) *loopReq {
	lr, _ := s.reqs.Get().(*loopReq)
	if lr == nil {
		lr = &loopReq{s: s, flow: make(chan flowSignal, 1)}
		lr.ob = outBuf{lr}
		lr.bw = bufio.NewWriterSize(lr.ob, 4096)
		lr.written = lr.onWritten
		lr.flowed = lr.onFlow
	}
	lr.cl = cl
	lr.ctx.Request.Reset()
	lr.ctx.Response.Reset()
	lr.ctx.Init2(&cl.fake, fasthttpLogger{s.h.p.opts.Logger}, false)
	return lr
}

func (s *LoopServer) releaseReq(lr *loopReq) {
	lr.ctx.Request.Reset()
	lr.ctx.Response.Reset()
	lr.cl, lr.st, lr.close = nil, nil, false
	if cap(lr.out) > 64<<10 {
		lr.out = nil
	}
	lr.out = lr.out[:0]
	s.reqs.Put(lr)
}

// setFor returns the state of event loop el, creating it on first use.
func (s *LoopServer) setFor(el gnet.EventLoop) *loopSet {
	if p := s.sets.Load(); p != nil {
		for _, set := range *p {
			if set.el == el {
				return set
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var cur []*loopSet
	if p := s.sets.Load(); p != nil {
		cur = *p
		for _, set := range cur {
			if set.el == el {
				return set
			}
		}
	}
	set := &loopSet{s: s, el: el, br: bufio.NewReaderSize(nil, max(s.h.p.opts.ReadBufferSize, 4096))}
	set.sweep = gnet.RunnableFunc(func(context.Context) error {
		defer s.loopPanic(nil)
		set.sweepDeadlines(monotonic())
		return nil // an error here would stop the loop
	})
	next := append(append(make([]*loopSet, 0, len(cur)+1), cur...), set)
	s.sets.Store(&next)
	return set
}

// loopPanic keeps a bug in code running on an event loop from killing the
// process (gnet does not recover): it is logged, and the connection at hand
// closed.
func (s *LoopServer) loopPanic(cl *loopClient) {
	if r := recover(); r != nil {
		s.h.p.opts.Logger.Error("proxy: panic on the event loop", "panic", r, "stack", string(debug.Stack()))
		if cl != nil {
			cl.close()
		}
	}
}

// LoopTraffic implements l4.LoopServer: c has bytes to read.
func (s *LoopServer) LoopTraffic(c gnet.Conn) (action gnet.Action) {
	defer func() {
		if r := recover(); r != nil {
			s.h.p.opts.Logger.Error("proxy: panic on the event loop", "panic", r, "stack", string(debug.Stack()))
			action = gnet.Close
		}
	}()
	lc, ok := c.(loopConn)
	if !ok {
		return gnet.Close
	}
	cl, _ := lc.State().(*loopClient)
	if cl == nil {
		cl = s.newClient(lc)
	}
	return cl.serveBuffered()
}

func (s *LoopServer) newClient(lc loopConn) *loopClient {
	set := s.setFor(lc.EventLoop())
	cl := &loopClient{c: lc, set: set}
	cl.fake.remote = net.TCPAddrFromAddrPort(lc.ClientAddr())
	cl.fake.local = lc.LocalAddr()
	lc.SetState(cl)
	// Link at the tail; deadlines are checked by a sweep of the whole list.
	cl.prev = set.tail
	if set.tail != nil {
		set.tail.next = cl
	} else {
		set.head = cl
	}
	set.tail = cl
	set.count.Add(1)
	s.conns.Add(1)
	return cl
}

// LoopClosed implements l4.LoopServer. A client that ended its side with a
// request head in but its body cut short gets the 400 the goroutine path
// would answer (gnet still sends what is written during its close).
func (s *LoopServer) LoopClosed(c gnet.Conn) {
	defer s.loopPanic(nil)
	lc, ok := c.(loopConn)
	if !ok {
		return
	}
	cl, _ := lc.State().(*loopClient)
	if cl == nil {
		return
	}
	if cl.reading && !cl.busy && !cl.closed {
		if buf, _ := lc.Peek(-1); headEnd(buf) > 0 {
			cl.refuseTruncated(buf)
		}
	}
	cl.unlink()
}

// refuseTruncated answers a request whose body never came whole.
func (cl *loopClient) refuseTruncated(buf []byte) {
	s := cl.set.s
	lr := s.acquireReq(cl)
	defer s.releaseReq(lr)
	set := cl.set
	set.rd.Reset(buf[:headEnd(buf)])
	set.br.Reset(&set.rd)
	if err := lr.ctx.Request.Header.Read(set.br); err != nil {
		return
	}
	s.h.refuse(&lr.ctx, fasthttp.StatusBadRequest, CodeBadRequest, "request body is shorter than its Content-Length")
	lr.close = true
	lr.serialize()
	_, _ = cl.c.Write(lr.out)
}

func (cl *loopClient) unlink() {
	if cl.closed {
		return
	}
	cl.closed = true
	set := cl.set
	if cl.prev != nil {
		cl.prev.next = cl.next
	} else {
		set.head = cl.next
	}
	if cl.next != nil {
		cl.next.prev = cl.prev
	} else {
		set.tail = cl.prev
	}
	cl.prev, cl.next = nil, nil
	set.count.Add(-1)
	set.s.conns.Add(-1)
}

// close closes gnet's side of the connection, now (on its loop). After a
// hand-off that is what gives the socket over; gnet ignores a second close.
func (cl *loopClient) close() {
	_ = cl.c.CloseNow()
}

// serveBuffered parses and answers the requests in the connection's inbound
// buffer, one at a time: while one is being answered the rest wait there.
// It runs on the loop.
func (cl *loopClient) serveBuffered() gnet.Action {
	s := cl.set.s
	opts := &s.h.p.opts
	for !cl.busy && !cl.closed {
		buf, _ := cl.c.Peek(-1)
		if len(buf) == 0 {
			cl.reading = false
			cl.deadline = deadlineAfter(opts.IdleTimeout)
			if s.draining.Load() {
				return gnet.Close
			}
			return gnet.None
		}
		if !cl.reading {
			cl.reading = true
			cl.deadline = deadlineAfter(opts.ReadTimeout)
		}
		end := headEnd(buf)
		if end < 0 {
			if len(buf) > opts.MaxHeaderBytes {
				return cl.refuseHead(fasthttp.StatusRequestHeaderFieldsTooLarge, CodeHeadersTooLarge, "request headers are over the limit")
			}
			return gnet.None
		}
		if end > opts.MaxHeaderBytes {
			return cl.refuseHead(fasthttp.StatusRequestHeaderFieldsTooLarge, CodeHeadersTooLarge, "request headers are over the limit")
		}
		lr := s.acquireReq(cl)
		hdr := &lr.ctx.Request.Header
		set := cl.set
		set.rd.Reset(buf[:end])
		set.br.Reset(&set.rd)
		if err := hdr.Read(set.br); err != nil {
			s.releaseReq(lr)
			return cl.refuseHead(fasthttp.StatusBadRequest, CodeBadRequest, "malformed request")
		}
		// What the loop does not do goes to the goroutine path, with the
		// bytes that arrived, for the rest of the connection.
		n := hdr.ContentLength()
		if !hdr.IsHTTP11() || len(hdr.Peek("Expect")) > 0 || n == -1 || n > opts.BufferBodyBytes {
			s.releaseReq(lr)
			return cl.handoff(buf)
		}
		if n > 0 {
			if len(buf) < end+n {
				s.releaseReq(lr)
				return gnet.None // the rest of the body is on its way
			}
			lr.ctx.Request.SetBody(buf[end : end+n])
		} else {
			n = 0
		}
		_, _ = cl.c.Discard(end + n)
		cl.busy, cl.reading, cl.deadline = true, false, 0
		lr.close = hdr.ConnectionClose()
		s.inflight.Add(1)
		s.serve(lr)
	}
	return gnet.None
}

// handoff gives the connection to the goroutine path with replay first.
func (cl *loopClient) handoff(replay []byte) gnet.Action {
	if cl.c.OutboundBuffered() > 0 {
		// Earlier answers are still being written, and the socket must not
		// change hands under them: the sweep tries again shortly.
		_ = cl.c.Flush()
		if cl.c.OutboundBuffered() > 0 {
			cl.deadline = monotonic() + int64(time.Millisecond)
			return gnet.None
		}
	}
	if err := cl.c.Handoff(replay); err != nil {
		return gnet.Close
	}
	cl.unlink()
	return gnet.Close
}

// refuseHead answers a request whose head the loop cannot take, and closes.
func (cl *loopClient) refuseHead(status int, code, msg string) gnet.Action {
	s := cl.set.s
	lr := s.acquireReq(cl)
	st := s.h.acquireState(lr.ctx.Time())
	st.id = s.h.p.ids.appendRequestID(st.id[:0])
	lr.ctx.SetConnectionClose()
	s.h.reject(&lr.ctx, st, status, code, msg)
	lr.close = true
	s.inflight.Add(1)
	cl.busy = true
	s.writeNow(lr)
	return gnet.None
}

// serve runs a parsed request through the goroutine path's checks on the
// loop, and the upstream exchange off it.
func (s *LoopServer) serve(lr *loopReq) {
	h := s.h
	ctx := &lr.ctx
	defer func() {
		if r := recover(); r != nil {
			h.p.opts.Logger.Error("proxy: panic serving request on the loop", "panic", r, "stack", string(debug.Stack()))
			ctx.SetConnectionClose()
			writeError(ctx, fasthttp.StatusInternalServerError, "internal_error", "internal error", nil, nil)
			lr.close = true
			s.writeNow(lr)
		}
	}()
	hdr := &ctx.Request.Header
	if ok, reason := checkFraming(hdr); !ok {
		h.refuse(ctx, fasthttp.StatusBadRequest, CodeBadRequest, reason)
		lr.close = true
		s.writeNow(lr)
		return
	}
	hdr.SetNoDefaultContentType(true)
	if status, code, msg := settleBody(ctx, h.p.opts.BufferBodyBytes); status != 0 {
		h.refuse(ctx, status, code, msg)
		lr.close = true
		s.writeNow(lr)
		return
	}
	st, buffered := h.begin(ctx)
	if st == nil {
		s.writeNow(lr)
		return
	}
	lr.st, lr.buffered = st, buffered
	s.workers.run(lr)
}

// exchangeWorkers runs loop requests' upstream exchanges on goroutines that
// live on between requests, so that their stacks, grown once, stay grown (a
// fresh goroutine per request grows its stack every time) and starting one
// is a channel send. Idle workers exit after workerIdle.
type exchangeWorkers struct {
	mu    sync.Mutex
	ready []*exchangeWorker // LIFO: the most recently used has the warmest stack
}

type exchangeWorker struct {
	ch chan *loopReq
}

const workerIdle = 10 * time.Second

func (wp *exchangeWorkers) run(lr *loopReq) {
	wp.mu.Lock()
	var w *exchangeWorker
	if n := len(wp.ready); n > 0 {
		w = wp.ready[n-1]
		wp.ready[n-1] = nil
		wp.ready = wp.ready[:n-1]
	}
	wp.mu.Unlock()
	if w == nil {
		w = &exchangeWorker{ch: make(chan *loopReq, 1)}
		go wp.work(w)
	}
	w.ch <- lr
}

func (wp *exchangeWorkers) work(w *exchangeWorker) {
	idle := time.NewTimer(workerIdle)
	defer idle.Stop()
	for {
		select {
		case lr := <-w.ch:
			lr.exchange()
			wp.mu.Lock()
			wp.ready = append(wp.ready, w)
			wp.mu.Unlock()
		case <-idle.C:
			// Leave only if still idle: remove self from ready first, so
			// nobody hands this worker a request after it is gone.
			wp.mu.Lock()
			for i, r := range wp.ready {
				if r == w {
					wp.ready = append(wp.ready[:i], wp.ready[i+1:]...)
					wp.mu.Unlock()
					return
				}
			}
			wp.mu.Unlock()
		}
		idle.Reset(workerIdle)
	}
}

// exchange runs on its own goroutine: the upstream exchange, then the
// answer back to the loop.
func (lr *loopReq) exchange() {
	s := lr.s
	ctx := &lr.ctx
	func() {
		defer s.h.recoverPanic(ctx)
		s.h.forward(ctx, lr.st, lr.buffered)
	}()
	if ctx.Response.IsBodyStream() {
		lr.stream()
		return
	}
	lr.serialize()
	if err := lr.cl.c.AsyncWrite(lr.out, lr.written); err != nil {
		// The loop is gone (engine stopped): nothing left to answer on.
		s.finished(lr)
	}
}

// finished ends a request that will not be written.
func (s *LoopServer) finished(lr *loopReq) {
	s.inflight.Add(-1)
	s.releaseReq(lr)
}

// serialize writes the response as it goes on the wire into lr.out.
func (lr *loopReq) serialize() {
	resp := &lr.ctx.Response
	if len(resp.Header.Server()) == 0 {
		resp.Header.SetServer("edge")
	}
	if lr.close || lr.s.draining.Load() {
		resp.SetConnectionClose()
	}
	if resp.ConnectionClose() {
		lr.close = true
	}
	if lr.ctx.IsHead() {
		resp.SkipBody = true
	}
	lr.out = lr.out[:0]
	lr.bw.Reset(lr.ob)
	_ = resp.Write(lr.bw) // into memory: cannot fail
	_ = lr.bw.Flush()
}

// writeNow writes an answer produced on the loop, and goes on with the
// connection.
func (s *LoopServer) writeNow(lr *loopReq) {
	lr.serialize()
	_, err := lr.cl.c.Write(lr.out)
	lr.afterAnswer(err)
}

// onWritten runs on the loop once an answer made off it is written (or
// buffered by gnet for writing).
func (lr *loopReq) onWritten(_ gnet.Conn, err error) error {
	defer lr.s.loopPanic(lr.cl)
	lr.afterAnswer(err)
	return nil
}

// afterAnswer ends a request on the loop and serves the next one buffered
// on its connection, if any.
func (lr *loopReq) afterAnswer(err error) {
	s, cl := lr.s, lr.cl
	closeConn := lr.close || err != nil
	s.inflight.Add(-1)
	s.releaseReq(lr)
	if cl.closed {
		return
	}
	cl.busy = false
	if closeConn || s.draining.Load() {
		cl.close()
		return
	}
	if cl.serveBuffered() == gnet.Close {
		cl.close()
	}
}

// stream relays a streamed response body through the loop (see the file
// comment), on the exchange goroutine.
func (lr *loopReq) stream() {
	s := lr.s
	resp := &lr.ctx.Response
	body := resp.BodyStream()
	size := resp.Header.ContentLength()
	chunked := size < 0
	if chunked {
		resp.Header.SetContentLength(-1) // the head says chunked
	}
	if len(resp.Header.Server()) == 0 {
		resp.Header.SetServer("edge")
	}
	if lr.close || s.draining.Load() {
		resp.SetConnectionClose()
		lr.close = true
	}
	skip := lr.ctx.IsHead()
	lr.out = resp.Header.AppendBytes(lr.out[:0])
	var err error
	if skip {
		err = nil
	} else {
		err = lr.send()
		buf := make([]byte, streamChunk)
		for err == nil {
			n, rerr := body.Read(buf)
			if n > 0 {
				lr.out = lr.out[:0]
				if chunked {
					lr.out = appendHexSize(lr.out, n)
					lr.out = append(lr.out, '\r', '\n')
				}
				lr.out = append(lr.out, buf[:n]...)
				if chunked {
					lr.out = append(lr.out, '\r', '\n')
				}
				err = lr.send()
			}
			if rerr != nil {
				if rerr != io.EOF {
					err = rerr
				}
				break
			}
		}
		if err == nil && chunked {
			lr.out = append(lr.out[:0], "0\r\n\r\n"...)
		} else {
			lr.out = lr.out[:0]
		}
	}
	// The stream is closed when the request is released (afterAnswer):
	// that ends its bookkeeping (bodyDone) and frees the upstream
	// connection, kept only if the body was read whole.
	if err != nil {
		lr.close = true
	}
	if aerr := lr.cl.c.AsyncWrite(lr.out, lr.written); aerr != nil {
		s.finished(lr)
	}
}

// send writes lr.out through the loop and waits until it is written and the
// connection's pending output is back under streamHighWater.
func (lr *loopReq) send() error {
	if err := lr.cl.c.AsyncWrite(lr.out, lr.flowed); err != nil {
		return err
	}
	for {
		sig := <-lr.flow
		if sig.err != nil {
			return sig.err
		}
		if sig.pending <= streamHighWater {
			return nil
		}
		// The client reads slower than the upstream sends: look again in a
		// moment, without holding more of the body.
		time.Sleep(time.Millisecond)
		if err := lr.cl.c.Wake(lr.flowed); err != nil {
			return err
		}
	}
}

// onFlow runs on the loop: it reports the connection's pending output.
func (lr *loopReq) onFlow(c gnet.Conn, err error) error {
	pending := 0
	if err == nil && c != nil {
		pending = c.OutboundBuffered()
	}
	lr.flow <- flowSignal{pending: pending, err: err}
	return nil
}

// LoopTick implements l4.LoopServer: each loop with connections sweeps its
// deadlines.
func (s *LoopServer) LoopTick() {
	p := s.sets.Load()
	if p == nil {
		return
	}
	for _, set := range *p {
		if set.count.Load() > 0 {
			_ = set.el.Execute(context.Background(), set.sweep)
		}
	}
}

// sweepDeadlines closes the connections whose read or idle time is up, and
// when draining the idle ones. It runs on the loop.
func (set *loopSet) sweepDeadlines(now int64) {
	draining := set.s.draining.Load()
	for cl := set.head; cl != nil; {
		next := cl.next
		switch {
		case cl.busy:
		case draining && !cl.reading:
			cl.close()
		case cl.deadline != 0 && cl.deadline <= now:
			if cl.reading && cl.c.InboundBuffered() > 0 {
				// A request that stalled halfway, or a hand-off waiting for
				// output to drain: try once more, then give up.
				if cl.serveBuffered() == gnet.Close || cl.deadline <= now {
					cl.close()
				}
			} else {
				cl.close()
			}
		}
		cl = next
	}
}

// LoopDrain implements l4.LoopServer: no new requests are started on idle
// connections, answers in flight finish (and close their connections), up
// to ctx.
func (s *LoopServer) LoopDrain(ctx context.Context) error {
	s.draining.Store(true)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		s.LoopTick()
		if s.inflight.Load() == 0 && s.conns.Load() == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// headEnd returns the length of the request head at the start of b (up to
// and including the blank line that ends it), or -1 if it is not all there.
// A bare LF ends lines here as in fasthttp's parser; checkFraming then
// refuses it.
func headEnd(b []byte) int {
	for i := 0; ; {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return -1
		}
		i += j + 1
		if i < len(b) && b[i] == '\n' {
			return i + 1
		}
		if i+1 < len(b) && b[i] == '\r' && b[i+1] == '\n' {
			return i + 2
		}
	}
}

// deadlineAfter is monotonic() + d, or 0 (none) for d <= 0.
func deadlineAfter(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return monotonic() + int64(d)
}

// monotonic is a monotonic clock in nanoseconds.
func monotonic() int64 { return nanotime() }

func appendHexSize(dst []byte, n int) []byte {
	var b [16]byte
	i := len(b)
	for {
		i--
		b[i] = "0123456789abcdef"[n&0xf]
		n >>= 4
		if n == 0 {
			break
		}
	}
	return append(dst, b[i:]...)
}
