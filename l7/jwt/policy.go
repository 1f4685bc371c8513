package jwt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// KeyConfig names one source of verification keys; exactly one of PEMFile,
// HMACSecretFile, JWKSFile, JWKSURL, PEM, HMACSecret and JWKS is set. Paths are used as
// given (cmd/edge resolves them against the configuration file's folder).
type KeyConfig struct {
	// PEMFile holds a public key: PKIX "PUBLIC KEY" (RSA, EC, Ed25519, Ed448, ML-DSA),
	// PKCS #1 "RSA PUBLIC KEY", or a "CERTIFICATE".
	PEMFile string
	// HMACSecretFile holds an HMAC secret: the file's bytes minus trailing CR/LF, at least
	// as long as the hash output (RFC 7518 §3.2). Alg is required.
	HMACSecretFile string
	// JWKSFile holds a JWK Set (RFC 7517 §5); it may also hold "oct" HMAC secrets.
	JWKSFile string
	// JWKSURL is fetched in the background once the policy is started. It must be https,
	// or http to a loopback address. "oct" keys from a URL are refused.
	JWKSURL string
	// Alg binds the key(s) to one algorithm. Required for HMAC secrets and RSA keys; an EC
	// curve, an ML-DSA parameter set and an Ed25519/Ed448 key imply theirs (the latter
	// accepting both "EdDSA" and its RFC 9864 name). For a JWKS it is the algorithm of JWKs
	// without "alg", and JWKs whose "alg" differs are skipped.
	Alg string
	// Kid is the key ID of a PEMFile or HMACSecretFile key; tokens naming this kid use only
	// this key. JWKS keys carry their own "kid".
	Kid string
	// Refresh is how often JWKSURL is fetched (default 5m); a shorter Cache-Control
	// max-age in the response brings the next fetch forward, down to Config.MinRefresh.
	Refresh time.Duration
	// PEM, HMACSecret and JWKS are in-memory alternatives to the three files, for the
	// demo and tests (Reload has nothing to re-read for them). They count as sources for
	// the exactly-one rule.
	PEM, HMACSecret, JWKS []byte
}

// Config configures a Policy. The zero value is a policy with no keys, which rejects
// every token.
type Config struct {
	// Keys are the sources of verification keys.
	Keys []KeyConfig
	// Algorithms lists the token "alg" values accepted; a token with another is rejected
	// before any key is looked at. Empty means every algorithm some key is bound to
	// (keys are always bound, so the token still cannot choose). "none" is refused.
	Algorithms []string
	// Issuer, when set, must equal the token's "iss" claim.
	Issuer string
	// Audience, when set, must share at least one value with the token's "aud" claim (a
	// string or an array of strings).
	Audience []string
	// Leeway is the clock skew allowed on exp, nbf and iat.
	Leeway time.Duration
	// ExpOptional accepts tokens without "exp" (require_exp: false). By default exp is
	// required.
	ExpOptional bool
	// ForwardClaims maps a claim name to the request header it is forwarded in.
	ForwardClaims map[string]string
	// CacheBytes caps the verified-token cache (0 means 8 MiB, negative disables it).
	CacheBytes int
	// MaxTokenBytes rejects longer tokens before any decoding (0 means 16 KiB, enough for
	// ML-DSA-87 tokens, whose signature alone is 6170 characters).
	MaxTokenBytes int
	// MinRefresh bounds how often a JWKS URL is fetched on the server's or the clients'
	// say: the floor for a Cache-Control max-age shorter than Refresh, and the rate limit
	// of refetches after unknown kids (0 means 10s). A shorter configured Refresh is kept.
	MinRefresh time.Duration
	// HTTPClient fetches JWKS URLs (nil means a client with a 10s timeout).
	HTTPClient *http.Client
	// Logf receives JWKS fetch results and skipped keys (nil discards them).
	Logf func(format string, args ...any)
	// Previous, when set, is the policy this one replaces on a reload: key sets it has
	// fetched from the same JWKS URLs seed this policy, so a reload never brings back
	// ErrJWKSUnavailable.
	Previous *Policy
}

// ForwardClaim is one forward_claims entry: the claim and the header it goes to.
type ForwardClaim struct {
	Claim  string
	Header string
}

