// Package proxy is edge's HTTP engine: a fasthttp server per listener whose
// handler takes a request through request-ID, routing, body limits, JWT,
// rate limits and header transforms, forwards it to a healthy endpoint of the
// route's pool over a keep-alive fasthttp.HostClient, and streams the answer
// back, with access log and metrics.
//
// Everything a request reads lives in an immutable snapshot (route tables,
// compiled routes, pools with their upstream clients) published through an
// atomic.Pointer; Update builds the next one off the request path, so a
// reload never blocks or drops a request. Upstream clients are kept across
// snapshots by address, so keep-alive connections to pods survive reloads.
package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"example.com/edge/l7/accesslog"
	"example.com/edge/l7/jwt"
	"example.com/edge/l7/limit"
	"example.com/edge/l7/metrics"
	"example.com/edge/l7/route"
	"example.com/edge/lb"
)

// Defaults of Pool's zero-valued fields.
const (
	DefaultConnectTimeout  = time.Second
	DefaultResponseTimeout = 15 * time.Second
	DefaultPipelineDepth   = 16
)

// Options are the engine's process-wide settings, fixed for its lifetime.
// The zero value is usable: every field has a documented default.
type Options struct {
	// ReadBufferSize is each client connection's read buffer, which also caps
	// the request head: a bigger head gets 431. Default: MaxHeaderBytes.
	ReadBufferSize int
	// WriteBufferSize is each client connection's write buffer. Default 4096.
	WriteBufferSize int
	// MaxHeaderBytes limits the request head (request line and headers).
	// Default 16384.
	MaxHeaderBytes int
	// ReadTimeout bounds reading a whole request, head and body. Default 10s.
	ReadTimeout time.Duration
	// WriteTimeout bounds writing a whole response. Default 0: none, so that
	// large downloads can stream.
	WriteTimeout time.Duration
	// IdleTimeout closes keep-alive connections idle this long. Default 60s.
	IdleTimeout time.Duration
	// MaxConnsPerIP caps open connections per client IP at the HTTP server
	// (l4 enforces it earlier when it accepts). Default 0: unlimited.
	MaxConnsPerIP int
	// BufferBodyBytes is how much of a request body is read before the
	// handler runs; bodies up to this size are buffered (and so can be
	// retried), larger ones stream to the upstream. Default 64 KiB.
	BufferBodyBytes int
	// UpstreamMaxConns caps connections per upstream endpoint when the pool
	// sets no max_conns_per_endpoint. Default 1024.
	UpstreamMaxConns int
	// UpstreamReadBufferSize is each upstream connection's read buffer, which
	// caps response heads. Default 8192.
	UpstreamReadBufferSize int
	// Logger receives edge's own log lines. Default: slog.Default().
	Logger *slog.Logger
	// AccessLog receives one record per request; nil disables it.
	AccessLog *accesslog.Logger
	// Metrics receives the engine's metrics; nil means a private registry.
	Metrics *metrics.Registry
	// Now is the clock; nil means time.Now. Tests pass a fixed timeline.
	Now func() time.Time
}

