package jwt

// algID identifies a JWS algorithm (RFC 7518 §3.1, RFC 8037 §3.1, RFC 9864 §2.2,
// RFC 9964). "none" has no ID: it can never be configured or accepted.
type algID uint8

const (
	algUnknown algID = iota
	algHS256
	algHS384
	algHS512
	algRS256
	algRS384
	algRS512
	algPS256
	algPS384
	algPS512
	algES256
	algES384
	algES512
	algEdDSA   // RFC 8037: Ed25519 or Ed448 chosen by the key's crv
	algEd25519 // RFC 9864 fully-specified
	algEd448   // RFC 9864 fully-specified
	algMLDSA44 // RFC 9964
	algMLDSA65
	algMLDSA87
	numAlgs
)

// algSet is a bit set of algIDs.
type algSet uint32

func (s algSet) has(a algID) bool { return a != algUnknown && s&(1<<a) != 0 }

func setOf(algs ...algID) algSet {
	var s algSet
	for _, a := range algs {
		s |= 1 << a
	}
	return s
}

// algByName maps a case-sensitive "alg" value to its ID without allocating.
func algByName(b []byte) algID {
	switch string(b) {
	case "HS256":
		return algHS256
	case "HS384":
		return algHS384
	case "HS512":
		return algHS512
	case "RS256":
		return algRS256
	case "RS384":
		return algRS384
	case "RS512":
		return algRS512
	case "PS256":
		return algPS256
	case "PS384":
		return algPS384
	case "PS512":
		return algPS512
	case "ES256":
		return algES256
	case "ES384":
		return algES384
	case "ES512":
		return algES512
	case "EdDSA":
		return algEdDSA
	case "Ed25519":
		return algEd25519
	case "Ed448":
		return algEd448
	case "ML-DSA-44":
		return algMLDSA44
	case "ML-DSA-65":
		return algMLDSA65
	case "ML-DSA-87":
		return algMLDSA87
	}
	return algUnknown
}

func (a algID) String() string {
	switch a {
	case algHS256:
		return "HS256"
	case algHS384:
		return "HS384"
	case algHS512:
		return "HS512"
	case algRS256:
		return "RS256"
	case algRS384:
		return "RS384"
	case algRS512:
		return "RS512"
	case algPS256:
		return "PS256"
	case algPS384:
		return "PS384"
	case algPS512:
		return "PS512"
	case algES256:
		return "ES256"
	case algES384:
		return "ES384"
	case algES512:
		return "ES512"
	case algEdDSA:
		return "EdDSA"
	case algEd25519:
		return "Ed25519"
	case algEd448:
		return "Ed448"
	case algMLDSA44:
		return "ML-DSA-44"
	case algMLDSA65:
		return "ML-DSA-65"
	case algMLDSA87:
		return "ML-DSA-87"
	}
	return "unknown"
}

// Algorithms lists every algorithm name this package verifies, in a stable order.
func Algorithms() []string {
	names := make([]string, 0, numAlgs-1)
	for a := algHS256; a < numAlgs; a++ {
		names = append(names, a.String())
	}
	return names
}

func (a algID) isHMAC() bool { return a >= algHS256 && a <= algHS512 }

// cacheable reports whether verifying a the slow way costs enough that the
// verified-token cache pays off: everything but HMAC, which is cheaper than a lookup.
func (a algID) cacheable() bool { return a >= algRS256 }

// String lists the set's algorithm names, for messages.
func (s algSet) String() string {
	out := ""
	for a := algHS256; a < numAlgs; a++ {
		if s.has(a) {
			if out != "" {
				out += "+"
			}
			out += a.String()
		}
	}
	return out
}
