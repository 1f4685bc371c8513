package mint_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"example.com/edge/l7/jwt"
	"example.com/edge/l7/jwt/mint"
	gojwt "github.com/golang-jwt/jwt/v5"
)

var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// TestEveryAlgorithmRoundTrip generates a key of each algorithm, writes it in every
// format, reloads the private side with LoadKey, signs, and verifies with l7/jwt from the
// PEM public key, from a JWKS file, and with the method's own Verify.
func TestEveryAlgorithmRoundTrip(t *testing.T) {
	dir := t.TempDir()
	for _, alg := range mint.Algorithms() {
		t.Run(alg, func(t *testing.T) {
			kp, err := mint.GenerateKey(alg, "k1", nil)
			if err != nil {
				t.Fatal(err)
			}
			base := filepath.Join(dir, strings.ToLower(alg))
			write := func(ext string, data []byte) string {
				if err := os.WriteFile(base+ext, data, 0o600); err != nil {
					t.Fatal(err)
				}
				return base + ext
			}
			jwksPath := write(".jwks", kp.PublicJWKS())
			var privFiles []string
			var pubKey jwt.KeyConfig
			if kp.Secret != nil {
				privFiles = []string{write(".secret", kp.Secret), write(".jwk", kp.PrivateJWK)}
				pubKey = jwt.KeyConfig{HMACSecretFile: base + ".secret", Alg: alg, Kid: "k1"}
			} else {
				privFiles = []string{write(".key", kp.PrivatePEM), write(".jwk", kp.PrivateJWK)}
				pubKey = jwt.KeyConfig{PEMFile: write(".pub", kp.PublicPEM), Alg: alg, Kid: "k1"}
			}
			policies := map[string]jwt.Config{
				"pem or secret file": {Keys: []jwt.KeyConfig{pubKey}},
				"jwks file":          {Keys: []jwt.KeyConfig{{JWKSFile: jwksPath}}},
			}
			for _, priv := range privFiles {
				key, err := mint.LoadKey(priv, alg)
				if err != nil {
					t.Fatalf("LoadKey(%s): %v", filepath.Base(priv), err)
				}
				tok, err := mint.Sign(mint.Options{Alg: alg, Kid: "k1", Subject: "alice", Scope: "a b", Now: now}, key)
				if err != nil {
					t.Fatal(err)
				}
				for name, cfg := range policies {
					p, err := jwt.NewPolicy("t", cfg)
					if err != nil {
						t.Fatalf("%s: %v", name, err)
					}
					var c jwt.Claims
					if err := p.Verify([]byte(tok), now, &c); err != nil {
						t.Fatalf("%s, signed with %s: %v", name, filepath.Base(priv), err)
					}
					if sub, _ := c.Sub(); string(sub) != "alice" || !c.HasScopes([]string{"a", "b"}) {
						t.Fatalf("%s: claims lost", name)
					}
				}
				m, _ := mint.Method(alg)
				parts := strings.Split(tok, ".")
				sig, _ := gojwt.NewParser().DecodeSegment(parts[2])
				verifyKey := kp.Public
				if kp.Secret != nil {
					verifyKey = kp.Private
				}
				if err := m.Verify(parts[0]+"."+parts[1], sig, verifyKey); err != nil {
					t.Fatalf("method Verify: %v", err)
				}
				if err := m.Verify(parts[0]+"."+parts[1]+"x", sig, verifyKey); err == nil {
					t.Fatal("method Verify accepted another input")
				}
			}
		})
	}
}

