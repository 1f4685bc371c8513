package config

import (
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"strings"
)

// validate checks what the schema alone can: addresses, names, enumerations
// and cross-references. Values only a component can judge (certificates, key
// files, hash_on, endpoint syntax) are checked by cmd/edge when it builds the
// components, reporting into the same Errors.
func validate(f *File, e *Errors) {
	if f.Admin != "" {
		checkAddr(e, f.Pos.At("admin"), "admin", f.Admin)
	}
	for i, p := range f.TrustedProxies {
		if _, err := ParsePrefix(p); err != nil {
			e.addf(f.Pos.At("trusted_proxies"), "trusted_proxies[%d]: %v", i, err)
		}
	}
	validateTuning(&f.Tuning, e)

	listeners := map[string]*Listener{}
	byName := map[string]int{}
	addrs := map[string]int{} // "host:port" or "*:port" -> index of the listener bound there
	for i := range f.Listeners {
		l := &f.Listeners[i]
		path := fmt.Sprintf("listeners[%d]", i)
		dupOf := -1
		switch {
		case l.Name == "":
			e.addf(l.Line, "%s: name is required", path)
		case listeners[l.Name] != nil:
			dupOf = byName[l.Name]
		default:
			listeners[l.Name] = l
			byName[l.Name] = i
		}
		overlaps := -1
		if l.Address == "" {
			e.addf(l.Line, "%s: address is required", path)
		} else if checkAddr(e, l.At("address"), path+".address", l.Address) {
			// Port 0 asks the kernel for a fresh port per listener, so only
			// fixed ports can clash; a wildcard host clashes with every host
			// on the same port.
			host, port, _ := net.SplitHostPort(l.Address)
			if port != "0" {
				wild := host == "" || host == "0.0.0.0" || host == "::"
				if j, ok := addrs["*:"+port]; ok {
					overlaps = j
				} else if j, ok := addrs[host+":"+port]; ok {
					overlaps = j
				} else if wild {
					for k, j := range addrs {
						if strings.HasSuffix(k, ":"+port) && (overlaps < 0 || j < overlaps) {
							overlaps = j
						}
					}
				}
				if wild {
					host = "*"
				}
				if _, taken := addrs[host+":"+port]; !taken {
					addrs[host+":"+port] = i
				}
			}
		}
		// One line per listener for its name and address clashes, naming
		// the other listener once, by index and name.
		switch {
		case dupOf >= 0 && overlaps == dupOf:
			e.addf(l.At("name"), "%s: duplicate of listeners[%d]: same name %q and address %q", path, dupOf, l.Name, l.Address)
		case dupOf >= 0:
			e.addf(l.At("name"), "%s.name: %q is already the name of listeners[%d]", path, l.Name, dupOf)
		}
		if overlaps >= 0 && overlaps != dupOf {
			e.addf(l.At("address"), "%s.address: %q overlaps listeners[%d] (%q, %s)", path, l.Address, overlaps, f.Listeners[overlaps].Name, f.Listeners[overlaps].Address)
		}
		if l.Pool != "" {
			if f.Pools[l.Pool] == nil {
				e.addf(l.At("pool"), "%s.pool: unknown pool %q%s", path, l.Pool, known(f.Pools))
			}
			if l.TLS != nil || len(l.Passthrough) > 0 || l.RedirectHTTPS {
				e.addf(l.At("pool"), "%s: a listener with a pool is pure L4: tls, passthrough and redirect_https do not apply", path)
			}
		}
		if l.TLS != nil {
			if l.RedirectHTTPS {
				e.addf(l.At("redirect_https"), "%s.redirect_https: only for plaintext listeners (this one has tls)", path)
			}
			validateTLS(l.TLS, path+".tls", e)
		}
		snis := map[string]bool{}
		for j, p := range l.Passthrough {
			pp := fmt.Sprintf("%s.passthrough[%d]", path, j)
			if p.SNI == "" {
				e.addf(p.Line, "%s.sni: required", pp)
			} else if snis[strings.ToLower(p.SNI)] {
				e.addf(p.At("sni"), "%s.sni: duplicate %q", pp, p.SNI)
			}
			snis[strings.ToLower(p.SNI)] = true
			if f.Pools[p.Pool] == nil {
				e.addf(p.At("pool"), "%s.pool: unknown pool %q%s", pp, p.Pool, known(f.Pools))
			}
		}
		if l.MaxConnsPerIP < 0 {
			e.addf(l.At("max_conns_per_ip"), "%s.max_conns_per_ip: must not be negative", path)
		}
	}

	for _, name := range sortedKeys(f.Pools) {
		validatePool(name, f.Pools[name], e)
	}
	for _, name := range sortedKeys(f.JWT) {
		validateJWT(name, f.JWT[name], e)
	}
	for _, name := range sortedKeys(f.RateLimits) {
		rl := f.RateLimits[name]
		validateRateLimit(name, rl, e)
		if rl.Store == "redis" && f.Redis.Address == "" {
			e.addf(rl.At("store"), "rate_limits.%s.store: redis needs redis.address", name)
		}
	}
	if f.Redis.Address != "" {
		checkAddr(e, f.Redis.At("address"), "redis.address", f.Redis.Address)
	}
	validateRoutes(f, listeners, e)
}

