package jwt

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"example.com/edge/l7/jwt/mint"
)

func TestVerifyEveryAlgorithm(t *testing.T) {
	p := newTestPolicy(t, testConfig(t))
	for _, alg := range mint.Algorithms() {
		t.Run(alg, func(t *testing.T) {
			tok := mintToken(t, alg, nil)
			var c Claims
			for round := range 2 { // the second round of asymmetric tokens is a cache hit
				if err := p.Verify(tok, testNow, &c); err != nil {
					t.Fatalf("round %d: Verify: %v", round, err)
				}
				if sub, ok := c.Sub(); !ok || string(sub) != "user-42" {
					t.Fatalf("round %d: Sub() = %q, %v", round, sub, ok)
				}
				if c.Alg() != alg || c.KeyID() != fixtureKid(alg) {
					t.Fatalf("round %d: Alg, KeyID = %q, %q", round, c.Alg(), c.KeyID())
				}
				if !c.HasScopes([]string{"app:read"}) || c.HasScopes([]string{"admin"}) {
					t.Fatalf("round %d: HasScopes wrong", round)
				}
			}
		})
	}
}

// TestKeysFromEveryFormat loads each fixture key as PEM, as a public JWK in a jwks_file
// with and without kid/alg, and checks the binding rules.
func TestKeysFromEveryFormat(t *testing.T) {
	dir := t.TempDir()
	for _, alg := range mint.Algorithms() {
		if strings.HasPrefix(alg, "HS") {
			continue
		}
		t.Run(alg, func(t *testing.T) {
			pub, err := os.ReadFile(fixturePath(alg, ".pub.jwk"))
			if err != nil {
				t.Fatal(err)
			}
			jwks := filepath.Join(dir, strings.ToLower(alg)+".jwks")
			if err := os.WriteFile(jwks, mint.JWKS(pub), 0o644); err != nil {
				t.Fatal(err)
			}
			p := newTestPolicy(t, Config{Keys: []KeyConfig{{JWKSFile: jwks}}, Audience: []string{"example.com"}})
			var c Claims
			if err := p.Verify(mintToken(t, alg, nil), testNow, &c); err != nil {
				t.Fatalf("jwks_file: %v", err)
			}
			// Without kid in the token the key is found by alg.
			if err := p.Verify(mintToken(t, alg, func(o *mint.Options) { o.Kid = "" }), testNow, &c); err != nil {
				t.Fatalf("jwks_file, no kid: %v", err)
			}
			// A PEM key without alg: inferred where unambiguous, refused for RSA.
			_, err = NewPolicy("p", Config{Keys: []KeyConfig{{PEMFile: fixturePath(alg, ".pub.pem")}}})
			if rsaAlg := alg[0] == 'R' || alg[0] == 'P'; rsaAlg != (err != nil) {
				t.Fatalf("PEM without alg: err = %v", err)
			}
		})
	}
}

func TestEd25519KeyWithoutAlgAcceptsBothNames(t *testing.T) {
	fx := loadFixtures(t)
	p := newTestPolicy(t, Config{Keys: []KeyConfig{{PEMFile: fixturePath("EdDSA", ".pub.pem"), Kid: "ed"}}})
	for _, alg := range []string{"EdDSA", "Ed25519"} {
		tok, err := mint.Sign(mint.Options{Alg: alg, Kid: "ed", Now: testNow}, fx["EdDSA"].signing)
		if err != nil {
			t.Fatal(err)
		}
		var c Claims
		if err := p.Verify([]byte(tok), testNow, &c); err != nil {
			t.Errorf("%s: %v", alg, err)
		}
	}
	// With alg bound explicitly, the other name is refused.
	p = newTestPolicy(t, Config{Keys: []KeyConfig{{PEMFile: fixturePath("EdDSA", ".pub.pem"), Kid: "ed", Alg: "EdDSA"}}})
	tok, _ := mint.Sign(mint.Options{Alg: "Ed25519", Kid: "ed", Now: testNow}, fx["EdDSA"].signing)
	var c Claims
	if err := p.Verify([]byte(tok), testNow, &c); err != ErrKeyAlgMismatch {
		t.Errorf("Ed25519 token on an EdDSA-bound key: %v, want %v", err, ErrKeyAlgMismatch)
	}
}

func TestEdDSAWithEd448Key(t *testing.T) {
	fx := loadFixtures(t)
	p := newTestPolicy(t, Config{Keys: []KeyConfig{{PEMFile: fixturePath("Ed448", ".pub.pem"), Kid: "x"}}})
	for _, alg := range []string{"EdDSA", "Ed448"} {
		tok, err := mint.Sign(mint.Options{Alg: alg, Kid: "x", Now: testNow}, fx["Ed448"].signing)
		if err != nil {
			t.Fatal(err)
		}
		var c Claims
		if err := p.Verify([]byte(tok), testNow, &c); err != nil {
			t.Errorf("%s over Ed448: %v", alg, err)
		}
	}
}

