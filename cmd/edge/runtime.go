package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"example.com/edge/cmd/edge/config"
	"example.com/edge/l4"
	"example.com/edge/l7/accesslog"
	"example.com/edge/l7/limit"
	"example.com/edge/l7/metrics"
	"example.com/edge/l7/proxy"
	"example.com/edge/tlsterm"
)

// edgeRuntime is a running edge: the l4 server accepting on every listener,
// one fasthttp server per HTTP listener fed from l4, the L7 engine, the pools'
// health checks, TLS terminators and the admin listener. Reload swaps what can
// change under open connections; Shutdown drains.
type edgeRuntime struct {
	path  string
	flags *tuningFlags
	log   *slog.Logger
	out   io.Writer

	reg     *metrics.Registry
	access  *accesslog.Logger
	engine  *proxy.Proxy
	l4      *l4.Server
	servers map[string]*fasthttp.Server
	loops   map[string]*proxy.LoopServer // plaintext listeners served on the event loops
	admin   *adminServer
	serveWG sync.WaitGroup

	mu       sync.Mutex // serializes reload and shutdown
	cur      atomic.Pointer[plan]
	poolsCtx context.Context
	stop     context.CancelFunc

	ready    atomic.Bool
	draining atomic.Bool
	reloads  *metrics.CounterVec
	tlsHS    *metrics.CounterVec

	eventLoops int // gnet event loops per listener when tuning.event_loops is 0 (GOMAXPROCS at start)
}

// tlsWatchInterval is how often certificate files are checked for changes.
const tlsWatchInterval = 2 * time.Second

func (rt *edgeRuntime) drainTimeout() time.Duration {
	if d := rt.cur.Load().file.Tuning.DrainTimeout.D(); d > 0 {
		return d
	}
	return tuningDefaults.DrainTimeout.D()
}

// start builds everything f describes and starts serving.
func start(path string, f *config.File, flags *tuningFlags, log *slog.Logger, out io.Writer) (*edgeRuntime, error) {
	rt := &edgeRuntime{path: path, flags: flags, log: log, out: out, reg: metrics.NewRegistry(),
		servers: map[string]*fasthttp.Server{}}
	rt.poolsCtx, rt.stop = context.WithCancel(context.Background())
	// go-redis logs on its own (a failed dial, say) in plain text on
	// stderr; its lines join edge's log as warnings instead. The limiter
	// logs the failed store calls too, but go-redis also reports what no
	// call returns (a pooled connection dropped for unread data, say).
	limit.SetRedisLog(func(msg string) { log.Warn(msg, "component", "redis") })
	rt.reloads = rt.reg.Counter("edge_config_reloads_total", "Configuration reloads, by result.", "result")
	// Both series exist from the start, at 0, so a scrape before the first
	// SIGHUP finds the metric (and rate() sees the first reload).
	rt.reloads.With("success")
	rt.reloads.With("failure")
	rt.tlsHS = rt.reg.Counter("edge_tls_handshakes_total", "TLS handshakes completed, by listener, version and key exchange group.", "listener", "version", "group")

	p, err := buildPlan(f, nil, rt.hooks(), &config.Errors{File: path}, log)
	if err != nil {
		return nil, err
	}
	al, err := openAccessLog(f.Tuning.AccessLog, out)
	if err != nil {
		p.release(nil)
		return nil, err
	}
	rt.access = al
	opts := p.opts
	opts.Logger, opts.AccessLog, opts.Metrics = log, al, rt.reg
	engine, err := proxy.New(opts, p.proxy)
	if err != nil {
		p.release(nil)
		return nil, fmt.Errorf("edge: %w", err)
	}
	rt.engine = engine

	rt.loops = map[string]*proxy.LoopServer{}
	rt.attachLoops(p)
	srv, err := l4.New(p.l4)
	if err != nil {
		p.release(nil)
		return nil, fmt.Errorf("edge: %w", err)
	}
	rt.l4 = srv
	rt.eventLoops = runtime.GOMAXPROCS(0)
	rt.cur.Store(p)
	p.start(rt.poolsCtx)
	p.watchTLS(tlsWatchInterval)
	if err := srv.Start(); err != nil {
		rt.abort()
		return nil, fmt.Errorf("edge: %w", err)
	}
	if rt.boundRedirectPort(p) {
		if err := engine.Update(p.proxy); err != nil {
			rt.abort()
			return nil, fmt.Errorf("edge: %w", err)
		}
	}
	for _, l := range f.Listeners {
		if l.Pool != "" {
			continue
		}
		s := engine.Server(l.Name)
		rt.servers[l.Name] = s
		ln := srv.Listener(l.Name)
		rt.serveWG.Go(func() {
			if err := s.Serve(engine.Listener(l.Name, ln)); err != nil && !errors.Is(err, net.ErrClosed) {
				log.Error("listener stopped", "listener", l.Name, "error", err.Error())
			}
		})
	}
	rt.registerMetrics()
	if f.Admin != "" {
		a, err := startAdmin(f.Admin, rt)
		if err != nil {
			rt.abort()
			return nil, err
		}
		rt.admin = a
	}
	rt.ready.Store(true)
	accept := string(p.l4.Accept)
	if accept == "" {
		accept = string(l4.AcceptGnet)
	}
	addrs := []any{"config", path, "summary", p.describe(), "accept", accept}
	for _, l := range f.Listeners {
		addrs = append(addrs, "listener."+l.Name, srv.Addr(l.Name).String())
	}
	if rt.admin != nil {
		addrs = append(addrs, "admin", rt.admin.addr)
	}
	log.Info("edge is serving", addrs...)
	return rt, nil
}

