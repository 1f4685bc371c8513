package jwt

import (
	"crypto"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"example.com/edge/l7/jwt/mint"
)

// Fixed test keys live in testdata/keys so that fuzz seeds and golden tokens stay valid
// across runs. `go test ./l7/jwt -run TestFixtures -update-fixtures` creates missing keys
// (delete one to replace it) and rewrites the fuzz seed corpus.
var updateFixtures = flag.Bool("update-fixtures", false, "regenerate testdata/keys")

// testNow is the fixed instant tests verify at; fixture tokens are minted around it.
var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func fixtureKid(alg string) string { return strings.ToLower(alg) + "-1" }

func fixturePath(alg, ext string) string {
	return filepath.Join("testdata", "keys", strings.ToLower(alg)+ext)
}

func TestFixtures(t *testing.T) {
	if !*updateFixtures {
		for _, alg := range mint.Algorithms() {
			if _, err := os.Stat(fixturePath(alg, ".priv.jwk")); err != nil {
				t.Fatalf("missing fixture for %s (run with -update-fixtures): %v", alg, err)
			}
		}
		return
	}
	if err := os.MkdirAll(filepath.Join("testdata", "keys"), 0o755); err != nil {
		t.Fatal(err)
	}
	defer writeFuzzCorpus(t)
	for _, alg := range mint.Algorithms() {
		if _, err := os.Stat(fixturePath(alg, ".priv.jwk")); err == nil {
			continue // keep existing keys: the corpus tokens are signed with them
		}
		kp, err := mint.GenerateKey(alg, fixtureKid(alg), nil)
		if err != nil {
			t.Fatal(err)
		}
		files := map[string][]byte{".priv.jwk": kp.PrivateJWK}
		if kp.Secret != nil {
			files[".secret"] = kp.Secret
		} else {
			files[".priv.pem"] = kp.PrivatePEM
			files[".pub.pem"] = kp.PublicPEM
			files[".pub.jwk"] = kp.PublicJWK
		}
		for ext, data := range files {
			if err := os.WriteFile(fixturePath(alg, ext), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// fixtureKey is one algorithm's fixed key: its signing key and its verifying KeyConfig.
type fixtureKey struct {
	alg     string
	signing any
	config  KeyConfig
}

var (
	fixturesOnce sync.Once
	fixtures     map[string]fixtureKey
	fixturesErr  error
)

// loadFixtures reads every algorithm's fixed key. HMAC keys verify from their secret file,
// the others from their PEM public key, each bound to its algorithm and kid.
func loadFixtures(t testing.TB) map[string]fixtureKey {
	t.Helper()
	fixturesOnce.Do(func() {
		fixtures = make(map[string]fixtureKey)
		for _, alg := range mint.Algorithms() {
			signing, err := mint.LoadKey(fixturePath(alg, ".priv.jwk"), alg)
			if err != nil {
				fixturesErr = err
				return
			}
			kc := KeyConfig{Alg: alg, Kid: fixtureKid(alg)}
			if strings.HasPrefix(alg, "HS") {
				kc.HMACSecretFile = fixturePath(alg, ".secret")
			} else {
				kc.PEMFile = fixturePath(alg, ".pub.pem")
			}
			fixtures[alg] = fixtureKey{alg: alg, signing: signing, config: kc}
		}
	})
	if fixturesErr != nil {
		t.Fatal(fixturesErr)
	}
	return fixtures
}

// testConfig is a policy accepting every algorithm with every fixture key.
func testConfig(t testing.TB) Config {
	fx := loadFixtures(t)
	cfg := Config{
		Issuer:        "https://auth.example.com",
		Audience:      []string{"example.com"},
		Leeway:        30 * time.Second,
		ForwardClaims: map[string]string{"sub": "X-User-Id", "scope": "X-User-Scope"},
	}
	for _, alg := range mint.Algorithms() {
		cfg.Keys = append(cfg.Keys, fx[alg].config)
		cfg.Algorithms = append(cfg.Algorithms, alg)
	}
	return cfg
}

func newTestPolicy(t testing.TB, cfg Config) *Policy {
	t.Helper()
	p, err := NewPolicy("test", cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// mintToken signs a standard token for alg with the fixture key; edit adjusts options.
func mintToken(t testing.TB, alg string, edit func(*mint.Options)) []byte {
	t.Helper()
	fx := loadFixtures(t)
	opts := mint.Options{
		Alg:      alg,
		Kid:      fixtureKid(alg),
		Subject:  "user-42",
		Issuer:   "https://auth.example.com",
		Audience: []string{"example.com"},
		Scope:    "app:read app:write",
		TTL:      time.Hour,
		Now:      testNow.Add(-time.Minute),
	}
	if edit != nil {
		edit(&opts)
	}
	s, err := mint.Sign(opts, fx[alg].signing)
	if err != nil {
		t.Fatal(err)
	}
	return []byte(s)
}

// publicOf returns the verification key of a signing key.
func publicOf(priv any) any { return priv.(crypto.Signer).Public() }

func readFile(path string) ([]byte, error) { return os.ReadFile(path) }
