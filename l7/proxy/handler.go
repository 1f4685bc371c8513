package proxy

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"example.com/edge/l7/accesslog"
	"example.com/edge/l7/jwt"
	"example.com/edge/l7/limit"
	"example.com/edge/l7/route"
	"example.com/edge/lb"
)

// handler serves one listener.
type handler struct {
	p        *Proxy
	listener string
}

// reqState is one request's scratch space and, for streamed responses, the
// body reader that finishes the request's bookkeeping when the body has been
// written. Owned by the request from acquireState until finish.
type reqState struct {
	h       *handler
	start   time.Time
	route   *compiledRoute
	pool    *poolView
	ep      *lb.Endpoint
	up      *upstreamConn
	outcome lb.Outcome
	status  int
	rec     *accesslog.Record

	id  []byte // the request ID (copied: header memory moves as headers change)
	buf []byte // scratch
	hdr []byte // scratch for a response header value

	enc encoding // the response coding negotiated for a compressing route
	// compressed: a streamed body goes out compressed; compressedOut counts
	// its bytes (bytes_out is what the client got).
	compressed    bool
	compressedOut int64
	head          bool        // a HEAD request
	claims        *jwt.Claims // the verified token's claims, on JWT routes
	reason        string      // why the edge refused the request (access log)
	rlPol         []byte      // RateLimit-Policy of the route's limits
	rlState       []byte      // RateLimit after this request
	unparsed      bool        // fasthttp refused the head (serveError)
	http10        bool        // the client spoke HTTP/1.0 (the request goes upstream as 1.1)
}

var statePool = sync.Pool{New: func() any {
	return &reqState{id: make([]byte, 0, maxRequestIDLen), buf: make([]byte, 0, 256), hdr: make([]byte, 0, 128)}
}}

func (h *handler) acquireState(start time.Time) *reqState {
	st := statePool.Get().(*reqState)
	st.h, st.start = h, start
	return st
}

func releaseState(st *reqState) {
	if st.claims != nil {
		jwt.ReleaseClaims(st.claims)
	}
	id, buf, hdr, rlPol, rlState := st.id[:0], st.buf[:0], st.hdr[:0], st.rlPol[:0], st.rlState[:0]
	if cap(buf) > 4096 {
		buf = make([]byte, 0, 256)
	}
	*st = reqState{id: id, buf: buf, hdr: hdr, rlPol: rlPol, rlState: rlState}
	statePool.Put(st)
}

// serve is the fasthttp handler: the request path of the contract's step 4.
func (h *handler) serve(ctx *fasthttp.RequestCtx) {
	defer h.recoverPanic(ctx)
	if st, buffered := h.begin(ctx); st != nil {
		h.forward(ctx, st, buffered)
	}
}

// recoverPanic turns a panic while serving into a 500: a bug must cost one
// request, not the process. The request's state may already be released,
// so the answer is written without it.
func (h *handler) recoverPanic(ctx *fasthttp.RequestCtx) {
	if r := recover(); r != nil {
		h.p.opts.Logger.Error("proxy: panic serving request", "panic", r, "stack", string(debug.Stack()))
		ctx.SetConnectionClose()
		writeError(ctx, fasthttp.StatusInternalServerError, "internal_error", "internal error", nil, nil)
	}
}

