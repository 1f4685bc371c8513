package jwt

import (
	"crypto/ed25519"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"example.com/edge/l7/jwt/mint"
	gojwt "github.com/golang-jwt/jwt/v5"
)

// Benchmarks of the whole check (split, decode, header, key selection, claims, signature,
// claim rules) against golang-jwt's Parse with the same keys and validation options, in
// the same run:
//
//	go test ./l7/jwt -run '^$' -bench . -benchmem -benchtime 1s
//
// "Cold" benchmarks disable the verified-token cache so every iteration does the math;
// "Cached" ones repeat one token so every iteration after the first is a cache hit.
// Besides wall time, each reports cpu-ns/op, the benchmark thread's CPU time per
// operation, which a loaded machine inflates far less.

var registerOnce sync.Once

// registerGolangJWTMethods registers mint's signing methods for the algorithms golang-jwt
// lacks, so golang-jwt can serve as the reference verifier in tests. Production code
// never registers anything.
func registerGolangJWTMethods() {
	registerOnce.Do(func() {
		for _, alg := range []string{"Ed25519", "Ed448", "ML-DSA-44", "ML-DSA-65", "ML-DSA-87"} {
			m, _ := mint.Method(alg)
			gojwt.RegisterSigningMethod(alg, func() gojwt.SigningMethod { return m })
		}
	})
}

// golangJWTParser returns a golang-jwt parser configured like testConfig's policy, and a
// keyfunc applying the contract's key selection over the fixture keys.
func golangJWTParser(t testing.TB, now time.Time) (*gojwt.Parser, gojwt.Keyfunc) {
	registerGolangJWTMethods()
	fx := loadFixtures(t)
	verifying := make(map[string]any)
	for _, alg := range mint.Algorithms() {
		if strings.HasPrefix(alg, "HS") {
			verifying[fixtureKid(alg)] = fx[alg].signing
			continue
		}
		kp, err := mint.ParseKey(mustRead(t, fixturePath(alg, ".priv.jwk")), alg)
		if err != nil {
			t.Fatal(err)
		}
		verifying[fixtureKid(alg)] = publicOf(kp)
	}
	parser := gojwt.NewParser(
		gojwt.WithValidMethods(mint.Algorithms()),
		gojwt.WithIssuer("https://auth.example.com"),
		gojwt.WithAudience("example.com"),
		gojwt.WithLeeway(30*time.Second),
		gojwt.WithExpirationRequired(),
		gojwt.WithIssuedAt(),
		gojwt.WithStrictDecoding(),
		gojwt.WithTimeFunc(func() time.Time { return now }),
	)
	keyfunc := func(tok *gojwt.Token) (any, error) {
		kid, ok := tok.Header["kid"].(string)
		if !ok {
			return nil, gojwt.ErrTokenUnverifiable
		}
		k, ok := verifying[kid]
		if !ok || fixtureKid(tok.Method.Alg()) != kid {
			return nil, gojwt.ErrTokenUnverifiable
		}
		return k, nil
	}
	return parser, keyfunc
}

func benchPolicy(b *testing.B, cacheBytes int) *Policy {
	cfg := testConfig(b)
	cfg.CacheBytes = cacheBytes
	return newTestPolicy(b, cfg)
}

func benchVerify(b *testing.B, alg string, cacheBytes int) {
	p := benchPolicy(b, cacheBytes)
	tok := mintToken(b, alg, nil)
	c := new(Claims)
	if err := p.Verify(tok, testNow, c); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(tok)))
	defer cpuPerOp(b)()
	for b.Loop() {
		if err := p.Verify(tok, testNow, c); err != nil {
			b.Fatal(err)
		}
	}
}

// cpuPerOp locks the benchmark to its thread and returns a function that reports the
// thread's CPU time per iteration as cpu-ns/op.
func cpuPerOp(b *testing.B) func() {
	runtime.LockOSThread()
	start := threadCPUTime()
	return func() {
		end := threadCPUTime()
		runtime.UnlockOSThread()
		if start >= 0 && end >= 0 && b.N > 0 {
			b.ReportMetric(float64(end-start)/float64(b.N), "cpu-ns/op")
		}
	}
}

