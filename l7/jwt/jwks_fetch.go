package jwt

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Background fetching of jwks_url key sets. This file is the only one that does I/O;
// the request path only reads the snapshot it publishes and, on an unknown kid, pokes the
// fetcher through a non-blocking channel send.

// LogLevel is the severity of a line given to Config.Logf, in log/slog's
// numbering (slog.Level(l) converts it).
type LogLevel int

// The severities of Config.Logf lines.
const (
	// LevelInfo: progress, such as a JWKS URL fetched and its keys published.
	LevelInfo LogLevel = 0
	// LevelWarn: a failed JWKS fetch (the keys held stay in use), a key
	// skipped or not usable under the policy's algorithms.
	LevelWarn LogLevel = 4
)

// Severity returns the level of the Config.Logf line with arguments args:
// every line about a failure or a skipped key carries its error as an
// argument, so a line with an error among its arguments is LevelWarn and
// the others are LevelInfo.
func Severity(args ...any) LogLevel {
	for _, a := range args {
		if _, ok := a.(error); ok {
			return LevelWarn
		}
	}
	return LevelInfo
}

// maxJWKSBytes bounds a JWKS response body.
const maxJWKSBytes = 1 << 20

// jwksSource is one jwks_url. keys is guarded by Policy.mu; the loop goroutine owns the
// rest except the atomics.
type jwksSource struct {
	url     string
	alg     algID
	refresh time.Duration
	keys    []*key
	fetched atomic.Bool   // some fetch has succeeded (or keys were inherited)
	kick    chan struct{} // capacity 1: a pending "refetch soon" request
	// lastKick is the UnixNano of the last accepted kick, for the kid-miss rate limit.
	lastKick atomic.Int64
}

// source returns p's source for url and alg, for Config.Previous; nil-safe.
func (p *Policy) source(url string, alg algID) *jwksSource {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range p.sources {
		if s.url == url && s.alg == alg && s.fetched.Load() {
			// Copy under the lock: the caller must not share key objects, whose retired
			// flags belong to the old policy's snapshots.
			return &jwksSource{url: s.url, alg: s.alg, keys: cloneKeys(s.keys)}
		}
	}
	return nil
}

func (s *jwksSource) inherit(prev *jwksSource) {
	s.keys = prev.keys
	s.fetched.Store(true)
}

func cloneKeys(keys []*key) []*key {
	out := make([]*key, len(keys))
	for i, k := range keys {
		c := &key{
			kid: k.kid, algs: k.algs, source: k.source, fingerprint: k.fingerprint,
			hmac: k.hmac, rsa: k.rsa, pss: k.pss, ecdsa: k.ecdsa, ecSize: k.ecSize,
			ed25519: k.ed25519, ed448: k.ed448, mldsa44: k.mldsa44, mldsa65: k.mldsa65, mldsa87: k.mldsa87,
		}
		out[i] = c
	}
	return out
}

// kickRefresh asks every JWKS source to refetch soon, at most once per MinRefresh. It
// never blocks or allocates.
func (p *Policy) kickRefresh(now time.Time) {
	t := now.UnixNano()
	for _, s := range p.sources {
		last := s.lastKick.Load()
		if t-last < int64(p.minRefresh) || !s.lastKick.CompareAndSwap(last, t) {
			continue
		}
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
}

// Start launches one goroutine per JWKS URL that fetches it immediately and then on its
// schedule, until ctx is done or Close is called. Calling Start again does nothing.
func (p *Policy) Start(ctx context.Context) {
	p.lifeMu.Lock()
	defer p.lifeMu.Unlock()
	if p.started {
		return
	}
	p.started = true
	ctx, p.cancel = context.WithCancel(ctx)
	for _, s := range p.sources {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.runSource(ctx, s)
		}()
	}
}

// Close stops the JWKS goroutines and waits for them. The policy keeps verifying with
// the keys it has. Safe to call more than once.
func (p *Policy) Close() {
	p.lifeMu.Lock()
	cancel := p.cancel
	p.lifeMu.Unlock()
	if cancel != nil {
		cancel()
	}
	p.wg.Wait()
}

// JWKSReady reports whether every JWKS URL of the policy has been fetched at least once
// (true when it has none).
func (p *Policy) JWKSReady() bool {
	return !p.keys.Load().pending
}

