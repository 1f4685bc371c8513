package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	"example.com/edge/cmd/edge/config"
	"example.com/edge/l4"
	"example.com/edge/l7/jwt"
	"example.com/edge/l7/limit"
	"example.com/edge/l7/proxy"
	"example.com/edge/lb"
	"example.com/edge/tlsterm"
)

// plan is one configuration file adapted into the components' own Config
// structs (Caddy's adapter idea: YAML exists only here). Building a plan
// creates pools but starts nothing; the running edge starts what it keeps.
type plan struct {
	file     *config.File
	pools    map[string]*lb.Pool
	checkers map[string]lb.Checker
	jwt      map[string]*jwt.Policy
	limits   map[string]*limit.Limiter
	limitKey map[string]string // what a limiter was built from, to keep its buckets across reloads
	redis    *limit.RedisStore
	redisKey string
	terms    map[string]*tlsterm.Terminator // by listener name
	l4       l4.Config
	proxy    proxy.Config
	opts     proxy.Options
	trusted  []netip.Prefix

	watchStop context.CancelFunc // stops the TLS file watchers, once started
}

// planHooks connect what a plan builds to the running edge's metrics and
// log; the zero value (edge check) connects nothing.
type planHooks struct {
	onHandshake func(listener string) func(tls.ConnectionState)
	onTLSReload func(listener string) func(error)
}

// buildPlan adapts f. prev (may be nil) is the running plan, whose pools,
// policies and limiters hand their state to the new ones. Every problem is
// added to errs as FILE:LINE: what is wrong (errs may already hold the
// file's own problems: a best-effort plan still finds the ones only the
// components see), and the plan is returned only when errs is empty.
func buildPlan(f *config.File, prev *plan, hooks planHooks, errs *config.Errors, log *slog.Logger) (*plan, error) {
	p := &plan{file: f, pools: map[string]*lb.Pool{}, checkers: map[string]lb.Checker{}}

	for _, s := range f.TrustedProxies {
		if pfx, err := config.ParsePrefix(s); err == nil {
			p.trusted = append(p.trusted, pfx)
		}
	}

	proxyPools := map[string]*proxy.Pool{}
	for _, pname := range sortedKeys(f.Pools) {
		pc := f.Pools[pname]
		var prevPool *lb.Pool
		if prev != nil {
			prevPool = prev.pools[pname]
		}
		lcfg, checker, ok := lbConfig(pname, pc, errs, log)
		if !ok {
			continue
		}
		pool, err := lb.NewPool(pname, lcfg, prevPool)
		if err != nil {
			errs.Addf(pc.Line, "pools.%s: %v", pname, err)
			continue
		}
		p.pools[pname] = pool
		p.checkers[pname] = checker
		proxyPools[pname] = &proxy.Pool{
			LB:                  pool,
			ConnectTimeout:      pc.ConnectTimeout.D(),
			ResponseTimeout:     pc.ResponseTimeout.D(),
			MaxConnsPerEndpoint: pc.MaxConnsPerEndpoint,
			Pipeline:            pc.Pipeline,
			PipelineDepth:       pc.PipelineDepth,
		}
	}

	p.buildJWT(f, prev, errs, log)
	p.buildLimits(f, prev, errs, log)
	p.buildL4(f, hooks, errs, log)

	httpsPort := 0
	for _, l := range f.Listeners {
		if l.TLS != nil && httpsPort == 0 {
			if _, port, err := net.SplitHostPort(l.Address); err == nil {
				httpsPort, _ = strconv.Atoi(port)
			}
		}
	}
	var listeners []proxy.Listener
	for _, l := range f.Listeners {
		if l.Pool != "" {
			continue // pure L4
		}
		listeners = append(listeners, proxy.Listener{Name: l.Name, TLS: l.TLS != nil, RedirectHTTPS: l.RedirectHTTPS, HTTPSPort: httpsPort})
	}

	var routes []proxy.Route
	for _, r := range f.Routes {
		routes = append(routes, proxy.Route{
			Name:            r.Name,
			Host:            r.Host,
			Prefix:          r.Prefix,
			Methods:         r.Methods,
			StripPrefix:     r.StripPrefix,
			Listeners:       r.Listeners,
			Pool:            r.Pool,
			JWT:             r.JWT,
			Scopes:          r.Scopes,
			RateLimits:      r.RateLimit,
			RequestHeaders:  headerOps(r.RequestHeaders),
			ResponseHeaders: headerOps(r.ResponseHeaders),
			Compress:        r.Compress,
			MaxBodyBytes:    r.MaxBodyBytes,
			Timeout:         r.Timeout.D(),
			AllowIPs:        config.Prefixes(r.AllowIPs),
			DenyIPs:         config.Prefixes(r.DenyIPs),
		})
	}

	t := f.Tuning
	maxBody := t.MaxBodyBytes
	p.proxy = proxy.Config{
		Listeners:      listeners,
		Routes:         routes,
		Pools:          proxyPools,
		JWT:            p.jwt,
		Limits:         p.limits,
		TrustedProxies: p.trusted,
		MaxBodyBytes:   maxBody,
	}
	p.opts = proxy.Options{
		ReadBufferSize:   t.ReadBufferSize,
		WriteBufferSize:  t.WriteBufferSize,
		MaxHeaderBytes:   t.MaxHeaderBytes,
		ReadTimeout:      t.ReadTimeout.D(),
		WriteTimeout:     t.WriteTimeout.D(),
		IdleTimeout:      t.IdleTimeout.D(),
		UpstreamMaxConns: t.UpstreamMaxConns,
	}
	if err := errs.Err(); err != nil {
		p.release(prev)
		return nil, err
	}
	return p, nil
}

