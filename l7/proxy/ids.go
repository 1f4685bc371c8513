package proxy

import (
	"crypto/rand"
	"encoding/binary"
	"sync/atomic"
)

// maxRequestIDLen is the longest incoming X-Request-ID kept (contract: 1-128
// characters of [A-Za-z0-9._-]).
const maxRequestIDLen = 128

// ValidRequestID reports whether an incoming X-Request-ID may be kept.
func ValidRequestID(id []byte) bool {
	if len(id) == 0 || len(id) > maxRequestIDLen {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// idSource makes request IDs and trace IDs: a random 64-bit prefix per
// process mixed with a counter, so IDs are unique across restarts and
// replicas without a syscall per request. Safe for concurrent use.
type idSource struct {
	seed [2]uint64
	ctr  atomic.Uint64
}

func newIDSource() *idSource {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("proxy: crypto/rand failed: " + err.Error())
	}
	s := &idSource{seed: [2]uint64{binary.LittleEndian.Uint64(b[:8]), binary.LittleEndian.Uint64(b[8:])}}
	return s
}

// next returns 128 bits that are unique per call and look random (the
// counter goes through a bijective mixer, so consecutive IDs share no
// visible structure, which W3C trace IDs ask for).
func (s *idSource) next() (hi, lo uint64) {
	n := s.ctr.Add(1)
	return mix64(n ^ s.seed[0]), mix64(n + s.seed[1])
}

// mix64 is the SplitMix64 finalizer, a bijection on uint64.
func mix64(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

const hexDigits = "0123456789abcdef"

func appendHex64(dst []byte, v uint64) []byte {
	var b [16]byte
	for i := 15; i >= 0; i-- {
		b[i] = hexDigits[v&0xf]
		v >>= 4
	}
	return append(dst, b[:]...)
}

// appendRequestID appends a new 32-hex-digit request ID.
func (s *idSource) appendRequestID(dst []byte) []byte {
	hi, lo := s.next()
	return appendHex64(appendHex64(dst, hi), lo)
}

// ValidTraceparent reports whether v is a W3C traceparent this proxy passes
// through unchanged: version 00 in the exact 55-byte form, or a later version
// whose first 55 bytes have that form (W3C Trace Context §3.2: parse what
// version 00 defines and ignore the rest). Trace and parent IDs must not be
// all zeros; version ff is invalid.
func ValidTraceparent(v []byte) bool {
	if len(v) < 55 || (len(v) > 55 && (v[55] != '-' || v[0] == '0' && v[1] == '0')) {
		return false
	}
	if v[2] != '-' || v[35] != '-' || v[52] != '-' {
		return false
	}
	if !lowerHex(v[0:2]) || (v[0] == 'f' && v[1] == 'f') {
		return false
	}
	if !lowerHex(v[3:35]) || allZero(v[3:35]) || !lowerHex(v[36:52]) || allZero(v[36:52]) || !lowerHex(v[53:55]) {
		return false
	}
	return true
}

func lowerHex(b []byte) bool {
	for _, c := range b {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != '0' {
			return false
		}
	}
	return true
}

// appendTraceparent appends a new version-00 traceparent with a fresh trace
// ID and parent ID, flagged sampled (01) so that the services behind the edge
// record the trace the edge started.
func (s *idSource) appendTraceparent(dst []byte) []byte {
	hi, lo := s.next()
	span, _ := s.next()
	dst = append(dst, "00-"...)
	dst = appendHex64(appendHex64(dst, hi), lo)
	dst = append(dst, '-')
	dst = appendHex64(dst, span|1) // never all zeros
	return append(dst, "-01"...)
}
