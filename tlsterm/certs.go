package tlsterm

import (
	"bytes"
	"crypto/tls"
	"strings"
)

// maxServerName is the longest DNS name (RFC 1035 section 2.3.4); a longer SNI
// value cannot match a certificate name and gets the default certificate.
const maxServerName = 253

// certIndex selects a certificate by SNI. It is immutable once built and read
// concurrently by every handshake.
type certIndex struct {
	all []*tls.Certificate // configuration order; all[0] is the default
	// byName maps lowercase DNS names and wildcard patterns ("*.example.com")
	// to the certificates carrying them, in configuration order.
	byName map[string][]*tls.Certificate
}

// newCertIndex indexes certs by the DNS names of their leaves (the subject
// common name only when a leaf has no DNS names, as old certificates do).
// Every cert must have its Leaf set.
func newCertIndex(certs []*tls.Certificate) *certIndex {
	x := &certIndex{all: certs, byName: make(map[string][]*tls.Certificate)}
	for _, c := range certs {
		names := c.Leaf.DNSNames
		if len(names) == 0 && c.Leaf.Subject.CommonName != "" {
			names = []string{c.Leaf.Subject.CommonName}
		}
		for _, n := range names {
			n = strings.ToLower(strings.TrimSuffix(n, "."))
			if l := x.byName[n]; len(l) == 0 || l[len(l)-1] != c {
				x.byName[n] = append(l, c)
			}
		}
	}
	return x
}

// pick returns the certificate for a ClientHello: a certificate naming the SNI
// exactly, else one whose wildcard covers its first label (RFC 6125 section
// 6.4.3: "*.example.com" matches "a.example.com", not "a.b.example.com" nor
// "example.com"), else the first configured certificate. Among certificates
// for the same name (say ECDSA and RSA) the first the client supports wins.
// SNI is case-insensitive (RFC 6066 section 3); pick allocates nothing.
func (x *certIndex) pick(hello *tls.ClientHelloInfo) *tls.Certificate {
	sni := hello.ServerName
	if sni == "" || len(sni) > maxServerName {
		return x.all[0]
	}
	var buf [maxServerName + 1]byte
	name := appendLower(buf[:0], sni)
	if c := x.choose(x.byName[string(name)], hello); c != nil {
		return c
	}
	if i := bytes.IndexByte(name, '.'); i > 0 && i < len(name)-1 {
		// Rewrite the first label in place: "a.example.com" -> "*.example.com".
		wild := name[i-1:]
		wild[0] = '*'
		if c := x.choose(x.byName[string(wild)], hello); c != nil {
			return c
		}
	}
	return x.all[0]
}

// choose returns the first of cands the client can use, the first of cands if
// it can use none (the handshake then fails in the client's hands, with the
// certificate it asked for), or nil when cands is empty.
func (x *certIndex) choose(cands []*tls.Certificate, hello *tls.ClientHelloInfo) *tls.Certificate {
	if len(cands) > 1 {
		for _, c := range cands {
			if hello.SupportsCertificate(c) == nil {
				return c
			}
		}
	}
	if len(cands) > 0 {
		return cands[0]
	}
	return nil
}

// appendLower appends s to dst with ASCII letters lowercased.
func appendLower(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}
