package lb

import (
	"errors"
	"fmt"
	"time"
)

// Policy is a pool's balancing policy.
type Policy string

// The balancing policies. The zero Policy means RoundRobin.
const (
	// RoundRobin is smooth weighted round robin (nginx's algorithm): over every sum-of-weights
	// picks each endpoint gets exactly its weight, spread out rather than in bursts.
	RoundRobin Policy = "round_robin"
	// LeastRequest is the power of two choices: two endpoints sampled by weight, the one with
	// fewer requests in flight (relative to weight) wins.
	LeastRequest Policy = "least_request"
	// Random picks an endpoint at random, in proportion to weight.
	Random Policy = "random"
	// ConsistentHash maps the request's hash to an endpoint with a Maglev table built over the
	// endpoint names, optionally with bounded loads (Config.HashBalanceFactor).
	ConsistentHash Policy = "consistent_hash"
)

// ErrUnknownPolicy is wrapped by ParsePolicy's and Config.Validate's error for an unknown balance.
var ErrUnknownPolicy = errors.New("lb: unknown balance")

// ParsePolicy parses a balance setting; "" means RoundRobin.
func ParsePolicy(s string) (Policy, error) {
	switch p := Policy(s); p {
	case "":
		return RoundRobin, nil
	case RoundRobin, LeastRequest, Random, ConsistentHash:
		return p, nil
	}
	return "", fmt.Errorf("%w %q", ErrUnknownPolicy, s)
}

// HealthCheck configures active health checks. The zero value disables them.
type HealthCheck struct {
	// Interval between two checks of an endpoint. 0 disables active checks.
	Interval time.Duration
	// Timeout of one check. 0 means the smaller of Interval and 1s.
	Timeout time.Duration
	// Fall is how many consecutive failed checks take a healthy endpoint out of rotation. 0 means 3.
	Fall int
	// Rise is how many consecutive passed checks bring an unhealthy endpoint back. 0 means 2.
	Rise int
}

// Enabled reports whether active checks run.
func (h HealthCheck) Enabled() bool { return h.Interval > 0 }

// OutlierDetection configures passive outlier ejection from request outcomes reported to
// Pool.Done. The zero value enables it with the defaults below; set Disabled to turn it off.
type OutlierDetection struct {
	// Disabled turns passive ejection off.
	Disabled bool
	// ConsecutiveConnectFailures ejects an endpoint after this many ConnectFailure outcomes
	// in a row. 0 means 3; negative never ejects for connect failures alone.
	ConsecutiveConnectFailures int
	// Consecutive5xx ejects an endpoint after this many failing outcomes in a row of any kind
	// (Failure5xx, Timeout, Reset, ConnectFailure). 0 means 5; negative turns this rule off.
	Consecutive5xx int
	// BaseEjection is how long the first ejection lasts; each further ejection doubles it,
	// up to MaxEjection, and every BaseEjection spent in rotation halves it back. 0 means 30s.
	BaseEjection time.Duration
	// MaxEjection caps one ejection. 0 means 300s.
	MaxEjection time.Duration
	// MaxEjectedPercent caps the share of endpoints ejected at once (at least one may always
	// be ejected), so a shared failure cannot empty the pool. 0 means 50; 100 lifts the cap.
	MaxEjectedPercent int
}

// Config configures a Pool. The zero value (with at least one endpoint) is round robin with
// no active health checks, default passive outlier detection, fail-open only when no endpoint
// is healthy, no connection limits and no retries. Every default is documented on its field.
type Config struct {
	// Endpoints are the pool's members. At least one is required; names must be unique.
	Endpoints []EndpointConfig
	// Balance is the policy; "" means RoundRobin.
	Balance Policy
	// HashOn says what callers hash for ConsistentHash (see Hash). Pick only sees the hash;
	// the field is carried here so one Config describes the pool. Zero means client_ip.
	HashOn HashOn
	// HashBalanceFactor enables bounded loads for ConsistentHash (Mirrokni, Thorup, Zadimoghaddam,
	// "Consistent Hashing with Bounded Loads", 2016): no endpoint takes a request that would put it
	// above factor times the average in-flight count; such a key goes to the next endpoint of its
	// Maglev probe sequence. 0 disables; otherwise it must be at least 1 (1.25 is typical).
	HashBalanceFactor float64
	// HealthCheck configures active checks; the zero value disables them.
	HealthCheck HealthCheck
	// Outlier configures passive ejection; the zero value enables it with defaults.
	Outlier OutlierDetection
	// PanicThreshold is the healthy fraction below which the pool fails open and balances over
	// every endpoint, healthy or not, rather than overload the few left (as Envoy's
	// healthy_panic_threshold). 0 means fail open only when no endpoint is healthy (a pool that
	// would otherwise answer every request with 503); a value in (0, 1] is a fraction, so 0.5 is
	// Envoy's default; negative never fails open.
	PanicThreshold float64
	// MaxConnsPerEndpoint caps the requests in flight to one endpoint (the connections of an
	// HTTP/1.1 upstream); a full endpoint is skipped, and Pick returns ErrOverloaded when every
	// candidate is full. 0 means no limit.
	MaxConnsPerEndpoint int
	// MaxPending caps the requests in flight to the whole pool; Pick returns ErrOverloaded above
	// it, so a hanging pool answers fast instead of queueing without bound. 0 means no limit.
	MaxPending int
	// SlowStart ramps an endpoint's weight linearly from 10% to 100% over this window after it
	// comes (back) into rotation: recovered by health checks, returned from ejection, or added
	// by a reload. It applies to RoundRobin, LeastRequest and Random. 0 disables.
	SlowStart time.Duration
	// Retries is how many times a caller may retry a request on another endpoint. 0 means none.
	Retries int
	// RetryBudget caps retries at this fraction of first attempts, with a burst of 10 retries
	// banked while traffic is clean. 0 means 0.2 (20% extra load at most); negative means no budget.
	RetryBudget float64
	// OnEvent, if set, is called for every health transition (endpoint healthy/unhealthy,
	// ejected/returned, pool entering or leaving panic mode), so callers can log and export
	// metrics. It is called without locks held, from the goroutine that caused the change
	// (the health-check loop, Tick, or a request goroutine calling Done), and must not block.
	OnEvent func(Event)
}

