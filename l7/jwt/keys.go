package jwt

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/binary"
	"fmt"
	"hash"
	"sync"
	"sync/atomic"

	"github.com/cloudflare/circl/sign/ed448"
	"github.com/cloudflare/circl/sign/mldsa/mldsa44"
	"github.com/cloudflare/circl/sign/mldsa/mldsa65"
	"github.com/cloudflare/circl/sign/mldsa/mldsa87"
)

// key is one verification key bound to its algorithm(s). Keys are immutable after
// construction except for retired, which is set once the key leaves the policy's key
// set so that verified-token cache entries made with it stop matching.
type key struct {
	kid    string
	algs   algSet // exactly one algorithm, or EdDSA plus its fully-specified twin
	source string // file or URL the key came from, for logs
	// fingerprint identifies (kid, algs, material) so an unchanged key keeps its identity
	// (and its cache entries) across JWKS refreshes and reloads.
	fingerprint [32]byte
	retired     atomic.Bool

	hmac    *hmacKey
	rsa     *rsa.PublicKey
	pss     *rsa.PSSOptions
	ecdsa   *ecdsa.PublicKey
	ecSize  int // bytes of r and of s in a raw ECDSA signature
	ed25519 ed25519.PublicKey
	ed448   ed448.PublicKey
	mldsa44 *mldsa44.PublicKey
	mldsa65 *mldsa65.PublicKey
	mldsa87 *mldsa87.PublicKey
}

// hmacKey pools keyed HMAC states: hmac.New allocates, Reset does not.
type hmacKey struct {
	size int
	pool sync.Pool // of *hmacState
}

type hmacState struct {
	h   hash.Hash
	sum [sha512.Size]byte
}

func newHMACKey(secret []byte, alg algID) *hmacKey {
	var newHash func() hash.Hash
	switch alg {
	case algHS256:
		newHash = sha256.New
	case algHS384:
		newHash = sha512.New384
	default:
		newHash = sha512.New
	}
	secret = bytes.Clone(secret)
	hk := &hmacKey{size: newHash().Size()}
	hk.pool.New = func() any { return &hmacState{h: hmac.New(newHash, secret)} }
	return hk
}

func (hk *hmacKey) verify(input, sig []byte) bool {
	if len(sig) != hk.size {
		return false
	}
	st := hk.pool.Get().(*hmacState)
	st.h.Reset()
	st.h.Write(input)
	mac := st.h.Sum(st.sum[:0])
	ok := subtle.ConstantTimeCompare(mac, sig) == 1
	hk.pool.Put(st)
	return ok
}

// digest hashes input with the SHA-2 function of alg into out.
func digest(alg algID, input []byte, out *[sha512.Size]byte) ([]byte, crypto.Hash) {
	switch alg {
	case algRS256, algPS256, algES256:
		*(*[sha256.Size]byte)(out[:]) = sha256.Sum256(input)
		return out[:sha256.Size], crypto.SHA256
	case algRS384, algPS384, algES384:
		*(*[sha512.Size384]byte)(out[:]) = sha512.Sum384(input)
		return out[:sha512.Size384], crypto.SHA384
	default:
		*out = sha512.Sum512(input)
		return out[:], crypto.SHA512
	}
}

// verify checks sig over input for alg, which the caller has checked k accepts.
func (k *key) verify(alg algID, input, sig []byte) bool {
	switch {
	case k.hmac != nil:
		return k.hmac.verify(input, sig)
	case k.ed25519 != nil:
		return len(sig) == ed25519.SignatureSize && ed25519.Verify(k.ed25519, input, sig)
	case k.ed448 != nil:
		// RFC 8037 §3.1 and RFC 9864: pure Ed448 with an empty context.
		return len(sig) == ed448.SignatureSize && ed448.Verify(k.ed448, input, sig, "")
	case k.rsa != nil:
		var buf [sha512.Size]byte
		h, hf := digest(alg, input, &buf)
		if k.pss != nil {
			return rsa.VerifyPSS(k.rsa, hf, h, sig, k.pss) == nil
		}
		return rsa.VerifyPKCS1v15(k.rsa, hf, h, sig) == nil
	case k.ecdsa != nil:
		// RFC 7518 §3.4: the signature is R || S, each exactly the curve's size.
		if len(sig) != 2*k.ecSize {
			return false
		}
		var buf [sha512.Size]byte
		h, _ := digest(alg, input, &buf)
		var der [2*(3+66+1) + 3]byte
		return ecdsa.VerifyASN1(k.ecdsa, h, appendECDSADER(der[:0], sig[:k.ecSize], sig[k.ecSize:]))
	case k.mldsa44 != nil:
		// RFC 9964: ML-DSA with the empty context string.
		return len(sig) == mldsa44.SignatureSize && mldsa44.Verify(k.mldsa44, input, nil, sig)
	case k.mldsa65 != nil:
		return len(sig) == mldsa65.SignatureSize && mldsa65.Verify(k.mldsa65, input, nil, sig)
	case k.mldsa87 != nil:
		return len(sig) == mldsa87.SignatureSize && mldsa87.Verify(k.mldsa87, input, nil, sig)
	}
	return false
}

