package l4

import "errors"

// Errors returned by ParseClientHello and ParseProxyHeader. They are sentinels
// without the offending bytes so that the parsers stay allocation-free on the
// accept path; callers branch on them with errors.Is.
var (
	// ErrNeedMore means the bytes seen so far are a valid prefix: read more and
	// call the parser again with everything accumulated.
	ErrNeedMore = errors.New("l4: need more bytes")
	// ErrNotTLS means the bytes do not start a TLS handshake record.
	ErrNotTLS = errors.New("l4: not a TLS handshake")
	// ErrBadHello means the bytes start a TLS handshake but break RFC 8446 framing.
	ErrBadHello = errors.New("l4: malformed TLS ClientHello")
	// ErrHelloTooLarge means the ClientHello declares more than MaxClientHelloLen bytes.
	ErrHelloTooLarge = errors.New("l4: TLS ClientHello too large")
)

// MaxClientHelloLen caps the ClientHello handshake message body. A hello with an
// X25519MLKEM768 key share is about 1.3 KB; 16 KiB leaves room for large
// extension sets while bounding what one connection can make the loop buffer.
const MaxClientHelloLen = 16 << 10

const (
	recordTypeHandshake   = 22      // RFC 8446 §5.1 ContentType.handshake
	handshakeClientHello  = 1       // RFC 8446 §4 HandshakeType.client_hello
	maxRecordPlaintext    = 1 << 14 // RFC 8446 §5.1: length MUST NOT exceed 2^14
	extServerName         = 0       // RFC 6066 §3
	extALPN               = 16      // RFC 7301 §3.1
	serverNameTypeHost    = 0       // RFC 6066 §3 NameType.host_name
	recordHeaderLen       = 5
	handshakeHeaderLen    = 4
	clientHelloFixedBytes = 2 + 32 // legacy_version + random
)

// ClientHello is what the edge needs from a TLS ClientHello (RFC 8446 §4.1.2):
// the SNI host name and the ALPN offer. Slices alias either the parsed data or
// the scratch buffer passed to ParseClientHello, so they are valid only until
// either is modified; copy what must outlive them.
type ClientHello struct {
	// ServerName is the host_name of the server_name extension (RFC 6066 §3),
	// nil when absent. It is passed through as sent (no case folding).
	ServerName []byte
	// ALPN is the body of the application_layer_protocol_negotiation
	// extension's ProtocolNameList (RFC 7301 §3.1) without its length prefix,
	// nil when absent. Walk it with NextALPN.
	ALPN []byte
	// Len is how many bytes of the input the ClientHello occupied, record
	// headers included.
	Len int
}

