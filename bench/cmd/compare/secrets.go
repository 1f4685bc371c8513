package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// credentials are the run's TLS certificate and gateway key and token.
type credentials struct {
	certFile, keyFile, certKeyFile string
	secretFile, secret             string
	token                          string
}

const (
	issuer   = "https://auth.example.com"
	audience = "example.com"
)

// makeCredentials writes a self-signed ECDSA P-256 certificate for
// example.com (the same one for every proxy), and has edge generate an HS256
// secret and mint a token with it, the way the README tells users to.
func makeCredentials(dir, edgeBin string) (*credentials, error) {
	c := &credentials{
		certFile:    filepath.Join(dir, "example.com.crt"),
		keyFile:     filepath.Join(dir, "example.com.key"),
		certKeyFile: filepath.Join(dir, "example.com.pem"),
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("compare: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "example.com"},
		DNSNames:     []string{"example.com"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(7 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("compare: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("compare: %w", err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	for path, data := range map[string][]byte{c.certFile: certPEM, c.keyFile: keyPEM, c.certKeyFile: append(append([]byte{}, certPEM...), keyPEM...)} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			return nil, fmt.Errorf("compare: %w", err)
		}
	}

	prefix := filepath.Join(dir, "hs256")
	if out, err := exec.Command(edgeBin, "token", "-alg", "HS256", "-genkey", prefix).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("compare: edge token -genkey: %v: %s", err, out)
	}
	c.secretFile = prefix + ".key"
	secret, err := os.ReadFile(c.secretFile)
	if err != nil {
		return nil, fmt.Errorf("compare: %w", err)
	}
	c.secret = strings.TrimRight(string(secret), "\r\n")
	if strings.ContainsAny(c.secret, "\"\\ \t") {
		return nil, fmt.Errorf("compare: edge's HS256 secret has characters HAProxy's inline key cannot carry")
	}
	out, err := exec.Command(edgeBin, "token", "-alg", "HS256", "-key", c.secretFile,
		"-sub", "bench-user", "-aud", audience, "-iss", issuer, "-scope", "app:read", "-ttl", "48h").Output()
	if err != nil {
		return nil, fmt.Errorf("compare: edge token: %w", err)
	}
	c.token = strings.TrimSpace(string(out))
	return c, nil
}