// begin runs a request through everything before the upstream exchange:
// request ID, route, body limit, JWT, rate limits and the upstream request's
// headers. It returns the request's state, and whether its body is buffered,
// when the request is to be forwarded; or nil when begin already answered
// it (an error, a redirect), st then released.
func (h *handler) begin(ctx *fasthttp.RequestCtx) (st *reqState, buffered bool) {
	p := h.p
	st = h.acquireState(ctx.Time())
	snap := p.snap.Load()
	lv := snap.listeners[h.listener]

	// Request ID: keep a well-formed incoming one, else make one; it goes
	// upstream and back to the client.
	hdr := &ctx.Request.Header
	in := hdr.Peek("X-Request-ID")
	valid := ValidRequestID(in)
	if valid {
		st.id = append(st.id[:0], in...)
	} else {
		st.id = p.ids.appendRequestID(st.id[:0])
	}
	switch {
	case in == nil:
		hdr.SetBytesV("X-Request-ID", st.id)
	case !valid || len(hdr.PeekAll("X-Request-ID")) > 1:
		// Exactly one ID goes upstream, the one echoed to the client; any
		// other copy the client sent goes.
		hdr.Del("X-Request-ID")
		hdr.SetBytesV("X-Request-ID", st.id)
	}

	switch {
	case lv == nil:
		h.reject(ctx, st, fasthttp.StatusNotFound, CodeNoRoute, "no route on this listener")
		return nil, false
	case p.draining.Load():
		ctx.SetConnectionClose()
		h.reject(ctx, st, fasthttp.StatusServiceUnavailable, CodeNoHealthyUpstream, "edge is draining")
		return nil, false
	case lv.cfg.RedirectHTTPS:
		h.redirectHTTPS(ctx, st, lv)
		return nil, false
	}

	idx, status := lv.table.Lookup(ctx.Host(), ctx.Path(), ctx.Method())
	switch status {
	case route.NotFound:
		h.reject(ctx, st, fasthttp.StatusNotFound, CodeNoRoute, "no route for this host and path")
		return nil, false
	case route.MethodNotAllowed:
		st.route = lv.routes[idx]
		h.writeReject(ctx, st, fasthttp.StatusMethodNotAllowed, CodeMethodNotAllowed, "method not allowed on this route")
		ctx.Response.Header.SetBytesV("Allow", st.route.allowHeader)
		h.endReject(ctx, st, CodeMethodNotAllowed)
		return nil, false
	}
	cr := lv.routes[idx]
	st.route, st.pool = cr, cr.pool
	if cr.ipFilter && !ipAllowed(cr, realClient(ctx, snap)) {
		h.reject(ctx, st, fasthttp.StatusForbidden, CodeForbidden, "client address is not allowed on this route")
		return nil, false
	}

	// Body: a declared length over the limit is refused before anything is
	// read; a chunked body is counted as it streams. Bodies small enough to
	// have been read already are buffered, which makes them retryable.
	cl := hdr.ContentLength()
	if cr.maxBody > 0 && int64(cl) > cr.maxBody {
		ctx.SetConnectionClose() // the unread body must not be parsed as a request
		h.reject(ctx, st, fasthttp.StatusRequestEntityTooLarge, CodeBodyTooLarge, "request body is over the limit")
		return nil, false
	}
	// -2 is fasthttp's "no framing headers": a request without a body (RFC
	// 9112 §6.3); -1 is chunked.
	buffered = cl == -2 || cl >= 0 && cl <= p.opts.BufferBodyBytes
	if buffered {
		ctx.Request.Body() // materializes the pre-read body and drops the stream
	} else {
		// A streamed body goes through limitedBody, which enforces the limit
		// on chunked bodies and marks the client's read errors as the
		// client's, so a slow upload is not blamed on the upstream.
		limit := cr.maxBody
		if limit <= 0 {
			limit = math.MaxInt64
		}
		ctx.Request.SetBodyStream(acquireLimitedBody(ctx.RequestBodyStream(), limit), cl)
	}

	if cr.jwt != nil && !h.authenticate(ctx, st, cr) {
		return nil, false
	}
	if cr.rateLimited && !h.rateLimit(ctx, st, snap, cr) {
		return nil, false
	}
	st.http10 = !ctx.Request.Header.IsHTTP11()
	h.prepareUpstreamRequest(ctx, st, snap, lv, cr)
	st.head = ctx.IsHead()
	if len(cr.compress) > 0 {
		st.enc = negotiate(ctx.Request.Header.Peek("Accept-Encoding"), cr.compress)
	}
	return st, buffered
}

