package tlsterm

import (
	"crypto/tls"
	"fmt"
	"strings"
)

// VersionName returns the metric label for a TLS protocol version: "tls1.0",
// "tls1.1", "tls1.2", "tls1.3", or "unknown". The result is a constant string,
// so calling it per handshake allocates nothing. It is safe for concurrent use.
func VersionName(v uint16) string {
	switch v {
	case tls.VersionTLS13:
		return "tls1.3"
	case tls.VersionTLS12:
		return "tls1.2"
	case tls.VersionTLS11:
		return "tls1.1"
	case tls.VersionTLS10:
		return "tls1.0"
	}
	return "unknown"
}

// GroupName returns the metric label for a key exchange group: the lowercase
// IANA TLS Supported Groups name ("x25519mlkem768", "x25519", "secp256r1", ...),
// "none" for 0 (no (EC)DHE key exchange: TLS 1.2 RSA key exchange, which Go
// leaves disabled by default), or "unknown". The result is a constant string, so calling
// it per handshake allocates nothing. It is safe for concurrent use.
func GroupName(id tls.CurveID) string {
	switch id {
	case tls.X25519MLKEM768:
		return "x25519mlkem768"
	case tls.SecP256r1MLKEM768:
		return "secp256r1mlkem768"
	case tls.SecP384r1MLKEM1024:
		return "secp384r1mlkem1024"
	case tls.X25519:
		return "x25519"
	case tls.CurveP256:
		return "secp256r1"
	case tls.CurveP384:
		return "secp384r1"
	case tls.CurveP521:
		return "secp521r1"
	case 0:
		return "none"
	}
	return "unknown"
}

// knownGroups lists every group GroupName names, in Go's default preference order.
var knownGroups = [...]tls.CurveID{
	tls.X25519MLKEM768, tls.SecP256r1MLKEM768, tls.SecP384r1MLKEM1024,
	tls.X25519, tls.CurveP256, tls.CurveP384, tls.CurveP521,
}

// ParseVersion parses a configured TLS version: "1.0" to "1.3", optionally
// prefixed by "tls" or "TLS" (with or without "v"), as in the contract's
// `min_version: "1.2"`.
func ParseVersion(s string) (uint16, error) {
	v := strings.ToLower(s)
	v = strings.TrimPrefix(v, "tls")
	v = strings.TrimPrefix(v, "v")
	switch v {
	case "1.0":
		return tls.VersionTLS10, nil
	case "1.1":
		return tls.VersionTLS11, nil
	case "1.2":
		return tls.VersionTLS12, nil
	case "1.3":
		return tls.VersionTLS13, nil
	}
	return 0, fmt.Errorf("tlsterm: unknown tls version %q (want 1.0, 1.1, 1.2 or 1.3)", s)
}

// ParseGroup parses a configured key exchange group, case-insensitively: the
// GroupName label ("x25519mlkem768", "secp256r1"), Go's CurveID name
// ("X25519MLKEM768", "CurveP256"), or the short "p256", "p384", "p521".
func ParseGroup(s string) (tls.CurveID, error) {
	for _, id := range knownGroups {
		if strings.EqualFold(s, GroupName(id)) || strings.EqualFold(s, id.String()) {
			return id, nil
		}
	}
	switch strings.ToLower(s) {
	case "p256", "p-256":
		return tls.CurveP256, nil
	case "p384", "p-384":
		return tls.CurveP384, nil
	case "p521", "p-521":
		return tls.CurveP521, nil
	}
	return 0, fmt.Errorf("tlsterm: unknown key exchange group %q", s)
}
