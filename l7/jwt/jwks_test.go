package jwt

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"example.com/edge/l7/jwt/mint"
)

// jwksServer is a real HTTPS JWKS endpoint on 127.0.0.1 whose answer tests change.
type jwksServer struct {
	*httptest.Server
	mu           sync.Mutex
	body         []byte
	status       int
	cacheControl string
	fetches      int
}

func newJWKSServer(t *testing.T, body []byte) *jwksServer {
	s := &jwksServer{body: body, status: http.StatusOK}
	s.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.fetches++
		if s.cacheControl != "" {
			w.Header().Set("Cache-Control", s.cacheControl)
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.WriteHeader(s.status)
		_, _ = w.Write(s.body)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) set(status int, body []byte) {
	s.mu.Lock()
	s.status, s.body = status, body
	s.mu.Unlock()
}

func (s *jwksServer) fetchCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fetches
}

func pubJWK(t *testing.T, alg string) []byte { return mustRead(t, fixturePath(alg, ".pub.jwk")) }

// eventually polls cond until it holds, failing after a generous bound; it never asserts
// on how long something took.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestJWKSRotationOverHTTPS(t *testing.T) {
	srv := newJWKSServer(t, mint.JWKS(pubJWK(t, "ES256")))
	p := newTestPolicy(t, Config{
		Keys:       []KeyConfig{{JWKSURL: srv.URL + "/.well-known/jwks.json", Refresh: time.Hour}},
		MinRefresh: time.Millisecond,
		HTTPClient: srv.Client(),
		Logf:       t.Logf,
	})
	tokA := mintToken(t, "ES256", func(o *mint.Options) { o.Now = time.Now() })
	tokB := mintToken(t, "EdDSA", func(o *mint.Options) { o.Now = time.Now() })
	var c Claims
	verify := func(tok []byte) error { return p.Verify(tok, time.Now(), &c) }

	// Never fetched: the edge cannot tell, so 503, not 401.
	if err := verify(tokA); err != ErrJWKSUnavailable || p.JWKSReady() {
		t.Fatalf("before the first fetch: %v, ready %v", err, p.JWKSReady())
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p.Start(ctx)
	defer p.Close()
	eventually(t, "the first fetch", p.JWKSReady)
	if err := verify(tokA); err != nil {
		t.Fatalf("key A after the first fetch: %v", err)
	}

	// Rotation adds B: the first token with kid B misses, kicks a refetch, and B follows.
	srv.set(http.StatusOK, mint.JWKS(pubJWK(t, "ES256"), pubJWK(t, "EdDSA")))
	if err := verify(tokB); err != ErrUnknownKid {
		t.Fatalf("kid B before the refetch: %v", err)
	}
	eventually(t, "the kid-miss refetch", func() bool { return verify(tokB) == nil })
	if err := verify(tokA); err != nil {
		t.Fatalf("key A after adding B: %v", err)
	}

	// Rotation drops A: after the next fetch A's tokens fail, cached or not.
	srv.set(http.StatusOK, mint.JWKS(pubJWK(t, "EdDSA")))
	if err := p.FetchJWKS(ctx); err != nil {
		t.Fatal(err)
	}
	if err := verify(tokA); err != ErrUnknownKid {
		t.Fatalf("key A after its removal: %v", err)
	}

	// Failures keep the keys last fetched.
	for _, bad := range []struct {
		status int
		body   string
	}{
		{http.StatusInternalServerError, "oops"},
		{http.StatusOK, `{"keys":[`},
		{http.StatusOK, `{"keys":[],"keys":[]}`},
		{http.StatusOK, `{"keys":[{"kty":"oct","k":"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0cw","alg":"HS256"}]}`},
	} {
		srv.set(bad.status, []byte(bad.body))
		if err := p.FetchJWKS(ctx); err == nil {
			t.Fatalf("fetch of %d %q succeeded", bad.status, bad.body)
		}
		if err := verify(tokB); err != nil {
			t.Fatalf("key B after a failed fetch (%q): %v", bad.body, err)
		}
	}

	// A replacement policy (config reload) starts from the keys already fetched.
	next := newTestPolicy(t, Config{
		Keys:       []KeyConfig{{JWKSURL: srv.URL + "/.well-known/jwks.json", Refresh: time.Hour}},
		HTTPClient: srv.Client(),
		Previous:   p,
	})
	if !next.JWKSReady() {
		t.Fatal("a reloaded policy lost the fetched JWKS")
	}
	if err := next.Verify(tokB, time.Now(), &c); err != nil {
		t.Fatalf("reloaded policy: %v", err)
	}
}

