package mint

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"

	"github.com/cloudflare/circl/sign"
	"github.com/cloudflare/circl/sign/ed448"
)

// OIDs crypto/x509 does not know: Ed448 (RFC 8410) and ML-DSA (RFC 9881).
func oidEd448() asn1.ObjectIdentifier { return asn1.ObjectIdentifier{1, 3, 101, 113} }

func oidMLDSA(name string) asn1.ObjectIdentifier {
	last := map[string]int{"ML-DSA-44": 17, "ML-DSA-65": 18, "ML-DSA-87": 19}[name]
	return asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 3, last}
}

// pkcs8 is OneAsymmetricKey (RFC 5958) with the optional fields tolerated.
type pkcs8 struct {
	Version    int
	Algo       pkix.AlgorithmIdentifier
	PrivateKey []byte
	Attributes asn1.RawValue `asn1:"optional,tag:0"`
	PublicKey  asn1.RawValue `asn1:"optional,tag:1"`
}

type spki struct {
	Algo      pkix.AlgorithmIdentifier
	PublicKey asn1.BitString
}

// LoadKey reads a signing key for alg from path (formats: see the package comment).
func LoadKey(path, alg string) (any, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("mint: %w", err)
	}
	k, err := ParseKey(data, alg)
	if err != nil {
		return nil, fmt.Errorf("mint: %s: %w", path, err)
	}
	return k, nil
}

// ParseKey parses a signing key for alg from a key file's contents.
func ParseKey(data []byte, alg string) (any, error) {
	if _, err := Method(alg); err != nil {
		return nil, err
	}
	if alg[0] == 'H' {
		trimmed := bytes.TrimSpace(data)
		if len(trimmed) > 0 && trimmed[0] == '{' {
			return parsePrivateJWK(trimmed, alg)
		}
		for len(data) > 0 && (data[len(data)-1] == '\n' || data[len(data)-1] == '\r') {
			data = data[:len(data)-1]
		}
		if len(data) == 0 {
			return nil, errors.New("empty HMAC secret")
		}
		return bytes.Clone(data), nil
	}
	if trimmed := bytes.TrimSpace(data); len(trimmed) > 0 && trimmed[0] == '{' {
		return parsePrivateJWK(trimmed, alg)
	}
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, errors.New("no PRIVATE KEY PEM block or JWK")
		}
		var k any
		var err error
		switch block.Type {
		case "PRIVATE KEY":
			k, err = parsePKCS8(block.Bytes)
		case "RSA PRIVATE KEY":
			k, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			k, err = x509.ParseECPrivateKey(block.Bytes)
		default:
			continue
		}
		if err != nil {
			return nil, err
		}
		return k, checkKeyFits(k, alg)
	}
}

func parsePKCS8(der []byte) (any, error) {
	var p pkcs8
	if rest, err := asn1.Unmarshal(der, &p); err != nil || len(rest) != 0 {
		return x509.ParsePKCS8PrivateKey(der)
	}
	oid := p.Algo.Algorithm
	if oid.Equal(oidEd448()) {
		var seed []byte
		if _, err := asn1.Unmarshal(p.PrivateKey, &seed); err != nil || len(seed) != ed448.SeedSize {
			return nil, errors.New("invalid Ed448 private key")
		}
		return ed448.NewKeyFromSeed(seed), nil
	}
	for _, name := range []string{"ML-DSA-44", "ML-DSA-65", "ML-DSA-87"} {
		if oid.Equal(oidMLDSA(name)) {
			return parseMLDSAPrivate(mldsaScheme(name), p.PrivateKey)
		}
	}
	return x509.ParsePKCS8PrivateKey(der)
}