func benchGolangJWT(b *testing.B, alg string) {
	parser, keyfunc := golangJWTParser(b, testNow)
	tok := string(mintToken(b, alg, nil))
	if _, err := parser.Parse(tok, keyfunc); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(tok)))
	defer cpuPerOp(b)()
	for b.Loop() {
		if _, err := parser.Parse(tok, keyfunc); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyHS256(b *testing.B)           { benchVerify(b, "HS256", 0) }
func BenchmarkVerifyHS512(b *testing.B)           { benchVerify(b, "HS512", 0) }
func BenchmarkVerifyEdDSA(b *testing.B)           { benchVerify(b, "EdDSA", -1) }
func BenchmarkVerifyEdDSACached(b *testing.B)     { benchVerify(b, "EdDSA", 0) }
func BenchmarkVerifyEd448Cold(b *testing.B)       { benchVerify(b, "Ed448", -1) }
func BenchmarkVerifyRS256Cold(b *testing.B)       { benchVerify(b, "RS256", -1) }
func BenchmarkVerifyRS256Cached(b *testing.B)     { benchVerify(b, "RS256", 0) }
func BenchmarkVerifyPS256Cold(b *testing.B)       { benchVerify(b, "PS256", -1) }
func BenchmarkVerifyES256Cold(b *testing.B)       { benchVerify(b, "ES256", -1) }
func BenchmarkVerifyES256Cached(b *testing.B)     { benchVerify(b, "ES256", 0) }
func BenchmarkVerifyMLDSA65Cold(b *testing.B)     { benchVerify(b, "ML-DSA-65", -1) }
func BenchmarkVerifyMLDSA65Cached(b *testing.B)   { benchVerify(b, "ML-DSA-65", 0) }
func BenchmarkVerifyMLDSA87Cached(b *testing.B)   { benchVerify(b, "ML-DSA-87", 0) }
func BenchmarkGolangJWTParseHS256(b *testing.B)   { benchGolangJWT(b, "HS256") }
func BenchmarkGolangJWTParseEdDSA(b *testing.B)   { benchGolangJWT(b, "EdDSA") }
func BenchmarkGolangJWTParseRS256(b *testing.B)   { benchGolangJWT(b, "RS256") }
func BenchmarkGolangJWTParseES256(b *testing.B)   { benchGolangJWT(b, "ES256") }
func BenchmarkGolangJWTParseMLDSA65(b *testing.B) { benchGolangJWT(b, "ML-DSA-65") }

// BenchmarkEd25519VerifyBare is the floor for BenchmarkVerifyEdDSA: the signature check
// alone over the same signing input.
func BenchmarkEd25519VerifyBare(b *testing.B) {
	tok := mintToken(b, "EdDSA", nil)
	dot := strings.LastIndexByte(string(tok), '.')
	sig, ok := appendBase64URL(nil, tok[dot+1:])
	if !ok {
		b.Fatal("bad signature encoding")
	}
	pub := loadFixtures(b)["EdDSA"].signing.(ed25519.PrivateKey).Public().(ed25519.PublicKey)
	input := tok[:dot]
	b.ReportAllocs()
	defer cpuPerOp(b)()
	for b.Loop() {
		if !ed25519.Verify(pub, input, sig) {
			b.Fatal("verify failed")
		}
	}
}

// BenchmarkVerifyEdDSAWithoutMath runs the EdDSA path on a token whose signature is one
// byte short, so Verify does everything (header, key lookup, payload and signature
// decoding, claims parsing) except the curve arithmetic, which the length check skips:
// the cost Verify adds to a bare ed25519.Verify, minus the final claim checks.
func BenchmarkVerifyEdDSAWithoutMath(b *testing.B) {
	p := benchPolicy(b, -1)
	tok := mintToken(b, "EdDSA", nil)
	c := new(Claims)
	if err := p.Verify(tok, testNow, c); err != nil { // remembers the header, as in production
		b.Fatal(err)
	}
	short := tok[:len(tok)-2] // 84 characters: a 63-byte signature
	b.ReportAllocs()
	defer cpuPerOp(b)()
	for b.Loop() {
		if err := p.Verify(short, testNow, c); err != ErrBadSignature {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyRejectBadSignatureHS256 measures the cost of a forged HMAC token.
func BenchmarkVerifyRejectBadSignatureHS256(b *testing.B) {
	p := benchPolicy(b, 0)
	tok := mintToken(b, "HS256", nil)
	tok[len(tok)-2] ^= 1
	c := new(Claims)
	b.ReportAllocs()
	for b.Loop() {
		if err := p.Verify(tok, testNow, c); err == nil {
			b.Fatal("forged token accepted")
		}
	}
}

func BenchmarkExtractBearer(b *testing.B) {
	h := []byte("Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig")
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := ExtractBearer(h); !ok {
			b.Fatal("no token")
		}
	}
}

func BenchmarkClaimsValueAndScopes(b *testing.B) {
	p := benchPolicy(b, 0)
	c := new(Claims)
	if err := p.Verify(mintToken(b, "HS256", nil), testNow, c); err != nil {
		b.Fatal(err)
	}
	req := []string{"app:read", "app:write"}
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := c.Value("sub"); !ok || !c.HasScopes(req) {
			b.Fatal("claims lost")
		}
	}
}

func mustRead(t testing.TB, path string) []byte {
	t.Helper()
	data, err := readFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