func TestJWKSUnavailableOnlyWhenUndecidable(t *testing.T) {
	// A JWKS URL nobody answers, next to a static HMAC key.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String() + "/jwks"
	ln.Close()
	cfg := testConfig(t)
	cfg.Keys = append(cfg.Keys, KeyConfig{JWKSURL: url})
	p := newTestPolicy(t, cfg)
	if err := p.FetchJWKS(context.Background()); err == nil {
		t.Fatal("fetch from a closed port succeeded")
	}
	var c Claims
	if err := p.Verify(mintToken(t, "HS256", nil), testNow, &c); err != nil {
		t.Fatalf("static key while the JWKS is down: %v", err)
	}
	forged := mintToken(t, "HS256", nil)
	forged[len(forged)-2] ^= 1
	if err := p.Verify(forged, testNow, &c); err != ErrBadSignature {
		t.Fatalf("forged token for a known key: %v", err)
	}
	unknown := signRaw(t, "ES256", hdr("ES256", "from-the-jwks"), claimsAt(""), nil)
	if err := p.Verify(unknown, testNow, &c); err != ErrJWKSUnavailable {
		t.Fatalf("unknown kid while the JWKS was never fetched: %v", err)
	}
	if err := p.Verify([]byte("x.y"), testNow, &c); err != ErrMalformed {
		t.Fatalf("malformed token: %v", err)
	}
}

func TestKidMissRefetchIsRateLimited(t *testing.T) {
	p := newTestPolicy(t, Config{Keys: []KeyConfig{{JWKSURL: "https://auth.example.com/jwks"}}, MinRefresh: 10 * time.Second})
	s := p.sources[0]
	pending := func() bool {
		select {
		case <-s.kick:
			return true
		default:
			return false
		}
	}
	t0 := testNow
	steps := []struct {
		at   time.Duration
		want bool
	}{
		{0, true},
		{time.Second, false},
		{9 * time.Second, false},
		{10 * time.Second, true},
		{10*time.Second + time.Millisecond, false},
		{25 * time.Second, true},
	}
	for _, st := range steps {
		for range 3 { // repeated misses within one instant count once
			p.kickRefresh(t0.Add(st.at))
		}
		if got := pending(); got != st.want {
			t.Errorf("at +%v: refetch requested = %v, want %v", st.at, got, st.want)
		}
	}
}

func TestNextFetchDelay(t *testing.T) {
	const refresh, minRefresh = 5 * time.Minute, 10 * time.Second
	tests := []struct {
		ok       bool
		maxAge   time.Duration
		failures int
		want     time.Duration
	}{
		{true, -1, 0, refresh},
		{true, time.Minute, 0, time.Minute},
		{true, time.Hour, 0, refresh},
		{true, 0, 0, minRefresh},
		{true, time.Second, 0, minRefresh},
		{false, -1, 1, time.Second},
		{false, -1, 2, 2 * time.Second},
		{false, -1, 5, 16 * time.Second},
		{false, -1, 12, refresh},
		{false, -1, 100, refresh},
	}
	for _, tt := range tests {
		if got := nextFetchDelay(tt.ok, tt.maxAge, tt.failures, refresh, minRefresh); got != tt.want {
			t.Errorf("nextFetchDelay(%v, %v, %d) = %v, want %v", tt.ok, tt.maxAge, tt.failures, got, tt.want)
		}
	}
	// A refresh configured below MinRefresh is the operator's choice and is kept.
	for _, maxAge := range []time.Duration{-1, 0, time.Hour} {
		if got := nextFetchDelay(true, maxAge, 0, time.Second, minRefresh); got != time.Second {
			t.Errorf("refresh 1s, max-age %v: next fetch in %v, want 1s", maxAge, got)
		}
	}
}

