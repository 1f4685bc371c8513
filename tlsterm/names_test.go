package tlsterm

import (
	"crypto/tls"
	"strings"
	"testing"
)

func TestVersionName(t *testing.T) {
	tests := []struct {
		v    uint16
		want string
	}{
		{tls.VersionTLS10, "tls1.0"},
		{tls.VersionTLS11, "tls1.1"},
		{tls.VersionTLS12, "tls1.2"},
		{tls.VersionTLS13, "tls1.3"},
		{0x0300, "unknown"}, // SSL 3.0
		{0, "unknown"},
	}
	for _, tt := range tests {
		if got := VersionName(tt.v); got != tt.want {
			t.Errorf("VersionName(0x%04x) = %q, want %q", tt.v, got, tt.want)
		}
	}
}

func TestGroupName(t *testing.T) {
	tests := []struct {
		id   tls.CurveID
		want string
	}{
		{tls.X25519MLKEM768, "x25519mlkem768"},
		{tls.SecP256r1MLKEM768, "secp256r1mlkem768"},
		{tls.SecP384r1MLKEM1024, "secp384r1mlkem1024"},
		{tls.X25519, "x25519"},
		{tls.CurveP256, "secp256r1"},
		{tls.CurveP384, "secp384r1"},
		{tls.CurveP521, "secp521r1"},
		{0, "none"},
		{0x1234, "unknown"},
	}
	for _, tt := range tests {
		if got := GroupName(tt.id); got != tt.want {
			t.Errorf("GroupName(%v) = %q, want %q", tt.id, got, tt.want)
		}
	}
	// Labels are lowercase and every known group round-trips through ParseGroup.
	for _, id := range knownGroups {
		name := GroupName(id)
		if name != strings.ToLower(name) {
			t.Errorf("GroupName(%v) = %q is not lowercase", id, name)
		}
		for _, s := range []string{name, strings.ToUpper(name), id.String()} {
			if got, err := ParseGroup(s); err != nil || got != id {
				t.Errorf("ParseGroup(%q) = %v, %v, want %v", s, got, err, id)
			}
		}
	}
}

func TestParseVersion(t *testing.T) {
	tests := []struct {
		in   string
		want uint16
	}{
		{"1.2", tls.VersionTLS12},
		{"1.3", tls.VersionTLS13},
		{"TLS1.0", tls.VersionTLS10},
		{"tlsv1.1", tls.VersionTLS11},
		{"TLSv1.3", tls.VersionTLS13},
	}
	for _, tt := range tests {
		if got, err := ParseVersion(tt.in); err != nil || got != tt.want {
			t.Errorf("ParseVersion(%q) = 0x%04x, %v, want 0x%04x", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", "1.4", "ssl3", "1", "tls"} {
		if _, err := ParseVersion(bad); err == nil || !strings.HasPrefix(err.Error(), "tlsterm: unknown tls version \""+bad+"\"") {
			t.Errorf("ParseVersion(%q) error = %v", bad, err)
		}
	}
}

func TestParseGroup(t *testing.T) {
	tests := []struct {
		in   string
		want tls.CurveID
	}{
		{"p256", tls.CurveP256},
		{"P-384", tls.CurveP384},
		{"p521", tls.CurveP521},
		{"CurveP256", tls.CurveP256},
		{"X25519MLKEM768", tls.X25519MLKEM768},
	}
	for _, tt := range tests {
		if got, err := ParseGroup(tt.in); err != nil || got != tt.want {
			t.Errorf("ParseGroup(%q) = %v, %v, want %v", tt.in, got, err, tt.want)
		}
	}
	if _, err := ParseGroup("kyber"); err == nil || err.Error() != `tlsterm: unknown key exchange group "kyber"` {
		t.Errorf("ParseGroup(kyber) error = %v", err)
	}
}
