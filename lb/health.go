package lb

import (
	"context"
	"net"
	"sync"
	"time"
)

// Checker runs one active health check of an endpoint: nil means it passed. Check must
// return when ctx is done (the pool gives each check a context with HealthCheck.Timeout).
// Implementations must be safe for concurrent use: a pool checks its endpoints in parallel.
// lb ships TCPChecker; the HTTP checker lives with the HTTP code.
type Checker interface {
	Check(ctx context.Context, e *Endpoint) error
}

// TCPChecker passes an endpoint that accepts a TCP connection. The zero value is ready to use.
type TCPChecker struct {
	// Dialer dials the endpoint; the zero value is net.Dialer's default.
	Dialer net.Dialer
}

// Check connects to e.Addr and closes the connection at once.
func (c TCPChecker) Check(ctx context.Context, e *Endpoint) error {
	conn, err := c.Dialer.DialContext(ctx, "tcp", e.Addr)
	if err != nil {
		return err
	}
	return conn.Close()
}

// maxParallelChecks bounds the goroutines one check round runs at once.
const maxParallelChecks = 64

// CheckAll runs one round of active health checks (all endpoints in parallel, each bounded by
// HealthCheck.Timeout) and records the results at now, as RecordCheck does. A nil c means a
// TCPChecker. Results are dropped if ctx is done, since a cancelled check says nothing about
// the endpoint. Start calls CheckAll every HealthCheck.Interval; tests call it on a fixed
// timeline with their own Checker.
func (p *Pool) CheckAll(ctx context.Context, c Checker, now time.Time) {
	if c == nil {
		c = TCPChecker{}
	}
	timeout := p.cfg.HealthCheck.Timeout
	if timeout <= 0 {
		timeout = time.Second
	}
	errs := make([]error, len(p.eps))
	sem := make(chan struct{}, maxParallelChecks)
	var wg sync.WaitGroup
	for i, e := range p.eps {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			cctx, cancel := context.WithTimeout(ctx, timeout)
			errs[i] = c.Check(cctx, e)
			cancel()
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		return
	}
	p.mu.Lock()
	var evs []Event
	for i, e := range p.eps {
		evs = p.recordLocked(e, errs[i], now, evs)
	}
	evs = p.refreshLocked(now, evs)
	p.mu.Unlock()
	p.emit(evs)
}

// RecordCheck records the result of one active check of e at now (err nil means it passed).
// The first result for an endpoint decides its state at once; after that, HealthCheck.Fall
// failures in a row take it out of rotation and HealthCheck.Rise passes in a row bring it back.
// Endpoints start in rotation, before any check. Active checks do not end a passive ejection.
func (p *Pool) RecordCheck(e *Endpoint, err error, now time.Time) {
	p.mu.Lock()
	evs := p.recordLocked(e, err, now, nil)
	evs = p.refreshLocked(now, evs)
	p.mu.Unlock()
	p.emit(evs)
}

func (p *Pool) recordLocked(e *Endpoint, err error, now time.Time, evs []Event) []Event {
	hc := &p.cfg.HealthCheck
	fall, rise := max(hc.Fall, 1), max(hc.Rise, 1)
	s := e.s
	s.mu.Lock()
	defer s.mu.Unlock()
	up := s.flags.Load()&flagUnhealthy == 0
	if err == nil {
		s.fails = 0
		s.passes++
		if !up && s.passes >= rise {
			s.flags.And(^flagUnhealthy)
			if s.flags.Load() == 0 {
				s.since = now
			}
			evs = append(evs, Event{Pool: p.name, Kind: EventHealthy, Endpoint: e, Time: now})
		}
	} else {
		s.passes = 0
		s.fails++
		if up && (!s.checked || s.fails >= fall) {
			s.flags.Or(flagUnhealthy)
			s.since = time.Time{}
			evs = append(evs, Event{Pool: p.name, Kind: EventUnhealthy, Endpoint: e, Time: now})
		}
	}
	s.checked = true
	return evs
}

// Tick applies the transitions that only time causes, at now: it ends ejections whose time is
// up, lets the ejection backoff decay (one halving per BaseEjection spent in rotation), starts
// the slow start of endpoints added by a reload, and advances slow-start ramps. Start calls it
// periodically; tests call it on a fixed timeline.
func (p *Pool) Tick(now time.Time) {
	base := p.cfg.Outlier.BaseEjection
	p.mu.Lock()
	var evs []Event
	for _, e := range p.eps {
		s := e.s
		s.mu.Lock()
		switch {
		case s.flags.Load()&flagEjected != 0:
			if !now.Before(s.ejectedUntil) {
				s.flags.And(^flagEjected)
				s.decayFrom = now
				if s.flags.Load() == 0 {
					s.since = now
				}
				evs = append(evs, Event{Pool: p.name, Kind: EventReturned, Endpoint: e, Time: now})
			}
		case s.ejections > 0 && now.Sub(s.decayFrom) >= base:
			s.ejections--
			s.decayFrom = now
		}
		if s.rampPending {
			s.rampPending = false
			s.since = now
		}
		s.mu.Unlock()
	}
	evs = p.refreshLocked(now, evs)
	p.mu.Unlock()
	p.emit(evs)
}

// Start runs the pool's background work until ctx is done or Close is called: active health
// checks with c every HealthCheck.Interval (a nil c means a TCPChecker; without an Interval
// no checks run), and Tick often enough for ejections to end and slow starts to ramp on time.
// Start returns at once; calling it again, or after Close, does nothing.
func (p *Pool) Start(ctx context.Context, c Checker) {
	p.life.Lock()
	defer p.life.Unlock()
	if p.started || p.closed {
		return
	}
	p.started = true
	ctx, p.cancel = context.WithCancel(ctx)
	p.done = make(chan struct{})
	go p.run(ctx, c)
}

// Close stops the background work Start began and waits for it to finish (at most one check
// timeout). The pool still serves Pick and Done, so requests in flight can complete.
func (p *Pool) Close() {
	p.life.Lock()
	defer p.life.Unlock()
	if p.closed {
		return
	}
	p.closed = true
	if p.cancel != nil {
		p.cancel()
		<-p.done
	}
}

// tickEvery is how often the background loop calls Tick.
func (p *Pool) tickEvery() time.Duration {
	d := time.Second
	if p.cfg.SlowStart > 0 {
		d = min(d, p.cfg.SlowStart/20)
	}
	if !p.cfg.Outlier.Disabled {
		d = min(d, p.cfg.Outlier.BaseEjection/10)
	}
	return max(d, 10*time.Millisecond)
}

func (p *Pool) run(ctx context.Context, c Checker) {
	defer close(p.done)
	hc := p.cfg.HealthCheck
	every := p.tickEvery()
	timer := time.NewTimer(0)
	defer timer.Stop()
	var nextCheck time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		now := time.Now()
		if hc.Enabled() && !now.Before(nextCheck) {
			nextCheck = now.Add(hc.Interval)
			p.CheckAll(ctx, c, now)
			now = time.Now()
		}
		p.Tick(now)
		wait := every
		if hc.Enabled() {
			wait = min(wait, max(0, nextCheck.Sub(now)))
		}
		timer.Reset(wait)
	}
}