// authenticate checks the bearer token against the route's policy and
// scopes (contract: 401 missing_token/invalid_token with WWW-Authenticate,
// 403 insufficient_scope, 503 jwks_unavailable). The token never reaches a
// log: only the rejection's reason does.
func (h *handler) authenticate(ctx *fasthttp.RequestCtx, st *reqState, cr *compiledRoute) bool {
	// Authorization is a singleton field (RFC 9110 §11.6.2): with two, the
	// edge would verify one and the pod might act on the other.
	if len(ctx.Request.Header.PeekAll("Authorization")) > 1 {
		st.reason = "multiple_authorization"
		cr.jwtRejects.inc(st.reason)
		h.writeReject(ctx, st, fasthttp.StatusBadRequest, CodeBadRequest, "more than one Authorization header")
		h.endReject(ctx, st, CodeBadRequest)
		return false
	}
	var err error
	token, ok := jwt.ExtractBearer(ctx.Request.Header.Peek("Authorization"))
	if !ok {
		err = jwt.ErrMissingToken
	} else {
		st.claims = jwt.AcquireClaims()
		err = cr.jwt.Verify(token, h.p.opts.Now(), st.claims)
		if err == nil && !st.claims.HasScopes(cr.scopes) {
			err = jwt.ErrInsufficientScope
		}
	}
	if err == nil {
		return true
	}
	if st.claims != nil {
		jwt.ReleaseClaims(st.claims) // nothing of a rejected token is kept
		st.claims = nil
	}
	st.reason = jwt.Reason(err)
	cr.jwtRejects.inc(st.reason)
	h.writeReject(ctx, st, jwt.HTTPStatus(err), jwt.Code(err), jwt.Message(err))
	if st.hdr = jwt.AppendWWWAuthenticate(st.hdr[:0], err, cr.scopes); len(st.hdr) > 0 {
		ctx.Response.Header.SetBytesV("WWW-Authenticate", st.hdr)
	}
	h.endReject(ctx, st, jwt.Code(err))
	return false
}

// rateLimit counts the request against each of the route's limits, keyed
// per the limit's key; a request without the key's value falls back to its
// client address. The RateLimit-Policy and RateLimit fields it builds go on
// the response (draft-ietf-httpapi-ratelimit-headers-11), one list member
// per limit.
func (h *handler) rateLimit(ctx *fasthttp.RequestCtx, st *reqState, snap *snapshot, cr *compiledRoute) bool {
	now := h.p.opts.Now()
	var client netip.Addr
	for i, rl := range cr.limits {
		var res limit.Result
		key := rl.l.Key()
		var v []byte
		switch key.Kind {
		case limit.KeyRoute:
			v = cr.routeKey
		case limit.KeyHeader:
			v = ctx.Request.Header.Peek(key.Name)
		case limit.KeyClaim:
			if st.claims != nil {
				v, _ = st.claims.Value(key.Name)
			}
		}
		if len(v) > 0 {
			res = rl.l.Allow(v, now)
		} else {
			if !client.IsValid() {
				client = realClient(ctx, snap)
			}
			res = rl.l.AllowAddr(client, now)
		}
		if i > 0 {
			st.rlPol = append(st.rlPol, ", "...)
			st.rlState = append(st.rlState, ", "...)
		}
		st.rlPol = rl.l.AppendPolicyHeader(st.rlPol)
		st.rlState = rl.l.AppendRateLimitHeader(st.rlState, res)
		if !res.Allowed {
			rl.rejected.Inc()
			st.reason = rl.l.Name()
			h.writeReject(ctx, st, fasthttp.StatusTooManyRequests, CodeRateLimited, "rate limit exceeded; retry after the time in Retry-After")
			st.hdr = strconv.AppendInt(st.hdr[:0], int64(limit.RetryAfterSeconds(res)), 10)
			ctx.Response.Header.SetBytesV("Retry-After", st.hdr)
			ctx.Response.Header.SetBytesV("RateLimit-Policy", st.rlPol)
			ctx.Response.Header.SetBytesV("RateLimit", st.rlState)
			h.endReject(ctx, st, CodeRateLimited)
			return false
		}
	}
	return true
}

