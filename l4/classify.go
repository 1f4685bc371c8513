package l4

import (
	"errors"
	"net/netip"
)

// verdict is what classify decided about a connection's first bytes.
type verdict uint8

const (
	needMore verdict = iota // keep reading (until the handshake deadline)
	deliver                 // hand to L7 through the listener's channel
	relay                   // relay raw to fb.pool
	reject                  // close; fb.reason says why
)

// maxAccumulated bounds what one connection may make l4 buffer before it is
// classified: a PROXY v2 header plus a ClientHello fragmented into records as
// small as 64 bytes. (1-byte records would need 6x; no real client does that,
// and refusing them bounds memory per trickling connection.)
const maxAccumulated = 16 + MaxProxyV2Len + MaxClientHelloLen + (MaxClientHelloLen/64+1)*recordHeaderLen

// firstBytes is the classification state of one connection. It is owned by
// whoever reads the connection: its event loop, or its goroutine under
// accept=go.
type firstBytes struct {
	set        *settings
	l          *listener
	peer       netip.AddrPort // the TCP peer
	client     netip.AddrPort // the declared client (PROXY) or peer
	dest       netip.AddrPort // the declared destination (PROXY), else invalid
	proxied    bool           // a PROXY header with addresses was accepted
	wantProxy  bool           // trusted peer on a PROXY listener: header required
	checkProxy bool           // untrusted peer on a PROXY listener: header refused
	skip       int            // PROXY header bytes to drop
	scanned    int            // HTTP head bytes already searched
	slot       slot           // counts held (per-IP taken late for PROXY peers)

	// Results.
	reason   RejectReason
	sni      []byte // aliases the data or the scratch passed to classify
	alpn     []byte // idem
	pool     RelayPool
	poolName string
}

func (fb *firstBytes) init(l *listener, set *settings, peer netip.AddrPort, s slot) {
	*fb = firstBytes{set: set, l: l, peer: peer, client: peer, slot: s}
	if set.ProxyProtocol {
		if set.trusts(peer.Addr()) {
			fb.wantProxy = true
		} else {
			fb.checkProxy = true
		}
	}
}

// limit is how many bytes may accumulate before the connection is refused.
func (fb *firstBytes) limit() int {
	return max(maxAccumulated, 16+MaxProxyV2Len+fb.set.MaxHeadBytes+1)
}

func (fb *firstBytes) fail(r RejectReason) verdict {
	fb.reason = r
	return reject
}

// classify looks at data, everything the connection has sent so far, and
// decides. scratch is reassembly space for fragmented ClientHellos; the
// (possibly grown) buffer is stored back. It never blocks and does not
// allocate except when growing scratch.
func (fb *firstBytes) classify(data []byte, scratch *[]byte) verdict {
	set := fb.set
	if fb.wantProxy {
		h, err := ParseProxyHeader(data)
		switch {
		case errors.Is(err, ErrNeedMore):
			return needMore
		case err != nil:
			return fb.fail(RejectProxyMalformed)
		}
		fb.wantProxy = false
		fb.skip = h.Len
		if !h.Local {
			fb.client, fb.dest, fb.proxied = h.Source, h.Destination, true
		}
		// The per-IP limit applies to the real client, known only now.
		if r, ok := fb.slot.takeIP(set, fb.client.Addr()); !ok {
			return fb.fail(r)
		}
	}
	data = data[min(fb.skip, len(data)):]
	if fb.checkProxy && set.Kind != KindRelay {
		switch _, err := ParseProxyHeader(data); {
		case errors.Is(err, ErrNeedMore):
			return needMore
		case !errors.Is(err, ErrNotProxy):
			return fb.fail(RejectProxyUntrusted)
		}
		fb.checkProxy = false
	}
	switch set.Kind {
	case KindHTTP:
		return fb.classifyHTTP(data)
	case KindTLS:
		h, s, err := ParseClientHello(*scratch, data)
		*scratch = s
		switch {
		case errors.Is(err, ErrNeedMore):
			return needMore
		case errors.Is(err, ErrNotTLS):
			return fb.fail(RejectNotTLS)
		case errors.Is(err, ErrHelloTooLarge):
			return fb.fail(RejectHelloTooLarge)
		case err != nil:
			return fb.fail(RejectBadHello)
		}
		fb.sni, fb.alpn = h.ServerName, h.ALPN
		if len(set.passthrough) > 0 && len(h.ServerName) > 0 && len(h.ServerName) <= 253 {
			var lower [253]byte
			name := lower[:len(h.ServerName)]
			for i, c := range h.ServerName {
				if 'A' <= c && c <= 'Z' {
					c += 'a' - 'A'
				}
				name[i] = c
			}
			if pool, ok := set.passthrough[string(name)]; ok {
				return fb.relayTo(pool)
			}
		}
		if set.Terminate == nil {
			return fb.fail(RejectNoTerminate)
		}
		return deliver
	default: // KindRelay
		if fb.pool == nil {
			if v := fb.relayTo(set.Pool); v == reject {
				return v
			}
		}
		if fb.pool.RelayPolicy().HashOn == HashSNI {
			// The key is in the ClientHello; anything that is not one
			// falls back to the client address rather than being refused.
			h, s, err := ParseClientHello(*scratch, data)
			*scratch = s
			if errors.Is(err, ErrNeedMore) {
				return needMore
			}
			if err == nil {
				fb.sni, fb.alpn = h.ServerName, h.ALPN
			}
		}
		return relay
	}
}

// relayTo resolves a pool name against the current PoolSource.
func (fb *firstBytes) relayTo(name string) verdict {
	ps := fb.l.srv.poolSource()
	if ps == nil {
		return fb.fail(RejectNoPool)
	}
	p, ok := ps.RelayPool(name)
	if !ok {
		return fb.fail(RejectNoPool)
	}
	fb.pool, fb.poolName = p, name
	return relay
}

// classifyHTTP waits for the end of the first request head (RFC 9112 §2.1:
// the header section ends with an empty line; a bare LF is tolerated as in
// §2.2), or for MaxHeadBytes, or for a first byte that cannot start a request
// line, and then delivers: L7 answers whatever it is.
func (fb *firstBytes) classifyHTTP(data []byte) verdict {
	if len(data) == 0 {
		return needMore
	}
	if c := data[0]; c < 'A' || c > 'Z' {
		return deliver // not a method token (RFC 9110 §9: methods are case-sensitive, registered ones upper case)
	}
	i := max(fb.scanned-2, 0)
	for ; i < len(data); i++ {
		if data[i] != '\n' {
			continue
		}
		if i+1 < len(data) && data[i+1] == '\n' {
			return deliver
		}
		if i+2 < len(data) && data[i+1] == '\r' && data[i+2] == '\n' {
			return deliver
		}
	}
	fb.scanned = len(data)
	if len(data) >= fb.set.MaxHeadBytes {
		return deliver
	}
	return needMore
}
