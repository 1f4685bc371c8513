package lb

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ErrBadEndpoint is wrapped by every error ParseEndpoint and NewPool return for a malformed endpoint.
var ErrBadEndpoint = errors.New("lb: bad endpoint")

// EndpointConfig describes one endpoint of a pool as configured.
// The zero value is not a usable endpoint: Addr is required.
type EndpointConfig struct {
	// Name is the endpoint's identity for consistent hashing and for carrying health state across
	// reloads, for example a pod name. "" means Addr, so a plain host:port hashes on its address.
	Name string
	// Addr is the dial address, host:port.
	Addr string
	// Weight is the endpoint's relative share of traffic, at most MaxWeight. 0 means 1.
	Weight int
}

// MaxWeight is the largest endpoint weight.
const MaxWeight = 1_000_000

// ParseEndpoint parses "host:port" or "name=host:port" (the name gives the endpoint a stable
// identity, so a pod that comes back on a new IP keeps its consistent-hash keys).
// The port must be numeric; an IPv6 host must be bracketed ("[::1]:80"). Weight is left 0 (meaning 1).
func ParseEndpoint(s string) (EndpointConfig, error) {
	var ec EndpointConfig
	addr := s
	if i := strings.IndexByte(s, '='); i >= 0 {
		ec.Name, addr = s[:i], s[i+1:]
		if ec.Name == "" {
			return EndpointConfig{}, fmt.Errorf("%w %q: empty name before '='", ErrBadEndpoint, s)
		}
		if !validName(ec.Name) {
			return EndpointConfig{}, fmt.Errorf("%w %q: name contains a space, '=' or control character", ErrBadEndpoint, s)
		}
	}
	if err := checkAddr(addr); err != nil {
		return EndpointConfig{}, fmt.Errorf("%w %q: %s", ErrBadEndpoint, s, err)
	}
	ec.Addr = addr
	return ec, nil
}

// validName reports whether an endpoint name is printable and free of spaces and '='
// (so that "name=addr" always parses back).
func validName(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == 0x7f || c == '=' {
			return false
		}
	}
	return true
}

// checkAddr validates a dial address: a numeric port and an IP or DNS host name.
func checkAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return errors.New(strings.TrimPrefix(err.Error(), "address "+addr+": "))
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || n == 0 || port[0] == '+' {
		return fmt.Errorf("port %q is not a number in 1-65535", port)
	}
	if host == "" {
		return errors.New("missing host")
	}
	if addr[0] == '[' {
		// Brackets are for IPv6 literals only (RFC 3986 section 3.2.2).
		if ip, err := netip.ParseAddr(host); err != nil || !ip.Is6() {
			return fmt.Errorf("host %q is not an IPv6 address", host)
		}
		return nil
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return nil
	}
	if !validHostname(host) {
		return fmt.Errorf("host %q is not an IP address or DNS name", host)
	}
	return nil
}

// validHostname accepts DNS names made of letters, digits, '-', '_' and '.' (RFC 1123 labels,
// plus '_' which service records and some clusters use), with no empty label.
func validHostname(h string) bool {
	if len(h) > 253 {
		return false
	}
	label := 0
	for i := 0; i < len(h); i++ {
		c := h[i]
		switch {
		case c == '.':
			if label == 0 {
				return false
			}
			label = 0
			continue
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_':
		default:
			return false
		}
		label++
		if label > 63 {
			return false
		}
	}
	return true
}

// Endpoint is one member of a Pool. Its exported fields are set by NewPool and never change;
// its state (health, in-flight count) is updated atomically and is safe to read from any goroutine.
type Endpoint struct {
	// Name is the identity used for hashing (the configured name, or Addr when none was given).
	Name string
	// Addr is the dial address, host:port.
	Addr string
	// Weight is the configured weight, at least 1.
	Weight int
	// Index is the endpoint's position in Pool.Endpoints().
	Index int

	s *state
}

// Healthy reports whether the endpoint is in rotation: not failed by active health checks and
// not ejected by passive outlier detection. A pool in panic mode uses unhealthy endpoints too.
func (e *Endpoint) Healthy() bool { return e.s.flags.Load() == 0 }

// Ejected reports whether passive outlier detection has taken the endpoint out of rotation.
func (e *Endpoint) Ejected() bool { return e.s.flags.Load()&flagEjected != 0 }

// InFlight returns the number of requests picked for the endpoint and not yet Done,
// counted across pool generations that share the endpoint.
func (e *Endpoint) InFlight() int64 { return e.s.inFlight.Load() }

// String returns the endpoint as "name=addr", or addr when the name is the address.
func (e *Endpoint) String() string {
	if e.Name == e.Addr {
		return e.Addr
	}
	return e.Name + "=" + e.Addr
}

const (
	flagUnhealthy uint32 = 1 << iota // failed active health checks
	flagEjected                      // ejected by passive outlier detection
)

// state is the mutable part of an endpoint. NewPool hands it on to the endpoint of the next
// pool generation with the same Name and Addr, so health, ejection backoff and in-flight
// counts survive a reload.
//
// Every Pick reads flags and writes inFlight, so the two live on separate cache lines (and
// away from neighbouring allocations): a core bumping one endpoint's count does not evict
// the line other cores read the health flags from.
type state struct {
	_         [64]byte
	flags     atomic.Uint32 // flagUnhealthy | flagEjected; 0 means in rotation
	connFails atomic.Int32  // consecutive ConnectFailure outcomes
	failures  atomic.Int32  // consecutive outcomes of any failing kind
	_         [52]byte
	inFlight  atomic.Int64
	_         [56]byte

	mu           sync.Mutex // guards the fields below; taken after Pool.mu
	checked      bool       // an active check result has been recorded
	passes       int        // consecutive passing active checks
	fails        int        // consecutive failing active checks
	ejections    int        // backoff level: the next ejection lasts base << ejections
	ejectedUntil time.Time
	decayFrom    time.Time // when the backoff level last changed or the last ejection ended
	since        time.Time // when the endpoint last came into rotation (slow start); zero = not ramping
	rampPending  bool      // added by a reload: slow start begins at the next Tick
}
