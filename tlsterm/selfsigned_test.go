package tlsterm

import (
	"crypto/tls"
	"net"
	"slices"
	"testing"
	"time"
)

func TestGenerateSelfSigned(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	certPEM, keyPEM, err := GenerateSelfSigned([]string{"example.com", "*.example.com", "127.0.0.1", "::1"}, now, 48*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	leaf := pair.Leaf
	if !slices.Equal(leaf.DNSNames, []string{"example.com", "*.example.com"}) {
		t.Errorf("DNS names %q", leaf.DNSNames)
	}
	if len(leaf.IPAddresses) != 2 || !leaf.IPAddresses[0].Equal(net.ParseIP("127.0.0.1")) || !leaf.IPAddresses[1].Equal(net.IPv6loopback) {
		t.Errorf("IP addresses %v", leaf.IPAddresses)
	}
	if leaf.Subject.CommonName != "example.com" {
		t.Errorf("common name %q", leaf.Subject.CommonName)
	}
	if !leaf.NotBefore.Equal(now.Add(-time.Hour)) || !leaf.NotAfter.Equal(now.Add(48*time.Hour)) {
		t.Errorf("valid %v to %v", leaf.NotBefore, leaf.NotAfter)
	}
	if err := leaf.VerifyHostname("a.example.com"); err != nil {
		t.Error(err)
	}

	if _, _, err := GenerateSelfSigned(nil, now, time.Hour); err == nil {
		t.Error("no names accepted")
	}
	if _, _, err := GenerateSelfSigned([]string{"example.com"}, now, 0); err == nil {
		t.Error("zero validity accepted")
	}
}
