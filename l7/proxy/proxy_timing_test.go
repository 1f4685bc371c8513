package proxy

import (
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"example.com/edge/l7/jwt"
	"example.com/edge/l7/jwt/mint"
	"example.com/edge/l7/limit"
	"example.com/edge/lb"
)

// benchUpstream is a zero-allocation fasthttp pod, so that allocations the
// end-to-end benchmark reports are the proxy's (the client is fasthttp too).
func benchUpstream(b *testing.B) string {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	body := []byte(`{"pod":"bench","ok":true}`)
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		ctx.SetContentType("application/json")
		ctx.SetBody(body)
	}}
	go srv.Serve(ln)                     //nolint:errcheck
	b.Cleanup(func() { srv.Shutdown() }) //nolint:errcheck
	return ln.Addr().String()
}

func benchEdge(b *testing.B, cfg Config) string {
	b.Helper()
	p, err := New(Options{}, cfg)
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := p.Server("web")
	go srv.Serve(ln)                     //nolint:errcheck
	b.Cleanup(func() { srv.Shutdown() }) //nolint:errcheck
	return ln.Addr().String()
}

func benchPool(b *testing.B, addr string) *Pool {
	lp, err := lb.NewPool("app", lb.Config{Endpoints: []lb.EndpointConfig{{Addr: addr}}}, nil)
	if err != nil {
		b.Fatal(err)
	}
	return &Pool{LB: lp}
}

// BenchmarkProxyPath measures one request through the whole engine over
// loopback TCP: client -> edge (route, headers, request ID, traceparent,
// metrics) -> upstream pod -> edge -> client, with allocations.
func BenchmarkProxyPath(b *testing.B) {
	up := benchUpstream(b)
	addr := benchEdge(b, Config{
		Listeners: []Listener{{Name: "web"}},
		Pools:     map[string]*Pool{"app": benchPool(b, up)},
		Routes:    []Route{{Host: "example.com", Prefix: "/app/", Pool: "app"}},
	})
	runClient(b, addr, nil)
}

// BenchmarkProxyPathGateway adds an HS256 JWT check and a rate limit.
func BenchmarkProxyPathGateway(b *testing.B) {
	up := benchUpstream(b)
	kp, err := mint.GenerateKey("HS256", "k1", nil)
	if err != nil {
		b.Fatal(err)
	}
	pol, lim := gatewayPolicy(b, kp)
	addr := benchEdge(b, Config{
		Listeners: []Listener{{Name: "web"}},
		Pools:     map[string]*Pool{"app": benchPool(b, up)},
		JWT:       pol,
		Limits:    lim,
		Routes:    []Route{{Host: "example.com", Prefix: "/app/", Pool: "app", JWT: "users", Scopes: []string{"app:read"}, RateLimits: []string{"per_user"}}},
	})
	tok, err := mint.Sign(mint.Options{Alg: "HS256", Kid: "k1", Subject: "alice", Audience: []string{"example.com"}, Scope: "app:read", TTL: time.Hour}, kp.Private)
	if err != nil {
		b.Fatal(err)
	}
	runClient(b, addr, func(req *fasthttp.Request) { req.Header.Set("Authorization", "Bearer "+tok) })
}

func runClient(b *testing.B, addr string, prep func(*fasthttp.Request)) {
	c := &fasthttp.HostClient{Addr: addr, MaxConns: 64}
	b.ReportAllocs()
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		req := fasthttp.AcquireRequest()
		resp := fasthttp.AcquireResponse()
		req.SetRequestURI("http://example.com/app/dashboard")
		if prep != nil {
			prep(req)
		}
		for pb.Next() {
			if err := c.Do(req, resp); err != nil {
				b.Error(err)
				return
			}
			if resp.StatusCode() != 200 {
				b.Errorf("status %d: %s", resp.StatusCode(), resp.Body())
				return
			}
		}
	})
}

// gatewayPolicy builds the "users" HS256 policy and a "per_user" limit high
// enough never to refuse during a benchmark.
func gatewayPolicy(tb testing.TB, kp *mint.KeyPair) (map[string]*jwt.Policy, map[string]*limit.Limiter) {
	tb.Helper()
	secret := filepath.Join(tb.TempDir(), "hs.secret")
	if err := os.WriteFile(secret, kp.Secret, 0o600); err != nil {
		tb.Fatal(err)
	}
	pol, err := jwt.NewPolicy("users", jwt.Config{
		Keys:          []jwt.KeyConfig{{HMACSecretFile: secret, Alg: "HS256", Kid: "k1"}},
		Audience:      []string{"example.com"},
		ForwardClaims: map[string]string{"sub": "X-User-Id"},
	})
	if err != nil {
		tb.Fatal(err)
	}
	lim, err := limit.New(limit.Config{Name: "per_user", Rate: 1e9, Burst: 1e9, Key: limit.KeySpec{Kind: limit.KeyClaim, Name: "sub"}})
	if err != nil {
		tb.Fatal(err)
	}
	return map[string]*jwt.Policy{"users": pol}, map[string]*limit.Limiter{"per_user": lim}
}
