package tlsterm

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Terminator terminates TLS for one listener. Everything a handshake reads
// (certificates, client CAs, ticket keys) sits in an immutable snapshot behind
// an atomic pointer, chosen per handshake by GetConfigForClient: a reload or a
// ticket key rotation publishes a new snapshot, which new handshakes use while
// established connections carry on untouched.
//
// All methods are safe for concurrent use. A Terminator owns no goroutine;
// Watch runs in the caller's.
type Terminator struct {
	cfg   Config   // validated, defaults filled in
	paths []string // files read by each load, in order
	base  *tls.Config
	cur   atomic.Pointer[snapshot]

	mu     sync.Mutex // serializes reloads and ticket key rotation
	failed [32]byte   // fingerprint of files whose reload failed; guarded by mu
}

// snapshot is what handshakes read. It is never modified once published.
type snapshot struct {
	tls    *tls.Config
	files  *loaded
	keys   []ticketKey // newest (encrypting) first; nil with tickets disabled
	rotate int64       // unix nanoseconds when generated keys need rotating; 0 = never
}

// loaded is the parsed content of a Config's files and inline PEM.
type loaded struct {
	certs    *certIndex
	cas      *x509.CertPool // nil without ClientCAFile
	fileKeys [][32]byte     // from SessionTicketKeysFile
	sum      [32]byte       // fingerprint of the file contents parsed
}

// New validates cfg, loads every file it names and returns a Terminator
// serving them. Errors name the offending setting, or the offending file as a
// FileError; problems in several files come joined (errors.Join), each one a
// FileError, so `edge check` can list them all.
func New(cfg Config) (*Terminator, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg.Certificates = slices.Clone(cfg.Certificates)
	cfg.CurvePreferences = slices.Clone(cfg.CurvePreferences)
	t := &Terminator{cfg: cfg, paths: cfg.paths()}
	t.base = &tls.Config{
		GetConfigForClient: t.configForClient,
		// Only GetConfigForClient's answer is used for handshakes; this keeps
		// callers that check for a certificate source (http.Server.ServeTLS) content.
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			return t.cur.Load().files.certs.pick(hello), nil
		},
		MinVersion:             cfg.MinVersion,
		CurvePreferences:       cfg.CurvePreferences,
		NextProtos:             []string{ALPN},
		SessionTicketsDisabled: cfg.SessionTicketsDisabled,
		Time:                   cfg.Time,
	}
	ld, err := t.load()
	if err != nil {
		return nil, err
	}
	var keys []ticketKey
	var rotate int64
	switch {
	case cfg.SessionTicketsDisabled:
	case cfg.SessionTicketKeysFile != "":
		keys = keysFromFile(ld.fileKeys)
	default:
		keys, rotate = t.rotateKeys(nil, t.now())
	}
	t.cur.Store(t.build(ld, keys, rotate))
	return t, nil
}

// Server returns the server side of a TLS connection over c, typically the
// conn l4 hands over with the peeked ClientHello replayed. The handshake runs
// on the first Read, Write or Handshake, under c's deadlines; the caller sets
// them (fasthttp's Server does, from ReadTimeout and WriteTimeout).
func (t *Terminator) Server(c net.Conn) *tls.Conn {
	return tls.Server(c, t.base)
}

// TLSConfig returns the configuration Server uses, for serving through
// tls.NewListener (edge's -accept=go path). It reflects reloads. The caller
// must not modify it.
func (t *Terminator) TLSConfig() *tls.Config {
	return t.base
}

// Leaves returns the leaf certificates being served, in Config order (the
// first is the default), for expiry checks, metrics and edge's /config. The
// caller must not modify them.
func (t *Terminator) Leaves() []*x509.Certificate {
	all := t.cur.Load().files.certs.all
	leaves := make([]*x509.Certificate, len(all))
	for i, c := range all {
		leaves[i] = c.Leaf
	}
	return leaves
}

// Reload re-reads every file the Config names (certificates, keys, client
// CAs, session ticket keys) and serves them to new handshakes. It is all or
// nothing: on error the previous files stay in use and the error says which
// file is wrong. Established connections are never affected. Generated ticket
// keys survive a reload, so sessions still resume. Call it on SIGHUP.
func (t *Terminator) Reload() error {
	t.mu.Lock()
	err := t.reloadLocked()
	t.mu.Unlock()
	if t.cfg.OnReload != nil {
		t.cfg.OnReload(err)
	}
	return err
}

