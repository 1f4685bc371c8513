package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// These tests run the edge with serve: loop (plaintext HTTP on the gnet
// event loops) and check what that path does itself, and what it hands to
// the goroutine path, against real clients and pods.

// loopPod answers GET /big with 3 MiB, /chunked with a chunked body, and
// anything else with the method, path and a hash of the body.
func loopPod(t *testing.T) string {
	big := bytes.Repeat([]byte("0123456789abcdef"), 3<<16)
	return startPod(t, "pod", func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/big":
			w.Header().Set("Content-Length", fmt.Sprint(len(big)))
			w.Write(big) //nolint:errcheck
			return
		case "/chunked":
			for i := range 5 {
				fmt.Fprintf(w, "part %d;", i)
				w.(http.Flusher).Flush()
			}
			return
		case "/slow":
			time.Sleep(300 * time.Millisecond)
		}
		h := sha256.New()
		n, _ := io.Copy(h, r.Body)
		fmt.Fprintf(w, "%s %s %d %x", r.Method, r.URL.Path, n, h.Sum(nil))
	})
}

func startLoopEdge(t *testing.T, pod string, extra string) *proc {
	t.Helper()
	path := filepath.Join(t.TempDir(), "edge.yaml")
	writeConfig(t, path, fmt.Sprintf(`admin: 127.0.0.1:0
tuning: {serve: loop, idle_timeout: 2s, read_timeout: 2s, max_body_bytes: 104857600%s}
listeners:
  - {name: web, address: "127.0.0.1:0"}
pools:
  app: {endpoints: ["%s"]}
routes:
  - {prefix: /, pool: app, methods: [GET, HEAD, POST, PUT]}
`, extra, pod))
	return startEdge(t, path)
}

func wantBody(t *testing.T, method, path string, body []byte) string {
	h := sha256.Sum256(body)
	return fmt.Sprintf("%s %s %d %x", method, path, len(body), h)
}