// abort tears down a runtime that failed to start.
func (rt *edgeRuntime) abort() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	rt.shutdown(ctx) //nolint:errcheck // best effort on a failed start
}

// attachLoops sets the in-loop server of every plaintext listener when the
// file says serve: loop. A listener keeps its LoopServer across reloads
// (serve itself can only change with a restart).
func (rt *edgeRuntime) attachLoops(p *plan) {
	if p.file.Tuning.Serve != "loop" || p.l4.Accept == l4.AcceptGo {
		return
	}
	for i := range p.l4.Listeners {
		lc := &p.l4.Listeners[i]
		if lc.Kind != l4.KindHTTP {
			continue
		}
		ls := rt.loops[lc.Name]
		if ls == nil {
			ls = rt.engine.LoopServer(lc.Name)
			rt.loops[lc.Name] = ls
		}
		lc.Loop = ls
	}
}

// boundRedirectPort points redirect_https at the port the first TLS
// listener actually bound, which differs from the configured one when that
// was 0. It reports whether it changed anything.
func (rt *edgeRuntime) boundRedirectPort(p *plan) bool {
	changed := false
	for _, l := range p.file.Listeners {
		if l.TLS == nil {
			continue
		}
		a, ok := rt.l4.Addr(l.Name).(*net.TCPAddr)
		if !ok {
			return false
		}
		for i := range p.proxy.Listeners {
			if p.proxy.Listeners[i].HTTPSPort != a.Port {
				p.proxy.Listeners[i].HTTPSPort = a.Port
				changed = true
			}
		}
		return changed
	}
	return false
}

// hooks connects what plans build to this runtime's metrics and log.
func (rt *edgeRuntime) hooks() planHooks {
	return planHooks{
		onHandshake: func(listener string) func(tls.ConnectionState) {
			return func(st tls.ConnectionState) {
				rt.tlsHS.With(listener, tlsterm.VersionName(st.Version), tlsterm.GroupName(st.CurveID)).Inc()
			}
		},
		onTLSReload: func(listener string) func(error) {
			return func(err error) {
				if err != nil {
					rt.log.Error("TLS files changed but could not be loaded; keeping the old ones", "listener", listener, "error", err.Error())
					return
				}
				rt.log.Info("TLS certificates reloaded", "listener", listener)
			}
		},
	}
}

// reload re-reads the file, validates it and swaps what can change without
// dropping connections: routes, pools (keeping health state), TLS
// certificates, relay pools and listener limits. A bad file changes nothing.
func (rt *edgeRuntime) reload() error {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	err := rt.reloadLocked()
	result := "success"
	if err != nil {
		result = "failure"
	}
	rt.reloads.With(result).Inc()
	return err
}