// Watch polls the Config's files every interval (0 means
// DefaultWatchInterval) and reloads when their content changes, until ctx is
// done. A change that fails to load is reported through OnReload once and
// retried when the files change again, so a cert and key written one after
// the other end up loaded together. Watch blocks; run it in a goroutine. It
// returns at once when the Config names no files.
func (t *Terminator) Watch(ctx context.Context, interval time.Duration) {
	if len(t.paths) == 0 {
		return
	}
	if interval <= 0 {
		interval = DefaultWatchInterval
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			t.poll()
		}
	}
}

// poll reloads when the files' content differs from both what is served and
// what last failed to load. It reports whether it attempted a reload.
func (t *Terminator) poll() bool {
	_, sum := readFiles(t.paths)
	t.mu.Lock()
	if sum == t.cur.Load().files.sum || sum == t.failed {
		t.mu.Unlock()
		return false
	}
	err := t.reloadLocked()
	t.mu.Unlock()
	if t.cfg.OnReload != nil {
		t.cfg.OnReload(err)
	}
	return true
}

func (t *Terminator) reloadLocked() error {
	ld, err := t.load()
	if err != nil {
		t.failed = ld.sum
		return err
	}
	t.failed = [32]byte{}
	old := t.cur.Load()
	keys, rotate := old.keys, old.rotate
	if t.cfg.SessionTicketKeysFile != "" {
		keys = keysFromFile(ld.fileKeys)
	}
	t.cur.Store(t.build(ld, keys, rotate))
	return nil
}

// configForClient is the GetConfigForClient callback: the current snapshot,
// after rotating generated ticket keys when due (lazily, like Go's own
// automatic keys, so no goroutine is needed).
func (t *Terminator) configForClient(*tls.ClientHelloInfo) (*tls.Config, error) {
	s := t.cur.Load()
	if s.rotate != 0 && t.now().UnixNano() >= s.rotate {
		s = t.rotateSnapshot()
	}
	return s.tls, nil
}

func (t *Terminator) rotateSnapshot() *snapshot {
	// A reload holding the lock may take a while reading files; the current
	// keys remain valid meanwhile, so handshakes never wait for it.
	if !t.mu.TryLock() {
		return t.cur.Load()
	}
	defer t.mu.Unlock()
	s := t.cur.Load()
	now := t.now()
	if s.rotate == 0 || now.UnixNano() < s.rotate {
		return s
	}
	keys, rotate := t.rotateKeys(s.keys, now)
	s = t.build(s.files, keys, rotate)
	t.cur.Store(s)
	return s
}

func (t *Terminator) rotateKeys(keys []ticketKey, now time.Time) ([]ticketKey, int64) {
	var fresh [32]byte
	rand.Read(fresh[:])
	out, next := rotateTicketKeys(keys, now, t.cfg.TicketKeyRotation, t.cfg.TicketKeyLifetime, fresh)
	return out, next.UnixNano()
}

func (t *Terminator) now() time.Time {
	if t.cfg.Time != nil {
		return t.cfg.Time()
	}
	return time.Now()
}

// build makes the snapshot handshakes will read.
func (t *Terminator) build(ld *loaded, keys []ticketKey, rotate int64) *snapshot {
	c := &tls.Config{
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			return ld.certs.pick(hello), nil
		},
		MinVersion:             t.base.MinVersion,
		CurvePreferences:       t.base.CurvePreferences,
		NextProtos:             t.base.NextProtos,
		ClientCAs:              ld.cas,
		SessionTicketsDisabled: t.cfg.SessionTicketsDisabled,
		Time:                   t.cfg.Time,
	}
	if ld.cas != nil {
		c.ClientAuth = t.cfg.ClientAuth
	}
	if f := t.cfg.OnHandshake; f != nil {
		// VerifyConnection runs once per full or resumed handshake, after Go's
		// own checks, with the negotiated version and group already set.
		c.VerifyConnection = func(cs tls.ConnectionState) error {
			f(cs)
			return nil
		}
	}
	if len(keys) > 0 {
		raw := make([][32]byte, len(keys))
		for i, k := range keys {
			raw[i] = k.key
		}
		// Explicit keys on the config GetConfigForClient returns take
		// precedence over the base config's (tls.Config.ticketKeys).
		c.SetSessionTicketKeys(raw)
	}
	return &snapshot{tls: c, files: ld, keys: keys, rotate: rotate}
}

