// Package mint signs JWTs for `edge token`, the demo's login endpoint, tests and
// benchmarks. It uses golang-jwt/jwt/v5 for token assembly and adds signing methods for
// the algorithms golang-jwt lacks: the fully-specified "Ed25519" and "Ed448" (RFC 9864),
// "EdDSA" over Ed448 keys (RFC 8037), and "ML-DSA-44/65/87" (RFC 9964) over circl.
//
// Nothing is registered with golang-jwt's global method table: Method returns the method
// for an algorithm and callers sign with it directly. Tests that want golang-jwt to
// verify these algorithms register the methods themselves.
//
// Key files (LoadKey, GenerateKey):
//   - HS256/384/512: the secret file's bytes minus trailing CR/LF (the verifier's rule,
//     jwt.ParseHMACSecret). GenerateKey writes 64 random bytes as base64url text.
//   - RSA, EC, Ed25519: PEM "PRIVATE KEY" (PKCS #8), also "RSA PRIVATE KEY" (PKCS #1) and
//     "EC PRIVATE KEY" (SEC 1).
//   - Ed448: PEM "PRIVATE KEY" in the RFC 8410 form.
//   - ML-DSA: PEM "PRIVATE KEY" in an RFC 9881 form (seed, expandedKey or both).
//   - Any asymmetric algorithm: a private JWK (RFC 7517; "OKP" with "d" for Ed25519/Ed448,
//     "AKP" with "priv" holding the 32-byte seed for ML-DSA per RFC 9964), or an "oct" JWK
//     for HMAC.
//
// Everything here is safe for concurrent use.
package mint

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/cloudflare/circl/sign"
	"github.com/cloudflare/circl/sign/ed448"
	"github.com/cloudflare/circl/sign/mldsa/mldsa44"
	"github.com/cloudflare/circl/sign/mldsa/mldsa65"
	"github.com/cloudflare/circl/sign/mldsa/mldsa87"
	gojwt "github.com/golang-jwt/jwt/v5"
)

// Algorithms lists every algorithm Method supports.
func Algorithms() []string {
	return []string{"HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
		"ES256", "ES384", "ES512", "EdDSA", "Ed25519", "Ed448", "ML-DSA-44", "ML-DSA-65", "ML-DSA-87"}
}

// Method returns the golang-jwt signing method for alg.
func Method(alg string) (gojwt.SigningMethod, error) {
	switch alg {
	case "HS256":
		return gojwt.SigningMethodHS256, nil
	case "HS384":
		return gojwt.SigningMethodHS384, nil
	case "HS512":
		return gojwt.SigningMethodHS512, nil
	case "RS256":
		return gojwt.SigningMethodRS256, nil
	case "RS384":
		return gojwt.SigningMethodRS384, nil
	case "RS512":
		return gojwt.SigningMethodRS512, nil
	case "PS256":
		return gojwt.SigningMethodPS256, nil
	case "PS384":
		return gojwt.SigningMethodPS384, nil
	case "PS512":
		return gojwt.SigningMethodPS512, nil
	case "ES256":
		return gojwt.SigningMethodES256, nil
	case "ES384":
		return gojwt.SigningMethodES384, nil
	case "ES512":
		return gojwt.SigningMethodES512, nil
	case "EdDSA", "Ed25519", "Ed448":
		return EdDSAMethod{Name: alg}, nil
	case "ML-DSA-44", "ML-DSA-65", "ML-DSA-87":
		return MLDSAMethod{Name: alg}, nil
	}
	return nil, fmt.Errorf("mint: unknown algorithm %q", alg)
}

// EdDSAMethod signs and verifies "EdDSA" (Ed25519 or Ed448 by key type, RFC 8037 §3.1)
// and the fully-specified "Ed25519" and "Ed448" (RFC 9864), always with an empty context.
// Keys: ed25519.PrivateKey/PublicKey or ed448.PrivateKey/PublicKey.
type EdDSAMethod struct{ Name string }

// Alg returns the method's "alg" value.
func (m EdDSAMethod) Alg() string { return m.Name }

// Sign implements gojwt.SigningMethod.
func (m EdDSAMethod) Sign(signingString string, key any) ([]byte, error) {
	switch k := key.(type) {
	case ed25519.PrivateKey:
		if m.Name == "Ed448" {
			break
		}
		return ed25519.Sign(k, []byte(signingString)), nil
	case ed448.PrivateKey:
		if m.Name == "Ed25519" {
			break
		}
		return ed448.Sign(k, []byte(signingString), ""), nil
	}
	return nil, fmt.Errorf("mint: %s cannot sign with %T: %w", m.Name, key, gojwt.ErrInvalidKeyType)
}

