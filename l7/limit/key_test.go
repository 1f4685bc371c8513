package limit

import (
	"errors"
	"testing"
)

func TestParseKey(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want KeySpec
		err  string
	}{
		{"client_ip", KeySpec{Kind: KeyClientIP}, ""},
		{"route", KeySpec{Kind: KeyRoute}, ""},
		{"header:X-Api-Key", KeySpec{Kind: KeyHeader, Name: "X-Api-Key"}, ""},
		{"claim:sub", KeySpec{Kind: KeyClaim, Name: "sub"}, ""},
		{"claim:https://example.com/tenant", KeySpec{Kind: KeyClaim, Name: "https://example.com/tenant"}, ""},
		{"", KeySpec{}, `limit: bad key "": want client_ip, route, header:NAME or claim:NAME`},
		{"ip", KeySpec{}, `limit: bad key "ip": want client_ip, route, header:NAME or claim:NAME`},
		{"cookie:sid", KeySpec{}, `limit: bad key "cookie:sid": unknown kind "cookie"`},
		{"header:", KeySpec{}, `limit: bad key "header:": header name must be an RFC 9110 token`},
		{"header:X Key", KeySpec{}, `limit: bad key "header:X Key": header name must be an RFC 9110 token`},
		{"header:a:b", KeySpec{}, `limit: bad key "header:a:b": header name must be an RFC 9110 token`},
		{"claim:", KeySpec{}, `limit: bad key "claim:": claim name must be non-empty printable ASCII without spaces`},
		{"claim:a b", KeySpec{}, `limit: bad key "claim:a b": claim name must be non-empty printable ASCII without spaces`},
		{"Client_IP", KeySpec{}, `limit: bad key "Client_IP": want client_ip, route, header:NAME or claim:NAME`},
	} {
		got, err := ParseKey(tc.in)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err || !errors.Is(err, ErrBadKey) {
				t.Errorf("ParseKey(%q) error = %v, want %s", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseKey(%q) = %+v, %v, want %+v", tc.in, got, err, tc.want)
		}
		if got.String() != tc.in {
			t.Errorf("ParseKey(%q).String() = %q", tc.in, got.String())
		}
	}
}

func TestParseStoreErrorPolicy(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want StoreErrorPolicy
		ok   bool
	}{
		{"", StoreErrorAllow, true}, {"allow", StoreErrorAllow, true}, {"deny", StoreErrorDeny, true},
		{"local", StoreErrorLocal, true}, {"Allow", 0, false}, {"open", 0, false},
	} {
		got, err := ParseStoreErrorPolicy(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseStoreErrorPolicy(%q) = %v, %v", tc.in, got, err)
		}
		if tc.ok && tc.in != "" && got.String() != tc.in {
			t.Errorf("%v.String() = %q, want %q", got, got.String(), tc.in)
		}
	}
}

// FuzzParseKey checks that ParseKey never panics, that what it accepts
// round-trips through String, and that what it rejects wraps ErrBadKey.
func FuzzParseKey(f *testing.F) {
	for _, s := range []string{"client_ip", "route", "header:X-Api-Key", "claim:sub", "header:", "claim:a b", "cookie:x", ":", "header:a:b", "claim:\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		k, err := ParseKey(s)
		if err != nil {
			if !errors.Is(err, ErrBadKey) {
				t.Fatalf("ParseKey(%q) error %v does not wrap ErrBadKey", s, err)
			}
			return
		}
		if k.String() != s {
			t.Fatalf("ParseKey(%q).String() = %q", s, k.String())
		}
		if p := k.problem(); p != "" {
			t.Fatalf("ParseKey(%q) accepted a key New rejects: %s", s, p)
		}
	})
}

// FuzzParseStoreErrorPolicy checks that what ParseStoreErrorPolicy accepts
// round-trips through String.
func FuzzParseStoreErrorPolicy(f *testing.F) {
	for _, s := range []string{"allow", "deny", "local", "", "ALLOW"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParseStoreErrorPolicy(s)
		if err != nil {
			if !errors.Is(err, ErrBadConfig) {
				t.Fatalf("error %v does not wrap ErrBadConfig", err)
			}
			return
		}
		if s != "" && p.String() != s {
			t.Fatalf("ParseStoreErrorPolicy(%q).String() = %q", s, p.String())
		}
	})
}