// prepareUpstreamRequest turns the client's request into the upstream's, in
// place: hop-by-hop headers out, X-Forwarded-*, trace context, the route's
// header edits, and the request line.
func (h *handler) prepareUpstreamRequest(ctx *fasthttp.RequestCtx, st *reqState, snap *snapshot, lv *listenerView, cr *compiledRoute) {
	hdr := &ctx.Request.Header
	if len(hdr.Host()) == 0 {
		// An HTTP/1.0 request may omit Host; the request to the pod is
		// HTTP/1.1, which must carry one (RFC 9112 §3.2): it names the
		// address the client connected to, as nginx's $host does then.
		hdr.SetHost(ctx.LocalAddr().String())
	}
	stripHopByHopRequest(hdr)
	hdr.Del("Expect") // the edge answered any 100-continue itself

	peer := peerAddr(ctx)
	peerTrusted := trusted(snap.trusted, peer)
	st.buf = appendXFF(st.buf[:0], hdr.Peek("X-Forwarded-For"), peerTrusted, peer)
	hdr.SetBytesV("X-Forwarded-For", st.buf)
	if !peerTrusted || len(hdr.Peek("X-Forwarded-Proto")) == 0 {
		if ctx.IsTLS() || lv.cfg.TLS {
			hdr.Set("X-Forwarded-Proto", "https")
		} else {
			hdr.Set("X-Forwarded-Proto", "http")
		}
	}
	if !peerTrusted || len(hdr.Peek("X-Forwarded-Host")) == 0 {
		hdr.SetBytesV("X-Forwarded-Host", hdr.Host())
	}
	if !ValidTraceparent(hdr.Peek("traceparent")) {
		// W3C Trace Context §3.3: without a valid traceparent, tracestate
		// is meaningless.
		hdr.Del("tracestate")
		st.buf = h.p.ids.appendTraceparent(st.buf[:0])
		hdr.SetBytesV("traceparent", st.buf)
	}
	for _, name := range cr.reqDel {
		hdr.DelBytes(name)
	}
	for _, a := range cr.reqAdd {
		hdr.SetBytesKV(a.k, a.v)
	}
	if cr.jwt != nil {
		// Client copies of claim headers go first, always, so a client can
		// never supply a header the upstream takes for a verified claim:
		// also their spellings with underscores, which CGI-style servers
		// (PHP, WSGI) read as the same variable.
		fcs := cr.jwt.ForwardClaims()
		if len(fcs) > 0 {
			deleteUnderscoreAliases(hdr, fcs)
		}
		for _, fc := range fcs {
			hdr.Del(fc.Header)
			if v, ok := st.claims.Value(fc.Claim); ok {
				hdr.SetBytesV(fc.Header, v)
			}
		}
	}

	// The request line carries the path the edge routed on, re-escaped, so
	// the upstream decodes exactly what was matched, minus the stripped prefix.
	path := ctx.Path()
	if cr.stripLen > 0 {
		path = path[cr.stripLen:]
		if len(path) == 0 || path[0] != '/' {
			st.buf = append(st.buf[:0], '/')
			st.buf = append(st.buf, path...)
			path = st.buf
		}
	}
	uri := ctx.URI()
	if rt := hdr.RequestURI(); len(rt) == 1 && rt[0] == '*' {
		st.hdr = append(st.hdr[:0], '*') // asterisk-form (OPTIONS *) stays so, not the path "/*"
	} else {
		st.hdr = appendEscapedPath(st.hdr[:0], path) // path may live in st.buf
	}
	uri.SetPathBytes(st.hdr)
	uri.SetScheme("http")             // the hop to the pod is plaintext, whatever the client used
	uri.DisablePathNormalizing = true // the request line carries the escaped path as set
	ctx.Request.UseHostHeader = true
	hdr.SetProtocol("HTTP/1.1")
}

// maxFreeRetries bounds the repeats of one request after stale or broken
// connections (see forward).
const maxFreeRetries = 4