// Validate reports the first problem with c, or nil. NewPool calls it.
func (c *Config) Validate() error {
	if len(c.Endpoints) == 0 {
		return errors.New("lb: no endpoints")
	}
	if len(c.Endpoints) > MaxEndpoints {
		return fmt.Errorf("lb: %d endpoints, more than %d", len(c.Endpoints), MaxEndpoints)
	}
	seen := make(map[string]int, len(c.Endpoints))
	for i, ec := range c.Endpoints {
		if ec.Name != "" && !validName(ec.Name) {
			return fmt.Errorf("%w %q: endpoints[%d]: name contains a space, '=' or control character", ErrBadEndpoint, ec.Name, i)
		}
		if err := checkAddr(ec.Addr); err != nil {
			return fmt.Errorf("%w %q: endpoints[%d]: %s", ErrBadEndpoint, ec.Addr, i, err)
		}
		if ec.Weight < 0 || ec.Weight > MaxWeight {
			return fmt.Errorf("%w %q: endpoints[%d]: weight %d outside 0-%d", ErrBadEndpoint, ec.Addr, i, ec.Weight, MaxWeight)
		}
		name := ec.Name
		if name == "" {
			name = ec.Addr
		}
		if j, dup := seen[name]; dup {
			return fmt.Errorf("%w %q: endpoints[%d] and endpoints[%d] have the same name", ErrBadEndpoint, name, j, i)
		}
		seen[name] = i
	}
	if _, err := ParsePolicy(string(c.Balance)); err != nil {
		return err
	}
	if f := c.HashBalanceFactor; f != 0 && !(f >= 1) {
		return fmt.Errorf("lb: hash_balance_factor %v: want 0 (off) or at least 1", f)
	}
	if c.HashOn.Kind > HashClaim || (c.HashOn.Kind >= HashHeader) != (c.HashOn.Name != "") {
		return fmt.Errorf("%w %q", ErrBadHashOn, c.HashOn.String())
	}
	hc := c.HealthCheck
	if hc.Interval < 0 || hc.Timeout < 0 || hc.Fall < 0 || hc.Rise < 0 {
		return fmt.Errorf("lb: health_check %+v: negative value", hc)
	}
	od := c.Outlier
	if od.BaseEjection < 0 || od.MaxEjection < 0 || od.MaxEjectedPercent < 0 || od.MaxEjectedPercent > 100 {
		return fmt.Errorf("lb: outlier detection %+v: negative duration or percent outside 0-100", od)
	}
	if c.PanicThreshold > 1 {
		return fmt.Errorf("lb: panic_threshold %v: above 1", c.PanicThreshold)
	}
	if c.MaxConnsPerEndpoint < 0 || c.MaxPending < 0 || c.SlowStart < 0 || c.Retries < 0 {
		return errors.New("lb: max_conns_per_endpoint, max_pending, slow_start and retries must not be negative")
	}
	return nil
}

// withDefaults returns c with every zero default filled in (Config documents them).
func (c Config) withDefaults() Config {
	if c.Balance == "" {
		c.Balance = RoundRobin
	}
	eps := make([]EndpointConfig, len(c.Endpoints))
	for i, ec := range c.Endpoints {
		if ec.Name == "" {
			ec.Name = ec.Addr
		}
		if ec.Weight == 0 {
			ec.Weight = 1
		}
		eps[i] = ec
	}
	c.Endpoints = eps
	hc := &c.HealthCheck
	if hc.Timeout == 0 && hc.Enabled() {
		hc.Timeout = min(hc.Interval, time.Second)
	}
	if hc.Fall == 0 {
		hc.Fall = 3
	}
	if hc.Rise == 0 {
		hc.Rise = 2
	}
	od := &c.Outlier
	if od.ConsecutiveConnectFailures == 0 {
		od.ConsecutiveConnectFailures = 3
	}
	if od.Consecutive5xx == 0 {
		od.Consecutive5xx = 5
	}
	if od.BaseEjection == 0 {
		od.BaseEjection = 30 * time.Second
	}
	if od.MaxEjection == 0 {
		od.MaxEjection = 300 * time.Second
	}
	od.MaxEjection = max(od.MaxEjection, od.BaseEjection)
	if od.MaxEjectedPercent == 0 {
		od.MaxEjectedPercent = 50
	}
	if c.RetryBudget == 0 {
		c.RetryBudget = 0.2
	}
	return c
}