// start launches the background work of what p built: health checks and
// JWKS refreshes. Pieces shared with the previous plan are already running;
// starting them again does nothing.
func (p *plan) start(ctx context.Context) {
	for name, pool := range p.pools {
		pool.Start(ctx, p.checkers[name])
	}
	for _, pol := range p.jwt {
		pol.Start(ctx)
	}
}

// release stops what p built and keep does not share: pools, JWT policies,
// limiters and the Redis store. It is called on a plan that will not run
// (keep is the running one) and on the previous plan after a reload (keep is
// the new one), or with keep nil on shutdown.
func (p *plan) release(keep *plan) {
	for name, pool := range p.pools {
		if keep == nil || keep.pools[name] != pool {
			pool.Close()
		}
	}
	for name, pol := range p.jwt {
		if keep == nil || keep.jwt[name] != pol {
			pol.Close()
		}
	}
	for name, l := range p.limits {
		if keep == nil || keep.limits[name] != l {
			l.Close() //nolint:errcheck // waits for in-flight store calls; nothing to report
		}
	}
	if p.redis != nil && (keep == nil || keep.redis != p.redis) {
		p.redis.Close() //nolint:errcheck
	}
	if p.watchStop != nil {
		p.watchStop()
	}
}

// watchTLS starts polling every terminator's files, so a certificate
// replaced on disk is served to new connections without a reload.
func (p *plan) watchTLS(interval time.Duration) {
	ctx, cancel := context.WithCancel(context.Background())
	p.watchStop = cancel
	for _, t := range p.terms {
		go t.Watch(ctx, interval)
	}
}

