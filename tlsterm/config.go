package tlsterm

import (
	"crypto/tls"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Defaults that a zero Config field stands for.
const (
	// DefaultMinVersion is the lowest TLS version served unless MinVersion says otherwise.
	DefaultMinVersion = tls.VersionTLS12
	// DefaultTicketKeyRotation is how long a generated session ticket key encrypts new tickets.
	DefaultTicketKeyRotation = time.Hour
	// DefaultTicketKeyLifetime is how long a generated session ticket key still decrypts tickets.
	DefaultTicketKeyLifetime = 24 * time.Hour
	// DefaultWatchInterval is how often Watch polls the files when given no interval.
	DefaultWatchInterval = time.Second
)

// ALPN is the only application protocol offered (RFC 7301): edge's L7 engine
// speaks HTTP/1.1. Clients that send no ALPN extension are served too; a client
// offering only other protocols (say h2 alone) is refused with the
// no_application_protocol alert, as RFC 7301 section 3.2 requires.
const ALPN = "http/1.1"

// ErrNoCertificates is New's error (or one of its joined errors, see
// errors.Is) for a Config without certificates.
var ErrNoCertificates = errors.New("tlsterm: no certificates configured")

// Certificate is one certificate chain (leaf first) and its private key, each
// PEM-encoded, from a file or given inline. Files are re-read by Reload and
// Watch; inline PEM (as edge demo's generated certificate) never changes.
type Certificate struct {
	CertFile string // PEM certificate chain, leaf first
	KeyFile  string // PEM private key (PKCS #1, PKCS #8 or SEC 1), unencrypted

	CertPEM []byte // used instead of CertFile; set one of the two
	KeyPEM  []byte // used instead of KeyFile; set one of the two
}

// Config configures a Terminator. Its zero value is not enough on its own
// (a listener needs a certificate: New returns ErrNoCertificates), but every
// other zero field means the safe default stated beside it: TLS 1.2 and 1.3,
// Go's default key exchange groups with X25519MLKEM768 first, ALPN http/1.1,
// no client certificates, and session tickets whose generated keys rotate
// every hour and decrypt for a day.
//
// A Config is copied by New; changing it afterwards has no effect.
type Config struct {
	// Certificates are chosen by SNI: the one naming the server name exactly
	// (a DNS SAN), else one with a matching wildcard ("*.example.com" covers
	// one label), else the first. At least one is required.
	Certificates []Certificate

	// MinVersion is the lowest TLS version accepted; 0 means TLS 1.2.
	// TLS 1.3 is always the highest.
	MinVersion uint16

	// CurvePreferences are the key exchange groups in preference order. nil
	// keeps Go's defaults (Go 1.26: X25519MLKEM768, SecP256r1MLKEM768,
	// SecP384r1MLKEM1024, X25519, P-256, P-384, P-521), which follow Go's
	// post-quantum choices; set it only to narrow them on purpose.
	CurvePreferences []tls.CurveID

	// ClientCAFile is a PEM bundle of the CAs client certificates must chain
	// to (mTLS). Empty means no client certificates are asked for.
	ClientCAFile string

	// ClientAuth is the client certificate policy when ClientCAFile is set:
	// 0 (tls.NoClientCert) means tls.RequireAndVerifyClientCert, and
	// tls.VerifyClientCertIfGiven lets clients without one in. Policies that
	// do not verify (RequestClientCert, RequireAnyClientCert) are refused.
	ClientAuth tls.ClientAuthType

	// SessionTicketsDisabled turns off session resumption (RFC 8446 section
	// 4.6.1, RFC 5077); every connection then pays a full handshake.
	SessionTicketsDisabled bool

	// SessionTicketKeysFile, when set, holds the session ticket keys instead of
	// generated ones, so replicas sharing the file resume each other's
	// sessions. Its format and the rotation procedure are in the package
	// documentation. Keys from the file are used as they are: rotating them is
	// the job of whoever writes the file (Reload or Watch picks changes up).
	SessionTicketKeysFile string

	// TicketKeyRotation is how long a generated ticket key encrypts new
	// tickets before a fresh one takes over; 0 means one hour.
	// TicketKeyLifetime is how long a generated key still decrypts tickets,
	// counted from its creation; 0 means 24 hours, or twice the rotation if
	// that is longer. A ticket is thus honoured
	// for at least TicketKeyLifetime-TicketKeyRotation. Neither applies with
	// SessionTicketKeysFile.
	TicketKeyRotation time.Duration
	TicketKeyLifetime time.Duration

	// OnHandshake, if set, is called once per handshake (full or resumed) with
	// the negotiated state, from the connection's own goroutine, when the
	// server has checked everything it can: before the client's Finished has
	// been read, so a client that aborts at the last step is still counted.
	// state.Version and state.CurveID label edge_tls_handshakes_total (see
	// VersionName and GroupName). It must be safe for concurrent use and
	// quick; it cannot fail the handshake.
	OnHandshake func(state tls.ConnectionState)

	// OnReload, if set, is called after every reload attempt, by Reload and by
	// Watch, with nil or the reason the old files stay in use.
	OnReload func(err error)

	// Time is the clock for ticket key rotation, ticket age and client
	// certificate validity; nil means time.Now. Tests set it to walk a fixed
	// timeline.
	Time func() time.Time
}

// validate checks the settings that need no file and fills in defaults. It
// reports every problem (errors.Join), not just the first.
func (c *Config) validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf("tlsterm: "+format, args...)) }
	if len(c.Certificates) == 0 {
		errs = append(errs, ErrNoCertificates)
	}
	for i, cert := range c.Certificates {
		if (cert.CertFile == "") == (len(cert.CertPEM) == 0) {
			bad("certificates[%d]: set exactly one of cert file and inline cert PEM", i)
		}
		if (cert.KeyFile == "") == (len(cert.KeyPEM) == 0) {
			bad("certificates[%d]: set exactly one of key file and inline key PEM", i)
		}
	}
	switch c.MinVersion {
	case 0:
		c.MinVersion = DefaultMinVersion
	case tls.VersionTLS10, tls.VersionTLS11, tls.VersionTLS12, tls.VersionTLS13:
	default:
		bad("unknown min version 0x%04x", c.MinVersion)
	}
	for _, id := range c.CurvePreferences {
		if !slices.Contains(knownGroups[:], id) {
			bad("unsupported curve preference %v", id)
		}
	}
	if c.ClientCAFile == "" {
		if c.ClientAuth != tls.NoClientCert {
			bad("client auth %v needs a client CA file", c.ClientAuth)
		}
	} else {
		switch c.ClientAuth {
		case tls.NoClientCert:
			c.ClientAuth = tls.RequireAndVerifyClientCert
		case tls.VerifyClientCertIfGiven, tls.RequireAndVerifyClientCert:
		default:
			bad("client auth %v does not verify client certificates (use RequireAndVerifyClientCert or VerifyClientCertIfGiven)", c.ClientAuth)
		}
	}
	switch {
	case c.SessionTicketKeysFile != "":
		if c.SessionTicketsDisabled {
			bad("session ticket keys file %q set with session tickets disabled", c.SessionTicketKeysFile)
		}
		if c.TicketKeyRotation != 0 || c.TicketKeyLifetime != 0 {
			bad("ticket key rotation and lifetime do not apply to keys from %q (rotate the file instead)", c.SessionTicketKeysFile)
		}
	case c.TicketKeyRotation < 0 || c.TicketKeyLifetime < 0:
		bad("negative ticket key rotation %v or lifetime %v", c.TicketKeyRotation, c.TicketKeyLifetime)
	default:
		if c.TicketKeyRotation == 0 {
			c.TicketKeyRotation = DefaultTicketKeyRotation
		}
		if c.TicketKeyLifetime == 0 {
			c.TicketKeyLifetime = max(DefaultTicketKeyLifetime, 2*c.TicketKeyRotation)
		}
		if c.TicketKeyLifetime < c.TicketKeyRotation {
			bad("ticket key lifetime %v shorter than rotation %v", c.TicketKeyLifetime, c.TicketKeyRotation)
		}
	}
	return errors.Join(errs...)
}

// paths lists the files a Terminator reads, in the order load consumes them.
func (c *Config) paths() []string {
	var p []string
	for _, cert := range c.Certificates {
		if cert.CertFile != "" {
			p = append(p, cert.CertFile)
		}
		if cert.KeyFile != "" {
			p = append(p, cert.KeyFile)
		}
	}
	if c.ClientCAFile != "" {
		p = append(p, c.ClientCAFile)
	}
	if c.SessionTicketKeysFile != "" {
		p = append(p, c.SessionTicketKeysFile)
	}
	return p
}

// FileError reports a problem with one file a Config names (or with inline
// PEM, then Path says which). Line is 1-based, 0 when the problem is not on one
// line. errors.Is(err, fs.ErrNotExist) and the like work through Unwrap.
type FileError struct {
	Path string
	Line int
	Err  error
}

// Error formats the problem as "tlsterm: PATH[:LINE]: problem".
func (e *FileError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("tlsterm: %s:%d: %v", e.Path, e.Line, e.Err)
	}
	return fmt.Sprintf("tlsterm: %s: %v", e.Path, e.Err)
}

// Unwrap returns the underlying problem.
func (e *FileError) Unwrap() error { return e.Err }