func TestForwardValues(t *testing.T) {
	p := newTestPolicy(t, testConfig(t))
	tok := mintToken(t, "HS256", func(o *mint.Options) {
		o.Claims = map[string]any{
			"tenant": "ac\u00e9me", "level": 3, "admin": true, "roles": []string{"a", "b\"c"},
			"nested": map[string]any{"x": 1}, "evil": "a\r\nX-Injected: 1", "mixed": []any{"a", 1}, "none": nil,
		}
	})
	var c Claims
	if err := p.Verify(tok, testNow, &c); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		want string
		ok   bool
	}{
		{"sub", "user-42", true},
		{"tenant", "ac\u00e9me", true},
		{"level", "3", true},
		{"admin", "true", true},
		{"roles", `a b"c`, true},
		{"nested", "", false},
		{"evil", "", false},
		{"mixed", "", false},
		{"none", "", false},
		{"absent", "", false},
		{"scope", "app:read app:write", true},
	}
	for _, tt := range tests {
		got, ok := c.Value(tt.name)
		if ok != tt.ok || (ok && string(got) != tt.want) {
			t.Errorf("Value(%q) = %q, %v; want %q, %v", tt.name, got, ok, tt.want, tt.ok)
		}
	}
	fc := p.ForwardClaims()
	if len(fc) != 2 || fc[0] != (ForwardClaim{"scope", "X-User-Scope"}) || fc[1] != (ForwardClaim{"sub", "X-User-Id"}) {
		t.Errorf("ForwardClaims() = %v", fc)
	}
}

func TestScopes(t *testing.T) {
	p := newTestPolicy(t, testConfig(t))
	tests := []struct {
		name     string
		claims   map[string]any
		scope    string
		required []string
		want     bool
	}{
		{"scope string", nil, "a b  c", []string{"a", "c"}, true},
		{"scope string missing one", nil, "a b", []string{"a", "c"}, false},
		{"no requirement", nil, "", nil, true},
		{"scp array", map[string]any{"scp": []string{"x", "y\u00e9"}}, "", []string{"y\u00e9"}, true},
		{"scp string", map[string]any{"scp": "x y"}, "", []string{"y"}, true},
		{"scope wins over scp", map[string]any{"scp": []string{"z"}}, "a", []string{"z"}, false},
		{"scope of wrong type", map[string]any{"scope": 5}, "", []string{"5"}, false},
		{"prefix is not a match", nil, "app:readwrite", []string{"app:read"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := mintToken(t, "HS256", func(o *mint.Options) { o.Scope = tt.scope; o.Claims = tt.claims })
			var c Claims
			if err := p.Verify(tok, testNow, &c); err != nil {
				t.Fatal(err)
			}
			if got := c.HasScopes(tt.required); got != tt.want {
				t.Errorf("HasScopes(%q) = %v, want %v", tt.required, got, tt.want)
			}
		})
	}
}

func TestErrorMapping(t *testing.T) {
	tests := []struct {
		err     error
		status  int
		code    string
		reason  string
		invalid bool
		www     string
	}{
		{ErrMissingToken, 401, "missing_token", "missing_token", false, `Bearer error="invalid_token", error_description="bearer token required"`},
		{ErrExpired, 401, "invalid_token", "expired", true, `Bearer error="invalid_token", error_description="token expired"`},
		{ErrBadSignature, 401, "invalid_token", "bad_signature", true, `Bearer error="invalid_token", error_description="signature verification failed"`},
		{ErrInsufficientScope, 403, "insufficient_scope", "insufficient_scope", false, `Bearer error="insufficient_scope", error_description="token lacks a required scope", scope="app:read app:write"`},
		{ErrJWKSUnavailable, 503, "jwks_unavailable", "jwks_unavailable", false, ``},
		{errors.New("other"), 401, "invalid_token", "error", false, `Bearer error="invalid_token", error_description="invalid token"`},
	}
	for _, tt := range tests {
		if HTTPStatus(tt.err) != tt.status || Code(tt.err) != tt.code || Reason(tt.err) != tt.reason {
			t.Errorf("%v: status, code, reason = %d, %q, %q", tt.err, HTTPStatus(tt.err), Code(tt.err), Reason(tt.err))
		}
		if errors.Is(tt.err, ErrInvalidToken) != tt.invalid {
			t.Errorf("%v: errors.Is(ErrInvalidToken) = %v", tt.err, !tt.invalid)
		}
		if got := string(AppendWWWAuthenticate(nil, tt.err, []string{"app:read", "bad\"scope", "app:write"})); got != tt.www {
			t.Errorf("%v: WWW-Authenticate = %s\nwant %s", tt.err, got, tt.www)
		}
	}
}