// buildL4 adapts the listeners into l4's Config, with a TLS terminator per
// TLS listener (built here so that edge check loads the certificates too).
func (p *plan) buildL4(f *config.File, hooks planHooks, errs *config.Errors, log *slog.Logger) {
	p.terms = map[string]*tlsterm.Terminator{}
	p.l4 = l4.Config{
		Accept:     l4.AcceptMode(f.Tuning.Accept),
		EventLoops: f.Tuning.EventLoops,
		ReusePort:  f.Tuning.ReusePort,
		MaxConns:   f.Tuning.MaxConns,
		Pools:      relayPools(p),
		Logf: func(format string, args ...any) {
			log.Debug(fmt.Sprintf(format, args...), "component", "l4")
		},
	}
	if p.l4.MaxConns == 0 {
		p.l4.MaxConns = tuningDefaults.MaxConns
	}
	for _, l := range f.Listeners {
		lc := l4.ListenerConfig{
			Name:             l.Name,
			Address:          l.Address,
			Kind:             l4.KindHTTP,
			ProxyProtocol:    l.ProxyProtocol,
			TrustedProxies:   p.trusted,
			MaxConnsPerIP:    f.Tuning.MaxConnsPerIP,
			HandshakeTimeout: f.Tuning.HandshakeTimeout.D(),
			MaxHeadBytes:     f.Tuning.MaxHeaderBytes,
		}
		if l.MaxConnsPerIP > 0 {
			lc.MaxConnsPerIP = l.MaxConnsPerIP
		}
		switch {
		case l.Pool != "":
			lc.Kind, lc.Pool = l4.KindRelay, l.Pool
			if l.TLS != nil {
				// The file already says tls does not apply here; still
				// check the files it names, so one run lists every problem.
				p.buildTerminator(l, planHooks{}, errs)
			}
		case l.TLS != nil || len(l.Passthrough) > 0:
			lc.Kind = l4.KindTLS
			if len(l.Passthrough) > 0 {
				lc.Passthrough = map[string]string{}
				for _, pt := range l.Passthrough {
					lc.Passthrough[pt.SNI] = pt.Pool
				}
			}
			if l.TLS != nil {
				t := p.buildTerminator(l, hooks, errs)
				if t != nil {
					p.terms[l.Name] = t
					lc.Terminate = func(c net.Conn) net.Conn { return t.Server(c) }
				}
			}
		}
		p.l4.Listeners = append(p.l4.Listeners, lc)
	}
}

func (p *plan) buildTerminator(l config.Listener, hooks planHooks, errs *config.Errors) *tlsterm.Terminator {
	c := l.TLS
	path := fmt.Sprintf("listeners[%s].tls", l.Name)
	var cfg tlsterm.Config
	for _, cert := range c.Certificates {
		cfg.Certificates = append(cfg.Certificates, tlsterm.Certificate{CertFile: cert.Cert, KeyFile: cert.Key})
	}
	ok := true
	if c.MinVersion != "" {
		v, err := tlsterm.ParseVersion(c.MinVersion)
		if err != nil {
			errs.Addf(c.At("min_version"), "%s.min_version: %v", path, err)
			ok = false
		}
		cfg.MinVersion = v
	}
	for _, g := range c.CurvePreferences {
		id, err := tlsterm.ParseGroup(g)
		if err != nil {
			errs.Addf(c.At("curve_preferences"), "%s.curve_preferences: %v", path, err)
			ok = false
			continue
		}
		cfg.CurvePreferences = append(cfg.CurvePreferences, id)
	}
	cfg.ClientCAFile = c.ClientCA
	if c.ClientAuth == "request" {
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
	}
	cfg.SessionTicketKeysFile = c.SessionTicketKeysFile
	cfg.TicketKeyRotation = c.TicketKeyRotation.D()
	if hooks.onHandshake != nil {
		cfg.OnHandshake = hooks.onHandshake(l.Name)
	}
	if hooks.onTLSReload != nil {
		cfg.OnReload = hooks.onTLSReload(l.Name)
	}
	// Load the files even when a setting above is bad (left out of cfg),
	// so that their problems are listed in the same run.
	t, err := tlsterm.New(cfg)
	if err != nil {
		for _, e := range unjoin(err) {
			line := c.Line
			var fe *tlsterm.FileError
			if errors.As(e, &fe) {
				for _, cert := range c.Certificates {
					if cert.Cert == fe.Path || cert.Key == fe.Path {
						line = cert.Line
					}
				}
				switch fe.Path {
				case c.ClientCA:
					line = c.At("client_ca")
				case c.SessionTicketKeysFile:
					line = c.At("session_ticket_keys_file")
				}
			}
			errs.Addf(line, "%s: %v", path, e)
		}
		return nil
	}
	if !ok {
		return nil
	}
	return t
}

