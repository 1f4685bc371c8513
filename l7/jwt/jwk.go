package jwt

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"errors"
	"fmt"
	"math/big"

	"github.com/cloudflare/circl/sign/ed448"
)

// JWK (RFC 7517) and JWK Set parsing for verification keys. Key types: "RSA" and "EC"
// (RFC 7518 §6), "OKP" with crv Ed25519 or Ed448 (RFC 8037 §2), "AKP" with an ML-DSA
// "alg" and "pub" (RFC 9964), and "oct" (HMAC secrets, JWKS files only). A JWK binds to
// its "alg" when it has one; without one the configured alg applies, or the algorithm is
// inferred where the key admits exactly one (see newPublicKey). Keys with "use" other
// than "sig", with "key_ops" lacking "verify", or carrying private members are refused.

// jwkFields holds the members of one JWK that matter here, unescaped.
type jwkFields struct {
	kty, kid, alg, use, crv string
	keyOps                  []string
	n, e, x, y, k, pub      []byte // base64url text
	private                 string // name of a private member, if any
}

func (f *jwkFields) bytesField(name string) *[]byte {
	switch name {
	case "n":
		return &f.n
	case "e":
		return &f.e
	case "x":
		return &f.x
	case "y":
		return &f.y
	case "k":
		return &f.k
	}
	return &f.pub
}

// walkObject calls fn for each top-level member of the JSON object in data, rejecting
// duplicates. It works on a copy, since names and strings are unescaped in place.
func walkObject(data []byte, fn func(name []byte, m member, b []byte) error) error {
	b := bytes.Clone(data)
	var s objectScanner
	if err := s.start(b); err != nil {
		return err
	}
	var seen [][]byte
	for {
		m, ok, err := s.next()
		if err != nil {
			return err
		}
		if !ok {
			return nil
		}
		name := m.name.of(b)
		for _, prev := range seen {
			if bytes.Equal(prev, name) {
				return fmt.Errorf("duplicate member %q", name)
			}
		}
		seen = append(seen, name)
		if err := fn(name, m, b); err != nil {
			return err
		}
	}
}

func jwkString(name string, m member, b []byte) (string, error) {
	if m.kind != kindString {
		return "", fmt.Errorf("%q is not a string", name)
	}
	return string(m.val.of(b)), nil
}

func parseJWKFields(raw []byte) (*jwkFields, error) {
	f := new(jwkFields)
	err := walkObject(raw, func(name []byte, m member, b []byte) error {
		var err error
		switch n := string(name); n {
		case "kty":
			f.kty, err = jwkString(n, m, b)
		case "kid":
			f.kid, err = jwkString(n, m, b)
		case "alg":
			f.alg, err = jwkString(n, m, b)
		case "use":
			f.use, err = jwkString(n, m, b)
		case "crv":
			f.crv, err = jwkString(n, m, b)
		case "n", "e", "x", "y", "k", "pub":
			var v string
			if v, err = jwkString(n, m, b); err != nil {
				return err
			}
			*f.bytesField(n) = []byte(v)
		case "key_ops":
			if m.kind != kindArray {
				return errors.New(`"key_ops" is not an array`)
			}
			var a arrayScanner
			a.start(m.val.of(b))
			for {
				el, k, ok := a.next()
				if !ok {
					break
				}
				if k != kindString {
					return errors.New(`"key_ops" has a non-string entry`)
				}
				f.keyOps = append(f.keyOps, string(appendUnescaped(nil, el[1:len(el)-1])))
			}
		case "d", "p", "q", "dp", "dq", "qi", "oth", "priv", "seed":
			f.private = n
		}
		return err
	})
	return f, err
}

func decodeB64Field(name string, v []byte) ([]byte, error) {
	if v == nil {
		return nil, fmt.Errorf("missing %q", name)
	}
	out, ok := appendBase64URL(nil, v)
	if !ok {
		return nil, fmt.Errorf("%q is not strict unpadded base64url", name)
	}
	return out, nil
}

