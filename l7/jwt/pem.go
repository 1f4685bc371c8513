package jwt

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"

	"github.com/cloudflare/circl/sign/ed448"
	"github.com/cloudflare/circl/sign/mldsa/mldsa44"
	"github.com/cloudflare/circl/sign/mldsa/mldsa65"
	"github.com/cloudflare/circl/sign/mldsa/mldsa87"
)

// Object identifiers crypto/x509 does not know: Ed448 (RFC 8410 §3) and ML-DSA
// (RFC 9881 §2, id-ml-dsa-44/65/87). Functions keep them immutable.
func oidEd448() asn1.ObjectIdentifier { return asn1.ObjectIdentifier{1, 3, 101, 113} }
func oidMLDSA44() asn1.ObjectIdentifier {
	return asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 3, 17}
}
func oidMLDSA65() asn1.ObjectIdentifier {
	return asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 3, 18}
}
func oidMLDSA87() asn1.ObjectIdentifier {
	return asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 3, 19}
}

// ParsePublicKeyPEM returns the first public key in PEM data: a "PUBLIC KEY" block
// (PKIX SubjectPublicKeyInfo: RSA, EC P-256/384/521, Ed25519, Ed448, ML-DSA-44/65/87), an
// "RSA PUBLIC KEY" block (PKCS #1), or a "CERTIFICATE" block's subject key. Private key
// blocks are refused so a private key is never deployed where only the public half
// belongs. The result is one of *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey,
// ed448.PublicKey, *mldsa44.PublicKey, *mldsa65.PublicKey or *mldsa87.PublicKey.
func ParsePublicKeyPEM(data []byte) (any, error) {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, errors.New("no PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE PEM block")
		}
		switch block.Type {
		case "PUBLIC KEY":
			return ParsePKIXPublicKey(block.Bytes)
		case "RSA PUBLIC KEY":
			return x509.ParsePKCS1PublicKey(block.Bytes)
		case "CERTIFICATE":
			cert, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return nil, err
			}
			if cert.PublicKey != nil {
				return cert.PublicKey, nil
			}
			return ParsePKIXPublicKey(cert.RawSubjectPublicKeyInfo)
		case "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY", "ENCRYPTED PRIVATE KEY":
			return nil, fmt.Errorf("found a %s block: give the public key, not the private one", block.Type)
		}
	}
}

// ParsePKIXPublicKey parses a DER SubjectPublicKeyInfo, adding Ed448 and ML-DSA to what
// crypto/x509 understands.
func ParsePKIXPublicKey(der []byte) (any, error) {
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	rest, err := asn1.Unmarshal(der, &spki)
	if err != nil || len(rest) != 0 {
		return x509.ParsePKIXPublicKey(der)
	}
	oid := spki.Algorithm.Algorithm
	var known bool
	for _, o := range []asn1.ObjectIdentifier{oidEd448(), oidMLDSA44(), oidMLDSA65(), oidMLDSA87()} {
		known = known || oid.Equal(o)
	}
	if !known {
		return x509.ParsePKIXPublicKey(der)
	}
	// RFC 8410 §3 and RFC 9881 §2: parameters are absent.
	if len(spki.Algorithm.Parameters.FullBytes) != 0 {
		return nil, fmt.Errorf("public key algorithm %v must not have parameters", oid)
	}
	if spki.PublicKey.BitLength%8 != 0 {
		return nil, errors.New("public key bit string is not whole bytes")
	}
	return publicKeyFromRaw(oid, spki.PublicKey.Bytes)
}

func publicKeyFromRaw(oid asn1.ObjectIdentifier, raw []byte) (any, error) {
	switch {
	case oid.Equal(oidEd448()):
		if len(raw) != ed448.PublicKeySize {
			return nil, fmt.Errorf("Ed448 public key is %d bytes, want %d", len(raw), ed448.PublicKeySize)
		}
		return ed448.PublicKey(append([]byte(nil), raw...)), nil
	case oid.Equal(oidMLDSA44()):
		pk := new(mldsa44.PublicKey)
		return pk, pk.UnmarshalBinary(raw)
	case oid.Equal(oidMLDSA65()):
		pk := new(mldsa65.PublicKey)
		return pk, pk.UnmarshalBinary(raw)
	default:
		pk := new(mldsa87.PublicKey)
		return pk, pk.UnmarshalBinary(raw)
	}
}