func keysFromFile(raw [][32]byte) []ticketKey {
	keys := make([]ticketKey, len(raw))
	for i, k := range raw {
		keys[i].key = k
	}
	return keys
}

// load reads and parses every file and inline PEM of the Config. It reports
// every problem it finds (errors.Join of FileErrors), so `edge check` can list
// them all; on error the returned loaded is empty apart from sum.
func (t *Terminator) load() (*loaded, error) {
	data, sum := readFiles(t.paths)
	ld := &loaded{sum: sum}
	var errs []error
	// read takes the next file's content; a read error is recorded.
	read := func(path string) ([]byte, bool) {
		d := data[0]
		data = data[1:]
		if d.err != nil {
			errs = append(errs, &FileError{Path: path, Err: d.err})
			return nil, false
		}
		return d.data, true
	}

	certs := make([]*tls.Certificate, len(t.cfg.Certificates))
	for i, c := range t.cfg.Certificates {
		certName, certPEM, certOK := fmt.Sprintf("certificates[%d] inline cert", i), c.CertPEM, true
		keyName, keyPEM, keyOK := fmt.Sprintf("certificates[%d] inline key", i), c.KeyPEM, true
		if c.CertFile != "" {
			certName = c.CertFile
			certPEM, certOK = read(c.CertFile)
		}
		if c.KeyFile != "" {
			keyName = c.KeyFile
			keyPEM, keyOK = read(c.KeyFile)
		}
		if !certOK {
			continue
		}
		if _, err := parseCertificates(certName, certPEM); err != nil {
			errs = append(errs, err)
			continue
		}
		if !keyOK {
			continue
		}
		pair, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			// The chain parsed above, so the fault is in the key.
			errs = append(errs, &FileError{Path: keyName, Err: fmt.Errorf("%w (certificate %s)", err, certName)})
			continue
		}
		certs[i] = &pair
	}

	if t.cfg.ClientCAFile != "" {
		if b, ok := read(t.cfg.ClientCAFile); ok {
			cas, err := parseCertificates(t.cfg.ClientCAFile, b)
			if err != nil {
				errs = append(errs, err)
			} else {
				ld.cas = x509.NewCertPool()
				for _, ca := range cas {
					ld.cas.AddCert(ca)
				}
			}
		}
	}

	if t.cfg.SessionTicketKeysFile != "" {
		if b, ok := read(t.cfg.SessionTicketKeysFile); ok {
			keys, line, err := parseTicketKeys(b)
			if err != nil {
				errs = append(errs, &FileError{Path: t.cfg.SessionTicketKeysFile, Line: line, Err: err})
			}
			ld.fileKeys = keys
		}
	}

	if len(errs) > 0 {
		return &loaded{sum: sum}, errors.Join(errs...)
	}
	ld.certs = newCertIndex(certs)
	return ld, nil
}

// parseCertificates parses every CERTIFICATE block of a PEM file (other block
// types are skipped, as tls.X509KeyPair does), reporting the line of a bad one.
func parseCertificates(name string, data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	rest := data
	for {
		start := bytes.Index(rest, []byte("-----BEGIN"))
		if start < 0 {
			break
		}
		line := 1 + bytes.Count(data[:len(data)-len(rest)+start], []byte("\n"))
		block, r := pem.Decode(rest[start:])
		if block == nil {
			return nil, &FileError{Path: name, Line: line, Err: errors.New("malformed PEM block")}
		}
		rest = r
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, &FileError{Path: name, Line: line, Err: err}
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, &FileError{Path: name, Err: errors.New("no CERTIFICATE PEM block")}
	}
	return certs, nil
}

type fileData struct {
	data []byte
	err  error
}

// readFiles reads paths and fingerprints their content (or read errors), so
// Watch can tell a change from a file it already loaded or failed to load.
func readFiles(paths []string) ([]fileData, [32]byte) {
	h := sha256.New()
	out := make([]fileData, len(paths))
	for i, p := range paths {
		b, err := os.ReadFile(p)
		var pe *fs.PathError
		if errors.As(err, &pe) {
			// The path is already in FileError; keep the operation and cause.
			err = fmt.Errorf("%s: %w", pe.Op, pe.Err)
		}
		out[i] = fileData{data: b, err: err}
		fmt.Fprintf(h, "%d:%s\x00%d:", len(p), p, len(b))
		h.Write(b)
		if err != nil {
			fmt.Fprintf(h, "error:%v", err)
		}
	}
	var sum [32]byte
	h.Sum(sum[:0])
	return out, sum
}