// buildLimits builds the rate limiters. A limit whose settings did not
// change keeps its Limiter, and so its buckets, across a reload.
func (p *plan) buildLimits(f *config.File, prev *plan, errs *config.Errors, log *slog.Logger) {
	p.limits = map[string]*limit.Limiter{}
	p.limitKey = map[string]string{}
	if f.Redis.Address != "" {
		p.redisKey = fmt.Sprintf("%s|%s|%d|%v", f.Redis.Address, f.Redis.Password, f.Redis.DB, f.Redis.Timeout)
		if prev != nil && prev.redis != nil && prev.redisKey == p.redisKey {
			p.redis = prev.redis
		} else {
			p.redis = limit.NewRedisStore(limit.RedisConfig{Address: f.Redis.Address, Password: f.Redis.Password, DB: f.Redis.DB, Timeout: f.Redis.Timeout.D()})
		}
	}
	for _, name := range sortedKeys(f.RateLimits) {
		rc := f.RateLimits[name]
		path := "rate_limits." + name
		key, err := limit.ParseKey(rc.Key)
		if err != nil {
			errs.Addf(rc.At("key"), "%s.key: %v", path, err)
			continue
		}
		onErr, err := limit.ParseStoreErrorPolicy(rc.OnStoreError)
		if err != nil && rc.OnStoreError != "" {
			errs.Addf(rc.At("on_store_error"), "%s.on_store_error: %v", path, err)
			continue
		}
		cfg := limit.Config{
			Name: name, Rate: rc.Rate, Per: rc.Per.D(), Burst: rc.Burst, Key: key,
			MaxKeys: rc.MaxKeys, IPv6Prefix: rc.IPv6Prefix, Lease: rc.Lease, OnStoreError: onErr,
		}
		if rc.Store == "redis" {
			cfg.Store = p.redis
			// A lease call may take as long as one Redis round trip is
			// allowed to (redis.timeout, default 100ms).
			cfg.StoreTimeout = f.Redis.Timeout.D()
			if cfg.StoreTimeout == 0 {
				cfg.StoreTimeout = 100 * time.Millisecond
			}
			cfg.StoreErrorHook = func(err error) {
				log.Warn("rate limit store failed; deciding by on_store_error", "limit", name, "on_store_error", onErr.String(), "error", err.Error())
			}
			cfg.StoreRecoverHook = func(down time.Duration) {
				log.Info("rate limit store recovered", "limit", name, "down_for", down.String())
			}
		}
		// What the limiter is built from, without the line it sits on: a
		// limit that only moved in the file keeps its buckets.
		sigOf := *rc
		sigOf.Pos = config.Pos{}
		sig := fmt.Sprintf("%+v|%s", sigOf, p.redisKey)
		p.limitKey[name] = sig
		if prev != nil && prev.limitKey[name] == sig && (rc.Store != "redis" || prev.redis == p.redis) {
			p.limits[name] = prev.limits[name]
			continue
		}
		l, err := limit.New(cfg)
		if err != nil {
			errs.Addf(rc.Line, "%s: %v", path, err)
			continue
		}
		p.limits[name] = l
	}
}

// unjoin flattens err into the errors it joins (errors.Join, nested
// included), so that each is reported on its own line.
func unjoin(err error) []error {
	if err == nil {
		return nil
	}
	j, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return []error{err}
	}
	var out []error
	for _, e := range j.Unwrap() {
		out = append(out, unjoin(e)...)
	}
	return out
}