func validateTuning(t *Tuning, e *Errors) {
	ints := []struct {
		key string
		v   int64
	}{
		{"event_loops", int64(t.EventLoops)}, {"read_buffer_size", int64(t.ReadBufferSize)},
		{"write_buffer_size", int64(t.WriteBufferSize)}, {"max_conns", int64(t.MaxConns)},
		{"max_conns_per_ip", int64(t.MaxConnsPerIP)}, {"max_header_bytes", int64(t.MaxHeaderBytes)},
		{"max_body_bytes", t.MaxBodyBytes}, {"upstream_max_conns", int64(t.UpstreamMaxConns)},
	}
	for _, it := range ints {
		if it.v < 0 {
			e.addf(t.At(it.key), "tuning.%s: must not be negative, got %d", it.key, it.v)
		}
	}
	if t.MaxHeaderBytes != 0 && t.MaxHeaderBytes < 1024 {
		e.addf(t.At("max_header_bytes"), "tuning.max_header_bytes: %d is too small to hold a request head (minimum 1024)", t.MaxHeaderBytes)
	}
	oneOf(e, t.At("accept"), "tuning.accept", t.Accept, "", "gnet", "go")
	oneOf(e, t.At("serve"), "tuning.serve", t.Serve, "", "goroutine", "loop")
	if t.Serve == "loop" && t.Accept == "go" {
		e.addf(t.At("serve"), "tuning.serve: loop needs accept: gnet (the event loops are gnet's)")
	}
	oneOf(e, t.At("log_level"), "tuning.log_level", t.LogLevel, "", "debug", "info", "warn", "error")
	oneOf(e, t.At("log_format"), "tuning.log_format", t.LogFormat, "", "json", "text")
}

func validateTLS(t *TLS, path string, e *Errors) {
	if len(t.Certificates) == 0 {
		e.addf(t.Line, "%s.certificates: at least one certificate is required", path)
	}
	for i, c := range t.Certificates {
		if c.Cert == "" || c.Key == "" {
			e.addf(c.Line, "%s.certificates[%d]: both cert and key are required", path, i)
		}
	}
	oneOf(e, t.At("min_version"), path+".min_version", t.MinVersion, "", "1.2", "1.3")
	oneOf(e, t.At("client_auth"), path+".client_auth", t.ClientAuth, "", "require", "request")
	if t.ClientAuth != "" && t.ClientCA == "" {
		e.addf(t.At("client_auth"), "%s.client_auth: needs client_ca", path)
	}
}