func (o *Options) setDefaults() {
	if o.MaxHeaderBytes <= 0 {
		o.MaxHeaderBytes = 16 << 10
	}
	if o.ReadBufferSize <= 0 {
		o.ReadBufferSize = o.MaxHeaderBytes
	}
	if o.WriteBufferSize <= 0 {
		o.WriteBufferSize = 4096
	}
	if o.ReadTimeout <= 0 {
		o.ReadTimeout = 10 * time.Second
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 60 * time.Second
	}
	if o.BufferBodyBytes <= 0 {
		o.BufferBodyBytes = 64 << 10
	}
	if o.UpstreamMaxConns <= 0 {
		o.UpstreamMaxConns = 1024
	}
	if o.UpstreamReadBufferSize <= 0 {
		o.UpstreamReadBufferSize = 8192
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Metrics == nil {
		o.Metrics = metrics.NewRegistry()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Config is what the engine serves; Update replaces it as a whole.
type Config struct {
	// Listeners are the HTTP listeners routes may be limited to.
	Listeners []Listener
	// Routes in configuration order.
	Routes []Route
	// Pools by name; routes refer to them. The caller owns their lifecycle
	// (NewPool with the previous pool, Start, Close).
	Pools map[string]*Pool
	// JWT policies by name; routes refer to them. The caller owns their
	// lifecycle (JWKS refresh Start, Close).
	JWT map[string]*jwt.Policy
	// Limits by name; routes refer to them. The caller owns their lifecycle.
	Limits map[string]*limit.Limiter
	// TrustedProxies are the peers whose X-Forwarded-* headers are believed.
	TrustedProxies []netip.Prefix
	// MaxBodyBytes is the request body limit of routes that set none; 413
	// beyond it. 0 means 10 MiB; negative means no limit.
	MaxBodyBytes int64
}

// Listener is an HTTP listener as the engine sees it.
type Listener struct {
	Name string
	// TLS says the listener terminates TLS (X-Forwarded-Proto: https).
	TLS bool
	// RedirectHTTPS answers every request with a 308 to the https URL.
	RedirectHTTPS bool
	// HTTPSPort is the port redirects point to; 0 or 443 leaves it out.
	HTTPSPort int
}

// Route is one route of the configuration.
type Route struct {
	// Name labels the route's metrics and access-log lines. Default:
	// host + prefix ("example.com/app/", "*/" for any host).
	Name        string
	Host        string
	Prefix      string
	Methods     []string
	StripPrefix bool
	// Listeners limits the route to these listeners; empty means all.
	Listeners []string
	Pool      string
	// JWT names the policy a request's bearer token must pass; "" means none.
	JWT string
	// Scopes the token must grant (403 insufficient_scope otherwise).
	Scopes []string
	// RateLimits name the limits every request of the route is counted
	// against, after JWT (so claim-keyed limits see the verified claims).
	RateLimits      []string
	RequestHeaders  HeaderOps
	ResponseHeaders HeaderOps
	// Compress lists the response codings the route may use (gzip, zstd,
	// br), in its order of preference; empty means none.
	Compress []string
	// MaxBodyBytes overrides Config.MaxBodyBytes; 0 inherits it.
	MaxBodyBytes int64
	// Timeout overrides the pool's response timeout; 0 inherits it.
	Timeout time.Duration
	// DenyIPs refuses clients whose address (the real client, see
	// Config.TrustedProxies) is in any prefix: 403 forbidden. AllowIPs, when
	// not empty, refuses every client outside its prefixes. Deny wins.
	DenyIPs, AllowIPs []netip.Prefix
}

// DefaultRouteName is the Name of a route that sets none: host + prefix, the
// host lower-cased and "*" for any host ("example.com/app/", "*/").
func DefaultRouteName(host, prefix string) string {
	if host == "" {
		host = "*"
	}
	return strings.ToLower(host) + prefix
}

// HeaderOps edits headers: Remove first, then Add (which replaces).
type HeaderOps struct {
	Add    []Header
	Remove []string
}

// Header is one header name and value.
type Header struct{ Name, Value string }

// Pool is an lb.Pool plus how to reach its endpoints over HTTP.
type Pool struct {
	LB *lb.Pool
	// ConnectTimeout bounds dialing an endpoint. Default 1s.
	ConnectTimeout time.Duration
	// ResponseTimeout bounds one upstream exchange: sending the request and
	// receiving the response head (and, for buffered bodies, the body).
	// Default 15s.
	ResponseTimeout time.Duration
	// MaxConnsPerEndpoint caps upstream connections per endpoint; 0 means
	// Options.UpstreamMaxConns.
	MaxConnsPerEndpoint int
	// Pipeline is the number of connections per endpoint over which
	// idempotent requests with buffered bodies are pipelined (see
	// pipeline.go); 0 turns pipelining off.
	Pipeline int
	// PipelineDepth caps the requests in flight on one pipeline connection;
	// 0 means 16.
	PipelineDepth int
}

// Proxy is the HTTP engine. Its methods are safe for concurrent use.
type Proxy struct {
	opts Options
	snap atomic.Pointer[snapshot]
	ids  *idSource

	mu      sync.Mutex               // guards clients and Update
	clients map[string]*upstreamConn // by pool + endpoint address

	draining   atomic.Bool
	m          engineMetrics
	jwtRejects map[string]*jwtRejects // by policy name; guarded by mu
}

type engineMetrics struct {
	requests    *metrics.CounterVec
	duration    *metrics.HistogramVec
	upstreams   *metrics.CounterVec
	jwtRejects  *metrics.CounterVec
	rateLimited *metrics.CounterVec
}

// New builds an engine serving cfg.
func New(opts Options, cfg Config) (*Proxy, error) {
	opts.setDefaults()
	p := &Proxy{opts: opts, ids: newIDSource(), clients: map[string]*upstreamConn{}}
	r := opts.Metrics
	p.m = engineMetrics{
		requests:    r.Counter("edge_requests_total", "Requests answered, by route and status code.", "route", "code"),
		duration:    r.Histogram("edge_request_duration_seconds", "Time from request head to response handed to the client.", metrics.DurationBuckets, "route"),
		upstreams:   r.Counter("edge_upstream_requests_total", "Upstream exchanges, by pool, endpoint and status code (code 0: no response).", "pool", "endpoint", "code"),
		jwtRejects:  r.Counter("edge_jwt_rejections_total", "Requests refused by JWT checks, by policy and reason.", "policy", "reason"),
		rateLimited: r.Counter("edge_ratelimit_rejections_total", "Requests refused by a rate limit, by limit.", "limit"),
	}
	p.jwtRejects = map[string]*jwtRejects{}
	if err := p.Update(cfg); err != nil {
		return nil, err
	}
	return p, nil
}

// Update validates cfg and swaps it in atomically. Requests in flight finish
// on the snapshot they started with. On error nothing changes.
func (p *Proxy) Update(cfg Config) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	s, err := p.build(cfg)
	if err != nil {
		return err
	}
	p.snap.Store(s)
	p.gcClients(s)
	return nil
}

// SetDraining makes every new request answer 503 no_healthy_upstream with
// Connection: close, while requests in flight finish (SIGTERM).
func (p *Proxy) SetDraining(v bool) { p.draining.Store(v) }

// snapshot is an immutable view of a Config, ready for the request path.
type snapshot struct {
	listeners map[string]*listenerView
	routes    []*compiledRoute
	pools     map[string]*poolView
	trusted   []netip.Prefix
}

type listenerView struct {
	cfg   Listener
	table *route.Table
	// routes maps the table's indexes to compiled routes.
	routes []*compiledRoute
	// notFound counts 404s on this listener.
	notFound *codeCounters
}

type compiledRoute struct {
	cfg         Route
	name        string
	pool        *poolView
	stripLen    int
	maxBody     int64
	timeout     time.Duration
	reqAdd      []kv
	reqDel      [][]byte
	respAdd     []kv
	respDel     [][]byte
	codes       *codeCounters
	duration    *metrics.Histogram
	allowHeader []byte

	compress    []encoding
	jwt         *jwt.Policy
	jwtRejects  *jwtRejects
	scopes      []string
	limits      []*routeLimit
	routeKey    []byte // the bucket key of route-keyed limits
	rateLimited bool
	ipFilter    bool // DenyIPs or AllowIPs set
}

// routeLimit is one rate limit of a route, with its rejection counter.
type routeLimit struct {
	l        *limit.Limiter
	rejected *metrics.Counter
}

// jwtRejects resolves edge_jwt_rejections_total{policy,reason} series on
// first use per reason.
type jwtRejects struct {
	vec    *metrics.CounterVec
	policy string
	mu     sync.Mutex
	by     atomic.Pointer[map[string]*metrics.Counter]
}

func (j *jwtRejects) inc(reason string) {
	if m := j.by.Load(); m != nil {
		if c := (*m)[reason]; c != nil {
			c.Inc()
			return
		}
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	next := map[string]*metrics.Counter{}
	if m := j.by.Load(); m != nil {
		for k, v := range *m {
			next[k] = v
		}
	}
	c := next[reason]
	if c == nil {
		c = j.vec.With(j.policy, reason)
		next[reason] = c
	}
	j.by.Store(&next)
	c.Inc()
}

type kv struct{ k, v []byte }

type poolView struct {
	name    string
	lb      *lb.Pool
	cfg     *Pool
	ups     []*upstreamConn // by lb.Endpoint.Index
	timeout time.Duration
}

func (p *Proxy) build(cfg Config) (*snapshot, error) {
	var errs []error
	s := &snapshot{listeners: map[string]*listenerView{}, trusted: cfg.TrustedProxies}

	pools := map[string]*poolView{}
	names := make([]string, 0, len(cfg.Pools))
	for name := range cfg.Pools {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		pc := cfg.Pools[name]
		if pc == nil || pc.LB == nil {
			errs = append(errs, fmt.Errorf("proxy: pool %q has no endpoints", name))
			continue
		}
		pv := &poolView{name: name, lb: pc.LB, cfg: pc, timeout: pc.ResponseTimeout}
		if pv.timeout <= 0 {
			pv.timeout = DefaultResponseTimeout
		}
		for _, ep := range pc.LB.Endpoints() {
			pv.ups = append(pv.ups, p.upstream(name, ep, pc))
		}
		pools[name] = pv
	}
	s.pools = pools

	maxBody := cfg.MaxBodyBytes
	if maxBody == 0 {
		maxBody = 10 << 20
	}
	for i, rc := range cfg.Routes {
		cr := &compiledRoute{cfg: rc, name: rc.Name, maxBody: rc.MaxBodyBytes, timeout: rc.Timeout, ipFilter: len(rc.DenyIPs)+len(rc.AllowIPs) > 0}
		if cr.name == "" {
			cr.name = DefaultRouteName(rc.Host, rc.Prefix)
		}
		if cr.maxBody == 0 {
			cr.maxBody = maxBody
		}
		cr.pool = pools[rc.Pool]
		if cr.pool == nil {
			errs = append(errs, fmt.Errorf("proxy: routes[%d].pool: unknown pool %q", i, rc.Pool))
			continue
		}
		if cr.timeout <= 0 {
			cr.timeout = cr.pool.timeout
		}
		if rc.StripPrefix {
			cr.stripLen = len(strings.TrimSuffix(rc.Prefix, "/"))
		}
		for _, h := range rc.RequestHeaders.Add {
			cr.reqAdd = append(cr.reqAdd, kv{[]byte(h.Name), []byte(h.Value)})
		}
		for _, h := range rc.RequestHeaders.Remove {
			cr.reqDel = append(cr.reqDel, []byte(h))
		}
		for _, h := range rc.ResponseHeaders.Add {
			cr.respAdd = append(cr.respAdd, kv{[]byte(h.Name), []byte(h.Value)})
		}
		for _, h := range rc.ResponseHeaders.Remove {
			cr.respDel = append(cr.respDel, []byte(h))
		}
		if len(rc.Methods) > 0 {
			cr.allowHeader = []byte(strings.Join(rc.Methods, ", "))
		}
		if rc.JWT != "" {
			cr.jwt = cfg.JWT[rc.JWT]
			if cr.jwt == nil {
				errs = append(errs, fmt.Errorf("proxy: routes[%d].jwt: unknown policy %q", i, rc.JWT))
				continue
			}
			cr.jwtRejects = p.jwtRejects[rc.JWT]
			if cr.jwtRejects == nil {
				cr.jwtRejects = &jwtRejects{vec: p.m.jwtRejects, policy: rc.JWT}
				p.jwtRejects[rc.JWT] = cr.jwtRejects
			}
			cr.scopes = rc.Scopes
		} else if len(rc.Scopes) > 0 {
			errs = append(errs, fmt.Errorf("proxy: routes[%d].scopes: the route has no jwt policy", i))
			continue
		}
		for _, name := range rc.RateLimits {
			l := cfg.Limits[name]
			if l == nil {
				errs = append(errs, fmt.Errorf("proxy: routes[%d].rate_limit: unknown limit %q", i, name))
				continue
			}
			if l.Key().Kind == limit.KeyClaim && cr.jwt == nil {
				errs = append(errs, fmt.Errorf("proxy: routes[%d].rate_limit: %q is keyed by a claim but the route has no jwt policy", i, name))
			}
			cr.limits = append(cr.limits, &routeLimit{l: l, rejected: p.m.rateLimited.With(name)})
		}
		cr.rateLimited = len(cr.limits) > 0
		for _, c := range rc.Compress {
			enc, err := parseEncoding(c)
			if err != nil {
				errs = append(errs, fmt.Errorf("proxy: routes[%d].compress: %w", i, err))
				continue
			}
			cr.compress = append(cr.compress, enc)
		}
		cr.routeKey = []byte(cr.name)
		cr.codes = newCodeCounters(p.m.requests, cr.name)
		cr.duration = p.m.duration.With(cr.name)
		s.routes = append(s.routes, cr)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}

	for _, l := range cfg.Listeners {
		lv := &listenerView{cfg: l, notFound: newCodeCounters(p.m.requests, "")}
		var specs []route.Spec
		for _, cr := range s.routes {
			if len(cr.cfg.Listeners) > 0 && !contains(cr.cfg.Listeners, l.Name) {
				continue
			}
			specs = append(specs, route.Spec{Host: cr.cfg.Host, Prefix: cr.cfg.Prefix, Methods: cr.cfg.Methods})
			lv.routes = append(lv.routes, cr)
		}
		t, err := route.New(specs)
		if err != nil {
			errs = append(errs, fmt.Errorf("proxy: listener %q: %w", l.Name, err))
			continue
		}
		lv.table = t
		s.listeners[l.Name] = lv
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return s, nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// codeCounters resolves a route's (or endpoint's) per-status-code counters
// once each, so the request path does one atomic load and one atomic add.
type codeCounters struct {
	vec    *metrics.CounterVec
	labels []string
	byCode [600]atomic.Pointer[metrics.Counter]
}

func newCodeCounters(vec *metrics.CounterVec, labels ...string) *codeCounters {
	return &codeCounters{vec: vec, labels: labels}
}

func (c *codeCounters) inc(code int) {
	if code < 0 || code >= len(c.byCode) {
		code = 0
	}
	ctr := c.byCode[code].Load()
	if ctr == nil {
		ctr = c.vec.With(append(c.labels[:len(c.labels):len(c.labels)], strconv.Itoa(code))...)
		c.byCode[code].Store(ctr)
	}
	ctr.Inc()
}

// upstreamConn is the HTTP client of one endpoint of one pool.
type upstreamConn struct {
	key   string
	hc    *fasthttp.HostClient
	ex    exchanger
	pipe  *pipeline // nil unless the pool pipelines
	codes *codeCounters
	label string
	used  bool // marked during gc
}

func (p *Proxy) upstream(pool string, ep *lb.Endpoint, pc *Pool) *upstreamConn {
	connectTimeout := pc.ConnectTimeout
	if connectTimeout <= 0 {
		connectTimeout = DefaultConnectTimeout
	}
	maxConns := pc.MaxConnsPerEndpoint
	if maxConns <= 0 {
		maxConns = p.opts.UpstreamMaxConns
	}
	key := pool + "\x00" + ep.Addr + "\x00" + connectTimeout.String() + "\x00" + strconv.Itoa(maxConns) +
		"\x00" + strconv.Itoa(pc.Pipeline) + "\x00" + strconv.Itoa(pc.PipelineDepth)
	if u := p.clients[key]; u != nil {
		return u
	}
	dialer := &net.Dialer{Timeout: connectTimeout, KeepAlive: 30 * time.Second}
	dial := func(addr string) (net.Conn, error) {
		c, err := dialer.Dial("tcp", addr)
		if err != nil {
			return nil, &dialError{err}
		}
		return newProbedConn(c), nil
	}
	hc := &fasthttp.HostClient{
		Addr:                          ep.Addr,
		Dial:                          dial,
		MaxConns:                      maxConns,
		MaxConnWaitTimeout:            connectTimeout,
		MaxIdleConnDuration:           30 * time.Second,
		ReadBufferSize:                p.opts.UpstreamReadBufferSize,
		WriteBufferSize:               p.opts.WriteBufferSize,
		NoDefaultUserAgentHeader:      true,
		DisablePathNormalizing:        true,
		DisableHeaderNamesNormalizing: false,
		StreamResponseBody:            true,
		// One attempt per Do: retries are decided here, across endpoints,
		// within the pool's retry budget, except that a keep-alive
		// connection the upstream closed while idle is retried once on a
		// fresh one when the request is safe to repeat.
		MaxIdemponentCallAttempts: 2,
		RetryIfErr:                retryStaleConn,
	}
	u := &upstreamConn{key: key, hc: hc, label: ep.String()}
	u.ex = newConnPool(hc, hc.AcquireConn, hc.ReleaseConn, hc.CloseConn)
	if pc.Pipeline > 0 {
		depth := pc.PipelineDepth
		if depth <= 0 {
			depth = DefaultPipelineDepth
		}
		u.pipe = newPipeline(ep.Addr, pc.Pipeline, depth, p.opts.UpstreamReadBufferSize, max(p.opts.WriteBufferSize, 16<<10), func(addr string) (net.Conn, error) {
			c, err := dialer.Dial("tcp", addr)
			if err != nil {
				return nil, err
			}
			return c, nil
		})
	}
	u.codes = newCodeCounters(p.m.upstreams, pool, u.label)
	p.clients[key] = u
	return u
}

// retryStaleConn retries, on a new connection to the same endpoint, a request
// whose pooled keep-alive connection turned out to be closed by the upstream
// (it answered nothing): the classic race with an upstream idle timeout.
// Only idempotent requests with a buffered body qualify.
func retryStaleConn(req *fasthttp.Request, attempts int, err error) (resetTimeout, retry bool) {
	if attempts > 1 || req.IsBodyStream() {
		return false, false
	}
	if !errors.Is(err, fasthttp.ErrConnectionClosed) && !errors.Is(err, io.EOF) {
		return false, false
	}
	return false, idempotent(req.Header.Method())
}

// gcClients drops clients no pool uses any more, closing their idle
// connections.
func (p *Proxy) gcClients(s *snapshot) {
	for _, u := range p.clients {
		u.used = false
	}
	for _, pv := range s.pools {
		for _, u := range pv.ups {
			u.used = true
		}
	}
	for k, u := range p.clients {
		if !u.used {
			u.hc.CloseIdleConnections()
			if u.pipe != nil {
				u.pipe.close()
			}
			delete(p.clients, k)
		}
	}
}

// Server returns a fasthttp server for the named listener; serve it with
// Serve(ln). The listener must be in every Config passed to Update.
func (p *Proxy) Server(listener string) *fasthttp.Server {
	h := &handler{p: p, listener: listener}
	return &fasthttp.Server{
		Handler:                       h.serveFramed,
		ErrorHandler:                  h.serveError,
		ExpectHandler:                 h.expect,
		Name:                          "edge",
		NoDefaultServerHeader:         true,
		NoDefaultContentType:          true,
		ReadBufferSize:                p.opts.ReadBufferSize,
		WriteBufferSize:               p.opts.WriteBufferSize,
		ReadTimeout:                   p.opts.ReadTimeout,
		WriteTimeout:                  p.opts.WriteTimeout,
		IdleTimeout:                   p.opts.IdleTimeout,
		MaxConnsPerIP:                 p.opts.MaxConnsPerIP,
		MaxRequestBodySize:            p.opts.BufferBodyBytes,
		StreamRequestBody:             true,
		DisablePreParseMultipartForm:  true,
		DisableHeaderNamesNormalizing: false,
		CloseOnShutdown:               true,
		SecureErrorLogMessage:         true,
		Logger:                        fasthttpLogger{p.opts.Logger},
	}
}

// NewHealthChecker returns an lb.Checker that GETs path on each endpoint and
// passes it when the status is expect (or any 2xx when expect is 0).
func NewHealthChecker(path string, expect int) lb.Checker {
	return &httpChecker{path: path, expect: expect, ua: "edge-health-check"}
}

type httpChecker struct {
	path   string
	expect int
	ua     string
}

func (c *httpChecker) Check(ctx context.Context, e *lb.Endpoint) error {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(time.Second)
	}
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://" + e.Addr + c.path)
	req.Header.SetUserAgent(c.ua)
	req.SetConnectionClose()
	client := &fasthttp.Client{
		Dial: func(addr string) (net.Conn, error) {
			return fasthttp.DialTimeout(addr, time.Until(deadline))
		},
	}
	if err := client.DoDeadline(req, resp, deadline); err != nil {
		return fmt.Errorf("proxy: health check %s%s: %w", e.Addr, c.path, err)
	}
	code := resp.StatusCode()
	if c.expect != 0 && code != c.expect || c.expect == 0 && (code < 200 || code > 299) {
		return fmt.Errorf("proxy: health check %s%s: status %d", e.Addr, c.path, code)
	}
	return nil
}

type fasthttpLogger struct{ l *slog.Logger }

func (f fasthttpLogger) Printf(format string, args ...any) {
	f.l.Debug(fmt.Sprintf(format, args...), "component", "fasthttp")
}