// Verify implements gojwt.SigningMethod.
func (m EdDSAMethod) Verify(signingString string, sig []byte, key any) error {
	ok := false
	switch k := key.(type) {
	case ed25519.PublicKey:
		if m.Name == "Ed448" {
			return gojwt.ErrInvalidKeyType
		}
		ok = len(k) == ed25519.PublicKeySize && ed25519.Verify(k, []byte(signingString), sig)
	case ed448.PublicKey:
		if m.Name == "Ed25519" {
			return gojwt.ErrInvalidKeyType
		}
		ok = len(k) == ed448.PublicKeySize && ed448.Verify(k, []byte(signingString), sig, "")
	default:
		return gojwt.ErrInvalidKeyType
	}
	if !ok {
		return gojwt.ErrSignatureInvalid
	}
	return nil
}

// MLDSAMethod signs and verifies ML-DSA-44/65/87 (RFC 9964: FIPS 204 ML-DSA with the
// empty context string). Keys: the circl mldsa44/65/87 PrivateKey and PublicKey pointers.
type MLDSAMethod struct{ Name string }

// Alg returns the method's "alg" value.
func (m MLDSAMethod) Alg() string { return m.Name }

func mldsaScheme(name string) sign.Scheme {
	switch name {
	case "ML-DSA-44":
		return mldsa44.Scheme()
	case "ML-DSA-65":
		return mldsa65.Scheme()
	}
	return mldsa87.Scheme()
}

// Sign implements gojwt.SigningMethod.
func (m MLDSAMethod) Sign(signingString string, key any) ([]byte, error) {
	sk, ok := key.(sign.PrivateKey)
	if !ok || sk.Scheme() != mldsaScheme(m.Name) {
		return nil, fmt.Errorf("mint: %s cannot sign with %T: %w", m.Name, key, gojwt.ErrInvalidKeyType)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, gojwt.ErrInvalidKeyType
	}
	// crypto.Signer.Sign of circl's ML-DSA keys signs with the empty context.
	return signer.Sign(rand.Reader, []byte(signingString), crypto.Hash(0))
}

// Verify implements gojwt.SigningMethod.
func (m MLDSAMethod) Verify(signingString string, sig []byte, key any) error {
	pk, ok := key.(sign.PublicKey)
	if !ok || pk.Scheme() != mldsaScheme(m.Name) {
		return gojwt.ErrInvalidKeyType
	}
	if len(sig) != pk.Scheme().SignatureSize() || !pk.Scheme().Verify(pk, []byte(signingString), sig, nil) {
		return gojwt.ErrSignatureInvalid
	}
	return nil
}

// Options describes a token to mint; it mirrors `edge token`'s flags.
type Options struct {
	Alg      string
	Kid      string
	Subject  string
	Issuer   string
	Audience []string // one value is written as a string, several as an array
	Scope    string   // space-separated scopes
	// TTL sets exp to Now+TTL (0 means one hour); NoExp omits exp instead.
	TTL   time.Duration
	NoExp bool
	// Now is the issue time (zero means time.Now()).
	Now time.Time
	// Claims are extra claims, written last (they may override the ones above).
	Claims map[string]any
}

// Sign returns a compact JWS for opts signed with key (see LoadKey for key types).
func Sign(opts Options, key any) (string, error) {
	m, err := Method(opts.Alg)
	if err != nil {
		return "", err
	}
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	claims := gojwt.MapClaims{"iat": now.Unix()}
	if !opts.NoExp {
		ttl := opts.TTL
		if ttl == 0 {
			ttl = time.Hour
		}
		claims["exp"] = now.Add(ttl).Unix()
	}
	if opts.Subject != "" {
		claims["sub"] = opts.Subject
	}
	if opts.Issuer != "" {
		claims["iss"] = opts.Issuer
	}
	switch len(opts.Audience) {
	case 0:
	case 1:
		claims["aud"] = opts.Audience[0]
	default:
		claims["aud"] = opts.Audience
	}
	if opts.Scope != "" {
		claims["scope"] = opts.Scope
	}
	for k, v := range opts.Claims {
		claims[k] = v
	}
	t := gojwt.NewWithClaims(m, claims)
	if opts.Kid != "" {
		t.Header["kid"] = opts.Kid
	}
	s, err := t.SignedString(key)
	if err != nil {
		return "", fmt.Errorf("mint: sign %s: %w", opts.Alg, err)
	}
	return s, nil
}

// ParseClaim parses a `-claim name=value` flag. The value is taken as JSON when it is a
// JSON number, boolean, null, array, object or quoted string, and as a plain string
// otherwise (so -claim tenant=acme and -claim level=3 both do what one expects).
func ParseClaim(flag string) (name string, value any, err error) {
	name, raw, ok := strings.Cut(flag, "=")
	if !ok || name == "" {
		return "", nil, fmt.Errorf("mint: claim %q: want name=value", flag)
	}
	var v any
	if json.Unmarshal([]byte(raw), &v) == nil {
		return name, v, nil
	}
	return name, raw, nil
}