// forward sends the request to the route's pool, retrying on another
// endpoint when that is safe, and hands the response to the client.
//
// Retry safety (RFC 9110 §9.2.2): a request that never reached the endpoint
// (the dial failed, or sending it failed before it was complete) may go
// anywhere, whatever its method; one that may have been acted on is retried
// only when idempotent. Either way only while the body is buffered: a
// streamed body cannot be sent twice. A kept-alive connection the upstream
// had closed while idle is retried once on a fresh connection without
// spending the retry budget: that is the transport's race, not the
// endpoint's failure. So are requests queued on a pipeline connection that
// broke (or that the upstream closed) before their turn.
func (h *handler) forward(ctx *fasthttp.RequestCtx, st *reqState, buffered bool) {
	p, pv, cr := h.p, st.pool, st.route
	deadline := st.start.Add(cr.timeout)
	hash := h.hashKey(ctx, st, pv)
	idem := idempotent(ctx.Method())
	// freeRetries counts repeats that cost the endpoint nothing: a kept-alive
	// connection found closed, or a pipeline broken under requests that were
	// only queued. They do not spend the retry budget or count as attempts,
	// but are bounded.
	freeRetries := 0
	var tried lb.Tried
	for {
		ep, err := pv.lb.Pick(hash, &tried)
		if err != nil {
			if errors.Is(err, lb.ErrOverloaded) {
				h.reject(ctx, st, fasthttp.StatusServiceUnavailable, CodeUpstreamOverloaded, "upstream pool is at its connection limit")
			} else {
				h.reject(ctx, st, fasthttp.StatusServiceUnavailable, CodeNoHealthyUpstream, "no healthy upstream endpoint")
			}
			return
		}
		st.ep, st.up = ep, pv.ups[ep.Index]
		piped := false
		if st.up.pipe != nil && idem && buffered {
			piped, err = st.up.pipe.exchange(&ctx.Request, &ctx.Response, deadline, p.opts.BufferBodyBytes, cr.timeout, st)
		}
		if !piped {
			err = st.up.ex.exchange(&ctx.Request, &ctx.Response, deadline, p.opts.BufferBodyBytes, cr.timeout, st)
		}
		if err == nil {
			h.respond(ctx, st)
			return
		}
		ctx.Response.Reset()

		fail := classify(err)
		if p.opts.Logger.Enabled(context.Background(), slog.LevelDebug) {
			p.opts.Logger.Debug("upstream exchange failed", "pool", pv.name, "endpoint", st.up.label, "error", err.Error(), "request_id", string(st.id))
		}
		outcome := lb.Reset
		switch fail {
		case failConnect:
			outcome = lb.ConnectFailure
		case failTimeout:
			outcome = lb.Timeout
		case failOverloaded, failClient, failBodyTooLarge, failStale:
			outcome = lb.Canceled // says nothing about the endpoint
		}
		pv.lb.Done(ep, outcome, p.opts.Now())
		st.up.codes.inc(0)
		st.ep, st.up = nil, nil

		if fail == failStale && buffered && idem && freeRetries < maxFreeRetries && time.Until(deadline) > 0 {
			freeRetries++
			continue
		}
		retryable := buffered && (fail == failConnect || fail == failNotSent || (fail == failReset || fail == failStale) && idem)
		if !buffered && fail == failConnect {
			retryable = true // the streamed body was not touched: nothing was sent
		}
		if retryable && tried.Attempts()-freeRetries <= pv.lb.Retries() && time.Until(deadline) > 0 && pv.lb.AllowRetry() {
			continue
		}
		if time.Until(deadline) <= 0 && fail != failClient && fail != failBodyTooLarge {
			fail = failTimeout // out of time, whatever the last attempt's failure
		}
		switch fail {
		case failTimeout:
			h.reject(ctx, st, fasthttp.StatusGatewayTimeout, CodeUpstreamTimeout, "upstream did not answer in time")
		case failOverloaded:
			h.reject(ctx, st, fasthttp.StatusServiceUnavailable, CodeUpstreamOverloaded, "upstream endpoint is at its connection limit")
		case failBodyTooLarge:
			ctx.SetConnectionClose()
			h.reject(ctx, st, fasthttp.StatusRequestEntityTooLarge, CodeBodyTooLarge, "request body is over the limit")
		case failClient:
			ctx.SetConnectionClose()
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				h.reject(ctx, st, fasthttp.StatusRequestTimeout, CodeRequestTimeout, "request body was not received in time")
			} else {
				h.reject(ctx, st, fasthttp.StatusBadRequest, CodeBadRequest, "request body could not be read")
			}
		default:
			if pv.lb.Healthy() == 0 {
				// Failing open (lb's panic mode) to endpoints that are all
				// unhealthy, and they failed too: the pool has no healthy
				// endpoint (contract: 503 no_healthy_upstream).
				h.reject(ctx, st, fasthttp.StatusServiceUnavailable, CodeNoHealthyUpstream, "no healthy upstream endpoint (the unhealthy ones were tried and failed)")
				return
			}
			h.reject(ctx, st, fasthttp.StatusBadGateway, CodeUpstreamError, "upstream connection failed")
		}
		return
	}
}

