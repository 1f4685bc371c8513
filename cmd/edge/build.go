package main

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"time"

	"example.com/edge/cmd/edge/config"
	"example.com/edge/l7/proxy"
	"example.com/edge/lb"
)

// plan is one configuration file adapted into the components' own Config
// structs (Caddy's adapter idea: YAML exists only here). Building a plan
// creates pools but starts nothing; the running edge starts what it keeps.
type plan struct {
	file     *config.File
	pools    map[string]*lb.Pool
	checkers map[string]lb.Checker
	proxy    proxy.Config
	opts     proxy.Options
	trusted  []netip.Prefix
}

// buildPlan adapts f. prev (may be nil) is the running plan, whose pools
// hand their endpoints' health state to the new ones. Every problem is
// reported into one *config.Errors as FILE:LINE: what is wrong.
func buildPlan(name string, f *config.File, prev *plan, log *slog.Logger) (*plan, error) {
	errs := &config.Errors{File: name}
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
		lcfg, checker := lbConfig(pname, pc, errs, log)
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
		}
	}

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
			RequestHeaders:  headerOps(r.RequestHeaders),
			ResponseHeaders: headerOps(r.ResponseHeaders),
			MaxBodyBytes:    r.MaxBodyBytes,
			Timeout:         r.Timeout.D(),
		})
	}

	t := f.Tuning
	maxBody := t.MaxBodyBytes
	p.proxy = proxy.Config{
		Listeners:      listeners,
		Routes:         routes,
		Pools:          proxyPools,
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
		p.closePools(prev)
		return nil, err
	}
	return p, nil
}

// closePools closes the pools of a plan that will not run, except those it
// shares with keep.
func (p *plan) closePools(keep *plan) {
	for name, pool := range p.pools {
		if keep != nil && keep.pools[name] == pool {
			continue
		}
		pool.Close()
	}
}

func lbConfig(name string, pc *config.Pool, errs *config.Errors, log *slog.Logger) (lb.Config, lb.Checker) {
	var c lb.Config
	path := "pools." + name
	for i, ep := range pc.Endpoints {
		e, err := lb.ParseEndpoint(ep.Value)
		if err != nil {
			errs.Addf(ep.Line, "%s.endpoints[%d]: %v", path, i, err)
			continue
		}
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
	if err := c.Validate(); err != nil && len(c.Endpoints) == len(pc.Endpoints) {
		errs.Addf(pc.Line, "%s: %v", path, err)
	}
	return c, checker
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