func validatePool(name string, p *Pool, e *Errors) {
	path := "pools." + name
	if p == nil {
		e.addf(0, "%s: empty pool", path)
		return
	}
	if len(p.Endpoints) == 0 {
		e.addf(p.Line, "%s.endpoints: at least one endpoint is required", path)
	}
	seen := map[string]bool{}
	for i, ep := range p.Endpoints {
		if seen[ep.Value] {
			e.addf(ep.Line, "%s.endpoints[%d]: duplicate endpoint %q", path, i, ep.Value)
		}
		seen[ep.Value] = true
	}
	if p.Retries < 0 {
		e.addf(p.At("retries"), "%s.retries: must not be negative", path)
	}
	if p.Pipeline < 0 || p.Pipeline > 64 || p.PipelineDepth < 0 || p.PipelineDepth > 1024 {
		e.addf(p.At("pipeline"), "%s: pipeline must be 0-64 and pipeline_depth 0-1024", path)
	}
	if p.MaxConnsPerEndpoint < 0 || p.MaxPending < 0 {
		e.addf(p.Line, "%s: max_conns_per_endpoint and max_pending must not be negative", path)
	}
	if p.PanicThreshold < 0 || p.PanicThreshold > 100 {
		e.addf(p.At("panic_threshold"), "%s.panic_threshold: a percentage 0-100, got %g", path, p.PanicThreshold)
	}
	if p.RetryBudget != nil && (*p.RetryBudget <= 0 || *p.RetryBudget > 100) {
		e.addf(p.At("retry_budget"), "%s.retry_budget: a percentage above 0 and at most 100, got %g (retries: 0 turns retries off)", path, *p.RetryBudget)
	}
	oneOf(e, p.At("proxy_protocol"), path+".proxy_protocol", p.ProxyProtocol, "", "v2")
	if hc := p.HealthCheck; hc != nil {
		if hc.Path != "" && hc.TCP {
			e.addf(hc.At("tcp"), "%s.health_check: path and tcp: true exclude each other", path)
		}
		if hc.Path != "" && !strings.HasPrefix(hc.Path, "/") {
			e.addf(hc.At("path"), "%s.health_check.path: must start with /, got %q", path, hc.Path)
		}
		if hc.Fall < 0 || hc.Rise < 0 {
			e.addf(hc.Line, "%s.health_check: fall and rise must not be negative", path)
		}
		if hc.ExpectStatus != 0 && (hc.ExpectStatus < 100 || hc.ExpectStatus > 599) {
			e.addf(hc.At("expect_status"), "%s.health_check.expect_status: not an HTTP status: %d", path, hc.ExpectStatus)
		}
		if hc.Timeout > 0 && hc.Interval > 0 && hc.Timeout > hc.Interval {
			e.addf(hc.At("timeout"), "%s.health_check.timeout: longer than the interval", path)
		}
	}
}

func validateJWT(name string, p *JWTPolicy, e *Errors) {
	path := "jwt." + name
	if p == nil {
		e.addf(0, "%s: empty policy", path)
		return
	}
	if len(p.Keys) == 0 {
		e.addf(p.Line, "%s.keys: at least one key source is required", path)
	}
	for i, k := range p.Keys {
		n := 0
		for _, s := range []string{k.JWKSURL, k.JWKSFile, k.PEMFile, k.HMACSecretFile} {
			if s != "" {
				n++
			}
		}
		if n != 1 {
			e.addf(k.Line, "%s.keys[%d]: set exactly one of jwks_url, jwks_file, pem_file, hmac_secret_file", path, i)
		}
		if k.Refresh != 0 && k.JWKSURL == "" {
			e.addf(k.At("refresh"), "%s.keys[%d].refresh: only for jwks_url", path, i)
		}
		if (k.PEMFile != "" || k.HMACSecretFile != "") && k.Alg == "" {
			e.addf(k.Line, "%s.keys[%d]: alg is required for pem_file and hmac_secret_file (a key is bound to one algorithm)", path, i)
		}
	}
	for _, claim := range sortedKeys(p.ForwardClaims) {
		header := p.ForwardClaims[claim]
		if claim == "" {
			e.addf(p.At("forward_claims"), "%s.forward_claims: a claim name is required (got \"\" -> %q)", path, header)
		}
		if !IsToken(header) {
			e.addf(p.At("forward_claims"), "%s.forward_claims.%s: %q is not a valid header name", path, claim, header)
		}
	}
}

