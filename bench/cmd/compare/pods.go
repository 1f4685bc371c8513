package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"example.com/edge/bench/anchors"
	"github.com/valyala/fasthttp"
)

// podSet is the upstream every proxy forwards to: two app pods and two auth
// pods, started once for the whole comparison.
type podSet struct {
	app, auth []string
	kind      string // "nginx" or "go", for the report
	stop      func()
}

// freePort asks the kernel for an unused 127.0.0.1 port.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("compare: free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func freeAddrs(n int) ([]string, error) {
	out := make([]string, n)
	for i := range out {
		p, err := freePort()
		if err != nil {
			return nil, err
		}
		out[i] = "127.0.0.1:" + strconv.Itoa(p)
	}
	return out, nil
}

// podBody is what pod name answers: small, static JSON.
func podBody(name string) string { return `{"pod":"` + name + `","status":"ok"}` + "\n" }

// startPods starts the four pods: one nginx worker serving a static body
// when nginx is installed and kind allows it, else fasthttp servers inside
// the harness (pinned with it to the load CPUs).
func startPods(sup *supervisor, nginxPath, kind, cpus string) (*podSet, error) {
	addrs, err := freeAddrs(4)
	if err != nil {
		return nil, err
	}
	pods := []anchors.Pod{{Name: "app-1", Addr: addrs[0]}, {Name: "app-2", Addr: addrs[1]}, {Name: "auth-1", Addr: addrs[2]}, {Name: "auth-2", Addr: addrs[3]}}
	set := &podSet{app: addrs[:2], auth: addrs[2:]}
	if kind == "nginx" && nginxPath == "" {
		return nil, errors.New("compare: -pods nginx, but nginx is not installed")
	}
	if kind != "go" && nginxPath != "" {
		conf, err := anchors.Render(anchors.Pods, anchors.Data{Dir: sup.dir, Pods: pods})
		if err != nil {
			return nil, err
		}
		if err := os.MkdirAll(filepath.Join(sup.dir, "pods-tmp"), 0o755); err != nil {
			return nil, fmt.Errorf("compare: %w", err)
		}
		path := filepath.Join(sup.dir, "pods.conf")
		if err := os.WriteFile(path, conf, 0o644); err != nil {
			return nil, fmt.Errorf("compare: %w", err)
		}
		c, err := sup.start("pods", cpus, nil, nginxPath, "-c", path, "-p", sup.dir+"/", "-e", filepath.Join(sup.dir, "pods-error.log"))
		if err != nil {
			return nil, err
		}
		set.kind, set.stop = "nginx", func() { sup.stop(c) }
		for _, p := range pods {
			if err := waitHTTP(c, "http://"+p.Addr+"/", podBody(p.Name)); err != nil {
				set.stop()
				return nil, err
			}
		}
		return set, nil
	}
	var servers []*fasthttp.Server
	for _, p := range pods {
		body := []byte(podBody(p.Name))
		srv := &fasthttp.Server{
			Handler: func(ctx *fasthttp.RequestCtx) {
				ctx.SetContentType("application/json")
				ctx.SetBody(body)
			},
			NoDefaultServerHeader: true,
		}
		ln, err := net.Listen("tcp", p.Addr)
		if err != nil {
			for _, s := range servers {
				_ = s.Shutdown()
			}
			return nil, fmt.Errorf("compare: pod %s: %w", p.Name, err)
		}
		go func() { _ = srv.Serve(ln) }()
		servers = append(servers, srv)
	}
	set.kind = "go (fasthttp, in the harness)"
	set.stop = func() {
		for _, s := range servers {
			_ = s.Shutdown()
		}
	}
	return set, nil
}

// waitHTTP polls url until it answers 200 with a body containing want, or
// until 10 s have passed or c (when not nil) has exited.
func waitHTTP(c *child, url, want string) error {
	deadline := time.Now().Add(10 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		if c != nil && c.exited() {
			return fmt.Errorf("compare: %s exited: %v\n%s", c.name, c.err, c.logTail(20))
		}
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		req.SetRequestURI(url)
		err := fasthttp.DoTimeout(req, resp, time.Second)
		switch {
		case err != nil:
			last = err
		case resp.StatusCode() != 200 || !bytes.Contains(resp.Body(), []byte(want)):
			last = fmt.Errorf("status %d, body %q", resp.StatusCode(), resp.Body())
		default:
			fasthttp.ReleaseRequest(req)
			fasthttp.ReleaseResponse(resp)
			return nil
		}
		fasthttp.ReleaseRequest(req)
		fasthttp.ReleaseResponse(resp)
		time.Sleep(50 * time.Millisecond)
	}
	name := url
	if c != nil {
		name = c.name + " at " + url
	}
	return fmt.Errorf("compare: %s not ready after 10s: %v", name, last)
}

// bulkServer is the L4 relay's upstream. A client's first byte says what it
// wants: 'p' is a readiness ping answered with "pong", 'b' is a bulk
// transfer of size bytes, after which the server closes.
type bulkServer struct {
	ln   net.Listener
	size int64
	wg   sync.WaitGroup
}

func startBulkServer(size int64) (*bulkServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("compare: bulk server: %w", err)
	}
	s := &bulkServer{ln: ln, size: size}
	s.wg.Add(1)
	go s.serve()
	return s, nil
}

func (s *bulkServer) addr() string { return s.ln.Addr().String() }

func (s *bulkServer) serve() {
	defer s.wg.Done()
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			return
		}
		go s.handle(conn)
	}
}

const bulkChunk = 256 << 10

func (s *bulkServer) handle(conn net.Conn) {
	defer conn.Close()
	var op [1]byte
	if _, err := io.ReadFull(conn, op[:]); err != nil {
		return
	}
	if op[0] == 'p' {
		_, _ = conn.Write([]byte("pong"))
		return
	}
	buf := make([]byte, bulkChunk)
	for i := range buf {
		buf[i] = byte(i)
	}
	for left := s.size; left > 0; {
		n := min(left, int64(len(buf)))
		w, err := conn.Write(buf[:n])
		left -= int64(w)
		if err != nil {
			return
		}
	}
}

func (s *bulkServer) Close() {
	s.ln.Close()
	s.wg.Wait()
}

// bulkPing checks that addr relays to the bulk server.
func bulkPing(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := conn.Write([]byte("p")); err != nil {
		return err
	}
	got, err := io.ReadAll(conn)
	if err != nil {
		return err
	}
	if string(got) != "pong" {
		return fmt.Errorf("relay answered %q, want pong", got)
	}
	return nil
}

// bulkTransfer asks for one bulk transfer through addr and reads it to the
// end, returning the bytes received.
func bulkTransfer(ctx context.Context, addr string, want int64) (int64, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if _, err := conn.Write([]byte("b")); err != nil {
		return 0, err
	}
	buf := make([]byte, bulkChunk)
	var got int64
	for {
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := conn.Read(buf)
		got += int64(n)
		if err == io.EOF {
			break
		}
		if err != nil {
			return got, err
		}
	}
	if got != want {
		return got, fmt.Errorf("compare: relay delivered %d bytes, want %d", got, want)
	}
	return got, nil
}
