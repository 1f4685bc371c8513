package main

import (
	"errors"
	"net"
	"time"

	"example.com/edge/l4"
	"example.com/edge/lb"
)

// relayPools adapts a plan's lb pools to l4's PoolSource, so L4 relays get
// the same Maglev hashing, health state and passive ejection as HTTP.
func relayPools(p *plan) l4.PoolSource {
	src := relaySource{}
	for name, pool := range p.pools {
		pc := p.file.Pools[name]
		pol := l4.RelayPolicy{ConnectTimeout: pc.ConnectTimeout.D(), ProxyProtocolV2: pc.ProxyProtocol == "v2"}
		if pool.HashOn().Kind == lb.HashSNI {
			pol.HashOn = l4.HashSNI
		}
		src[name] = &relayPool{pool: pool, policy: pol}
	}
	return src
}

type relaySource map[string]*relayPool

func (s relaySource) RelayPool(name string) (l4.RelayPool, bool) {
	p, ok := s[name]
	return p, ok
}

type relayPool struct {
	pool   *lb.Pool
	policy l4.RelayPolicy
}

// relayPick is one endpoint handed to a relay, with the connection's
// attempt history (lb.Tried) so a failed dial moves on to the next endpoint.
type relayPick struct {
	ep    *lb.Endpoint
	tried *lb.Tried
}

func (r *relayPick) Address() string { return r.ep.Addr }

func (p *relayPool) RelayPolicy() l4.RelayPolicy { return p.policy }

func (p *relayPool) PickRelay(key []byte, tried []l4.RelayEndpoint) (l4.RelayEndpoint, error) {
	t := new(lb.Tried)
	if n := len(tried); n > 0 {
		if last, ok := tried[n-1].(*relayPick); ok {
			t = last.tried
		}
	}
	ep, err := p.pool.Pick(lb.Hash(key), t)
	if err != nil {
		return nil, err
	}
	if t.Attempts() > 1 && len(tried) > 0 && allTried(tried, ep) {
		// Pick fell back to an endpoint this connection already failed on.
		p.pool.Done(ep, lb.Canceled, time.Now())
		return nil, errors.New("edge: every endpoint of the pool failed")
	}
	return &relayPick{ep: ep, tried: t}, nil
}

func allTried(tried []l4.RelayEndpoint, ep *lb.Endpoint) bool {
	for _, t := range tried {
		if rp, ok := t.(*relayPick); ok && rp.ep == ep {
			return true
		}
	}
	return false
}

func (p *relayPool) RelayDone(ep l4.RelayEndpoint, err error, now time.Time) {
	rp, ok := ep.(*relayPick)
	if !ok {
		return
	}
	outcome := lb.Success
	var op *net.OpError
	if err != nil && errors.As(err, &op) && op.Op == "dial" {
		outcome = lb.ConnectFailure
	}
	p.pool.Done(rp.ep, outcome, now)
}
