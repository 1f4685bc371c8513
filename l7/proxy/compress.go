package proxy

import (
	"bytes"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	brotli "github.com/molecule-man/go-brrr"
	"github.com/valyala/fasthttp"
)

// Response compression (the contract's "compression" step): a route lists
// the encodings it may use, in its order of preference; the client's
// Accept-Encoding (RFC 9110 §12.5.3) picks among them. Bodies read whole are
// compressed in one go; streamed ones are compressed as they flow, each
// upstream read flushed so a slow stream is not held back.

// encoding is a content coding edge can produce.
type encoding uint8

const (
	encNone encoding = iota
	encGzip
	encZstd
	encBrotli
)

var encodingNames = [...]string{encNone: "", encGzip: "gzip", encZstd: "zstd", encBrotli: "br"}

// ParseEncoding maps a route's compress entry to an encoding.
func parseEncoding(s string) (encoding, error) {
	for e, name := range encodingNames {
		if name != "" && name == s {
			return encoding(e), nil
		}
	}
	return encNone, fmt.Errorf("proxy: unknown compress encoding %q (gzip, zstd, br)", s)
}

// Compression levels: fast settings, since the edge compresses on the
// request path (comparable to nginx's gzip_comp_level 5).
const (
	gzipLevel   = 5
	brotliLevel = 4
)

// minCompressBytes: smaller bodies gain too little to pay for the headers.
const minCompressBytes = 256

// negotiate returns the first of prefs the client accepts in
// Accept-Encoding value ae: listed with q > 0, or covered by "*" with q > 0
// and not listed with q=0. It allocates nothing.
func negotiate(ae []byte, prefs []encoding) encoding {
	if len(ae) == 0 {
		return encNone
	}
	for _, e := range prefs {
		q, ok := acceptQ(ae, encodingNames[e])
		if !ok {
			q, ok = acceptQ(ae, "*")
		}
		if ok && q > 0 {
			return e
		}
	}
	return encNone
}

// acceptQ finds coding in an Accept-Encoding list and returns its weight in
// thousandths (RFC 9110 §12.4.2: up to three decimals).
func acceptQ(ae []byte, coding string) (int, bool) {
	for len(ae) > 0 {
		var item []byte
		if i := bytes.IndexByte(ae, ','); i >= 0 {
			item, ae = ae[:i], ae[i+1:]
		} else {
			item, ae = ae, nil
		}
		name, params, _ := bytes.Cut(item, []byte{';'})
		if !bytes.EqualFold(bytes.TrimSpace(name), []byte(coding)) {
			continue
		}
		q := 1000
		for len(params) > 0 {
			var p []byte
			p, params, _ = bytes.Cut(params, []byte{';'})
			p = bytes.TrimSpace(p)
			if len(p) >= 2 && (p[0] == 'q' || p[0] == 'Q') && p[1] == '=' {
				q = parseQ(p[2:])
			}
		}
		return q, true
	}
	return 0, false
}

// parseQ parses a qvalue ("0", "0.5", "1.000") into thousandths; anything
// malformed counts as 0 (not acceptable).
func parseQ(b []byte) int {
	if len(b) == 0 || len(b) > 5 {
		return 0
	}
	if b[0] == '1' {
		for _, c := range b[1:] {
			if c != '.' && c != '0' {
				return 0
			}
		}
		return 1000
	}
	if b[0] != '0' {
		return 0
	}
	if len(b) == 1 {
		return 0
	}
	if b[1] != '.' {
		return 0
	}
	q, scale := 0, 100
	for _, c := range b[2:] {
		if c < '0' || c > '9' {
			return 0
		}
		q += int(c-'0') * scale
		scale /= 10
	}
	return q
}

// compressible reports content types worth compressing: text, and the
// structured formats that are text.
func compressible(ct []byte) bool {
	if len(ct) == 0 {
		return false
	}
	if i := bytes.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	ct = bytes.TrimSpace(ct)
	if hasPrefixFold(ct, "text/") {
		return true
	}
	for _, t := range [...]string{"application/json", "application/javascript", "application/xml", "image/svg+xml",
		"application/x-javascript", "application/ld+json", "application/manifest+json", "application/wasm"} {
		if bytes.EqualFold(ct, []byte(t)) {
			return true
		}
	}
	return hasSuffixFold(ct, "+json") || hasSuffixFold(ct, "+xml")
}

func hasPrefixFold(b []byte, p string) bool {
	return len(b) >= len(p) && bytes.EqualFold(b[:len(p)], []byte(p))
}

func hasSuffixFold(b []byte, s string) bool {
	return len(b) >= len(s) && bytes.EqualFold(b[len(b)-len(s):], []byte(s))
}

// compressEligible reports whether a response may be compressed: it has a
// body, is not already encoded or partial, is text, and allows transforms.
func compressEligible(h *fasthttp.ResponseHeader, head bool) bool {
	code := h.StatusCode()
	return !head && code >= 200 && code != fasthttp.StatusNoContent && code != fasthttp.StatusNotModified &&
		code != fasthttp.StatusPartialContent && len(h.ContentEncoding()) == 0 && compressible(h.ContentType()) &&
		!bytes.Contains(h.Peek("Cache-Control"), []byte("no-transform"))
}

// markCompressed sets the headers of a compressed response.
func markCompressed(h *fasthttp.ResponseHeader, enc encoding, scratch []byte) []byte {
	h.SetContentEncoding(encodingNames[enc])
	// A strong validator names one representation; the compressed body is
	// another (RFC 9110 §8.8.1).
	if etag := h.Peek("ETag"); len(etag) > 0 && etag[0] == '"' {
		scratch = append(append(scratch[:0], "W/"...), etag...)
		h.SetBytesV("ETag", scratch)
	}
	return scratch
}