// parseMLDSAPrivate reads RFC 9881's ML-DSA-PrivateKey CHOICE: seed [0] (32 bytes),
// expandedKey OCTET STRING, or both SEQUENCE { seed, expandedKey } (seed wins).
func parseMLDSAPrivate(s sign.Scheme, b []byte) (any, error) {
	var raw asn1.RawValue
	if rest, err := asn1.Unmarshal(b, &raw); err != nil || len(rest) != 0 {
		return nil, errors.New("invalid ML-DSA private key")
	}
	switch {
	case raw.Class == asn1.ClassContextSpecific && raw.Tag == 0 && len(raw.Bytes) == 32:
		_, sk := s.DeriveKey(raw.Bytes)
		return sk, nil
	case raw.Class == asn1.ClassUniversal && raw.Tag == asn1.TagOctetString:
		return s.UnmarshalBinaryPrivateKey(raw.Bytes)
	case raw.Class == asn1.ClassUniversal && raw.Tag == asn1.TagSequence:
		var both struct{ Seed, Expanded []byte }
		if _, err := asn1.Unmarshal(b, &both); err != nil || len(both.Seed) != 32 {
			return nil, errors.New("invalid ML-DSA private key")
		}
		_, sk := s.DeriveKey(both.Seed)
		return sk, nil
	}
	return nil, errors.New("invalid ML-DSA private key")
}

// checkKeyFits reports whether key can sign alg.
func checkKeyFits(key any, alg string) error {
	ok := false
	switch k := key.(type) {
	case *rsa.PrivateKey:
		ok = alg[0] == 'R' || alg[0] == 'P'
	case *ecdsa.PrivateKey:
		ok = map[string]elliptic.Curve{"ES256": elliptic.P256(), "ES384": elliptic.P384(), "ES512": elliptic.P521()}[alg] == k.Curve
	case ed25519.PrivateKey:
		ok = alg == "EdDSA" || alg == "Ed25519"
	case ed448.PrivateKey:
		ok = alg == "EdDSA" || alg == "Ed448"
	case sign.PrivateKey:
		ok = len(alg) > 6 && alg[:6] == "ML-DSA" && k.Scheme() == mldsaScheme(alg)
	}
	if !ok {
		return fmt.Errorf("a %T cannot sign %s", key, alg)
	}
	return nil
}