// Policy verifies bearer tokens against one set of keys and claim rules (one entry of the
// configuration's jwt: block). All its methods are safe for concurrent use; Verify does
// not allocate for HMAC and EdDSA tokens or for verified-token cache hits. The key set is an immutable
// snapshot swapped atomically by Reload and JWKS refreshes. Create with NewPolicy; a
// Policy with JWKS URLs fetches nothing until Start.
type Policy struct {
	name        string
	allowed     algSet
	issuer      string
	audience    []string
	leeway      time.Duration
	expOptional bool
	maxToken    int
	minRefresh  time.Duration
	forward     []ForwardClaim
	cache       *tokenCache
	client      *http.Client
	logf        func(format string, args ...any)
	keyConfigs  []KeyConfig

	keys atomic.Pointer[keySet]

	headerSeed maphash.Seed
	headers    [headerMemos]atomic.Pointer[headerMemo]

	mu      sync.Mutex // guards static, sources[i].keys and snapshot rebuilds
	static  []*key
	sources []*jwksSource

	lifeMu  sync.Mutex
	started bool
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// keySet is an immutable snapshot of a policy's keys.
type keySet struct {
	byKid map[string][]*key
	byAlg [numAlgs][]*key
	all   []*key
	// pending is set while some JWKS URL has never been fetched successfully.
	pending bool
}

// Defaults of zero-valued Config and KeyConfig fields.
const (
	// DefaultCacheBytes is the verified-token cache's size (Config.CacheBytes).
	DefaultCacheBytes = 8 << 20
	// DefaultRefresh is how often a JWKS URL is fetched again (KeyConfig.Refresh).
	DefaultRefresh = 5 * time.Minute

	defaultMaxTokenBytes = 16 << 10
	defaultMinRefresh    = 10 * time.Second
)

// NewPolicy validates cfg and loads its key files. Errors name the policy, the key entry
// and the file with what is wrong; several problems are joined.
func NewPolicy(name string, cfg Config) (*Policy, error) {
	p := &Policy{
		name:        name,
		issuer:      cfg.Issuer,
		audience:    slices.Clone(cfg.Audience),
		leeway:      cfg.Leeway,
		expOptional: cfg.ExpOptional,
		maxToken:    cfg.MaxTokenBytes,
		minRefresh:  cfg.MinRefresh,
		client:      cfg.HTTPClient,
		logf:        cfg.Logf,
		keyConfigs:  slices.Clone(cfg.Keys),
		headerSeed:  maphash.MakeSeed(),
	}
	var errs []error
	fail := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("jwt: policy %q: "+format, append([]any{name}, args...)...))
	}
	if p.maxToken <= 0 {
		p.maxToken = defaultMaxTokenBytes
	}
	if p.minRefresh <= 0 {
		p.minRefresh = defaultMinRefresh
	}
	if p.client == nil {
		p.client = &http.Client{Timeout: 10 * time.Second}
	}
	if p.logf == nil {
		p.logf = func(string, ...any) {}
	}
	if cfg.Leeway < 0 {
		fail("leeway %v is negative", cfg.Leeway)
	}
	for i, a := range cfg.Audience {
		if a == "" {
			fail("audience[%d] is empty", i)
		}
	}
	if len(cfg.Algorithms) == 0 {
		p.allowed = ^algSet(0)
	}
	for i, name := range cfg.Algorithms {
		a := algByName([]byte(name))
		switch {
		case a != algUnknown:
			p.allowed |= setOf(a)
		case equalFoldASCII(name, "none"):
			fail("algorithms[%d]: %q is never accepted (RFC 8725 §3.1)", i, name)
		default:
			fail("algorithms[%d]: unknown algorithm %q", i, name)
		}
	}
	for claim, header := range cfg.ForwardClaims {
		if claim == "" || !validFieldName(header) {
			fail("forward_claims: %q -> %q: need a claim name and a valid header name", claim, header)
			continue
		}
		p.forward = append(p.forward, ForwardClaim{Claim: claim, Header: header})
	}
	sort.Slice(p.forward, func(i, j int) bool { return p.forward[i].Claim < p.forward[j].Claim })
	anyCacheable := false
	for a := algID(1); a < numAlgs; a++ {
		anyCacheable = anyCacheable || (a.cacheable() && p.allowed.has(a))
	}
	switch {
	case !anyCacheable: // HMAC-only policies skip the lookup entirely
	case cfg.CacheBytes == 0:
		p.cache = newTokenCache(DefaultCacheBytes)
	case cfg.CacheBytes > 0:
		p.cache = newTokenCache(cfg.CacheBytes)
	}

	invalid := make([]bool, len(cfg.Keys))
	for i, kc := range cfg.Keys {
		if err := p.checkKeyConfig(i, kc); err != nil {
			errs = append(errs, err)
			invalid[i] = true
			continue
		}
		if kc.JWKSURL != "" {
			alg, _ := parseAlg(kc.Alg)
			refresh := kc.Refresh
			if refresh <= 0 {
				refresh = DefaultRefresh
			}
			s := &jwksSource{url: kc.JWKSURL, alg: alg, refresh: refresh, kick: make(chan struct{}, 1)}
			if prev := cfg.Previous.source(kc.JWKSURL, alg); prev != nil {
				s.inherit(prev)
			}
			p.sources = append(p.sources, s)
		}
	}
	static, err := p.loadStatic(invalid)
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	p.static = static
	p.mu.Lock()
	p.rebuildLocked()
	p.mu.Unlock()
	return p, nil
}