// compressBuffered compresses a response body read whole, when it is
// worth it.
func (st *reqState) compressBuffered(ctx *fasthttp.RequestCtx) {
	resp := &ctx.Response
	if !compressEligible(&resp.Header, ctx.IsHead()) {
		return
	}
	resp.Header.Add("Vary", "Accept-Encoding")
	body := resp.Body()
	if st.enc == encNone || len(body) < minCompressBytes {
		return
	}
	st.buf = appendCompressed(st.buf[:0], body, st.enc)
	if len(st.buf) >= len(body) {
		return
	}
	resp.SetBody(st.buf)
	st.hdr = markCompressed(&resp.Header, st.enc, st.hdr)
}

// wrapStream implements bodyObserver: the transport offers a streamed
// upstream body before handing it to fasthttp, and gets back either the same
// body or a compressing one (then sent chunked, size unknown).
func (st *reqState) wrapStream(h *fasthttp.ResponseHeader, body upstreamStream, size int) (io.Reader, int) {
	if st.route == nil || len(st.route.compress) == 0 || !compressEligible(h, st.head) {
		return body, size
	}
	h.Add("Vary", "Accept-Encoding")
	if st.enc == encNone || size >= 0 && size < minCompressBytes {
		return body, size
	}
	st.hdr = markCompressed(h, st.enc, st.hdr)
	st.compressed = true
	c := acquireCompressReader(body, st.enc)
	c.st = st
	return c, -1
}

// upstreamStream is a streamed upstream body: closing it releases the
// connection and finishes the request.
type upstreamStream interface {
	io.Reader
	CloseWithError(error) error
}

// compressReader compresses a stream as fasthttp reads it: each read pulls
// one chunk from the source through the encoder, flushed, so compressed
// bytes leave as soon as their source bytes arrived.
type compressReader struct {
	st   *reqState // counts the compressed bytes for the access log
	src  upstreamStream
	enc  encoding
	out  bytes.Buffer // compressed bytes not yet read
	in   []byte
	w    compressWriter
	eof  bool
	werr error
}

// compressWriter is what the three encoders share.
type compressWriter interface {
	io.WriteCloser
	Flush() error
}

var (
	compressReaders = sync.Pool{New: func() any { return &compressReader{in: make([]byte, 32<<10)} }}
	gzipWriters     sync.Pool
	zstdWriters     sync.Pool
	brotliWriters   sync.Pool
)

func acquireCompressReader(src upstreamStream, enc encoding) *compressReader {
	c := compressReaders.Get().(*compressReader)
	c.src, c.enc = src, enc
	c.out.Reset()
	switch enc {
	case encGzip:
		if w, ok := gzipWriters.Get().(*gzip.Writer); ok {
			w.Reset(&c.out)
			c.w = w
		} else {
			w, _ := gzip.NewWriterLevel(&c.out, gzipLevel) // the level is valid
			c.w = w
		}
	case encZstd:
		if w, ok := zstdWriters.Get().(*zstd.Encoder); ok {
			w.Reset(&c.out)
			c.w = w
		} else {
			// One goroutine-free encoder per stream: concurrency 1, modest window.
			w, _ := zstd.NewWriter(&c.out, zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(1<<20), zstd.WithLowerEncoderMem(true))
			c.w = w
		}
	case encBrotli:
		if w, ok := brotliWriters.Get().(*brotli.Writer); ok {
			w.Reset(&c.out)
			c.w = w
		} else {
			w, _ := brotli.NewWriter(&c.out, brotliLevel)
			c.w = w
		}
	}
	return c
}

func (c *compressReader) Read(p []byte) (int, error) {
	for c.out.Len() == 0 {
		if c.werr != nil {
			return 0, c.werr
		}
		if c.eof {
			return 0, io.EOF
		}
		n, err := c.src.Read(c.in)
		if n > 0 {
			if _, werr := c.w.Write(c.in[:n]); werr != nil {
				c.werr = werr
				continue
			}
		}
		switch {
		case err == io.EOF:
			c.eof = true
			c.werr = c.w.Close()
		case err != nil:
			c.werr = err
		case n > 0:
			c.werr = c.w.Flush()
		}
	}
	n, err := c.out.Read(p)
	c.st.compressedOut += int64(n)
	return n, err
}

// CloseWithError releases the encoder, then closes the source (which ends
// the request).
func (c *compressReader) CloseWithError(err error) error {
	src := c.src
	switch w := c.w.(type) {
	case *gzip.Writer:
		gzipWriters.Put(w)
	case *zstd.Encoder:
		zstdWriters.Put(w)
	case *brotli.Writer:
		brotliWriters.Put(w)
	}
	if err == nil && c.werr != nil && c.werr != io.EOF {
		err = c.werr
	}
	c.st, c.src, c.w, c.eof, c.werr = nil, nil, nil, false, nil
	if c.out.Cap() <= 256<<10 {
		compressReaders.Put(c)
	}
	return src.CloseWithError(err)
}

func appendCompressed(dst, src []byte, enc encoding) []byte {
	switch enc {
	case encGzip:
		return fasthttp.AppendGzipBytesLevel(dst, src, gzipLevel)
	case encZstd:
		return fasthttp.AppendZstdBytesLevel(dst, src, fasthttp.CompressZstdDefault)
	case encBrotli:
		return fasthttp.AppendBrotliBytesLevel(dst, src, brotliLevel)
	}
	return append(dst, src...)
}