// jwk is the union of the JWK members written and read here.
type jwk struct {
	Kty  string `json:"kty"`
	Kid  string `json:"kid,omitempty"`
	Use  string `json:"use,omitempty"`
	Alg  string `json:"alg,omitempty"`
	Crv  string `json:"crv,omitempty"`
	N    string `json:"n,omitempty"`
	E    string `json:"e,omitempty"`
	X    string `json:"x,omitempty"`
	Y    string `json:"y,omitempty"`
	Pub  string `json:"pub,omitempty"`
	K    string `json:"k,omitempty"`
	D    string `json:"d,omitempty"`
	P    string `json:"p,omitempty"`
	Q    string `json:"q,omitempty"`
	DP   string `json:"dp,omitempty"`
	DQ   string `json:"dq,omitempty"`
	QI   string `json:"qi,omitempty"`
	Priv string `json:"priv,omitempty"`
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func unb64(s, name string) ([]byte, error) {
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil || s == "" {
		return nil, fmt.Errorf("JWK %q is not base64url", name)
	}
	return b, nil
}

func parsePrivateJWK(data []byte, alg string) (any, error) {
	var j jwk
	if err := json.Unmarshal(data, &j); err != nil {
		return nil, fmt.Errorf("invalid JWK: %w", err)
	}
	if j.Alg != "" && j.Alg != alg {
		return nil, fmt.Errorf("JWK alg %q differs from %s", j.Alg, alg)
	}
	var key any
	switch j.Kty {
	case "oct":
		k, err := unb64(j.K, "k")
		if err != nil {
			return nil, err
		}
		if alg[0] != 'H' {
			return nil, fmt.Errorf("an oct JWK cannot sign %s", alg)
		}
		return k, nil
	case "RSA":
		parts := map[string]*big.Int{}
		for name, v := range map[string]string{"n": j.N, "e": j.E, "d": j.D, "p": j.P, "q": j.Q} {
			b, err := unb64(v, name)
			if err != nil {
				return nil, err
			}
			parts[name] = new(big.Int).SetBytes(b)
		}
		k := &rsa.PrivateKey{
			PublicKey: rsa.PublicKey{N: parts["n"], E: int(parts["e"].Int64())},
			D:         parts["d"],
			Primes:    []*big.Int{parts["p"], parts["q"]},
		}
		if err := k.Validate(); err != nil {
			return nil, err
		}
		k.Precompute()
		key = k
	case "EC":
		curve := map[string]elliptic.Curve{"P-256": elliptic.P256(), "P-384": elliptic.P384(), "P-521": elliptic.P521()}[j.Crv]
		if curve == nil {
			return nil, fmt.Errorf("unsupported crv %q", j.Crv)
		}
		d, err := unb64(j.D, "d")
		if err != nil {
			return nil, err
		}
		k, err := ecdsa.ParseRawPrivateKey(curve, d)
		if err != nil {
			return nil, err
		}
		key = k
	case "OKP":
		d, err := unb64(j.D, "d")
		if err != nil {
			return nil, err
		}
		switch {
		case j.Crv == "Ed25519" && len(d) == ed25519.SeedSize:
			key = ed25519.NewKeyFromSeed(d)
		case j.Crv == "Ed448" && len(d) == ed448.SeedSize:
			key = ed448.NewKeyFromSeed(d)
		default:
			return nil, fmt.Errorf("unsupported OKP crv %q or bad d", j.Crv)
		}
	case "AKP":
		if j.Alg == "" {
			return nil, errors.New(`AKP JWK needs "alg"`)
		}
		seed, err := unb64(j.Priv, "priv")
		if err != nil {
			return nil, err
		}
		if len(seed) != 32 {
			return nil, errors.New(`AKP "priv" must be the 32-byte ML-DSA seed`)
		}
		_, sk := mldsaScheme(j.Alg).DeriveKey(seed)
		key = sk
	default:
		return nil, fmt.Errorf("unsupported kty %q", j.Kty)
	}
	return key, checkKeyFits(key, alg)
}

// KeyPair is a generated key in every format the edge reads.
type KeyPair struct {
	Alg, Kid string
	// Private signs (Sign's key); Public verifies (nil for HMAC).
	Private, Public any
	// PrivatePEM is PKCS #8 and PublicPEM PKIX (nil for HMAC).
	PrivatePEM, PublicPEM []byte
	// PrivateJWK and PublicJWK are JWK objects (PublicJWK is nil for HMAC; PrivateJWK of
	// an HMAC key is an "oct" JWK, which a jwks_file accepts).
	PrivateJWK, PublicJWK []byte
	// Secret is the HMAC secret file's content (nil otherwise).
	Secret []byte
}

// PublicJWKS returns {"keys":[PublicJWK]} (for HMAC keys, the oct JWK).
func (kp *KeyPair) PublicJWKS() []byte {
	if kp.PublicJWK == nil {
		return JWKS(kp.PrivateJWK)
	}
	return JWKS(kp.PublicJWK)
}

// JWKS assembles a JWK Set from JWK objects.
func JWKS(keys ...[]byte) []byte {
	out := []byte(`{"keys":[`)
	for i, k := range keys {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, k...)
	}
	return append(out, "]}"...)
}