// ParseClientHello parses a TLS ClientHello from data, the first bytes a client
// sent, which may span several TLS records (RFC 8446 §5.1 allows a handshake
// message to be fragmented). When the message is fragmented it is reassembled
// into scratch, which is returned (grown if needed) for reuse; an unfragmented
// hello is parsed in place. It returns ErrNeedMore while data is an incomplete
// but valid prefix, ErrNotTLS when data does not start a handshake record,
// ErrHelloTooLarge past MaxClientHelloLen and ErrBadHello for broken framing.
// It does not allocate when scratch has room and is safe for concurrent use
// with distinct scratch buffers.
func ParseClientHello(scratch, data []byte) (ClientHello, []byte, error) {
	var h ClientHello
	if len(data) == 0 {
		return h, scratch, ErrNeedMore
	}
	if data[0] != recordTypeHandshake {
		return h, scratch, ErrNotTLS
	}
	if len(data) >= 2 && data[1] != 3 { // legacy_record_version is 0x03xx since SSL 3.0
		return h, scratch, ErrNotTLS
	}
	if len(data) < recordHeaderLen {
		return h, scratch, ErrNeedMore
	}
	recLen := int(data[3])<<8 | int(data[4])
	if recLen == 0 || recLen > maxRecordPlaintext {
		return h, scratch, ErrBadHello
	}
	// Reject a wrong message type or an oversized length as soon as the
	// handshake header is visible, so garbage is refused before it is buffered.
	if len(data) > recordHeaderLen && data[recordHeaderLen] != handshakeClientHello {
		return h, scratch, ErrBadHello
	}
	if len(data) < recordHeaderLen+handshakeHeaderLen || recLen < handshakeHeaderLen {
		// The handshake header itself may be split across records; that is
		// legal but so rare that it is handled by the general walk below.
		if recLen >= handshakeHeaderLen {
			return h, scratch, ErrNeedMore
		}
	} else {
		msgLen := int(data[6])<<16 | int(data[7])<<8 | int(data[8])
		if msgLen > MaxClientHelloLen {
			return h, scratch, ErrHelloTooLarge
		}
		if recLen >= handshakeHeaderLen+msgLen {
			// Whole records are consumed, as in the fragmented walk, so Len
			// never points past the bytes seen.
			if len(data) < recordHeaderLen+recLen {
				return h, scratch, ErrNeedMore
			}
			body := data[recordHeaderLen+handshakeHeaderLen : recordHeaderLen+handshakeHeaderLen+msgLen]
			if err := parseHelloBody(&h, body); err != nil {
				return ClientHello{}, scratch, err
			}
			h.Len = recordHeaderLen + recLen
			return h, scratch, nil
		}
	}
	return parseFragmentedHello(scratch, data)
}

// parseFragmentedHello walks the handshake records of data, reassembling the
// ClientHello message into scratch.
func parseFragmentedHello(scratch, data []byte) (ClientHello, []byte, error) {
	var h ClientHello
	msg := scratch[:0]
	need := -1 // handshake bytes wanted: header + body once the header is known
	off := 0
	for need < 0 || len(msg) < need {
		if off == len(data) {
			return h, msg, ErrNeedMore
		}
		if data[off] != recordTypeHandshake {
			// RFC 8446 §5.1: handshake messages MUST NOT be interleaved with other record types.
			return h, msg, ErrBadHello
		}
		if len(data)-off < recordHeaderLen {
			if len(data)-off >= 2 && data[off+1] != 3 {
				return h, msg, ErrBadHello
			}
			return h, msg, ErrNeedMore
		}
		if data[off+1] != 3 {
			return h, msg, ErrBadHello
		}
		recLen := int(data[off+3])<<8 | int(data[off+4])
		if recLen == 0 || recLen > maxRecordPlaintext {
			return h, msg, ErrBadHello
		}
		if len(data)-off-recordHeaderLen < recLen {
			return h, msg, ErrNeedMore
		}
		frag := data[off+recordHeaderLen : off+recordHeaderLen+recLen]
		off += recordHeaderLen + recLen
		if need >= 0 && len(frag) > need-len(msg) {
			frag = frag[:need-len(msg)]
		}
		msg = append(msg, frag...)
		if need < 0 && len(msg) >= handshakeHeaderLen {
			if msg[0] != handshakeClientHello {
				return h, msg, ErrBadHello
			}
			msgLen := int(msg[1])<<16 | int(msg[2])<<8 | int(msg[3])
			if msgLen > MaxClientHelloLen {
				return h, msg, ErrHelloTooLarge
			}
			need = handshakeHeaderLen + msgLen
			if len(msg) > need {
				msg = msg[:need]
			}
		}
	}
	if err := parseHelloBody(&h, msg[handshakeHeaderLen:]); err != nil {
		return ClientHello{}, msg, err
	}
	h.Len = off
	return h, msg, nil
}