// FetchJWKS fetches every JWKS URL once, now, and publishes what it gets; failures keep
// the previous keys and are returned joined. Start's loop does the same in the
// background; FetchJWKS serves start-up (to avoid 503s before the first fetch) and tests.
func (p *Policy) FetchJWKS(ctx context.Context) error {
	var errs []error
	for _, s := range p.sources {
		if _, err := p.refreshSource(ctx, s, time.Now()); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (p *Policy) runSource(ctx context.Context, s *jwksSource) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	next := time.Now()
	var lastAttempt time.Time
	failures := 0
	for {
		timer.Reset(time.Until(next))
		select {
		case <-ctx.Done():
			return
		case <-s.kick:
			// An unknown kid: fetch as soon as MinRefresh since the last attempt allows.
			if earliest := lastAttempt.Add(p.minRefresh); earliest.Before(next) {
				next = earliest
			}
			continue
		case <-timer.C:
		}
		lastAttempt = time.Now()
		maxAge, err := p.refreshSource(ctx, s, lastAttempt)
		if err != nil {
			failures++
		} else {
			failures = 0
		}
		next = lastAttempt.Add(nextFetchDelay(err == nil, maxAge, failures, s.refresh, p.minRefresh))
	}
}

// nextFetchDelay is the fetch schedule. After a success: the configured refresh, or the
// response's max-age when that is shorter (maxAge < 0 means none given), though a
// max-age never brings the next fetch closer than minRefresh. After failures: 1s
// doubling per consecutive failure, capped at refresh, so a JWKS that has never loaded
// is retried quickly.
func nextFetchDelay(ok bool, maxAge time.Duration, failures int, refresh, minRefresh time.Duration) time.Duration {
	if !ok {
		d := time.Second << min(failures-1, 20)
		return min(d, refresh)
	}
	if maxAge >= 0 && maxAge < refresh {
		return min(refresh, max(maxAge, minRefresh))
	}
	return refresh
}

// refreshSource fetches s once and publishes its keys. It returns the Cache-Control
// max-age (-1 if none).
func (p *Policy) refreshSource(ctx context.Context, s *jwksSource, now time.Time) (time.Duration, error) {
	body, maxAge, err := fetchJWKS(ctx, p.client, s.url)
	if err != nil {
		err = fmt.Errorf("jwt: policy %q: jwks_url %s: %w", p.name, s.url, err)
		p.logf("%v (keeping %d keys)", err, p.sourceKeyCount(s))
		return -1, err
	}
	keys, skipped, err := parseJWKS(body, s.alg, false, "jwks_url "+s.url)
	for _, e := range skipped {
		p.logf("jwt: policy %q: skipped key: %v", p.name, e)
	}
	if err == nil && len(keys) == 0 {
		err = fmt.Errorf("jwks_url %s: no usable keys", s.url)
	}
	if err == nil {
		for _, k := range keys {
			if k.algs&p.allowed == 0 {
				p.logf("jwt: policy %q: %v", p.name, fmt.Errorf("jwks_url %s: key %q is bound to %v, not in algorithms", s.url, k.kid, k.algs))
			}
		}
	}
	if err != nil {
		err = fmt.Errorf("jwt: policy %q: %w", p.name, err)
		p.logf("%v (keeping %d keys)", err, p.sourceKeyCount(s))
		return -1, err
	}
	p.mu.Lock()
	old := make(map[[32]byte]*key, len(s.keys))
	for _, k := range s.keys {
		old[k.fingerprint] = k
	}
	for i, k := range keys {
		if prev := old[k.fingerprint]; prev != nil {
			keys[i] = prev // unchanged key keeps its identity and cache entries
		}
	}
	s.keys = keys
	s.fetched.Store(true)
	p.rebuildLocked()
	p.mu.Unlock()
	p.logf("jwt: policy %q: jwks_url %s: %d keys at %s", p.name, s.url, len(keys), now.UTC().Format(time.RFC3339))
	return maxAge, nil
}

func (p *Policy) sourceKeyCount(s *jwksSource) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(s.keys)
}

func fetchJWKS(ctx context.Context, client *http.Client, url string) ([]byte, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, -1, err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, -1, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxJWKSBytes))
		return nil, -1, fmt.Errorf("status %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, -1, err
	}
	if len(body) > maxJWKSBytes {
		return nil, -1, fmt.Errorf("body over %d bytes", maxJWKSBytes)
	}
	return body, cacheControlMaxAge(resp.Header.Values("Cache-Control")), nil
}

// cacheControlMaxAge returns the freshness lifetime a response allows (RFC 9111 §5.2.2):
// max-age, or 0 for no-store and no-cache, or -1 when none is given.
func cacheControlMaxAge(values []string) time.Duration {
	age := time.Duration(-1)
	for _, v := range values {
		for _, d := range strings.Split(v, ",") {
			d = strings.ToLower(strings.TrimSpace(d))
			name, arg, _ := strings.Cut(d, "=")
			switch strings.TrimSpace(name) {
			case "no-store", "no-cache":
				return 0
			case "max-age":
				n, err := strconv.ParseInt(strings.Trim(strings.TrimSpace(arg), `"`), 10, 64)
				if err == nil && n >= 0 {
					age = time.Duration(min(n, int64(365*24*3600))) * time.Second
				}
			}
		}
	}
	return age
}