var http11 = []byte("HTTP/1.1")

// respondUntilClose sends a streamed body of unknown length to an HTTP/1.0
// client, which cannot read chunked coding (RFC 9112 §6.1): delimited by
// closing the connection, as RFC 9112 §6.3 item 8 allows. fasthttp always
// writes such a body chunked, so the connection is hijacked: the head goes
// out without framing fields, then the body until its end, then the close.
// The stream is closed (bodyDone: access log, endpoint released) when
// fasthttp releases the request after the hijack handler.
func (h *handler) respondUntilClose(ctx *fasthttp.RequestCtx) {
	resp := &ctx.Response
	resp.Header.Del(fasthttp.HeaderTransferEncoding)
	resp.Header.SetContentLength(-2) // no framing field; sets Connection: close
	head := resp.Header.AppendBytes(nil)
	body := resp.BodyStream()
	wt := h.p.opts.WriteTimeout
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(func(c net.Conn) {
		if wt > 0 {
			c.SetWriteDeadline(time.Now().Add(wt)) //nolint:errcheck // the writes fail then
		}
		if _, err := c.Write(head); err != nil {
			return
		}
		io.Copy(c, body) //nolint:errcheck // the client sees the close; bodyDone sees the error
	})
}

// respond passes a response that arrived from an endpoint to the client:
// the transport read its head (and a small body) straight into ctx.Response.
func (h *handler) respond(ctx *fasthttp.RequestCtx, st *reqState) {
	resp := &ctx.Response
	st.status = resp.StatusCode()
	st.outcome = lb.Success
	if st.status == fasthttp.StatusBadGateway || st.status == fasthttp.StatusServiceUnavailable || st.status == fasthttp.StatusGatewayTimeout {
		st.outcome = lb.Failure5xx
	}
	st.up.codes.inc(st.status)
	if string(resp.Header.Protocol()) != "HTTP/1.1" {
		// The status line is the edge's (RFC 9110 §6.2): an HTTP/1.0 pod's
		// version would contradict the framing the edge writes.
		resp.Header.SetProtocol(http11)
	}
	stripHopByHopResponse(&resp.Header)
	resp.Header.SetBytesV("X-Request-ID", st.id)
	for _, name := range st.route.respDel {
		resp.Header.DelBytes(name)
	}
	for _, a := range st.route.respAdd {
		resp.Header.SetBytesKV(a.k, a.v)
	}
	if st.route.rateLimited {
		resp.Header.SetBytesV("RateLimit-Policy", st.rlPol)
		resp.Header.SetBytesV("RateLimit", st.rlState)
	}
	if resp.IsBodyStream() {
		// The body streams after the handler returns (compressed, if so,
		// by the wrapper wrapStream chose); the request is done, and its
		// endpoint free, when fasthttp closes the stream (bodyDone).
		st.rec = h.beginLog(ctx, st)
		if resp.Header.ContentLength() < 0 && st.http10 && !st.head {
			h.respondUntilClose(ctx)
		}
		return
	}
	if len(st.route.compress) > 0 {
		st.compressBuffered(ctx)
	}
	st.rec = h.beginLog(ctx, st)
	h.finish(st, int64(len(resp.Body())))
}

// bodyDone is called by a streamed upstream body once fasthttp has relayed
// it (err nil) or given up (the client went away): the request is over.
func (st *reqState) bodyDone(sent int64, err error) {
	if err != nil {
		st.outcome = lb.Canceled
		// The status went out as the pod's; the log says the body broke
		// (the pod's side or the client's) rather than passing for whole.
		st.rec.String("error", "body_interrupted").String("reason", err.Error())
	}
	if st.compressed {
		sent = st.compressedOut
	}
	st.h.finish(st, sent)
}

// reject answers with an error produced by the edge itself. st is released.
func (h *handler) reject(ctx *fasthttp.RequestCtx, st *reqState, status int, code, msg string) {
	h.writeReject(ctx, st, status, code, msg)
	h.endReject(ctx, st, code)
}