// parseHelloBody parses the ClientHello structure of RFC 8446 §4.1.2 (which
// also covers the TLS 1.2 form of RFC 5246 §7.4.1.2, where extensions may be
// absent) and records the server_name and ALPN extensions.
func parseHelloBody(h *ClientHello, p []byte) error {
	if len(p) < clientHelloFixedBytes+1 {
		return ErrBadHello
	}
	p = p[clientHelloFixedBytes:]
	sidLen := int(p[0])
	if sidLen > 32 || len(p) < 1+sidLen+2 {
		return ErrBadHello
	}
	p = p[1+sidLen:]
	csLen := int(p[0])<<8 | int(p[1])
	if csLen < 2 || csLen%2 != 0 || len(p) < 2+csLen+1 {
		return ErrBadHello
	}
	p = p[2+csLen:]
	compLen := int(p[0])
	if compLen < 1 || len(p) < 1+compLen {
		return ErrBadHello
	}
	p = p[1+compLen:]
	if len(p) == 0 {
		return nil // no extensions: a TLS 1.2 (or older) hello without SNI or ALPN
	}
	if len(p) < 2 {
		return ErrBadHello
	}
	extLen := int(p[0])<<8 | int(p[1])
	p = p[2:]
	if extLen != len(p) {
		return ErrBadHello
	}
	var seenSNI, seenALPN bool
	for len(p) > 0 {
		if len(p) < 4 {
			return ErrBadHello
		}
		typ := int(p[0])<<8 | int(p[1])
		n := int(p[2])<<8 | int(p[3])
		if len(p) < 4+n {
			return ErrBadHello
		}
		body := p[4 : 4+n]
		p = p[4+n:]
		switch typ {
		case extServerName:
			// RFC 8446 §4.2: there MUST NOT be more than one extension of the same type.
			if seenSNI {
				return ErrBadHello
			}
			seenSNI = true
			name, err := parseServerName(body)
			if err != nil {
				return err
			}
			h.ServerName = name
		case extALPN:
			if seenALPN {
				return ErrBadHello
			}
			seenALPN = true
			list, err := parseALPN(body)
			if err != nil {
				return err
			}
			h.ALPN = list
		}
	}
	return nil
}

// parseServerName returns the host_name of a ServerNameList (RFC 6066 §3).
func parseServerName(b []byte) ([]byte, error) {
	if len(b) < 2 {
		return nil, ErrBadHello
	}
	n := int(b[0])<<8 | int(b[1])
	b = b[2:]
	if n != len(b) || n == 0 {
		return nil, ErrBadHello
	}
	var host []byte
	for len(b) > 0 {
		if len(b) < 3 {
			return nil, ErrBadHello
		}
		typ := b[0]
		l := int(b[1])<<8 | int(b[2])
		if l == 0 || len(b) < 3+l {
			return nil, ErrBadHello
		}
		if typ == serverNameTypeHost {
			// RFC 6066 §3: the list MUST NOT contain more than one name of the same name_type.
			if host != nil {
				return nil, ErrBadHello
			}
			host = b[3 : 3+l]
		}
		b = b[3+l:]
	}
	return host, nil
}

// parseALPN validates a ProtocolNameList (RFC 7301 §3.1) and returns its entries.
func parseALPN(b []byte) ([]byte, error) {
	if len(b) < 2 {
		return nil, ErrBadHello
	}
	n := int(b[0])<<8 | int(b[1])
	b = b[2:]
	if n != len(b) || n < 2 {
		return nil, ErrBadHello
	}
	for rest := b; len(rest) > 0; {
		l := int(rest[0])
		if l == 0 || len(rest) < 1+l {
			return nil, ErrBadHello // RFC 7301 §3.1: empty strings MUST NOT be included
		}
		rest = rest[1+l:]
	}
	return b, nil
}

// NextALPN splits the first protocol name off list, a ClientHello.ALPN value:
// for p, rest := NextALPN(h.ALPN); p != nil; p, rest = NextALPN(rest) { ... }.
// It returns nil when list is empty or truncated.
func NextALPN(list []byte) (proto, rest []byte) {
	if len(list) == 0 {
		return nil, nil
	}
	l := int(list[0])
	if l == 0 || len(list) < 1+l {
		return nil, nil
	}
	return list[1 : 1+l], list[1+l:]
}