func (p *Policy) checkKeyConfig(i int, kc KeyConfig) error {
	n := 0
	for _, f := range []string{kc.PEMFile, kc.HMACSecretFile, kc.JWKSFile, kc.JWKSURL} {
		if f != "" {
			n++
		}
	}
	for _, b := range [][]byte{kc.PEM, kc.HMACSecret, kc.JWKS} {
		if b != nil {
			n++
		}
	}
	if n != 1 {
		return fmt.Errorf("jwt: policy %q: keys[%d]: need exactly one of pem_file, hmac_secret_file, jwks_file, jwks_url (have %d)", p.name, i, n)
	}
	alg, err := parseAlg(kc.Alg)
	if err != nil {
		return fmt.Errorf("jwt: policy %q: keys[%d]: %w", p.name, i, err)
	}
	if alg != algUnknown && !p.allowed.has(alg) {
		return fmt.Errorf("jwt: policy %q: keys[%d]: alg %s is not in algorithms", p.name, i, alg)
	}
	if kc.Kid != "" && (kc.JWKSFile != "" || kc.JWKSURL != "" || kc.JWKS != nil) {
		return fmt.Errorf("jwt: policy %q: keys[%d]: kid applies to pem_file and hmac_secret_file only (JWKs carry their own)", p.name, i)
	}
	if kc.JWKSURL != "" {
		u, err := url.Parse(kc.JWKSURL)
		if err != nil {
			return fmt.Errorf("jwt: policy %q: keys[%d]: jwks_url %q: %w", p.name, i, kc.JWKSURL, err)
		}
		if u.Scheme != "https" && !(u.Scheme == "http" && isLoopbackHost(u.Hostname())) {
			return fmt.Errorf("jwt: policy %q: keys[%d]: jwks_url %q: must be https (http only to a loopback address)", p.name, i, kc.JWKSURL)
		}
	}
	return nil
}

// loadStatic reads every file-based key source but those marked in skip (already
// reported invalid). Keys whose fingerprint matches one in the current static set keep
// their identity, so a reload of unchanged files keeps the verified-token cache warm.
func (p *Policy) loadStatic(skip []bool) ([]*key, error) {
	p.mu.Lock()
	old := make(map[[32]byte]*key, len(p.static))
	for _, k := range p.static {
		old[k.fingerprint] = k
	}
	p.mu.Unlock()
	var keys []*key
	var errs []error
	add := func(k *key) {
		if prev := old[k.fingerprint]; prev != nil {
			k = prev
		}
		if k.algs&p.allowed == 0 {
			errs = append(errs, fmt.Errorf("jwt: policy %q: %s: key %q is bound to %s, none of them in algorithms", p.name, k.source, k.kid, k.algs))
			return
		}
		keys = append(keys, k)
	}
	for i, kc := range p.keyConfigs {
		if i < len(skip) && skip[i] {
			continue
		}
		alg, _ := parseAlg(kc.Alg)
		var err error
		switch {
		case kc.PEMFile != "":
			var k *key
			if k, err = loadPEMFile(kc.PEMFile, alg, kc.Kid); err == nil {
				add(k)
			}
		case kc.HMACSecretFile != "":
			var data []byte
			if data, err = os.ReadFile(kc.HMACSecretFile); err == nil {
				var k *key
				if k, err = newHMACSecretKey(ParseHMACSecret(data), alg, kc.Kid, "hmac_secret_file "+kc.HMACSecretFile); err == nil {
					add(k)
				}
			}
		case kc.JWKSFile != "" || kc.JWKS != nil:
			data, source := kc.JWKS, fmt.Sprintf("keys[%d].jwks", i)
			if kc.JWKSFile != "" {
				data, err = os.ReadFile(kc.JWKSFile)
				source = "jwks_file " + kc.JWKSFile
			}
			if err == nil {
				var ks []*key
				var skipped []error
				ks, skipped, err = parseJWKS(data, alg, true, source)
				for _, s := range skipped {
					p.logf("jwt: policy %q: keys[%d]: skipped key: %v", p.name, i, s)
				}
				if err == nil && len(ks) == 0 {
					err = fmt.Errorf("%s: no usable keys", source)
				}
				for _, k := range ks {
					add(k)
				}
			}
		case kc.PEM != nil:
			var k *key
			if k, err = parsePEMKey(kc.PEM, alg, kc.Kid, fmt.Sprintf("keys[%d].pem", i)); err == nil {
				add(k)
			}
		case kc.HMACSecret != nil:
			var k *key
			if k, err = newHMACSecretKey(kc.HMACSecret, alg, kc.Kid, fmt.Sprintf("keys[%d].hmac_secret", i)); err == nil {
				add(k)
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("jwt: policy %q: keys[%d]: %w", p.name, i, err))
		}
	}
	return keys, errors.Join(errs...)
}