// appendECDSADER encodes big-endian r and s as the ASN.1 ECDSA-Sig-Value that
// crypto/ecdsa verifies, which avoids building big.Ints.
func appendECDSADER(dst, r, s []byte) []byte {
	r = trimLeadingZeros(r)
	s = trimLeadingZeros(s)
	lr, ls := intLen(r), intLen(s)
	body := 2 + lr + 2 + ls
	dst = append(dst, 0x30)
	if body >= 0x80 {
		dst = append(dst, 0x81)
	}
	dst = append(dst, byte(body))
	dst = appendDERInt(dst, r, lr)
	return appendDERInt(dst, s, ls)
}

func trimLeadingZeros(b []byte) []byte {
	for len(b) > 0 && b[0] == 0 {
		b = b[1:]
	}
	return b
}

func intLen(b []byte) int {
	if len(b) == 0 || b[0]&0x80 != 0 {
		return len(b) + 1
	}
	return len(b)
}

func appendDERInt(dst, b []byte, n int) []byte {
	dst = append(dst, 0x02, byte(n))
	if n > len(b) {
		dst = append(dst, 0)
	}
	return append(dst, b...)
}

// accepts reports whether k may verify a token of alg.
func (k *key) accepts(alg algID) bool { return k.algs.has(alg) }

// keyError is the error for a key that cannot be used, naming where it came from.
// Callers add the "jwt: policy ..." context.
func keyError(source, kid, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if kid != "" {
		return fmt.Errorf("%s: key %q: %s", source, kid, msg)
	}
	return fmt.Errorf("%s: %s", source, msg)
}

// newHMACSecretKey binds an HMAC secret to alg. RFC 7518 §3.2 requires a secret at least
// as long as the hash output.
func newHMACSecretKey(secret []byte, alg algID, kid, source string) (*key, error) {
	if !alg.isHMAC() {
		if alg == algUnknown {
			return nil, keyError(source, kid, "an HMAC secret needs alg HS256, HS384 or HS512")
		}
		return nil, keyError(source, kid, "alg %s cannot use an HMAC secret", alg)
	}
	hk := newHMACKey(secret, alg)
	if len(secret) < hk.size {
		return nil, keyError(source, kid, "%s secret is %d bytes, RFC 7518 §3.2 requires at least %d", alg, len(secret), hk.size)
	}
	k := &key{kid: kid, algs: setOf(alg), source: source, hmac: hk}
	k.fingerprint = fingerprint(kid, k.algs, []byte("oct"), secret)
	return k, nil
}