func (rt *edgeRuntime) reloadLocked() error {
	if rt.draining.Load() {
		return errors.New("edge: draining; reload ignored")
	}
	f, err := config.Load(rt.path)
	if err != nil {
		return err
	}
	rt.flags.apply(f)
	prev := rt.cur.Load()
	if err := sameListeners(prev.file, f); err != nil {
		return err
	}
	p, err := buildPlan(f, prev, rt.hooks(), &config.Errors{File: rt.path}, rt.log)
	if err != nil {
		return err
	}
	rt.boundRedirectPort(p)
	rt.attachLoops(p)
	if err := rt.engine.Update(p.proxy); err != nil {
		p.release(prev)
		return fmt.Errorf("edge: %w", err)
	}
	for _, lc := range p.l4.Listeners {
		if err := rt.l4.UpdateListener(lc); err != nil {
			rt.log.Error("listener settings not updated", "listener", lc.Name, "error", err.Error())
		}
	}
	rt.l4.SetPools(p.l4.Pools)
	p.start(rt.poolsCtx)
	p.watchTLS(tlsWatchInterval)
	rt.cur.Store(p)
	prev.release(p)
	rt.log.Info("configuration reloaded", "config", rt.path, "summary", p.describe())
	return nil
}

// sameListeners refuses reloads that change listener sockets: those need a
// restart (or a second edge started beside this one).
func sameListeners(a, b *config.File) error {
	key := func(l config.Listener) string {
		kind := "http"
		switch {
		case l.Pool != "":
			kind = "relay"
		case l.TLS != nil || len(l.Passthrough) > 0:
			kind = "tls"
		}
		return l.Name + " " + l.Address + " " + kind
	}
	if len(a.Listeners) != len(b.Listeners) {
		return errors.New("edge: listeners were added or removed; that needs a restart")
	}
	for i := range a.Listeners {
		if key(a.Listeners[i]) != key(b.Listeners[i]) {
			return fmt.Errorf("edge: listener %q changed name, address or kind; that needs a restart", b.Listeners[i].Name)
		}
	}
	if a.Admin != b.Admin {
		return errors.New("edge: the admin address changed; that needs a restart")
	}
	if a.Tuning.Serve != b.Tuning.Serve || a.Tuning.Accept != b.Tuning.Accept {
		return errors.New("edge: tuning.serve or tuning.accept changed; that needs a restart")
	}
	return nil
}