func TestExtractBearer(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"Bearer abc.def.ghi", "abc.def.ghi", true},
		{"bearer abc", "abc", true},
		{"BEARER   abc  ", "abc", true},
		{"\tBearer abc", "abc", true},
		{"Bearer", "", false},
		{"Bearer ", "", false},
		{"Bearerabc", "", false},
		{"Basic dXNlcjpwYXNz", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		got, ok := ExtractBearer([]byte(tt.in))
		if ok != tt.ok || string(got) != tt.want {
			t.Errorf("ExtractBearer(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	fx := loadFixtures(t)
	dir := t.TempDir()
	short := filepath.Join(dir, "short.secret")
	if err := os.WriteFile(short, []byte("too-short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"none algorithm", Config{Algorithms: []string{"none"}}, `"none" is never accepted`},
		{"unknown algorithm", Config{Algorithms: []string{"HS257"}}, `unknown algorithm "HS257"`},
		{"two sources", Config{Keys: []KeyConfig{{PEMFile: "a", JWKSFile: "b"}}}, "need exactly one of"},
		{"missing file", Config{Keys: []KeyConfig{{PEMFile: filepath.Join(dir, "nope.pem"), Alg: "ES256"}}}, "nope.pem"},
		{"short secret", Config{Keys: []KeyConfig{{HMACSecretFile: short, Alg: "HS256"}}}, "RFC 7518 §3.2"},
		{"secret without alg", Config{Keys: []KeyConfig{{HMACSecretFile: fx["HS256"].config.HMACSecretFile}}}, "needs alg"},
		{"wrong alg for key", Config{Keys: []KeyConfig{{PEMFile: fx["ES256"].config.PEMFile, Alg: "ES384"}}}, "cannot use a P-256 key"},
		{"key alg not allowed", Config{Algorithms: []string{"HS256"}, Keys: []KeyConfig{{PEMFile: fx["ES256"].config.PEMFile, Alg: "ES256"}}}, "not in algorithms"},
		{"private key in pem_file", Config{Keys: []KeyConfig{{PEMFile: fixturePath("ES256", ".priv.pem")}}}, "give the public key"},
		{"plain http jwks", Config{Keys: []KeyConfig{{JWKSURL: "http://auth.example.com/jwks"}}}, "must be https"},
		{"kid on jwks", Config{Keys: []KeyConfig{{JWKSURL: "https://a/jwks", Kid: "k"}}}, "kid applies to"},
		{"bad forward header", Config{ForwardClaims: map[string]string{"sub": "X User"}}, "valid header name"},
		{"empty audience", Config{Audience: []string{""}}, "audience[0] is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewPolicy("users", tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), `policy "users"`) {
				t.Fatalf("err = %v, want it to mention %q and the policy", err, tt.want)
			}
		})
	}
}

func TestReload(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "s.secret")
	write := func(s string) {
		if err := os.WriteFile(secret, []byte(s+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	first, second := strings.Repeat("a", 32), strings.Repeat("b", 32)
	write(first)
	p := newTestPolicy(t, Config{Keys: []KeyConfig{{HMACSecretFile: secret, Alg: "HS256", Kid: "k"}}})
	sign := func(secret string) []byte {
		s, err := mint.Sign(mint.Options{Alg: "HS256", Kid: "k", Now: testNow}, []byte(secret))
		if err != nil {
			t.Fatal(err)
		}
		return []byte(s)
	}
	var c Claims
	if err := p.Verify(sign(first), testNow, &c); err != nil {
		t.Fatal(err)
	}
	write(second)
	if err := p.Reload(); err != nil {
		t.Fatal(err)
	}
	if err := p.Verify(sign(first), testNow, &c); err != ErrBadSignature {
		t.Fatalf("old secret after reload: %v", err)
	}
	if err := p.Verify(sign(second), testNow, &c); err != nil {
		t.Fatalf("new secret after reload: %v", err)
	}
	write("short")
	if err := p.Reload(); err == nil {
		t.Fatal("reload of a bad secret succeeded")
	}
	if err := p.Verify(sign(second), testNow, &c); err != nil {
		t.Fatalf("failed reload dropped the working key: %v", err)
	}
}

func TestVerifyTimeline(t *testing.T) {
	p := newTestPolicy(t, testConfig(t)) // leeway 30s
	iat := testNow
	tok := mintToken(t, "ES256", func(o *mint.Options) {
		o.Now = iat
		o.TTL = 10 * time.Minute
		o.Claims = map[string]any{"nbf": iat.Add(time.Minute).Unix()}
	})
	tests := []struct {
		at   time.Duration
		want error
	}{
		{-time.Second, ErrNotYetValid},
		{30 * time.Second, nil}, // nbf - leeway: valid (inclusive)
		{30*time.Second - time.Nanosecond, ErrNotYetValid},
		{10 * time.Minute, nil},
		{10*time.Minute + 30*time.Second - time.Nanosecond, nil},
		{10*time.Minute + 30*time.Second, ErrExpired}, // exp + leeway: expired (exclusive)
		{time.Hour, ErrExpired},
	}
	var c Claims
	for _, tt := range tests {
		// Each step runs twice: the verified-token cache must not change the answer.
		for range 2 {
			if err := p.Verify(tok, iat.Add(tt.at), &c); err != tt.want {
				t.Errorf("at iat%+v: %v, want %v", tt.at, err, tt.want)
			}
		}
	}
}

func TestRejectedTokenLeavesNoClaims(t *testing.T) {
	p := newTestPolicy(t, testConfig(t))
	var c Claims
	expired := mintToken(t, "ES256", func(o *mint.Options) { o.TTL = -time.Hour })
	for range 2 { // the second time from the cache
		if err := p.Verify(expired, testNow, &c); err != ErrExpired {
			t.Fatalf("Verify = %v", err)
		}
		if sub, ok := c.Sub(); ok || c.Alg() != "" || c.KeyID() != "" || c.HasScopes([]string{"app:read"}) {
			t.Fatalf("a rejected token left claims behind: sub %q", sub)
		}
		if _, ok := c.Value("sub"); ok {
			t.Fatal("Value works after a rejection")
		}
	}
}

func TestInlineKeys(t *testing.T) {
	var keys []KeyConfig
	var tokens [][]byte
	for _, alg := range []string{"HS384", "ES384", "ML-DSA-44"} {
		kp, err := mint.GenerateKey(alg, "inline-"+alg, nil)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case kp.Secret != nil:
			keys = append(keys, KeyConfig{HMACSecret: ParseHMACSecret(kp.Secret), Alg: alg, Kid: kp.Kid})
		case alg == "ES384":
			keys = append(keys, KeyConfig{PEM: kp.PublicPEM, Kid: kp.Kid})
		default:
			keys = append(keys, KeyConfig{JWKS: kp.PublicJWKS()})
		}
		tok, err := mint.Sign(mint.Options{Alg: alg, Kid: kp.Kid, Now: testNow}, kp.Private)
		if err != nil {
			t.Fatal(err)
		}
		tokens = append(tokens, []byte(tok))
	}
	p := newTestPolicy(t, Config{Keys: keys})
	var c Claims
	for i, tok := range tokens {
		if err := p.Verify(tok, testNow, &c); err != nil {
			t.Errorf("token %d: %v", i, err)
		}
	}
	if entries, size := p.CacheStats(); entries != 2 || size == 0 {
		t.Errorf("CacheStats = %d entries, %d bytes; want the two asymmetric tokens", entries, size)
	}
	if _, err := NewPolicy("x", Config{Keys: []KeyConfig{{PEM: []byte("x"), PEMFile: "y"}}}); err == nil {
		t.Error("two sources in one key accepted")
	}
}

func TestHeaderMemo(t *testing.T) {
	p := newTestPolicy(t, testConfig(t))
	var c Claims
	good := mintToken(t, "HS256", nil)
	seg := good[:strings.IndexByte(string(good), '.')]
	forged := signRaw(t, "HS256", hdr("HS256", "hs256-1"), claimsAt(""), []byte(strings.Repeat("x", 32)))
	if err := p.Verify(forged, testNow, &c); err != ErrBadSignature || p.headerMemo(forged[:strings.IndexByte(string(forged), '.')]) != nil {
		t.Fatalf("a rejected token's header was remembered (%v)", err)
	}
	if err := p.Verify(good, testNow, &c); err != nil || p.headerMemo(seg) == nil {
		t.Fatalf("a verified token's header was not remembered (%v)", err)
	}
	// The memo only replaces header parsing: the rest is checked every time.
	tampered := append([]byte{}, good...)
	tampered[len(tampered)-3] ^= 1
	if err := p.Verify(tampered, testNow, &c); err != ErrBadSignature {
		t.Fatalf("tampered token with a remembered header: %v", err)
	}
	if err := p.Verify(good, testNow.Add(2*time.Hour), &c); err != ErrExpired {
		t.Fatalf("expired token with a remembered header: %v", err)
	}
}