// writeReject writes an error response; the caller may add headers, then
// calls endReject.
func (h *handler) writeReject(ctx *fasthttp.RequestCtx, st *reqState, status int, code, msg string) {
	st.buf = writeError(ctx, status, code, msg, st.id, st.buf)
	st.status = status
}

// endReject logs and counts an error response and releases st.
func (h *handler) endReject(ctx *fasthttp.RequestCtx, st *reqState, code string) {
	st.rec = h.beginLog(ctx, st)
	st.rec.String("error", code).String("reason", st.reason)
	h.finish(st, int64(len(ctx.Response.Body())))
}

// beginLog formats the access-log fields known when the response starts.
func (h *handler) beginLog(ctx *fasthttp.RequestCtx, st *reqState) *accesslog.Record {
	al := h.p.opts.AccessLog
	if al == nil {
		return nil
	}
	// The contract's fields are always there (empty or 0 when they do not
	// apply); jwt_sub and error only when there is one.
	r := al.Begin(st.start).
		Field("request_id", st.id).
		Field("client_ip", clientIPForLog(ctx, h.p.snap.Load(), st.buf[:0]))
	if st.unparsed {
		// fasthttp could not parse the head: its method and path are
		// defaults, not what the client sent.
		r.Field("method", nil).Field("host", nil).Field("path", nil)
	} else {
		r.Field("method", ctx.Method()).Field("host", ctx.Host()).Field("path", ctx.Path())
	}
	r.String("listener", h.listener).
		Int("status", int64(st.status)).
		Int("bytes_in", int64(max(ctx.Request.Header.ContentLength(), 0)))
	var route, pool, endpoint string
	upstreamStatus := 0
	if st.route != nil {
		route = st.route.name
	}
	if st.pool != nil {
		pool = st.pool.name
	}
	if st.ep != nil {
		endpoint, upstreamStatus = st.up.label, st.status
	}
	r.FieldString("route", route).FieldString("pool", pool).FieldString("endpoint", endpoint).
		Int("upstream_status", int64(upstreamStatus))
	if st.claims != nil {
		if sub, ok := st.claims.Sub(); ok {
			r.Str("jwt_sub", sub)
		}
	}
	return r
}

// finish records a request's metrics and access log and releases its state
// and endpoint. It runs once per request, in the handler for buffered
// responses and when the body stream closes for streamed ones.
func (h *handler) finish(st *reqState, bytesOut int64) {
	p := h.p
	now := p.opts.Now()
	dur := now.Sub(st.start)
	if st.ep != nil {
		st.pool.lb.Done(st.ep, st.outcome, now)
	}
	if st.route != nil {
		st.route.codes.inc(st.status)
		st.route.duration.Observe(dur)
	} else if lv := p.snap.Load().listeners[h.listener]; lv != nil {
		lv.notFound.inc(st.status)
	}
	if st.rec != nil {
		st.rec.Int("bytes_out", bytesOut).Int("duration_us", dur.Microseconds())
		p.opts.AccessLog.Finish(st.rec)
	}
	releaseState(st)
}

// serveError answers requests fasthttp could not parse.
func (h *handler) serveError(ctx *fasthttp.RequestCtx, err error) {
	st := h.acquireState(time.Now())
	st.id = h.p.ids.appendRequestID(st.id[:0])
	st.unparsed = !errors.Is(err, fasthttp.ErrBodyTooLarge) // the head was read then
	var small *fasthttp.ErrSmallBuffer
	var ne net.Error
	switch {
	case errors.As(err, &small):
		h.reject(ctx, st, fasthttp.StatusRequestHeaderFieldsTooLarge, CodeHeadersTooLarge, "request headers are over the limit")
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		h.reject(ctx, st, fasthttp.StatusRequestEntityTooLarge, CodeBodyTooLarge, "request body is over the limit")
	case errors.As(err, &ne) && ne.Timeout():
		h.reject(ctx, st, fasthttp.StatusRequestTimeout, CodeRequestTimeout, "request was not received in time")
	default:
		h.reject(ctx, st, fasthttp.StatusBadRequest, CodeBadRequest, "malformed request")
	}
}

