package proxy

import (
	"io"
	"sync"
)

// limitedBody relays a chunked request body to the upstream and fails the
// exchange once more than limit bytes have come, so a body without a
// declared length still meets the route's max_body_bytes.
type limitedBody struct {
	r    io.Reader
	left int64
}

var limitedBodyPool = sync.Pool{New: func() any { return new(limitedBody) }}

func acquireLimitedBody(r io.Reader, limit int64) *limitedBody {
	b := limitedBodyPool.Get().(*limitedBody)
	b.r, b.left = r, limit
	return b
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.r == nil {
		return 0, io.EOF
	}
	if b.left < 0 {
		return 0, errBodyTooLarge // and never read the client again
	}
	n, err := b.r.Read(p)
	b.left -= int64(n)
	if b.left < 0 {
		// No bytes with the error: fasthttp's chunked writer ignores an
		// error that comes with data and would keep reading the client
		// (the whole upload, or until the read timeout for a stalled one).
		return 0, errBodyTooLarge
	}
	if err != nil && err != io.EOF {
		err = &clientBodyError{err}
	}
	return n, err
}

// Close is called by fasthttp when the request has been written (or failed);
// the underlying stream belongs to the server, which drains it.
func (b *limitedBody) Close() error {
	b.r = nil
	limitedBodyPool.Put(b)
	return nil
}