// parseJWK turns one JWK into a verification key. defAlg (algUnknown for none) is the
// configured alg: a JWK whose own "alg" differs is refused, and a JWK without "alg" is
// bound to it. allowOct admits "oct" HMAC secrets, which only local files may hold.
func parseJWK(raw []byte, defAlg algID, allowOct bool, source string) (*key, error) {
	f, err := parseJWKFields(raw)
	if err != nil {
		return nil, keyError(source, "", "invalid JWK: %v", err)
	}
	fail := func(format string, args ...any) (*key, error) {
		return nil, keyError(source, f.kid, format, args...)
	}
	if f.use != "" && f.use != "sig" {
		return fail("use %q is not \"sig\"", f.use)
	}
	if f.keyOps != nil {
		verify := false
		for _, op := range f.keyOps {
			verify = verify || op == "verify"
		}
		if !verify {
			return fail("key_ops %q lacks \"verify\"", f.keyOps)
		}
	}
	alg := defAlg
	if f.alg != "" {
		a := algByName([]byte(f.alg))
		if a == algUnknown {
			return fail("unsupported alg %q", f.alg)
		}
		if defAlg != algUnknown && a != defAlg {
			return fail("alg %s differs from the configured %s", a, defAlg)
		}
		alg = a
	}
	if f.kty == "oct" {
		if !allowOct {
			return fail(`"oct" secrets are accepted only from jwks_file`)
		}
		secret, err := decodeB64Field("k", f.k)
		if err != nil {
			return fail("%v", err)
		}
		return newHMACSecretKey(secret, alg, f.kid, source)
	}
	if f.private != "" {
		return fail("JWK carries private member %q: publish only public keys", f.private)
	}
	var pub any
	switch f.kty {
	case "RSA":
		nb, err := decodeB64Field("n", f.n)
		if err != nil {
			return fail("%v", err)
		}
		eb, err := decodeB64Field("e", f.e)
		if err != nil {
			return fail("%v", err)
		}
		e := new(big.Int).SetBytes(eb)
		if !e.IsInt64() || e.Int64() < 3 || e.Int64() > 1<<31-1 || e.Bit(0) == 0 {
			return fail("unsupported RSA exponent")
		}
		pub = &rsa.PublicKey{N: new(big.Int).SetBytes(nb), E: int(e.Int64())}
	case "EC":
		var curve elliptic.Curve
		var size int
		switch f.crv {
		case "P-256":
			curve, size = elliptic.P256(), 32
		case "P-384":
			curve, size = elliptic.P384(), 48
		case "P-521":
			curve, size = elliptic.P521(), 66
		default:
			return fail("unsupported EC crv %q", f.crv)
		}
		x, err := decodeB64Field("x", f.x)
		if err != nil {
			return fail("%v", err)
		}
		y, err := decodeB64Field("y", f.y)
		if err != nil {
			return fail("%v", err)
		}
		// RFC 7518 §6.2.1.2-3: coordinates are full-length octet strings.
		if len(x) != size || len(y) != size {
			return fail("%s coordinates must be %d bytes", f.crv, size)
		}
		pk, err := ecdsa.ParseUncompressedPublicKey(curve, append(append([]byte{4}, x...), y...))
		if err != nil {
			return fail("invalid %s point: %v", f.crv, err)
		}
		pub = pk
	case "OKP":
		x, err := decodeB64Field("x", f.x)
		if err != nil {
			return fail("%v", err)
		}
		switch f.crv {
		case "Ed25519":
			pub = ed25519.PublicKey(x)
		case "Ed448":
			pub = ed448.PublicKey(x)
		default:
			return fail("OKP crv %q is not a signature curve", f.crv)
		}
	case "AKP":
		// RFC 9964: "alg" is required and fixes the parameter set.
		if alg != algMLDSA44 && alg != algMLDSA65 && alg != algMLDSA87 {
			return fail("AKP key needs alg ML-DSA-44, ML-DSA-65 or ML-DSA-87")
		}
		raw, err := decodeB64Field("pub", f.pub)
		if err != nil {
			return fail("%v", err)
		}
		var p any
		switch alg {
		case algMLDSA44:
			p, err = publicKeyFromRaw(oidMLDSA44(), raw)
		case algMLDSA65:
			p, err = publicKeyFromRaw(oidMLDSA65(), raw)
		default:
			p, err = publicKeyFromRaw(oidMLDSA87(), raw)
		}
		if err != nil {
			return fail("invalid %s public key: %v", alg, err)
		}
		pub = p
	case "":
		return fail(`missing "kty"`)
	default:
		return fail("unsupported kty %q", f.kty)
	}
	return newPublicKey(pub, alg, f.kid, source)
}

// parseJWKS parses a JWK Set (RFC 7517 §5). Keys that cannot be used are skipped and
// reported in skipped; err is set only when the document itself is invalid.
func parseJWKS(data []byte, defAlg algID, allowOct bool, source string) (keys []*key, skipped []error, err error) {
	var keysRaw []byte
	err = walkObject(data, func(name []byte, m member, b []byte) error {
		if string(name) == "keys" {
			if m.kind != kindArray {
				return errors.New(`"keys" is not an array`)
			}
			keysRaw = bytes.Clone(m.val.of(b))
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("%s: invalid JWK Set: %w", source, err)
	}
	if keysRaw == nil {
		return nil, nil, fmt.Errorf("%s: invalid JWK Set: missing \"keys\"", source)
	}
	var a arrayScanner
	a.start(keysRaw)
	for i := 0; ; i++ {
		el, k, ok := a.next()
		if !ok {
			break
		}
		if k != kindObject {
			skipped = append(skipped, fmt.Errorf("%s: keys[%d] is not an object", source, i))
			continue
		}
		key, err := parseJWK(el, defAlg, allowOct, source)
		if err != nil {
			skipped = append(skipped, fmt.Errorf("keys[%d]: %w", i, err))
			continue
		}
		keys = append(keys, key)
	}
	return keys, skipped, nil
}