func (h *handler) redirectHTTPS(ctx *fasthttp.RequestCtx, st *reqState, lv *listenerView) {
	host := ctx.Host()
	if len(host) == 0 {
		// HTTP/1.0 without Host: the address the client connected to, as
		// for a proxied request (prepareUpstreamRequest).
		host = []byte(ctx.LocalAddr().String())
	}
	loc, ok := appendHTTPSRedirect(st.buf[:0], host, ctx.RequestURI(), lv.cfg.HTTPSPort)
	if !ok {
		h.reject(ctx, st, fasthttp.StatusBadRequest, CodeBadRequest, "a redirect needs a valid Host header")
		return
	}
	st.buf = loc
	ctx.Response.Reset()
	ctx.Response.SetStatusCode(fasthttp.StatusPermanentRedirect)
	ctx.Response.Header.SetBytesV("Location", loc)
	ctx.Response.Header.SetBytesV("X-Request-ID", st.id)
	st.status = fasthttp.StatusPermanentRedirect
	st.rec = h.beginLog(ctx, st)
	h.finish(st, 0)
}

// hashKey computes the consistent-hash key of a request for pools that
// balance by hash; other pools ignore it. A request without the hashed value
// (no such header, cookie or claim) hashes on its client address, so such
// requests spread instead of piling onto one endpoint.
func (h *handler) hashKey(ctx *fasthttp.RequestCtx, st *reqState, pv *poolView) uint64 {
	if pv.lb.Balance() != lb.ConsistentHash {
		return 0
	}
	on := pv.lb.HashOn()
	switch on.Kind {
	case lb.HashHeader:
		if v := ctx.Request.Header.Peek(on.Name); len(v) > 0 {
			return lb.Hash(v)
		}
	case lb.HashCookie:
		if v := ctx.Request.Header.Cookie(on.Name); len(v) > 0 {
			return lb.Hash(v)
		}
	case lb.HashClaim:
		if st.claims != nil {
			if v, ok := st.claims.Value(on.Name); ok {
				return lb.Hash(v)
			}
		}
	case lb.HashSNI:
		if cs := ctx.TLSConnectionState(); cs != nil {
			return lb.HashString(cs.ServerName)
		}
		return lb.Hash(ctx.Host())
	}
	// client_ip, and the fallback of a request without the hashed value.
	b := realClient(ctx, h.p.snap.Load()).As16()
	return lb.Hash(b[:])
}

// ipAllowed applies a route's deny_ips, then allow_ips, to the client.
func ipAllowed(cr *compiledRoute, client netip.Addr) bool {
	if trusted(cr.cfg.DenyIPs, client) {
		return false
	}
	return len(cr.cfg.AllowIPs) == 0 || trusted(cr.cfg.AllowIPs, client)
}

// peerAddr is the address of the connection's other end (after PROXY
// protocol, which l4 applies to the connection's RemoteAddr).
func peerAddr(ctx *fasthttp.RequestCtx) netip.Addr {
	switch a := ctx.RemoteAddr().(type) {
	case *net.TCPAddr:
		ip, _ := netip.AddrFromSlice(a.IP)
		return ip.Unmap()
	}
	ap, err := netip.ParseAddrPort(ctx.RemoteAddr().String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// realClient is the client as the edge believes it: the peer, or from a
// trusted peer the first untrusted address of X-Forwarded-For.
func realClient(ctx *fasthttp.RequestCtx, snap *snapshot) netip.Addr {
	peer := peerAddr(ctx)
	if !trusted(snap.trusted, peer) {
		return peer
	}
	return clientFromXFF(ctx.Request.Header.Peek("X-Forwarded-For"), snap.trusted, peer)
}

func clientIPForLog(ctx *fasthttp.RequestCtx, snap *snapshot, dst []byte) []byte {
	a := realClient(ctx, snap)
	if !a.IsValid() {
		return dst
	}
	return a.AppendTo(dst)
}

// idempotent reports the methods RFC 9110 §9.2.2 calls idempotent, which a
// proxy may repeat after a failure.
func idempotent(m []byte) bool {
	switch string(m) {
	case "GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE":
		return true
	}
	return false
}