// shutdown drains: stop accepting, let in-flight requests finish (each keep-
// alive connection is closed after its current response) until ctx is done.
func (rt *edgeRuntime) shutdown(ctx context.Context) error {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	rt.draining.Store(true)
	rt.ready.Store(false)
	// A request that reaches L7 from now on (its head was still arriving)
	// is answered 503 no_healthy_upstream with Connection: close, as the
	// contract says of a draining edge; requests already being served finish.
	if rt.engine != nil {
		rt.engine.SetDraining(true)
	}
	var errs []error
	if rt.l4 != nil {
		if err := rt.l4.Shutdown(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	var wg sync.WaitGroup
	for name, s := range rt.servers {
		wg.Go(func() {
			if err := s.ShutdownWithContext(ctx); err != nil {
				errs = append(errs, fmt.Errorf("listener %s: %w", name, err))
			}
		})
	}
	wg.Wait()
	rt.serveWG.Wait()
	rt.stop()
	if p := rt.cur.Load(); p != nil {
		p.release(nil)
	}
	if rt.admin != nil {
		rt.admin.close()
	}
	rt.access.Close()
	return errors.Join(errs...)
}

func openAccessLog(dest string, stdout io.Writer) (*accesslog.Logger, error) {
	switch dest {
	case "off":
		return nil, nil
	case "", "-":
		return accesslog.New(accesslog.Config{Writer: stdout}), nil
	}
	f, err := os.OpenFile(dest, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("edge: access log: %w", err)
	}
	return accesslog.New(accesslog.Config{Writer: f}), nil
}

// registerMetrics exports what lives outside the request path's counters.
func (rt *edgeRuntime) registerMetrics() {
	rt.reg.GaugeFunc("edge_upstream_healthy", "1 when the endpoint is in rotation, else 0.", func(emit func(float64, ...string)) {
		p := rt.cur.Load()
		for _, name := range sortedKeys(p.pools) {
			for _, e := range p.pools[name].Endpoints() {
				v := 0.0
				if e.Healthy() {
					v = 1
				}
				emit(v, name, e.String())
			}
		}
	}, "pool", "endpoint")
	rt.reg.GaugeFunc("edge_upstream_in_flight", "Requests in flight per endpoint.", func(emit func(float64, ...string)) {
		p := rt.cur.Load()
		for _, name := range sortedKeys(p.pools) {
			for _, e := range p.pools[name].Endpoints() {
				emit(float64(e.InFlight()), name, e.String())
			}
		}
	}, "pool", "endpoint")
	var statsMu sync.Mutex
	var stats []l4.ListenerStats
	readStats := func() []l4.ListenerStats {
		statsMu.Lock()
		defer statsMu.Unlock()
		stats = rt.l4.Stats(stats[:0])
		return append([]l4.ListenerStats(nil), stats...)
	}
	rt.reg.GaugeFunc("edge_l4_connections_active", "Open client connections, by listener.", func(emit func(float64, ...string)) {
		for _, s := range readStats() {
			emit(float64(s.Active), s.Name)
		}
	}, "listener")
	rt.reg.CounterFunc("edge_l4_connections_total", "Accepted client connections, by listener.", func(emit func(float64, ...string)) {
		for _, s := range readStats() {
			emit(float64(s.Accepted), s.Name)
		}
	}, "listener")
	rt.reg.CounterFunc("edge_l4_rejections_total", "Connections closed by l4 before serving them, by listener and reason.", func(emit func(float64, ...string)) {
		for _, s := range readStats() {
			for r := range l4.NumRejectReasons {
				if n := s.Rejected[r]; n > 0 {
					emit(float64(n), s.Name, r.String())
				}
			}
		}
	}, "listener", "reason")
	rt.reg.CounterFunc("edge_l4_relay_bytes_total", "Bytes relayed by L4 pass-through, by listener and direction.", func(emit func(float64, ...string)) {
		for _, s := range readStats() {
			if s.RelaysTotal > 0 {
				emit(float64(s.RelayBytesIn), s.Name, "in")
				emit(float64(s.RelayBytesOut), s.Name, "out")
			}
		}
	}, "listener", "direction")
	rt.reg.CounterFunc("edge_access_log_dropped_total", "Access-log records dropped because the writer fell behind.", func(emit func(float64, ...string)) {
		emit(float64(rt.access.Dropped()))
	})
	rt.reg.CounterFunc("edge_ratelimit_store_errors_total", "Failed calls to a global limit's store (Redis), by limit.", func(emit func(float64, ...string)) {
		p := rt.cur.Load()
		for _, name := range sortedKeys(p.limits) {
			if l := p.limits[name]; l.Global() {
				emit(float64(l.Stats().StoreErrors), name)
			}
		}
	}, "limit")
	rt.reg.CounterFunc("edge_ratelimit_store_fallbacks_total", "Requests a global limit decided by on_store_error, by limit.", func(emit func(float64, ...string)) {
		p := rt.cur.Load()
		for _, name := range sortedKeys(p.limits) {
			if l := p.limits[name]; l.Global() {
				emit(float64(l.Stats().StoreFallbacks), name)
			}
		}
	}, "limit")
	rt.reg.GaugeFunc("edge_ratelimit_keys", "Buckets held by a rate limit, by limit.", func(emit func(float64, ...string)) {
		p := rt.cur.Load()
		for _, name := range sortedKeys(p.limits) {
			emit(float64(p.limits[name].Stats().Keys), name)
		}
	}, "limit")
	rt.reg.GaugeFunc("edge_info", "Build information.", func(emit func(float64, ...string)) {
		emit(1, version, runtime.Version())
	}, "version", "go_version")
}

func newLogger(t config.Tuning, w io.Writer) *slog.Logger {
	level := slog.LevelInfo
	switch t.LogLevel {
	case "debug":
		level = slog.LevelDebug
	case "warn":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	}
	opts := &slog.HandlerOptions{Level: level}
	if t.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
