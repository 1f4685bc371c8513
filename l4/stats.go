package l4

import (
	"strconv"
	"sync/atomic"
)

// RejectReason says why l4 closed a connection before or instead of serving it.
type RejectReason uint8

const (
	RejectMaxConns         RejectReason = iota // over Config.MaxConns or ListenerConfig.MaxConns
	RejectMaxConnsPerIP                        // over ListenerConfig.MaxConnsPerIP
	RejectHandshakeTimeout                     // no complete first head / ClientHello / PROXY header in time
	RejectProxyUntrusted                       // PROXY header from a peer outside TrustedProxies
	RejectProxyMalformed                       // trusted peer sent no valid PROXY header
	RejectNotTLS                               // TLS listener got something else
	RejectBadHello                             // malformed ClientHello
	RejectHelloTooLarge                        // ClientHello over MaxClientHelloLen
	RejectNoTerminate                          // TLS listener without Terminate got a non-pass-through SNI
	RejectNoPool                               // relay pool unknown to the PoolSource
	RejectNoUpstream                           // every relay dial failed
	RejectBacklog                              // hand-off channel and its overflow were full
	RejectShutdown                             // arrived while the server was stopping
	RejectHandoffFailed                        // duplicating the descriptor failed
	NumRejectReasons
)

var rejectNames = [NumRejectReasons]string{
	"max_conns", "max_conns_per_ip", "handshake_timeout", "proxy_untrusted", "proxy_malformed",
	"not_tls", "bad_client_hello", "client_hello_too_large", "no_terminate", "no_pool",
	"no_upstream", "handoff_backlog", "shutdown", "handoff_failed",
}

// String returns the reason as a metric label value ("max_conns_per_ip").
func (r RejectReason) String() string {
	if r < NumRejectReasons {
		return rejectNames[r]
	}
	return "reason(" + strconv.Itoa(int(r)) + ")"
}

// ListenerStats is a snapshot of one listener's counters.
type ListenerStats struct {
	Name string
	Kind Kind
	// Active is the number of open connections: being classified, delivered
	// to L7 and not yet closed, or relaying (edge_l4_connections_active).
	Active int64
	// Accepted counts every accepted socket, rejected ones included.
	Accepted uint64
	// Rejected counts connections l4 closed, by reason.
	Rejected [NumRejectReasons]uint64
	// Delivered counts connections handed to L7 through Listener.
	Delivered uint64
	// Relays is the number of relays in progress; RelaysTotal counts them all.
	Relays      int64
	RelaysTotal uint64
	// RelayBytesIn is client-to-upstream bytes, RelayBytesOut upstream-to-client.
	// They advance at least every MiB of a long transfer.
	RelayBytesIn, RelayBytesOut uint64
	// RelayIdleClosed counts relays closed by IdleTimeout.
	RelayIdleClosed uint64
	// HandoffSpilled counts deliveries that found the hand-off channel full
	// and waited in a goroutine.
	HandoffSpilled uint64
	// EngineRestarts counts gnet engines that stopped on an accept error
	// (such as EMFILE) and were started again.
	EngineRestarts uint64
}

// counters are a listener's live statistics; every field is atomic.
type counters struct {
	active, relays                 atomic.Int64
	accepted, delivered, relaysAll atomic.Uint64
	rejected                       [NumRejectReasons]atomic.Uint64
	bytesIn, bytesOut              atomic.Uint64
	idleClosed, spilled            atomic.Uint64
	engineRestarts                 atomic.Uint64
}

func (c *counters) snapshot(dst *ListenerStats) {
	dst.Active = c.active.Load()
	dst.Accepted = c.accepted.Load()
	for i := range c.rejected {
		dst.Rejected[i] = c.rejected[i].Load()
	}
	dst.Delivered = c.delivered.Load()
	dst.Relays = c.relays.Load()
	dst.RelaysTotal = c.relaysAll.Load()
	dst.RelayBytesIn = c.bytesIn.Load()
	dst.RelayBytesOut = c.bytesOut.Load()
	dst.RelayIdleClosed = c.idleClosed.Load()
	dst.HandoffSpilled = c.spilled.Load()
	dst.EngineRestarts = c.engineRestarts.Load()
}
