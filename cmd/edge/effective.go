package main

import (
	"math"

	"example.com/edge/cmd/edge/config"
	"example.com/edge/l4"
	"example.com/edge/l7/jwt"
	"example.com/edge/l7/limit"
	"example.com/edge/l7/proxy"
	"example.com/edge/lb"
	"example.com/edge/tlsterm"
)

// effectiveConfig is what GET /config shows: the running plan's file, with
// the flags already written over it, and with the defaults the components
// apply written out, so that every key shows the value in force. Only
// defaults whose explicit value means the same are filled in: the result,
// written to a file, runs the same edge. Keys whose zero is itself the
// setting stay zero (write_timeout: none; max_conns_per_ip: unlimited;
// panic_threshold: fail open only when no endpoint is healthy;
// max_conns_per_endpoint: tuning.upstream_max_conns; outlier_detection's
// consecutive_failures: 5 failures in a row, or 3 connect failures; a
// missing health_check: none). eventLoops is the number of event loops l4
// started per listener. p and its file are not changed.
func effectiveConfig(p *plan, eventLoops int) *config.File {
	f := *p.file
	effectiveTuning(&f.Tuning, eventLoops)

	f.Listeners = make([]config.Listener, len(p.file.Listeners))
	for i, l := range p.file.Listeners {
		if l.MaxConnsPerIP == 0 {
			l.MaxConnsPerIP = f.Tuning.MaxConnsPerIP
		}
		if l.TLS != nil {
			t := *l.TLS
			orDefault(&t.MinVersion, "1.2")
			if t.ClientCA != "" {
				orDefault(&t.ClientAuth, "require")
			}
			if t.SessionTicketKeysFile == "" {
				orDefault(&t.TicketKeyRotation, config.Duration(tlsterm.DefaultTicketKeyRotation))
			}
			l.TLS = &t
		}
		f.Listeners[i] = l
	}

	f.Pools = make(map[string]*config.Pool, len(p.file.Pools))
	for name, pc := range p.file.Pools {
		if pc == nil {
			continue
		}
		c := *pc
		if pool := p.pools[name]; pool != nil {
			effectivePool(&c, pool.Config())
		}
		f.Pools[name] = &c
	}

	f.JWT = make(map[string]*config.JWTPolicy, len(p.file.JWT))
	for name, jc := range p.file.JWT {
		if jc == nil {
			continue
		}
		c := *jc
		if c.RequireExp == nil {
			required := true
			c.RequireExp = &required
		}
		orDefault(&c.CacheBytes, jwt.DefaultCacheBytes)
		c.Keys = append([]config.JWTKey(nil), jc.Keys...)
		for i := range c.Keys {
			if c.Keys[i].JWKSURL != "" {
				orDefault(&c.Keys[i].Refresh, config.Duration(jwt.DefaultRefresh))
			}
		}
		f.JWT[name] = &c
	}

	f.RateLimits = make(map[string]*config.RateLimit, len(p.file.RateLimits))
	for name, rc := range p.file.RateLimits {
		if rc == nil {
			continue
		}
		c := *rc
		orDefault(&c.Per, config.Duration(limit.DefaultPer))
		if l := p.limits[name]; l != nil {
			orDefault(&c.Burst, l.Burst())
			orDefault(&c.Lease, l.Lease()) // 0, left out, for a local limit
		}
		orDefault(&c.Store, "local")
		if c.Store == "redis" {
			orDefault(&c.OnStoreError, "allow")
		}
		if c.Key == "client_ip" {
			orDefault(&c.IPv6Prefix, limit.DefaultIPv6Prefix)
		}
		f.RateLimits[name] = &c
	}

	if f.Redis.Address != "" {
		orDefault(&f.Redis.Timeout, config.Duration(limit.DefaultRedisTimeout))
	}

	f.Routes = make([]config.Route, len(p.file.Routes))
	for i, r := range p.file.Routes {
		if r.Name == "" {
			r.Name = proxy.DefaultRouteName(r.Host, r.Prefix) // what labels the route's metrics
		}
		// A route without its own timeout or body limit has its pool's
		// response_timeout and the tuning block's max_body_bytes.
		if pc := f.Pools[r.Pool]; pc != nil {
			orDefault(&r.Timeout, pc.ResponseTimeout)
		}
		orDefault(&r.MaxBodyBytes, f.Tuning.MaxBodyBytes)
		f.Routes[i] = r
	}
	return &f
}

