package jwt

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"os"
	"strings"
	"testing"

	"example.com/edge/l7/jwt/mint"
)

func b64u(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// signRaw builds a compact JWS over exactly header and payload, signed for alg with key
// (nil means the fixture key of alg).
func signRaw(t testing.TB, alg, header, payload string, key any) []byte {
	t.Helper()
	if key == nil {
		key = loadFixtures(t)[alg].signing
	}
	m, err := mint.Method(alg)
	if err != nil {
		t.Fatal(err)
	}
	input := b64u(header) + "." + b64u(payload)
	sig, err := m.Sign(input, key)
	if err != nil {
		t.Fatal(err)
	}
	return []byte(input + "." + base64.RawURLEncoding.EncodeToString(sig))
}

// claimsAt returns a valid claims set around testNow with extra members appended.
func claimsAt(extra string) string {
	c := fmt.Sprintf(`{"sub":"user-42","iss":"https://auth.example.com","aud":"example.com","iat":%d,"exp":%d`,
		testNow.Unix()-60, testNow.Unix()+3600)
	if extra != "" {
		c += "," + extra
	}
	return c + "}"
}

func hdr(alg, kid string) string { return fmt.Sprintf(`{"alg":%q,"kid":%q}`, alg, kid) }

func TestAttacks(t *testing.T) {
	p := newTestPolicy(t, testConfig(t))
	now := testNow.Unix()
	good := signRaw(t, "ES256", hdr("ES256", "es256-1"), claimsAt(""), nil)
	other := signRaw(t, "ES256", hdr("ES256", "es256-1"), strings.Replace(claimsAt(""), "user-42", "admin", 1), nil)
	goodParts := strings.Split(string(good), ".")
	otherParts := strings.Split(string(other), ".")
	rsaPEM, err := os.ReadFile(fixturePath("RS256", ".pub.pem"))
	if err != nil {
		t.Fatal(err)
	}
	hsSecret := loadFixtures(t)["HS256"].signing
	hs := func(header, payload string) []byte { return signRaw(t, "HS256", header, payload, hsSecret) }
	hsHdr := hdr("HS256", "hs256-1")
	unsigned := func(header string) []byte { return []byte(b64u(header) + "." + b64u(claimsAt("")) + ".") }

	// PS256 with a salt shorter than the hash (RFC 7518 §3.5 fixes it to the hash size).
	psKey := loadFixtures(t)["PS256"].signing.(*rsa.PrivateKey)
	psInput := b64u(hdr("PS256", "ps256-1")) + "." + b64u(claimsAt(""))
	digest := sha256.Sum256([]byte(psInput))
	psSig, err := rsa.SignPSS(rand.Reader, psKey, crypto.SHA256, digest[:], &rsa.PSSOptions{SaltLength: 20})
	if err != nil {
		t.Fatal(err)
	}
	psShortSalt := []byte(psInput + "." + base64.RawURLEncoding.EncodeToString(psSig))

	attackerKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name  string
		token []byte
		want  error
	}{
		{"valid control", good, nil},
		{"alg none", unsigned(`{"alg":"none"}`), ErrAlgNotAllowed},
		{"alg None", unsigned(`{"alg":"None"}`), ErrAlgNotAllowed},
		{"alg NONE with a signature", append(unsigned(`{"alg":"NONE"}`), goodParts[2]...), ErrAlgNotAllowed},
		{"alg nOnE with kid", unsigned(`{"alg":"nOnE","kid":"hs256-1"}`), ErrAlgNotAllowed},
		{"alg missing", unsigned(`{"kid":"hs256-1"}`), ErrAlgNotAllowed},
		{"alg not a string", unsigned(`{"alg":["HS256"]}`), ErrMalformed},
		{"HMAC keyed with the RSA public key, RSA kid", signRaw(t, "HS256", hdr("HS256", "rs256-1"), claimsAt(""), rsaPEM), ErrKeyAlgMismatch},
		{"HMAC keyed with the RSA public key, no kid", signRaw(t, "HS256", `{"alg":"HS256"}`, claimsAt(""), rsaPEM), ErrBadSignature},
		{"HMAC keyed with the RSA public key, HMAC kid", signRaw(t, "HS256", hsHdr, claimsAt(""), rsaPEM), ErrBadSignature},
		{"kid of another algorithm's key", signRaw(t, "ES256", hdr("ES256", "eddsa-1"), claimsAt(""), nil), ErrKeyAlgMismatch},
		{"unknown kid", signRaw(t, "ES256", hdr("ES256", "es256-2"), claimsAt(""), nil), ErrUnknownKid},
		{"kid path traversal", signRaw(t, "ES256", hdr("ES256", "../../../etc/passwd"), claimsAt(""), nil), ErrUnknownKid},
		{"swapped payload", []byte(goodParts[0] + "." + otherParts[1] + "." + goodParts[2]), ErrBadSignature},
		{"swapped signature", []byte(goodParts[0] + "." + goodParts[1] + "." + otherParts[2]), ErrBadSignature},
		{"truncated signature", []byte(goodParts[0] + "." + goodParts[1] + "." + goodParts[2][:40]), ErrBadSignature},
		{"empty signature", []byte(goodParts[0] + "." + goodParts[1] + "."), ErrBadSignature},
		{"embedded jwk is ignored", signRaw(t, "ES256", `{"alg":"ES256","jwk":{"kty":"EC"}}`, claimsAt(""), attackerKey), ErrBadSignature},
		{"PS256 salt not the hash size", psShortSalt, ErrBadSignature},
		{"crit", hs(`{"alg":"HS256","kid":"hs256-1","crit":["exp"],"exp":1}`, claimsAt("")), ErrCrit},
		{"crit b64", hs(`{"alg":"HS256","kid":"hs256-1","b64":false,"crit":["b64"]}`, claimsAt("")), ErrCrit},
		{"b64 before crit", hs(`{"alg":"HS256","b64":false,"kid":"hs256-1","crit":["b64"]}`, claimsAt("")), ErrCrit},
		{"b64 false", hs(`{"alg":"HS256","kid":"hs256-1","b64":false}`, claimsAt("")), ErrB64},
		{"b64 string", hs(`{"alg":"HS256","kid":"hs256-1","b64":"true"}`, claimsAt("")), ErrB64},
		{"b64 true is the default", hs(`{"alg":"HS256","kid":"hs256-1","b64":true}`, claimsAt("")), nil},
		{"padding in header", []byte(goodParts[0] + "=." + goodParts[1] + "." + goodParts[2]), ErrMalformed},
		{"padding in signature", []byte(goodParts[0] + "." + goodParts[1] + "." + goodParts[2] + "=="), ErrMalformed},
		{"standard alphabet +", []byte(goodParts[0] + "." + goodParts[1] + "." + goodParts[2][:5] + "+" + goodParts[2][6:]), ErrMalformed},
		{"standard alphabet /", []byte(goodParts[0] + "." + goodParts[1] + "." + goodParts[2][:5] + "/" + goodParts[2][6:]), ErrMalformed},
		{"non-canonical trailing bits", []byte(goodParts[0][:len(goodParts[0])-1] + "x." + goodParts[1] + "." + goodParts[2]), ErrMalformed},
		{"line break in payload", []byte(goodParts[0] + "." + goodParts[1][:10] + "\n" + goodParts[1][10:] + "." + goodParts[2]), ErrMalformed},
		{"two segments", []byte(goodParts[0] + "." + goodParts[1]), ErrMalformed},
		{"four segments", []byte(string(good) + ".x"), ErrMalformed},
		{"JWE shape", []byte("a.b.c.d.e"), ErrMalformed},
		{"empty", nil, ErrMalformed},
		{"oversized", []byte(strings.Repeat("a", 16<<10+1)), ErrOversized},
		{"duplicate claim", hs(hsHdr, claimsAt(`"sub":"admin"`)), ErrDuplicateMember},
		{"duplicate claim via escape", hs(hsHdr, claimsAt(`"\u0073ub":"admin"`)), ErrDuplicateMember},
		{"duplicate exp", hs(hsHdr, claimsAt(fmt.Sprintf(`"exp":%d`, now+9999999))), ErrDuplicateMember},
		{"duplicate header alg", hs(`{"alg":"HS256","kid":"hs256-1","alg":"none"}`, claimsAt("")), ErrDuplicateMember},
		{"duplicate header kid", hs(`{"alg":"HS256","kid":"hs256-1","kid":"rs256-1"}`, claimsAt("")), ErrDuplicateMember},
		{"escaped alg is still alg", hs(`{"\u0061lg":"HS256","kid":"hs256-1"}`, claimsAt("")), nil},
		{"expired beyond leeway", hs(hsHdr, fmt.Sprintf(`{"iss":"https://auth.example.com","aud":"example.com","exp":%d}`, now-31)), ErrExpired},
		{"expired within leeway", hs(hsHdr, fmt.Sprintf(`{"iss":"https://auth.example.com","aud":"example.com","exp":%d}`, now-29)), nil},
		{"nbf within leeway", hs(hsHdr, claimsAt(fmt.Sprintf(`"nbf":%d`, now+29))), nil},
		{"nbf beyond leeway", hs(hsHdr, claimsAt(fmt.Sprintf(`"nbf":%d`, now+31))), ErrNotYetValid},
		{"fractional nbf rounds up", hs(hsHdr, claimsAt(fmt.Sprintf(`"nbf":%d.2`, now+30))), ErrNotYetValid},
		{"iat in the future", hs(hsHdr, fmt.Sprintf(`{"iss":"https://auth.example.com","aud":"example.com","exp":%d,"iat":%d}`, now+600, now+31)), ErrIssuedInFuture},
		{"exp missing", hs(hsHdr, `{"iss":"https://auth.example.com","aud":"example.com"}`), ErrMissingExp},
		{"exp a string", hs(hsHdr, `{"iss":"https://auth.example.com","aud":"example.com","exp":"9999999999"}`), ErrBadDate},
		{"exp null", hs(hsHdr, `{"iss":"https://auth.example.com","aud":"example.com","exp":null}`), ErrBadDate},
		{"exp beyond year 9999", hs(hsHdr, `{"iss":"https://auth.example.com","aud":"example.com","exp":1e300}`), ErrBadDate},
		{"exp negative", hs(hsHdr, `{"iss":"https://auth.example.com","aud":"example.com","exp":-1}`), ErrBadDate},
		{"exp with exponent", hs(hsHdr, fmt.Sprintf(`{"iss":"https://auth.example.com","aud":"example.com","exp":%de0}`, now+60)), nil},
		{"wrong issuer", hs(hsHdr, strings.Replace(claimsAt(""), "auth.example.com", "evil.example.com", 1)), ErrBadIssuer},
		{"issuer missing", hs(hsHdr, fmt.Sprintf(`{"aud":"example.com","exp":%d}`, now+60)), ErrBadIssuer},
		{"issuer not a string", hs(hsHdr, fmt.Sprintf(`{"iss":["https://auth.example.com"],"aud":"example.com","exp":%d}`, now+60)), ErrBadIssuer},
		{"wrong audience", hs(hsHdr, strings.Replace(claimsAt(""), `"aud":"example.com"`, `"aud":"example.org"`, 1)), ErrBadAudience},
		{"audience array", hs(hsHdr, strings.Replace(claimsAt(""), `"aud":"example.com"`, `"aud":["x","example.com"]`, 1)), nil},
		{"audience array with a number", hs(hsHdr, strings.Replace(claimsAt(""), `"aud":"example.com"`, `"aud":["example.com",1]`, 1)), ErrBadAudience},
		{"audience missing", hs(hsHdr, fmt.Sprintf(`{"iss":"https://auth.example.com","exp":%d}`, now+60)), ErrBadAudience},
		{"invalid UTF-8 in claims", hs(hsHdr, claimsAt("\"name\":\"\xff\"")), ErrInvalidUTF8},
		{"lone surrogate escape", hs(hsHdr, claimsAt(`"name":"\ud800"`)), ErrInvalidUTF8},
		{"deep nesting", hs(hsHdr, claimsAt(`"x":`+strings.Repeat("[", 40)+strings.Repeat("]", 40))), ErrTooDeep},
		{"claims an array", hs(hsHdr, `[1]`), ErrNotObject},
		{"claims null", hs(hsHdr, `null`), ErrNotObject},
		{"header not an object", hs(`"HS256"`, claimsAt("")), ErrNotObject},
		{"header not JSON", hs(`not json`, claimsAt("")), ErrMalformed},
		{"header empty", hs(``, claimsAt("")), ErrMalformed},
		{"claims not JSON", hs(hsHdr, `{`), ErrMalformed},
		{"trailing data after claims", hs(hsHdr, claimsAt("")+"x"), ErrMalformed},
		{"trailing comma", hs(hsHdr, strings.TrimSuffix(claimsAt(""), "}")+",}"), ErrMalformed},
		{"too many claims", hs(hsHdr, claimsAt(manyClaims(70))), ErrTooManyMembers},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c Claims
			for round := range 2 { // a cache hit must answer the same
				if err := p.Verify(tt.token, testNow, &c); err != tt.want {
					t.Fatalf("round %d: Verify = %v, want %v", round, err, tt.want)
				}
			}
		})
	}
}