func TestLoopServesKeepAliveAndPipelinedRequests(t *testing.T) {
	p := startLoopEdge(t, loopPod(t), "")
	c, err := net.Dial("tcp", p.addr("web"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	// Three requests in one write (client pipelining), then more on the
	// same connection: each answered, in order.
	var req strings.Builder
	for i := range 3 {
		fmt.Fprintf(&req, "GET /p%d HTTP/1.1\r\nHost: example.com\r\n\r\n", i)
	}
	fmt.Fprintf(&req, "POST /post HTTP/1.1\r\nHost: example.com\r\nContent-Length: 5\r\n\r\nhello")
	io.WriteString(c, req.String()) //nolint:errcheck
	for i := range 3 {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		if want := wantBody(t, "GET", fmt.Sprintf("/p%d", i), nil); resp.StatusCode != 200 || string(b) != want {
			t.Fatalf("pipelined response %d: %d %q, want %q", i, resp.StatusCode, b, want)
		}
		if resp.Header.Get("X-Request-Id") == "" {
			t.Error("no X-Request-ID on a loop-served response")
		}
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if want := wantBody(t, "POST", "/post", []byte("hello")); string(b) != want {
		t.Fatalf("POST: %q, want %q", b, want)
	}
	// The edge's own answers, on the same connection.
	io.WriteString(c, "GET /x HTTP/1.1\r\nHost: example.com\r\n\r\nPATCH /x HTTP/1.1\r\nHost: example.com\r\n\r\n") //nolint:errcheck
	resp, _ = http.ReadResponse(br, nil)
	io.Copy(io.Discard, resp.Body) //nolint:errcheck
	if resp.StatusCode != 200 {
		t.Fatalf("GET after POST: %d", resp.StatusCode)
	}
	resp, _ = http.ReadResponse(br, nil)
	b, _ = io.ReadAll(resp.Body)
	if resp.StatusCode != 405 || !strings.Contains(string(b), `"method_not_allowed"`) {
		t.Fatalf("PATCH: %d %s, want 405 JSON", resp.StatusCode, b)
	}
}

func TestLoopHandsOffAndStreams(t *testing.T) {
	p := startLoopEdge(t, loopPod(t), "")
	base := "http://" + p.addr("web")
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	do := func(method, path string, body io.Reader, size int64, hdr map[string]string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, body)
		req.Host = "example.com"
		req.ContentLength = size
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("%s %s: reading: %v", method, path, err)
		}
		return resp, b
	}
	// A body over the buffered size, with a length and chunked: handed to
	// the goroutine path, which streams it.
	upload := bytes.Repeat([]byte("x"), 5<<20)
	resp, b := do("PUT", "/up", bytes.NewReader(upload), int64(len(upload)), nil)
	if want := wantBody(t, "PUT", "/up", upload); resp.StatusCode != 200 || string(b) != want {
		t.Fatalf("large PUT: %d %q", resp.StatusCode, b)
	}
	resp, b = do("POST", "/up", io.MultiReader(bytes.NewReader(upload)), -1, nil)
	if want := wantBody(t, "POST", "/up", upload); resp.StatusCode != 200 || string(b) != want {
		t.Fatalf("chunked POST: %d %q", resp.StatusCode, b)
	}
	resp, b = do("POST", "/expect", strings.NewReader("hello"), 5, map[string]string{"Expect": "100-continue"})
	if want := wantBody(t, "POST", "/expect", []byte("hello")); resp.StatusCode != 200 || string(b) != want {
		t.Fatalf("Expect: 100-continue: %d %q", resp.StatusCode, b)
	}
	// Large and chunked answers stream through the loop.
	resp, b = do("GET", "/big", nil, 0, nil)
	if resp.StatusCode != 200 || len(b) != 3<<20 || !bytes.Equal(b[:16], []byte("0123456789abcdef")) {
		t.Fatalf("/big: %d, %d bytes", resp.StatusCode, len(b))
	}
	resp, b = do("GET", "/chunked", nil, 0, nil)
	if resp.StatusCode != 200 || string(b) != "part 0;part 1;part 2;part 3;part 4;" {
		t.Fatalf("/chunked: %d %q", resp.StatusCode, b)
	}
	resp, b = do("HEAD", "/big", nil, 0, nil)
	if resp.StatusCode != 200 || len(b) != 0 || resp.ContentLength != 3<<20 {
		t.Fatalf("HEAD /big: %d, %d bytes, length %d", resp.StatusCode, len(b), resp.ContentLength)
	}
	// HTTP/1.0 goes to the goroutine path.
	c, err := net.Dial("tcp", p.addr("web"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /old HTTP/1.0\r\nHost: example.com\r\n\r\n") //nolint:errcheck
	r, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || r.StatusCode != 200 {
		t.Fatalf("HTTP/1.0: %v %v", r, err)
	}
}

// TestLoopSlowReaderBoundedMemory: a client that reads a large answer slowly
// does not make the edge buffer it.
func TestLoopSlowReader(t *testing.T) {
	p := startLoopEdge(t, loopPod(t), "")
	c, err := net.Dial("tcp", p.addr("web"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.(*net.TCPConn).SetReadBuffer(16 << 10)                            //nolint:errcheck
	io.WriteString(c, "GET /big HTTP/1.1\r\nHost: example.com\r\n\r\n") //nolint:errcheck
	br := bufio.NewReaderSize(c, 4096)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	var n int
	for n < 3<<20 {
		m, err := resp.Body.Read(buf)
		n += m
		if err != nil {
			break
		}
		time.Sleep(time.Millisecond) // about 64 MiB/s at most: slower than the pod
	}
	if n != 3<<20 {
		t.Fatalf("slow reader got %d bytes, want %d", n, 3<<20)
	}
}

func TestLoopTimeoutsAndErrors(t *testing.T) {
	p := startLoopEdge(t, loopPod(t), ", max_header_bytes: 2048")
	dial := func() (net.Conn, *bufio.Reader) {
		c, err := net.Dial("tcp", p.addr("web"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(10 * time.Second)) //nolint:errcheck
		return c, bufio.NewReader(c)
	}
	// A head over max_header_bytes: 431 and closed.
	c, br := dial()
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: example.com\r\nX-Big: %s\r\n\r\n", strings.Repeat("y", 4000))
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 431 {
		t.Fatalf("big head: %v %v", resp, err)
	}
	// Garbage: 400 and closed.
	c, br = dial()
	io.WriteString(c, "GARBAGE\r\n\r\n") //nolint:errcheck
	if resp, err = http.ReadResponse(br, nil); err != nil || resp.StatusCode != 400 {
		t.Fatalf("garbage: %v %v", resp, err)
	}
	// An idle keep-alive connection is closed after idle_timeout (2s), and a
	// half-sent second head after read_timeout (2s): bounded waits for the
	// close. (A first head that never completes is l4's handshake_timeout.)
	for _, partial := range []string{"", "GET / HTTP/1.1\r\nHost: exa"} {
		c, br = dial()
		io.WriteString(c, "GET /x HTTP/1.1\r\nHost: example.com\r\n\r\n") //nolint:errcheck
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body) //nolint:errcheck
		io.WriteString(c, partial)     //nolint:errcheck
		start := time.Now()
		_, err = br.ReadByte()
		if err == nil || !(err == io.EOF || strings.Contains(err.Error(), "reset")) {
			t.Errorf("partial %q: read %v after %v; want the edge to close", partial, err, time.Since(start))
		}
	}
}

func TestLoopDrainFinishesInFlight(t *testing.T) {
	p := startLoopEdge(t, loopPod(t), "")
	var wg sync.WaitGroup
	results := make(chan string, 4)
	for range 4 {
		wg.Go(func() {
			req, _ := http.NewRequest("GET", "http://"+p.addr("web")+"/slow", nil)
			req.Host = "example.com"
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				results <- err.Error()
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			results <- fmt.Sprintf("%d %s", resp.StatusCode, b)
		})
	}
	time.Sleep(100 * time.Millisecond) // the requests are at the pod (it takes 300ms)
	p.signal(syscall.SIGTERM)
	wg.Wait()
	close(results)
	for r := range results {
		if !strings.HasPrefix(r, "200 GET /slow") {
			t.Errorf("in-flight request during drain: %s", r)
		}
	}
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Fatal("edge did not exit after draining")
	}
}