// newPublicKey binds a parsed public key to alg, or infers the algorithm where the key
// admits only one: an EC key's curve fixes ES256/ES384/ES512, an ML-DSA key's parameter
// set fixes ML-DSA-44/65/87, and an Ed25519 (Ed448) key accepts both "EdDSA" and
// "Ed25519" ("Ed448"), which RFC 9864 §2.2 defines as the same signature algorithm on
// that key. RSA keys must be bound explicitly (RS* and PS* share key material).
func newPublicKey(pub any, alg algID, kid, source string) (*key, error) {
	k := &key{kid: kid, source: source}
	var material []byte
	var kind string
	switch pub := pub.(type) {
	case *rsa.PublicKey:
		kind = "RSA"
		switch alg {
		case algRS256, algRS384, algRS512:
		case algPS256, algPS384, algPS512:
			k.pss = &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}
		case algUnknown:
			return nil, keyError(source, kid, "an RSA key needs alg (RS256, RS384, RS512, PS256, PS384 or PS512)")
		default:
			return nil, keyError(source, kid, "alg %s cannot use an RSA key", alg)
		}
		if pub.N.BitLen() < 2048 {
			return nil, keyError(source, kid, "RSA key is %d bits, RFC 7518 §3.3 requires at least 2048", pub.N.BitLen())
		}
		k.rsa = pub
		material = binary.BigEndian.AppendUint64(pub.N.Bytes(), uint64(pub.E))
	case *ecdsa.PublicKey:
		kind = "EC"
		var want algID
		switch pub.Curve {
		case elliptic.P256():
			want, k.ecSize = algES256, 32
		case elliptic.P384():
			want, k.ecSize = algES384, 48
		case elliptic.P521():
			want, k.ecSize = algES512, 66
		default:
			return nil, keyError(source, kid, "unsupported EC curve %s", pub.Curve.Params().Name)
		}
		if alg != algUnknown && alg != want {
			return nil, keyError(source, kid, "alg %s cannot use a %s key (needs %s)", alg, pub.Curve.Params().Name, want)
		}
		alg = want
		k.ecdsa = pub
		b, err := pub.Bytes()
		if err != nil {
			return nil, keyError(source, kid, "invalid EC key: %v", err)
		}
		material = b
	case ed25519.PublicKey:
		kind = "Ed25519"
		if len(pub) != ed25519.PublicKeySize {
			return nil, keyError(source, kid, "Ed25519 key is %d bytes, want %d", len(pub), ed25519.PublicKeySize)
		}
		switch alg {
		case algUnknown:
			k.algs = setOf(algEdDSA, algEd25519)
		case algEdDSA, algEd25519:
		default:
			return nil, keyError(source, kid, "alg %s cannot use an Ed25519 key", alg)
		}
		k.ed25519 = bytes.Clone(pub)
		material = pub
	case ed448.PublicKey:
		kind = "Ed448"
		if len(pub) != ed448.PublicKeySize {
			return nil, keyError(source, kid, "Ed448 key is %d bytes, want %d", len(pub), ed448.PublicKeySize)
		}
		switch alg {
		case algUnknown:
			k.algs = setOf(algEdDSA, algEd448)
		case algEdDSA, algEd448:
		default:
			return nil, keyError(source, kid, "alg %s cannot use an Ed448 key", alg)
		}
		k.ed448 = bytes.Clone(pub)
		material = pub
	case *mldsa44.PublicKey:
		kind, material = "ML-DSA-44", pub.Bytes()
		if alg != algUnknown && alg != algMLDSA44 {
			return nil, keyError(source, kid, "alg %s cannot use an ML-DSA-44 key", alg)
		}
		alg, k.mldsa44 = algMLDSA44, pub
	case *mldsa65.PublicKey:
		kind, material = "ML-DSA-65", pub.Bytes()
		if alg != algUnknown && alg != algMLDSA65 {
			return nil, keyError(source, kid, "alg %s cannot use an ML-DSA-65 key", alg)
		}
		alg, k.mldsa65 = algMLDSA65, pub
	case *mldsa87.PublicKey:
		kind, material = "ML-DSA-87", pub.Bytes()
		if alg != algUnknown && alg != algMLDSA87 {
			return nil, keyError(source, kid, "alg %s cannot use an ML-DSA-87 key", alg)
		}
		alg, k.mldsa87 = algMLDSA87, pub
	default:
		return nil, keyError(source, kid, "unsupported public key type %T", pub)
	}
	if k.algs == 0 {
		k.algs = setOf(alg)
	}
	k.fingerprint = fingerprint(kid, k.algs, []byte(kind), material)
	return k, nil
}

func fingerprint(kid string, algs algSet, kind, material []byte) [32]byte {
	h := sha256.New()
	var n [8]byte
	for _, part := range [][]byte{[]byte(kid), binary.BigEndian.AppendUint32(nil, uint32(algs)), kind, material} {
		binary.BigEndian.PutUint64(n[:], uint64(len(part)))
		h.Write(n[:])
		h.Write(part)
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// parseAlg maps a configured algorithm name to its ID; "" is algUnknown (infer).
func parseAlg(name string) (algID, error) {
	if name == "" {
		return algUnknown, nil
	}
	a := algByName([]byte(name))
	if a == algUnknown {
		return algUnknown, fmt.Errorf("unknown algorithm %q", name)
	}
	return a, nil
}

// ParseHMACSecret returns the HMAC key held in a secret file's contents: the bytes as
// they are, minus trailing CR and LF characters (so `echo secret > file` works). The
// edge token minting side reads secret files by the same rule.
func ParseHMACSecret(data []byte) []byte {
	for len(data) > 0 && (data[len(data)-1] == '\n' || data[len(data)-1] == '\r') {
		data = data[:len(data)-1]
	}
	return data
}