// lbConfig adapts a pool; ok is false when the pool must not be built (a
// problem was reported, here or by the file's own checks).
func lbConfig(name string, pc *config.Pool, errs *config.Errors, log *slog.Logger) (_ lb.Config, _ lb.Checker, ok bool) {
	var c lb.Config
	path := "pools." + name
	before := len(errs.Problems)
	// Each endpoint is judged here once, at its own line: an empty list and
	// endpoints written twice are the file's checks' to report, so lb's
	// whole-pool Validate below never sees them again.
	raw := map[string]bool{}
	names := map[string]int{}
	for i, ep := range pc.Endpoints {
		if raw[ep.Value] {
			continue // config: duplicate endpoint
		}
		raw[ep.Value] = true
		e, err := lb.ParseEndpoint(ep.Value)
		if err != nil {
			errs.Addf(ep.Line, "%s.endpoints[%d]: %v", path, i, err)
			continue
		}
		id := e.Name
		if id == "" {
			id = e.Addr
		}
		if j, dup := names[id]; dup {
			errs.Addf(ep.Line, "%s.endpoints[%d]: endpoint name %q is already that of endpoints[%d] (names must be unique: they are the consistent-hash identity)", path, i, id, j)
			continue
		}
		names[id] = i
		c.Endpoints = append(c.Endpoints, e)
	}
	pol, err := lb.ParsePolicy(pc.Balance)
	if err != nil {
		errs.Addf(pc.At("balance"), "%s.balance: %v", path, err)
	}
	c.Balance = pol
	if pc.HashOn != "" {
		h, err := lb.ParseHashOn(pc.HashOn)
		if err != nil {
			errs.Addf(pc.At("hash_on"), "%s.hash_on: %v", path, err)
		}
		c.HashOn = h
		if pol != lb.ConsistentHash {
			errs.Addf(pc.At("hash_on"), "%s.hash_on: only for balance: consistent_hash", path)
		}
	}
	c.HashBalanceFactor = pc.HashBalanceFactor
	var checker lb.Checker = lb.TCPChecker{}
	if hc := pc.HealthCheck; hc != nil {
		c.HealthCheck = lb.HealthCheck{Interval: hc.Interval.D(), Timeout: hc.Timeout.D(), Fall: hc.Fall, Rise: hc.Rise}
		if c.HealthCheck.Interval == 0 {
			c.HealthCheck.Interval = 5 * time.Second
		}
		if hc.Path != "" {
			checker = proxy.NewHealthChecker(hc.Path, hc.ExpectStatus)
		}
	}
	if o := pc.Outlier; o != nil {
		c.Outlier = lb.OutlierDetection{
			Disabled:                   o.Disabled,
			ConsecutiveConnectFailures: o.ConsecutiveFailures,
			Consecutive5xx:             o.ConsecutiveFailures,
			BaseEjection:               o.BaseEjection.D(),
			MaxEjection:                o.MaxEjection.D(),
		}
	}
	// The file speaks in percent; lb in fractions. 0 keeps lb's default:
	// fail open only when no endpoint is healthy.
	c.PanicThreshold = pc.PanicThreshold / 100
	if pc.RetryBudget != nil {
		c.RetryBudget = *pc.RetryBudget / 100 // validated positive
	}
	c.MaxConnsPerEndpoint = pc.MaxConnsPerEndpoint
	c.MaxPending = pc.MaxPending
	c.SlowStart = pc.SlowStart.D()
	c.Retries = pc.Retries
	c.OnEvent = func(ev lb.Event) {
		attrs := []any{"pool", ev.Pool, "event", ev.Kind.String()}
		if ev.Endpoint != nil {
			attrs = append(attrs, "endpoint", ev.Endpoint.String())
		}
		if !ev.Until.IsZero() {
			attrs = append(attrs, "until", ev.Until.Format(time.RFC3339))
		}
		if ev.Kind == lb.EventPanic {
			log.Warn("pool has too few healthy endpoints: failing open to all of them", attrs...)
			return
		}
		log.Info("endpoint health changed", attrs...)
	}
	// What lb alone checks (hash_balance_factor, limits) is checked even
	// when no endpoint was usable, against a stand-in endpoint.
	vc := c
	if len(vc.Endpoints) == 0 {
		vc.Endpoints = []lb.EndpointConfig{{Addr: "127.0.0.1:1"}}
	}
	if err := vc.Validate(); err != nil {
		line := pc.Line
		if strings.Contains(err.Error(), "hash_balance_factor") {
			line = pc.At("hash_balance_factor")
		}
		errs.Addf(line, "%s: %v", path, err)
	}
	ok = len(errs.Problems) == before && len(pc.Endpoints) > 0 && len(c.Endpoints) == len(pc.Endpoints)
	return c, checker, ok
}

func headerOps(h config.HeaderOps) proxy.HeaderOps {
	var ops proxy.HeaderOps
	for _, name := range sortedKeys(h.Add) {
		ops.Add = append(ops.Add, proxy.Header{Name: name, Value: h.Add[name]})
	}
	ops.Remove = append(ops.Remove, h.Remove...)
	return ops
}

func sortedKeys[T any](m map[string]T) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// describe is a one-line summary for the start-up log.
func (p *plan) describe() string {
	return fmt.Sprintf("%d listeners, %d routes, %d pools", len(p.file.Listeners), len(p.file.Routes), len(p.file.Pools))
}