func manyClaims(n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprintf(`"c%d":%d`, i, i)
	}
	return strings.Join(parts, ",")
}

// TestAlgorithmsListGates checks that a token whose alg is outside Algorithms is refused
// before any key is consulted, even when a key for it exists.
func TestAlgorithmsListGates(t *testing.T) {
	cfg := testConfig(t)
	cfg.Algorithms = []string{"RS256", "ES256", "EdDSA", "HS256"}
	var keys []KeyConfig
	for _, k := range cfg.Keys {
		if k.Alg == "RS256" || k.Alg == "ES256" || k.Alg == "EdDSA" || k.Alg == "HS256" {
			keys = append(keys, k)
		}
	}
	cfg.Keys = keys
	p := newTestPolicy(t, cfg)
	var c Claims
	if err := p.Verify(mintToken(t, "HS256", nil), testNow, &c); err != nil {
		t.Fatal(err)
	}
	if err := p.Verify(mintToken(t, "HS384", nil), testNow, &c); err != ErrAlgNotAllowed {
		t.Fatalf("HS384 token: %v, want %v", err, ErrAlgNotAllowed)
	}
	if err := p.Verify(mintToken(t, "Ed25519", nil), testNow, &c); err != ErrAlgNotAllowed {
		t.Fatalf("Ed25519 token on an EdDSA-only policy: %v", err)
	}
}

func TestExpOptional(t *testing.T) {
	cfg := testConfig(t)
	cfg.ExpOptional = true
	p := newTestPolicy(t, cfg)
	var c Claims
	tok := mintToken(t, "HS256", func(o *mint.Options) { o.NoExp = true })
	if err := p.Verify(tok, testNow, &c); err != nil {
		t.Fatalf("no exp with ExpOptional: %v", err)
	}
	if _, ok := c.Expires(); ok {
		t.Fatal("Expires reported an exp")
	}
	p = newTestPolicy(t, testConfig(t))
	if err := p.Verify(tok, testNow, &c); err != ErrMissingExp {
		t.Fatalf("no exp by default: %v", err)
	}
}
