package tlsterm

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"testing"
	"time"
)

// pairFor returns a parsed certificate for names, as Reload builds them.
func pairFor(t testing.TB, names ...string) *tls.Certificate {
	t.Helper()
	certPEM, keyPEM, err := GenerateSelfSigned(names, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return &pair
}

// rsaPairFor returns an RSA certificate for names.
func rsaPairFor(t testing.TB, names ...string) *tls.Certificate {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7),
		Subject:      pkix.Name{CommonName: names[0]},
		DNSNames:     names,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

func TestCertIndexPick(t *testing.T) {
	def := pairFor(t, "default.test")
	exact := pairFor(t, "Exact.Example.com") // names are matched case-insensitively
	wild := pairFor(t, "*.example.com")
	deep := pairFor(t, "*.b.example.com")
	cn := &tls.Certificate{Leaf: &x509.Certificate{Subject: pkix.Name{CommonName: "legacy.test"}}}
	x := newCertIndex([]*tls.Certificate{def, exact, wild, deep, cn})
	long := make([]byte, maxServerName+1)
	for i := range long {
		long[i] = 'a'
	}
	tests := []struct {
		sni  string
		want *tls.Certificate
	}{
		{"exact.example.com", exact},
		{"EXACT.EXAMPLE.COM", exact},
		{"x.example.com", wild},
		{"X.Example.Com", wild},
		{"a.b.example.com", deep},
		{"a.c.example.com", def},
		{"example.com", def},
		{".example.com", def},
		{"example.", def},
		{"*.example.com", wild}, // a literal pattern is an exact name
		{"legacy.test", cn},     // common name of a leaf without DNS names
		{"", def},
		{string(long), def},
	}
	for _, tt := range tests {
		if got := x.pick(&tls.ClientHelloInfo{ServerName: tt.sni}); got != tt.want {
			t.Errorf("pick(%q) = %v, want %v", tt.sni, got.Leaf.DNSNames, tt.want.Leaf.DNSNames)
		}
	}
}

// TestCertIndexPickSupported: of two certificates for one name, the first the
// client can verify wins.
func TestCertIndexPickSupported(t *testing.T) {
	ecdsaCert := pairFor(t, "example.com")
	rsaCert := rsaPairFor(t, "example.com")
	x := newCertIndex([]*tls.Certificate{ecdsaCert, rsaCert})
	hello := func(schemes ...tls.SignatureScheme) *tls.ClientHelloInfo {
		return &tls.ClientHelloInfo{
			ServerName:        "example.com",
			SupportedVersions: []uint16{tls.VersionTLS13},
			SupportedCurves:   []tls.CurveID{tls.X25519, tls.CurveP256},
			SignatureSchemes:  schemes,
		}
	}
	tests := []struct {
		name string
		h    *tls.ClientHelloInfo
		want *tls.Certificate
	}{
		{"both", hello(tls.ECDSAWithP256AndSHA256, tls.PSSWithSHA256), ecdsaCert},
		{"rsa only", hello(tls.PSSWithSHA256), rsaCert},
		{"neither", hello(tls.Ed25519), ecdsaCert},
	}
	for _, tt := range tests {
		if got := x.pick(tt.h); got != tt.want {
			t.Errorf("%s: picked the wrong certificate", tt.name)
		}
	}
}
