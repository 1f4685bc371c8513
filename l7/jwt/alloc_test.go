//go:build !race

package jwt

import (
	"testing"
	"time"

	"example.com/edge/l7/jwt/mint"
)

// The hot paths must not allocate: HMAC and EdDSA verification (the whole check), every
// verified-token cache hit, rejections, and the helpers the proxy calls per request.
func TestVerifyDoesNotAllocate(t *testing.T) {
	cold := testConfig(t)
	cold.CacheBytes = -1
	pCold := newTestPolicy(t, cold)
	pCached := newTestPolicy(t, testConfig(t))
	expired := mintToken(t, "HS256", func(o *mint.Options) { o.TTL = -time.Hour })
	forged := mintToken(t, "HS256", nil)
	forged[len(forged)-2] ^= 1
	tests := []struct {
		name  string
		p     *Policy
		token []byte
		want  error
	}{
		{"HS256", pCold, mintToken(t, "HS256", nil), nil},
		{"HS384", pCold, mintToken(t, "HS384", nil), nil},
		{"HS512", pCold, mintToken(t, "HS512", nil), nil},
		{"EdDSA", pCold, mintToken(t, "EdDSA", nil), nil},
		{"Ed25519", pCold, mintToken(t, "Ed25519", nil), nil},
		{"HS256 with cache enabled", pCached, mintToken(t, "HS256", nil), nil},
		{"EdDSA cached", pCached, mintToken(t, "EdDSA", nil), nil},
		{"RS256 cached", pCached, mintToken(t, "RS256", nil), nil},
		{"PS512 cached", pCached, mintToken(t, "PS512", nil), nil},
		{"ES256 cached", pCached, mintToken(t, "ES256", nil), nil},
		{"ES512 cached", pCached, mintToken(t, "ES512", nil), nil},
		{"Ed448 cached", pCached, mintToken(t, "Ed448", nil), nil},
		{"ML-DSA-44 cached", pCached, mintToken(t, "ML-DSA-44", nil), nil},
		{"ML-DSA-65 cached", pCached, mintToken(t, "ML-DSA-65", nil), nil},
		{"ML-DSA-87 cached", pCached, mintToken(t, "ML-DSA-87", nil), nil},
		{"expired", pCold, expired, ErrExpired},
		{"forged HMAC", pCold, forged, ErrBadSignature},
		{"alg none", pCold, []byte(rfc7515A5Token), ErrAlgNotAllowed},
		{"unknown kid", pCold, signRaw(t, "HS256", hdr("HS256", "nope"), claimsAt(""), nil), ErrUnknownKid},
		{"duplicate claim", pCold, signRaw(t, "HS256", hdr("HS256", "hs256-1"), claimsAt(`"sub":"x"`), nil), ErrDuplicateMember},
		{"malformed", pCold, []byte("a.b"), ErrMalformed},
	}
	c := new(Claims)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			allocs := testing.AllocsPerRun(100, func() { err = tt.p.Verify(tt.token, testNow, c) })
			if err != tt.want {
				t.Fatalf("Verify = %v, want %v", err, tt.want)
			}
			if allocs != 0 {
				t.Fatalf("Verify allocates %.1f times per call", allocs)
			}
		})
	}
}

func TestHelpersDoNotAllocate(t *testing.T) {
	p := newTestPolicy(t, testConfig(t))
	c := new(Claims)
	tok := mintToken(t, "HS256", func(o *mint.Options) { o.Claims = map[string]any{"roles": []string{"a", "b"}} })
	if err := p.Verify(tok, testNow, c); err != nil {
		t.Fatal(err)
	}
	header := []byte("Bearer " + string(tok))
	scopes := []string{"app:read", "app:write"}
	buf := make([]byte, 0, 256)
	allocs := testing.AllocsPerRun(100, func() {
		if _, ok := ExtractBearer(header); !ok {
			t.Fatal("no bearer")
		}
		if _, ok := c.Value("sub"); !ok {
			t.Fatal("no sub")
		}
		if !c.HasScopes(scopes) {
			t.Fatal("scopes")
		}
		c.scratch = c.scratch[:0] // Value of an array appends here until the next Verify
		if _, ok := c.Value("roles"); !ok {
			t.Fatal("no roles")
		}
		buf = AppendWWWAuthenticate(buf[:0], ErrExpired, nil)
		buf = AppendWWWAuthenticate(buf[:0], ErrInsufficientScope, scopes)
		_ = Reason(ErrExpired)
		_ = HTTPStatus(ErrInsufficientScope)
		_ = Code(ErrJWKSUnavailable)
	})
	if allocs != 0 {
		t.Fatalf("helpers allocate %.1f times per call", allocs)
	}
	allocs = testing.AllocsPerRun(100, func() {
		c := AcquireClaims()
		if err := p.Verify(tok, testNow, c); err != nil {
			t.Fatal(err)
		}
		ReleaseClaims(c)
	})
	if allocs != 0 {
		t.Fatalf("AcquireClaims/Verify/ReleaseClaims allocates %.1f times per call", allocs)
	}
}
