package proxy

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"example.com/edge/lb"
)

func pipelinedEdge(t *testing.T, timeout time.Duration, pods ...*pod) *edge {
	t.Helper()
	pool := newPool(t, "app", lb.Config{Retries: 2, RetryBudget: -1}, pods...)
	pool.Pipeline, pool.PipelineDepth = 2, 32
	if timeout > 0 {
		pool.ResponseTimeout = timeout
	}
	return startEdge(t, Options{BufferBodyBytes: 4096}, Config{
		Pools:  map[string]*Pool{"app": pool},
		Routes: []Route{{Prefix: "/", Pool: "app"}},
	})
}

// loadGET sends n GETs from c concurrent clients, each to /i, and checks that
// every response is the one for its own request.
func loadGET(t *testing.T, e *edge, c, n int, check func(path string, code int, body []byte) error) {
	t.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, c)
	for range c {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > int64(n) {
					return
				}
				path := fmt.Sprintf("/r%d", i)
				resp, err := client.Get("http://" + e.addr + path)
				if err != nil {
					errs <- err
					return
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err == nil {
					err = check(path, resp.StatusCode, b)
				}
				if err != nil {
					errs <- fmt.Errorf("%s: %w", path, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func echoPath(path string, code int, body []byte) error {
	if code != 200 || string(body) != path {
		return fmt.Errorf("got %d %q, want 200 %q", code, body, path)
	}
	return nil
}

func TestPipelineAnswersEachRequestWithItsOwnResponse(t *testing.T) {
	p := startRawPod(t, func(_ int, r *http.Request) string {
		return fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(r.URL.Path), r.URL.Path)
	})
	e := pipelinedEdge(t, 0, &pod{addr: p.addr})
	loadGET(t, e, 32, 2000, echoPath)
	// How many connections it took depends on timing (a connection stuck
	// behind a slow response takes no new requests); correctness does not.
	t.Logf("2000 requests over %d upstream connections", p.conns.Load())
	// POST is not idempotent: never pipelined, answered on a connection of its own.
	resp, body := e.do(t, "POST", "example.com", "/post", nil, strings.NewReader("x"))
	if resp.StatusCode != 200 || string(body) != "/post" {
		t.Errorf("POST: %d %q", resp.StatusCode, body)
	}
}

// TestPipelineSurvivesUpstreamClosingMidBatch: the upstream closes each
// connection after a few responses, with more requests queued on it; those
// are repeated on a fresh connection and no client sees an error.
func TestPipelineSurvivesUpstreamClosingMidBatch(t *testing.T) {
	p := startRawPod(t, func(n int, r *http.Request) string {
		resp := fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(r.URL.Path), r.URL.Path)
		if n == 4 {
			return resp + closeMark
		}
		return resp
	})
	e := pipelinedEdge(t, 0, &pod{addr: p.addr})
	loadGET(t, e, 16, 600, echoPath)
	if p.conns.Load() < 10 {
		t.Errorf("only %d upstream connections for 600 requests at 5 per connection", p.conns.Load())
	}
}

// TestPipelineTimeoutFailsOnlyTheLateRequest: one request hangs past the
// response timeout; it gets 504 and the requests queued behind it on the
// same connection are repeated elsewhere.
func TestPipelineTimeoutFailsOnlyTheLateRequest(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	p := startRawPod(t, func(_ int, r *http.Request) string {
		if r.URL.Path == "/hang" {
			select {
			case <-release:
			case <-time.After(5 * time.Second):
			}
			return "" // hang up
		}
		return fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(r.URL.Path), r.URL.Path)
	})
	e := pipelinedEdge(t, 300*time.Millisecond, &pod{addr: p.addr})
	done := make(chan struct{})
	go func() {
		defer close(done)
		resp, body := e.do(t, "GET", "example.com", "/hang", nil, nil)
		checkError(t, resp, body, 504, CodeUpstreamTimeout)
	}()
	time.Sleep(20 * time.Millisecond) // let /hang take its place in a pipeline first
	loadGET(t, e, 8, 200, echoPath)
	<-done
}

// TestPipelineStreamsLargeBodies: a large response streams through the
// pipeline connection that carried it; meanwhile other requests use the
// other connection or one of their own.
func TestPipelineStreamsLargeBodies(t *testing.T) {
	big := strings.Repeat("x", 1<<20)
	p := startRawPod(t, func(_ int, r *http.Request) string {
		switch r.URL.Path {
		case "/big":
			return "HTTP/1.1 200 OK\r\nContent-Length: 1048576\r\n\r\n" + big
		case "/chunked":
			return "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
		case "/head":
			return "HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n"
		}
		return fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(r.URL.Path), r.URL.Path)
	})
	e := pipelinedEdge(t, 0, &pod{addr: p.addr})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			resp, body := e.do(t, "GET", "example.com", "/big", nil, nil)
			if resp.StatusCode != 200 || len(body) != len(big) {
				t.Errorf("/big: %d, %d bytes", resp.StatusCode, len(body))
			}
		})
	}
	loadGET(t, e, 8, 300, echoPath)
	wg.Wait()
	resp, body := e.do(t, "GET", "example.com", "/chunked", nil, nil)
	if resp.StatusCode != 200 || string(body) != "hello" {
		t.Errorf("/chunked: %d %q", resp.StatusCode, body)
	}
	resp, _ = e.do(t, "HEAD", "example.com", "/head", nil, nil)
	if resp.StatusCode != 200 || resp.ContentLength != 99 {
		t.Errorf("HEAD: %d, length %d", resp.StatusCode, resp.ContentLength)
	}
	loadGET(t, e, 8, 100, echoPath)
}

// TestPipelineIdleConnectionKept: the lazily armed read deadline passing on
// an idle pipeline connection must not break it.
func TestPipelineIdleConnectionKept(t *testing.T) {
	p := startRawPod(t, func(_ int, r *http.Request) string {
		return fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(r.URL.Path), r.URL.Path)
	})
	pool := newPool(t, "app", lb.Config{}, &pod{addr: p.addr})
	pool.Pipeline, pool.ResponseTimeout = 1, 100*time.Millisecond
	e := startEdge(t, Options{}, Config{Pools: map[string]*Pool{"app": pool}, Routes: []Route{{Prefix: "/", Pool: "app"}}})
	for i := range 3 {
		resp, body := e.do(t, "GET", "example.com", "/x", nil, nil)
		if resp.StatusCode != 200 || string(body) != "/x" {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, body)
		}
		time.Sleep(100*time.Millisecond + deadlineSlack + 50*time.Millisecond) // past the armed deadline
	}
	if n := p.conns.Load(); n != 1 {
		t.Errorf("%d upstream connections for 3 requests with idle gaps; the idle pipeline connection was broken", n)
	}
}