func loadPEMFile(path string, alg algID, kid string) (*key, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parsePEMKey(data, alg, kid, "pem_file "+path)
}

func parsePEMKey(data []byte, alg algID, kid, source string) (*key, error) {
	pub, err := ParsePublicKeyPEM(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	return newPublicKey(pub, alg, kid, source)
}

// Reload re-reads the policy's key files (pem_file, hmac_secret_file, jwks_file), as on
// SIGHUP when the configuration itself did not change. On error the current keys stay in
// use. JWKS URL key sets are kept. Safe for concurrent use with Verify.
func (p *Policy) Reload() error {
	static, err := p.loadStatic(nil)
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.static = static
	p.rebuildLocked()
	p.mu.Unlock()
	return nil
}

// rebuildLocked publishes a new snapshot from the static keys and the JWKS sources' keys
// and retires keys that left, so that cache entries they verified stop matching.
func (p *Policy) rebuildLocked() {
	ks := &keySet{byKid: make(map[string][]*key)}
	add := func(k *key) {
		ks.all = append(ks.all, k)
		if k.kid != "" {
			ks.byKid[k.kid] = append(ks.byKid[k.kid], k)
		}
		for a := algID(1); a < numAlgs; a++ {
			if k.algs.has(a) && p.allowed.has(a) {
				ks.byAlg[a] = append(ks.byAlg[a], k)
			}
		}
	}
	for _, k := range p.static {
		add(k)
	}
	for _, s := range p.sources {
		if !s.fetched.Load() {
			ks.pending = true
		}
		for _, k := range s.keys {
			add(k)
		}
	}
	if old := p.keys.Swap(ks); old != nil {
		for _, k := range old.all {
			if !slices.Contains(ks.all, k) {
				k.retired.Store(true)
			}
		}
	}
}

// CacheStats reports the verified-token cache's entries and the bytes charged to them
// (zeros when the cache is off), for metrics.
func (p *Policy) CacheStats() (entries, bytes int) {
	if p.cache == nil {
		return 0, 0
	}
	return p.cache.len()
}

// Name returns the policy's name.
func (p *Policy) Name() string { return p.name }

// ForwardClaims returns the forward_claims pairs sorted by claim name. Callers must delete
// every listed Header from the incoming request before writing claim values (so a client
// cannot spoof them) and must not modify the slice.
func (p *Policy) ForwardClaims() []ForwardClaim { return p.forward }

func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if a[i]|0x20 != b[i]|0x20 {
			return false
		}
	}
	return true
}

// validFieldName reports whether s is an RFC 9110 §5.1 field-name (a token).
func validFieldName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case bytes.IndexByte([]byte("!#$%&'*+-.^_`|~"), c) >= 0:
		default:
			return false
		}
	}
	return true
}

func isLoopbackHost(h string) bool {
	return h == "localhost" || h == "127.0.0.1" || h == "::1" || (len(h) > 4 && h[:4] == "127.")
}
