package l4

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// TestEarlyAnswerToAnUploadIsNotReset: a server that answers an upload
// without reading it (a 413, an upstream failure) and closes must not reset
// the connection under the client's unsent bytes, which can destroy the
// answer before the client reads it (RFC 9112 §9.6). The delivered conn's Close lingers:
// FIN, then drain.
func TestEarlyAnswerToAnUploadIsNotReset(t *testing.T) {
	s := startServer(t, Config{Accept: AcceptGnet, Listeners: []ListenerConfig{{Name: "web", Address: "127.0.0.1:0"}}})
	// An answer large enough to be still in the server's send buffer when
	// it closes: a reset would throw that part away.
	answer := bytes.Repeat([]byte("x"), 1<<20)
	srv := &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			ctx.SetConnectionClose()
			ctx.SetStatusCode(fasthttp.StatusRequestEntityTooLarge)
			ctx.SetBody(answer)
		},
		StreamRequestBody: true,
		Logger:            testLogger{t},
	}
	go srv.Serve(s.Listener("web"))      //nolint:errcheck
	t.Cleanup(func() { srv.Shutdown() }) //nolint:errcheck

	const size = 8 << 20
	chunk := make([]byte, 64<<10)
	for i := range 10 {
		c, err := net.Dial("tcp", s.Addr("web").String())
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "POST /upload HTTP/1.1\r\nHost: example.com\r\nContent-Length: %d\r\n\r\n", size)
		// Like most HTTP clients, send the whole body before reading: by
		// then the server has answered and closed.
		c.SetWriteDeadline(time.Now().Add(5 * time.Second)) //nolint:errcheck
		for sent := 0; sent < size; sent += len(chunk) {
			if _, err := c.Write(chunk); err != nil {
				break
			}
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second)) //nolint:errcheck
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("upload %d: reading the early answer: %v", i, err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || n != int64(len(answer)) {
			t.Fatalf("upload %d: got %d of the answer's %d bytes: %v", i, n, len(answer), err)
		}
		if resp.StatusCode != fasthttp.StatusRequestEntityTooLarge {
			t.Fatalf("upload %d: status %d", i, resp.StatusCode)
		}
		c.Close()
	}
	waitFor(t, "lingering connections released", func() bool { return s.lingering.Load() == 0 && stats(s, "web").Active == 0 })
}