func TestKeyTypeMismatches(t *testing.T) {
	ed, err := mint.GenerateKey("Ed448", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	ml, err := mint.GenerateKey("ML-DSA-44", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		alg string
		key any
	}{
		{"Ed25519", ed.Private},
		{"ML-DSA-65", ml.Private},
		{"ES256", ed.Private},
	} {
		if _, err := mint.Sign(mint.Options{Alg: tt.alg, Now: now}, tt.key); err == nil {
			t.Errorf("%s signed with %T", tt.alg, tt.key)
		}
	}
	if _, err := mint.ParseKey(ed.PrivatePEM, "ES256"); err == nil {
		t.Error("an Ed448 PEM key parsed for ES256")
	}
	if _, err := mint.ParseKey(ml.PrivateJWK, "ML-DSA-87"); err == nil {
		t.Error("an ML-DSA-44 JWK parsed for ML-DSA-87")
	}
	if _, err := mint.Method("none"); err == nil {
		t.Error(`Method("none") succeeded`)
	}
}

func TestSignOptions(t *testing.T) {
	secret := []byte(strings.Repeat("k", 32))
	tok, err := mint.Sign(mint.Options{
		Alg: "HS256", Kid: "hs", Subject: "s", Issuer: "i", Audience: []string{"a", "b"},
		TTL: 5 * time.Minute, Now: now, Claims: map[string]any{"tenant": "acme", "iss": "override"},
	}, secret)
	if err != nil {
		t.Fatal(err)
	}
	claims := gojwt.MapClaims{}
	parsed, err := gojwt.NewParser(gojwt.WithTimeFunc(func() time.Time { return now })).ParseWithClaims(tok, claims, func(*gojwt.Token) (any, error) { return secret, nil })
	if err != nil {
		t.Fatal(err)
	}
	if parsed.Header["kid"] != "hs" || claims["sub"] != "s" || claims["iss"] != "override" || claims["tenant"] != "acme" {
		t.Errorf("claims %v, header %v", claims, parsed.Header)
	}
	if aud, _ := claims.GetAudience(); len(aud) != 2 {
		t.Errorf("aud = %v", aud)
	}
	if exp, _ := claims.GetExpirationTime(); !exp.Equal(now.Add(5 * time.Minute)) {
		t.Errorf("exp = %v", exp)
	}
	tok, err = mint.Sign(mint.Options{Alg: "HS256", NoExp: true, Audience: []string{"one"}, Now: now}, secret)
	if err != nil {
		t.Fatal(err)
	}
	claims = gojwt.MapClaims{}
	if _, _, err := gojwt.NewParser().ParseUnverified(tok, claims); err != nil {
		t.Fatal(err)
	}
	if _, ok := claims["exp"]; ok || claims["aud"] != "one" {
		t.Errorf("NoExp / single audience: %v", claims)
	}
}

func TestParseClaim(t *testing.T) {
	tests := []struct {
		in   string
		name string
		want any
		bad  bool
	}{
		{"tenant=acme", "tenant", "acme", false},
		{"level=3", "level", float64(3), false},
		{"admin=true", "admin", true, false},
		{`quoted="3"`, "quoted", "3", false},
		{"url=https://x/y?a=b", "url", "https://x/y?a=b", false},
		{"empty=", "empty", "", false},
		{"noequals", "", nil, true},
		{"=v", "", nil, true},
	}
	for _, tt := range tests {
		name, v, err := mint.ParseClaim(tt.in)
		if (err != nil) != tt.bad || (!tt.bad && (name != tt.name || v != tt.want)) {
			t.Errorf("ParseClaim(%q) = %q, %#v, %v", tt.in, name, v, err)
		}
	}
	_, v, _ := mint.ParseClaim(`roles=["a","b"]`)
	if arr, ok := v.([]any); !ok || len(arr) != 2 {
		t.Errorf("array claim = %#v", v)
	}
}

func TestHMACSecretFileRule(t *testing.T) {
	// The verifier and the minting side read secret files by the same rule.
	data := []byte("0123456789abcdef0123456789abcdef\r\n")
	key, err := mint.ParseKey(data, "HS256")
	if err != nil {
		t.Fatal(err)
	}
	if string(key.([]byte)) != string(jwt.ParseHMACSecret(data)) {
		t.Fatalf("mint reads %q, the verifier %q", key, jwt.ParseHMACSecret(data))
	}
}
