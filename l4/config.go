package l4

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Kind says what a listener does with a connection once its first bytes are known.
type Kind uint8

const (
	// KindHTTP delivers plaintext connections to Server.Listener once the
	// first request head has arrived (or enough bytes to tell it never will).
	KindHTTP Kind = iota
	// KindTLS reads the ClientHello: an SNI listed in Passthrough is relayed
	// raw to that pool; any other is wrapped with Terminate and delivered to
	// Server.Listener.
	KindTLS
	// KindRelay relays every connection raw to the listener's Pool.
	KindRelay
)

func (k Kind) String() string {
	switch k {
	case KindHTTP:
		return "http"
	case KindTLS:
		return "tls"
	case KindRelay:
		return "relay"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// AcceptMode selects how listening sockets are accepted.
type AcceptMode string

const (
	// AcceptGnet accepts on gnet event loops, classifies the first bytes in
	// the loop and hands connections to Go by duplicating their descriptor.
	// It is the default (the empty string means the same).
	AcceptGnet AcceptMode = "gnet"
	// AcceptGo accepts with net.Listen. HTTP listeners (and TLS listeners
	// without pass-through) without PROXY protocol are served straight from
	// the net.Listener, as a plain fasthttp server would be: no first bytes
	// are read, so HandshakeTimeout is left to L7's read timeout and
	// ConnInfo carries no SNI or ALPN. Other listeners classify in a
	// goroutine per connection, whose reads carry the handshake deadline.
	// It is the escape hatch that keeps the gnet hand-off cost measurable.
	AcceptGo AcceptMode = "go"
)

// HashOn says what a relay pool's consistent hash is computed over.
type HashOn uint8

const (
	// HashClientIP hashes the client address (the PROXY-declared one when
	// PROXY protocol was accepted), in its textual form ("203.0.113.7").
	HashClientIP HashOn = iota
	// HashSNI hashes the lower-cased TLS server name. Connections without
	// one (not TLS, or no SNI) fall back to the client address.
	HashSNI
)

// RelayPolicy is how connections to a relay pool are keyed and framed.
type RelayPolicy struct {
	// HashOn selects the consistent-hash key.
	HashOn HashOn
	// ProxyProtocolV2 writes a PROXY protocol v2 header carrying the client
	// and the address it connected to before any relayed byte.
	ProxyProtocolV2 bool
	// ConnectTimeout bounds each dial; zero means Config.DialTimeout.
	ConnectTimeout time.Duration
}

// RelayEndpoint is one upstream handed out by a RelayPool.
type RelayEndpoint interface {
	// Address is the host:port to dial.
	Address() string
}

// RelayPool picks upstream endpoints for raw TCP relays. Implementations must
// be safe for concurrent use; they are called from relay goroutines, never
// from an event loop. The lead implements it over lb's Maglev pools.
type RelayPool interface {
	// RelayPolicy returns the pool's relay settings. It is called once per
	// connection.
	RelayPolicy() RelayPolicy
	// PickRelay returns the endpoint for a connection whose hash key is key
	// (see HashOn), never one in tried, which lists the endpoints this
	// connection already failed to dial, in order. Attempt 0 (tried empty)
	// should be the consistent-hash owner of key and later attempts the next
	// distinct endpoints, so a failing endpoint moves only its own keys. It
	// returns an error when no endpoint is left. key is only valid during
	// the call.
	PickRelay(key []byte, tried []RelayEndpoint) (RelayEndpoint, error)
	// RelayDone reports the end of one use of ep: a failed dial (err is the
	// dial error) or a finished relay (err is nil or what broke it).
	RelayDone(ep RelayEndpoint, err error, now time.Time)
}

// PoolSource resolves relay pool names. The lead swaps it on reload with
// Server.SetPools; implementations must be safe for concurrent use.
type PoolSource interface {
	RelayPool(name string) (RelayPool, bool)
}

// Defaults applied to zero-valued configuration fields.
const (
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultRelayIdleTimeout = time.Hour
	DefaultDialTimeout      = 5 * time.Second
	DefaultMaxHeadBytes     = 16 << 10
	DefaultHandoffQueue     = 1024
)

// ListenerConfig describes one listening address. The zero value (apart from
// Name and Address, which are required) is a plaintext HTTP listener without
// limits.
type ListenerConfig struct {
	// Name identifies the listener in Listener, Stats and logs.
	Name string
	// Address is the host:port to listen on ("0.0.0.0:443", "127.0.0.1:0").
	Address string
	// Kind is what the listener does with connections.
	Kind Kind
	// Terminate wraps a classified connection in TLS (KindTLS only); the
	// lead sets it to tlsterm's server. It must not block: the handshake
	// belongs in the wrapped conn's first Read, on the L7 goroutine.
	Terminate func(net.Conn) net.Conn
	// Passthrough maps an SNI host name (matched case-insensitively) to the
	// relay pool its connections go to untouched (KindTLS only).
	Passthrough map[string]string
	// Pool is the relay pool of a KindRelay listener.
	Pool string
	// ProxyProtocol accepts a PROXY protocol v1 or v2 header from peers in
	// TrustedProxies. From them the header is required (the specification
	// forbids guessing); from anyone else a header is refused. (A relay
	// listener starts relaying an untrusted peer at once, without reading,
	// so there such a header reaches the upstream as payload, after the
	// edge's own PROXY v2 header when the pool sends one.)
	ProxyProtocol bool
	// TrustedProxies are the peers whose PROXY protocol headers are believed.
	TrustedProxies []netip.Prefix
	// MaxConns caps this listener's open connections; 0 is unlimited.
	MaxConns int
	// MaxConnsPerIP caps open connections per client address (the declared
	// one for PROXY connections); 0 is unlimited.
	MaxConnsPerIP int
	// HandshakeTimeout is how long a connection may take to send its first
	// request head or ClientHello (and PROXY header); 0 means 10s.
	HandshakeTimeout time.Duration
	// IdleTimeout closes a relay with no data in either direction for that
	// long; 0 means one hour, a negative value disables it.
	IdleTimeout time.Duration
	// MaxHeadBytes is how much of a first HTTP request head is waited for
	// before delivering anyway (L7 then applies its own limit); 0 means 16 KiB.
	MaxHeadBytes int
	// Loop, for a KindHTTP listener accepted on gnet, serves its connections
	// on the event loops (see LoopServer) instead of delivering them to
	// Listener; connections the LoopServer hands off still arrive there.
	// Ignored under accept=go.
	Loop LoopServer
}

// Config configures a Server. The zero value is a server with no listeners.
type Config struct {
	// Listeners are the addresses to serve.
	Listeners []ListenerConfig
	// Accept selects gnet (default) or Go accept.
	Accept AcceptMode
	// EventLoops is the number of gnet event loops per listener; 0 means GOMAXPROCS.
	EventLoops int
	// ReusePort sets SO_REUSEPORT and gives each event loop its own listening
	// socket. It needs fixed ports.
	ReusePort bool
	// Pools resolves relay pool names; it may be replaced with SetPools.
	Pools PoolSource
	// DialTimeout bounds relay dials whose pool sets no ConnectTimeout; 0 means 5s.
	DialTimeout time.Duration
	// MaxConns caps open connections over all listeners; 0 is unlimited.
	MaxConns int
	// HandoffQueue is the capacity of each HTTP/TLS listener's hand-off
	// channel, and also the most connections that may wait in goroutines when
	// it is full (beyond that they are closed); 0 means 1024.
	HandoffQueue int
	// Logf receives operational messages; nil discards them.
	Logf func(format string, args ...any)
}

// ErrConfig is wrapped by every configuration error New and UpdateListener return.
var ErrConfig = errors.New("l4: invalid configuration")

// settings is the immutable, validated form of a ListenerConfig that
// connections read; UpdateListener swaps it atomically.
type settings struct {
	ListenerConfig
	passthrough map[string]string // lower-cased keys
}

func (s *settings) trusts(ip netip.Addr) bool {
	for _, p := range s.TrustedProxies {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// needsGoClassify reports whether accept=go must read the first bytes itself
// (rather than hand the net.Conn straight to L7).
func (s *settings) needsGoClassify() bool {
	return s.ProxyProtocol || s.Kind == KindRelay || (s.Kind == KindTLS && len(s.passthrough) > 0)
}

func configErr(i int, name, format string, args ...any) error {
	return fmt.Errorf("%w: listeners[%d] (%q): %s", ErrConfig, i, name, fmt.Sprintf(format, args...))
}

// newSettings validates lc (the i-th listener) and applies defaults.
func newSettings(i int, lc ListenerConfig, pools PoolSource, reusePort bool) (*settings, error) {
	if lc.Name == "" {
		return nil, configErr(i, lc.Name, "empty name")
	}
	host, port, err := net.SplitHostPort(lc.Address)
	if err != nil {
		return nil, configErr(i, lc.Name, "address %q: %v", lc.Address, err)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return nil, configErr(i, lc.Name, "address %q: bad port", lc.Address)
	}
	if host != "" {
		if _, err := netip.ParseAddr(host); err != nil {
			return nil, configErr(i, lc.Name, "address %q: host must be an IP address", lc.Address)
		}
	}
	if reusePort && p == 0 {
		return nil, configErr(i, lc.Name, "address %q: reuse_port needs a fixed port", lc.Address)
	}
	if lc.MaxConns < 0 || lc.MaxConnsPerIP < 0 || lc.HandshakeTimeout < 0 || lc.MaxHeadBytes < 0 {
		return nil, configErr(i, lc.Name, "negative limit")
	}
	s := &settings{ListenerConfig: lc}
	if s.HandshakeTimeout == 0 {
		s.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if s.IdleTimeout == 0 {
		s.IdleTimeout = DefaultRelayIdleTimeout
	}
	if s.MaxHeadBytes == 0 {
		s.MaxHeadBytes = DefaultMaxHeadBytes
	}
	checkPool := func(what, name string) error {
		if name == "" {
			return configErr(i, lc.Name, "%s: empty pool name", what)
		}
		if pools != nil {
			if _, ok := pools.RelayPool(name); !ok {
				return configErr(i, lc.Name, "%s: unknown pool %q", what, name)
			}
		}
		return nil
	}
	switch lc.Kind {
	case KindHTTP:
		if lc.Terminate != nil || len(lc.Passthrough) > 0 || lc.Pool != "" {
			return nil, configErr(i, lc.Name, "an http listener takes no terminate, passthrough or pool")
		}
	case KindTLS:
		if lc.Loop != nil {
			return nil, configErr(i, lc.Name, "only an http listener can be served on the loop")
		}
		if lc.Pool != "" {
			return nil, configErr(i, lc.Name, "a tls listener takes no pool (use passthrough)")
		}
		if lc.Terminate == nil && len(lc.Passthrough) == 0 {
			return nil, configErr(i, lc.Name, "a tls listener needs terminate or passthrough")
		}
		s.passthrough = make(map[string]string, len(lc.Passthrough))
		for sni, pool := range lc.Passthrough {
			if sni == "" {
				return nil, configErr(i, lc.Name, "passthrough: empty sni")
			}
			if err := checkPool("passthrough "+strconv.Quote(sni), pool); err != nil {
				return nil, err
			}
			s.passthrough[strings.ToLower(sni)] = pool
		}
	case KindRelay:
		if lc.Loop != nil {
			return nil, configErr(i, lc.Name, "only an http listener can be served on the loop")
		}
		if lc.Terminate != nil || len(lc.Passthrough) > 0 {
			return nil, configErr(i, lc.Name, "a relay listener takes no terminate or passthrough")
		}
		if err := checkPool("pool", lc.Pool); err != nil {
			return nil, err
		}
	default:
		return nil, configErr(i, lc.Name, "unknown kind %d", lc.Kind)
	}
	return s, nil
}
