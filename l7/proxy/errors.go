package proxy

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"

	"github.com/valyala/fasthttp"

	"example.com/edge/l7/accesslog"
)

// Error codes of the contract's error bodies.
const (
	CodeBadRequest        = "bad_request"
	CodeMissingToken      = "missing_token"
	CodeInvalidToken      = "invalid_token"
	CodeInsufficientScope = "insufficient_scope"
	CodeForbidden         = "forbidden"
	CodeNoRoute           = "no_route"
	CodeMethodNotAllowed  = "method_not_allowed"
	CodeBodyTooLarge      = "body_too_large"
	CodeRateLimited       = "rate_limited"
	CodeHeadersTooLarge   = "headers_too_large"
	CodeJWKSUnavailable   = "jwks_unavailable"
	CodeUpstreamError     = "upstream_error"
	CodeNoHealthyUpstream = "no_healthy_upstream"
	CodeUpstreamTimeout   = "upstream_timeout"
	// CodeUpstreamOverloaded extends the contract: a pool's circuit breaker
	// (max_pending, max_conns_per_endpoint) is open, answered 503 at once.
	CodeUpstreamOverloaded = "upstream_overloaded"
	// CodeRequestTimeout extends the contract: the client did not send its
	// request within read_timeout.
	CodeRequestTimeout = "request_timeout"
)

// writeError replaces the response with the contract's JSON error body:
// {"error":"<code>","message":"<human text>","request_id":"<id>"}.
// scratch is reused for the body and returned.
func writeError(ctx *fasthttp.RequestCtx, status int, code, msg string, requestID, scratch []byte) []byte {
	resp := &ctx.Response
	closeConn := resp.ConnectionClose()
	resp.Reset()
	if closeConn {
		resp.SetConnectionClose()
	}
	resp.SetStatusCode(status)
	resp.Header.SetContentType("application/json")
	if len(requestID) > 0 {
		resp.Header.SetBytesV("X-Request-ID", requestID)
	}
	scratch = appendErrorBody(scratch[:0], code, msg, requestID)
	resp.SetBody(scratch)
	return scratch
}

func appendErrorBody(dst []byte, code, msg string, requestID []byte) []byte {
	dst = append(dst, `{"error":"`...)
	dst = append(dst, code...)
	dst = append(dst, `","message":`...)
	dst = accesslog.AppendJSONString(dst, []byte(msg))
	dst = append(dst, `,"request_id":`...)
	dst = accesslog.AppendJSONString(dst, requestID)
	return append(dst, "}\n"...)
}

// upstreamFailure classifies an error from an upstream exchange.
type upstreamFailure uint8

const (
	failConnect      upstreamFailure = iota + 1 // never connected: safe to retry anywhere
	failTimeout                                 // no response within the deadline
	failReset                                   // connection broke after the request was (maybe) sent
	failOverloaded                              // the endpoint's connection limit is reached
	failClient                                  // the client's side failed (its body stream broke)
	failBodyTooLarge                            // the client's streamed body went over the limit
	failNotSent                                 // sending the request failed before it was complete
	failStale                                   // a kept-alive connection was already closed by the upstream
)

// dialError marks errors from the upstream dialer, so a failure to connect
// (safe to retry on any endpoint) is told apart from a failure mid-exchange.
type dialError struct{ err error }

func (e *dialError) Error() string { return "proxy: connect: " + e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

// errBodyTooLarge is returned by the limited body stream.
var errBodyTooLarge = errors.New("proxy: request body over the limit")

// errClientBody wraps a failure to read the client's streamed body.
type clientBodyError struct{ err error }

func (e *clientBodyError) Error() string { return "proxy: client body: " + e.err.Error() }
func (e *clientBodyError) Unwrap() error { return e.err }

func classify(err error) upstreamFailure {
	var de *dialError
	var ce *clientBodyError
	var se *sendError
	switch {
	case errors.Is(err, errBodyTooLarge):
		return failBodyTooLarge
	case errors.As(err, &ce):
		return failClient
	case errors.As(err, &de):
		return failConnect
	case errors.Is(err, errStaleConn), errors.Is(err, errPipelineBroken):
		return failStale
	case errors.Is(err, fasthttp.ErrNoFreeConns):
		return failOverloaded
	case errors.Is(err, fasthttp.ErrTimeout), errors.Is(err, os.ErrDeadlineExceeded):
		return failTimeout
	case errors.As(err, &se):
		return failNotSent
	case errors.Is(err, fasthttp.ErrDialTimeout), errors.Is(err, syscall.ECONNREFUSED):
		return failConnect
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return failTimeout
	}
	if errors.Is(err, io.EOF) || errors.Is(err, fasthttp.ErrConnectionClosed) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return failReset
	}
	return failReset
}