func validateRateLimit(name string, rl *RateLimit, e *Errors) {
	path := "rate_limits." + name
	if rl.Key == "" {
		e.addf(rl.Line, "%s.key: required (client_ip, header:NAME, claim:NAME or route)", path)
	}
	if rl.Rate <= 0 {
		e.addf(rl.At("rate"), "%s.rate: must be positive", path)
	}
	if rl.Burst < 0 {
		e.addf(rl.At("burst"), "%s.burst: must not be negative", path)
	}
	oneOf(e, rl.At("store"), path+".store", rl.Store, "", "local", "redis")
	oneOf(e, rl.At("on_store_error"), path+".on_store_error", rl.OnStoreError, "", "allow", "deny")
	if rl.IPv6Prefix < 0 || rl.IPv6Prefix > 128 {
		e.addf(rl.At("ipv6_prefix"), "%s.ipv6_prefix: 0-128, got %d", path, rl.IPv6Prefix)
	}
	if rl.Lease != 0 && rl.Store != "redis" {
		e.addf(rl.At("lease"), "%s.lease: only for store: redis", path)
	}
}

func validateRoutes(f *File, listeners map[string]*Listener, e *Errors) {
	type key struct{ host, prefix string }
	seen := map[key]int{}
	names := map[string]int{}
	for i := range f.Routes {
		r := &f.Routes[i]
		path := fmt.Sprintf("routes[%d]", i)
		if r.Name != "" {
			if j, dup := names[r.Name]; dup {
				e.addf(r.At("name"), "%s.name: %q is already the name of routes[%d]", path, r.Name, j)
			}
			names[r.Name] = i
		}
		if !strings.HasPrefix(r.Prefix, "/") {
			e.addf(r.At("prefix"), "%s.prefix: must start with /, got %q", path, r.Prefix)
		}
		host := strings.ToLower(r.Host)
		if host == "" {
			host = "*"
		}
		k := key{host, r.Prefix}
		if j, dup := seen[k]; dup {
			e.addf(r.Line, "%s: duplicate of routes[%d] (host %q, prefix %q)", path, j, r.Host, r.Prefix)
		} else {
			seen[k] = i
		}
		if r.Pool == "" {
			e.addf(r.Line, "%s.pool: required", path)
		} else if f.Pools[r.Pool] == nil {
			e.addf(r.At("pool"), "%s.pool: unknown pool %q%s", path, r.Pool, known(f.Pools))
		}
		if r.JWT != "" && f.JWT[r.JWT] == nil {
			e.addf(r.At("jwt"), "%s.jwt: unknown jwt policy %q%s", path, r.JWT, known(f.JWT))
		}
		if len(r.Scopes) > 0 && r.JWT == "" {
			e.addf(r.At("scopes"), "%s.scopes: needs a jwt policy on the route", path)
		}
		for _, name := range r.RateLimit {
			rl := f.RateLimits[name]
			if rl == nil {
				e.addf(r.At("rate_limit"), "%s.rate_limit: unknown rate limit %q%s", path, name, known(f.RateLimits))
				continue
			}
			if strings.HasPrefix(rl.Key, "claim:") && r.JWT == "" {
				e.addf(r.At("rate_limit"), "%s.rate_limit: %q is keyed by a claim but the route has no jwt policy", path, name)
			}
		}
		for _, m := range r.Methods {
			if !IsToken(m) || strings.ToUpper(m) != m {
				e.addf(r.At("methods"), "%s.methods: %q is not an HTTP method (uppercase token)", path, m)
			}
		}
		for _, name := range r.Listeners {
			l := listeners[name]
			switch {
			case l == nil:
				e.addf(r.At("listeners"), "%s.listeners: unknown listener %q", path, name)
			case l.Pool != "":
				e.addf(r.At("listeners"), "%s.listeners: %q is a pure L4 listener", path, name)
			}
		}
		for _, c := range r.Compress {
			if c != "gzip" && c != "zstd" && c != "br" {
				e.addf(r.At("compress"), "%s.compress: unknown encoding %q (gzip, zstd, br)", path, c)
			}
		}
		if r.MaxBodyBytes < 0 {
			e.addf(r.At("max_body_bytes"), "%s.max_body_bytes: must not be negative", path)
		}
		checkHeaderOps(e, path+".request_headers", &r.RequestHeaders)
		checkHeaderOps(e, path+".response_headers", &r.ResponseHeaders)
		checkIPList(e, r.At("allow_ips"), path+".allow_ips", r.AllowIPs)
		checkIPList(e, r.At("deny_ips"), path+".deny_ips", r.DenyIPs)
	}
}