// effectiveTuning fills t's unset keys with tuningDefaults and the values
// derived from other keys.
func effectiveTuning(t *config.Tuning, eventLoops int) {
	d := tuningDefaults
	orDefault(&t.Accept, d.Accept)
	orDefault(&t.Serve, d.Serve)
	if t.Accept == string(l4.AcceptGnet) {
		orDefault(&t.EventLoops, eventLoops)
	}
	orDefault(&t.WriteBufferSize, d.WriteBufferSize)
	orDefault(&t.MaxConns, d.MaxConns)
	orDefault(&t.IdleTimeout, d.IdleTimeout)
	orDefault(&t.ReadTimeout, d.ReadTimeout)
	orDefault(&t.HandshakeTimeout, d.HandshakeTimeout)
	orDefault(&t.DrainTimeout, d.DrainTimeout)
	orDefault(&t.MaxHeaderBytes, d.MaxHeaderBytes)
	orDefault(&t.ReadBufferSize, t.MaxHeaderBytes)
	orDefault(&t.MaxBodyBytes, d.MaxBodyBytes)
	orDefault(&t.UpstreamMaxConns, d.UpstreamMaxConns)
	orDefault(&t.LogLevel, d.LogLevel)
	orDefault(&t.AccessLog, d.AccessLog)
	orDefault(&t.LogFormat, d.LogFormat)
}

// effectivePool fills c's unset keys from the running pool's lb
// configuration (which holds lb's defaults) and l7/proxy's defaults.
func effectivePool(c *config.Pool, lc lb.Config) {
	orDefault(&c.Balance, string(lc.Balance))
	if lc.Balance == lb.ConsistentHash {
		orDefault(&c.HashOn, lc.HashOn.String())
	}
	if c.HealthCheck != nil {
		hc := *c.HealthCheck
		hc.Interval = config.Duration(lc.HealthCheck.Interval)
		hc.Timeout = config.Duration(lc.HealthCheck.Timeout)
		hc.Fall, hc.Rise = lc.HealthCheck.Fall, lc.HealthCheck.Rise
		if hc.Path == "" {
			hc.TCP = true
		}
		c.HealthCheck = &hc
	}
	switch {
	case c.Outlier == nil:
		c.Outlier = &config.Outlier{BaseEjection: config.Duration(lc.Outlier.BaseEjection), MaxEjection: config.Duration(lc.Outlier.MaxEjection)}
	case !c.Outlier.Disabled:
		o := *c.Outlier
		o.BaseEjection, o.MaxEjection = config.Duration(lc.Outlier.BaseEjection), config.Duration(lc.Outlier.MaxEjection)
		c.Outlier = &o
	}
	orDefault(&c.ConnectTimeout, config.Duration(proxy.DefaultConnectTimeout))
	orDefault(&c.ResponseTimeout, config.Duration(proxy.DefaultResponseTimeout))
	if c.RetryBudget == nil && lc.RetryBudget > 0 {
		percent := math.Round(lc.RetryBudget*100*1e6) / 1e6
		c.RetryBudget = &percent
	}
	if c.Pipeline > 0 {
		orDefault(&c.PipelineDepth, proxy.DefaultPipelineDepth)
	}
}

// orDefault sets *v to d when *v is the zero value.
func orDefault[T comparable](v *T, d T) {
	var zero T
	if *v == zero {
		*v = d
	}
}