func TestCacheControlMaxAge(t *testing.T) {
	tests := []struct {
		in   []string
		want time.Duration
	}{
		{nil, -1},
		{[]string{"public, max-age=300"}, 300 * time.Second},
		{[]string{"Max-Age=60, must-revalidate"}, time.Minute},
		{[]string{"public", "max-age=\"120\""}, 2 * time.Minute},
		{[]string{"max-age=300, no-cache"}, 0},
		{[]string{"no-store"}, 0},
		{[]string{"max-age=abc"}, -1},
		{[]string{"max-age=-5"}, -1},
	}
	for _, tt := range tests {
		if got := cacheControlMaxAge(tt.in); got != tt.want {
			t.Errorf("cacheControlMaxAge(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestJWKSServedMaxAgeIsReturned(t *testing.T) {
	srv := newJWKSServer(t, mint.JWKS(pubJWK(t, "ES256")))
	srv.cacheControl = "public, max-age=42"
	p := newTestPolicy(t, Config{Keys: []KeyConfig{{JWKSURL: srv.URL}}, HTTPClient: srv.Client()})
	got, err := p.refreshSource(context.Background(), p.sources[0], time.Now())
	if err != nil || got != 42*time.Second {
		t.Fatalf("refreshSource = %v, %v; want 42s", got, err)
	}
	if srv.fetchCount() != 1 {
		t.Fatalf("fetches = %d", srv.fetchCount())
	}
}

func TestJWKSParsing(t *testing.T) {
	es := string(pubJWK(t, "ES256"))
	tests := []struct {
		name    string
		jwks    string
		keys    int
		skipped int
		bad     bool
	}{
		{"one key", `{"keys":[` + es + `]}`, 1, 0, false},
		{"encryption key skipped", `{"keys":[` + es + `,{"kty":"RSA","use":"enc","n":"AQAB","e":"AQAB"}]}`, 1, 1, false},
		{"key_ops without verify", `{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","key_ops":["sign"]}]}`, 0, 1, false},
		{"X25519 is not a signature key", `{"keys":[{"kty":"OKP","crv":"X25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}`, 0, 1, false},
		{"RSA without alg", `{"keys":[` + string(pubJWKWithoutAlg(t, "RS256")) + `]}`, 0, 1, false},
		{"AKP without alg", `{"keys":[` + string(pubJWKWithoutAlg(t, "ML-DSA-44")) + `]}`, 0, 1, false},
		{"short EC coordinate", `{"keys":[{"kty":"EC","crv":"P-256","x":"AQ","y":"AQ"}]}`, 0, 1, false},
		{"point not on the curve", `{"keys":[{"kty":"EC","crv":"P-256","x":"` + b64u(string(make([]byte, 32))) + `","y":"` + b64u(string(make([]byte, 32))) + `"}]}`, 0, 1, false},
		{"padded base64", `{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo="}]}`, 0, 1, false},
		{"unknown kty skipped", `{"keys":[{"kty":"XYZ"},` + es + `]}`, 1, 1, false},
		{"duplicate member", `{"keys":[],"keys":[` + es + `]}`, 0, 0, true},
		{"duplicate member in a key", `{"keys":[{"kty":"OKP","crv":"Ed25519","crv":"Ed448","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}`, 0, 1, false},
		{"no keys member", `{}`, 0, 0, true},
		{"not JSON", `keys`, 0, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keys, skipped, err := parseJWKS([]byte(tt.jwks), algUnknown, false, "test")
			if (err != nil) != tt.bad || len(keys) != tt.keys || len(skipped) != tt.skipped {
				t.Fatalf("keys %d, skipped %v, err %v; want %d keys, %d skipped, error %v", len(keys), skipped, err, tt.keys, tt.skipped, tt.bad)
			}
		})
	}
}

// pubJWKWithoutAlg returns a fixture's public JWK with its "alg" member removed.
func pubJWKWithoutAlg(t *testing.T, alg string) []byte {
	s := string(pubJWK(t, alg))
	return []byte(replaceOnce(s, `"alg":"`+alg+`",`, ""))
}

func replaceOnce(s, old, new string) string {
	for i := 0; i+len(old) <= len(s); i++ {
		if s[i:i+len(old)] == old {
			return s[:i] + new + s[i+len(old):]
		}
	}
	return s
}