// checkHeaderOps checks that every header name added or removed is an
// RFC 9110 token.
func checkHeaderOps(e *Errors, path string, h *HeaderOps) {
	for _, name := range sortedKeys(h.Add) {
		if !IsToken(name) {
			e.addf(h.At("add"), "%s.add: %q is not a valid header name (an RFC 9110 token)", path, name)
		}
	}
	for i, name := range h.Remove {
		if !IsToken(name) {
			e.addf(h.At("remove"), "%s.remove[%d]: %q is not a valid header name (an RFC 9110 token)", path, i, name)
		}
	}
}

// checkIPList checks every entry of an allow_ips or deny_ips list, each at
// its own line (line is the list's, for entries without one).
func checkIPList(e *Errors, line int, path string, list []ListItem) {
	for i, it := range list {
		if it.bad {
			continue
		}
		if _, err := ParsePrefix(it.Value); err != nil {
			l := it.Line
			if l == 0 {
				l = line
			}
			e.addf(l, "%s[%d]: %v", path, i, err)
		}
	}
}

// Prefixes converts a validated allow_ips or deny_ips list; a bare address
// becomes a /32 or /128.
func Prefixes(list []ListItem) []netip.Prefix {
	var out []netip.Prefix
	for _, it := range list {
		if p, err := ParsePrefix(it.Value); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// ParsePrefix accepts a CIDR ("10.0.0.0/8") or a single address ("10.1.2.3").
func ParsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "%") {
		return netip.Prefix{}, fmt.Errorf("an IP zone is not allowed: %q", s)
	}
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("not a CIDR: %q", s)
		}
		// Client addresses are compared unmapped, so an IPv4-mapped
		// prefix (::ffff:10.0.0.0/104) is read as the IPv4 one it names.
		if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("not an IP or CIDR: %q", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()).Masked(), nil
}

// checkAddr reports whether s is a usable host:port listen or dial address.
func checkAddr(e *Errors, line int, path, s string) bool {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		e.addf(line, "%s: %q is not host:port", path, s)
		return false
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		e.addf(line, "%s: %q has a bad port", path, s)
		return false
	}
	if strings.ContainsAny(host, " /\\") {
		e.addf(line, "%s: %q has a bad host", path, s)
		return false
	}
	return true
}

func oneOf(e *Errors, line int, path, v string, allowed ...string) {
	for _, a := range allowed {
		if v == a {
			return
		}
	}
	var shown []string
	for _, a := range allowed {
		if a != "" {
			shown = append(shown, a)
		}
	}
	e.addf(line, "%s: %q is not one of %s", path, v, strings.Join(shown, ", "))
}

// IsToken reports whether s is an RFC 9110 token (header names, methods).
func IsToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			continue
		}
		if !strings.ContainsRune("!#$%&'*+-.^_`|~", rune(c)) {
			return false
		}
	}
	return true
}

func known[T any](m map[string]T) string {
	if len(m) == 0 {
		return " (none are defined)"
	}
	return " (defined: " + strings.Join(sortedKeys(m), ", ") + ")"
}

func sortedKeys[T any](m map[string]T) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