// GenerateKey creates a key for alg (RSA keys are 2048 bits) and encodes it; kid goes
// into the JWKs. r supplies randomness (nil means crypto/rand).
func GenerateKey(alg, kid string, r io.Reader) (*KeyPair, error) {
	if _, err := Method(alg); err != nil {
		return nil, err
	}
	if r == nil {
		r = rand.Reader
	}
	kp := &KeyPair{Alg: alg, Kid: kid}
	var pub, priv jwk
	pub.Kid, pub.Alg, pub.Use = kid, alg, "sig"
	var err error
	switch alg {
	case "HS256", "HS384", "HS512":
		raw := make([]byte, 64)
		if _, err := io.ReadFull(r, raw); err != nil {
			return nil, err
		}
		secret := []byte(b64(raw))
		kp.Private, kp.Secret = secret, append(bytes.Clone(secret), '\n')
		priv = jwk{Kty: "oct", Kid: kid, Alg: alg, K: b64(secret)}
		kp.PrivateJWK, err = json.Marshal(priv)
		return kp, err
	case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
		k, err := rsa.GenerateKey(r, 2048)
		if err != nil {
			return nil, err
		}
		kp.Private, kp.Public = k, &k.PublicKey
		pub.Kty, pub.N, pub.E = "RSA", b64(k.N.Bytes()), b64(big.NewInt(int64(k.E)).Bytes())
		priv = pub
		priv.D, priv.P, priv.Q = b64(k.D.Bytes()), b64(k.Primes[0].Bytes()), b64(k.Primes[1].Bytes())
		priv.DP, priv.DQ, priv.QI = b64(k.Precomputed.Dp.Bytes()), b64(k.Precomputed.Dq.Bytes()), b64(k.Precomputed.Qinv.Bytes())
	case "ES256", "ES384", "ES512":
		curve := map[string]elliptic.Curve{"ES256": elliptic.P256(), "ES384": elliptic.P384(), "ES512": elliptic.P521()}[alg]
		k, err := ecdsa.GenerateKey(curve, r)
		if err != nil {
			return nil, err
		}
		kp.Private, kp.Public = k, &k.PublicKey
		point, err := k.PublicKey.Bytes()
		if err != nil {
			return nil, err
		}
		size := (len(point) - 1) / 2
		pub.Kty, pub.Crv = "EC", curve.Params().Name
		pub.X, pub.Y = b64(point[1:1+size]), b64(point[1+size:])
		priv = pub
		d, err := k.Bytes()
		if err != nil {
			return nil, err
		}
		priv.D = b64(d)
	case "EdDSA", "Ed25519":
		pk, sk, err := ed25519.GenerateKey(r)
		if err != nil {
			return nil, err
		}
		kp.Private, kp.Public = sk, pk
		pub.Kty, pub.Crv, pub.X = "OKP", "Ed25519", b64(pk)
		priv = pub
		priv.D = b64(sk.Seed())
	case "Ed448":
		pk, sk, err := ed448.GenerateKey(r)
		if err != nil {
			return nil, err
		}
		kp.Private, kp.Public = sk, pk
		pub.Kty, pub.Crv, pub.X = "OKP", "Ed448", b64(pk)
		priv = pub
		priv.D = b64(sk.Seed())
		seed, _ := asn1.Marshal(sk.Seed())
		kp.PrivatePEM = pemBlock("PRIVATE KEY", pkcs8{Algo: pkix.AlgorithmIdentifier{Algorithm: oidEd448()}, PrivateKey: seed})
		kp.PublicPEM = pemBlock("PUBLIC KEY", spki{Algo: pkix.AlgorithmIdentifier{Algorithm: oidEd448()}, PublicKey: asn1.BitString{Bytes: pk, BitLength: 8 * len(pk)}})
	default: // ML-DSA
		seed := make([]byte, 32)
		if _, err := io.ReadFull(r, seed); err != nil {
			return nil, err
		}
		pk, sk := mldsaScheme(alg).DeriveKey(seed)
		kp.Private, kp.Public = sk, pk
		pkBytes, _ := pk.MarshalBinary()
		pub.Kty, pub.Pub = "AKP", b64(pkBytes)
		priv = pub
		priv.Priv = b64(seed)
		// RFC 9881 §6: the seed form, [0] IMPLICIT OCTET STRING.
		inner := append([]byte{0x80, 32}, seed...)
		kp.PrivatePEM = pemBlock("PRIVATE KEY", pkcs8{Algo: pkix.AlgorithmIdentifier{Algorithm: oidMLDSA(alg)}, PrivateKey: inner})
		kp.PublicPEM = pemBlock("PUBLIC KEY", spki{Algo: pkix.AlgorithmIdentifier{Algorithm: oidMLDSA(alg)}, PublicKey: asn1.BitString{Bytes: pkBytes, BitLength: 8 * len(pkBytes)}})
	}
	if kp.PrivatePEM == nil {
		der, err := x509.MarshalPKCS8PrivateKey(kp.Private)
		if err != nil {
			return nil, err
		}
		kp.PrivatePEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
		der, err = x509.MarshalPKIXPublicKey(kp.Public)
		if err != nil {
			return nil, err
		}
		kp.PublicPEM = pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	}
	if kp.PublicJWK, err = json.Marshal(pub); err != nil {
		return nil, err
	}
	if kp.PrivateJWK, err = json.Marshal(priv); err != nil {
		return nil, err
	}
	return kp, nil
}

func pemBlock(typ string, v any) []byte {
	der, err := asn1.Marshal(v)
	if err != nil {
		panic(err) // fixed structures of byte strings always marshal
	}
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}
