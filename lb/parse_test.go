package lb

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseEndpoint(t *testing.T) {
	tests := []struct {
		in      string
		want    EndpointConfig
		wantErr string
	}{
		{in: "10.0.1.11:8080", want: EndpointConfig{Addr: "10.0.1.11:8080"}},
		{in: "app-7f9c=10.0.1.11:8080", want: EndpointConfig{Name: "app-7f9c", Addr: "10.0.1.11:8080"}},
		{in: "[::1]:443", want: EndpointConfig{Addr: "[::1]:443"}},
		{in: "db=[2001:db8::1]:5432", want: EndpointConfig{Name: "db", Addr: "[2001:db8::1]:5432"}},
		{in: "app.default.svc.cluster.local:80", want: EndpointConfig{Addr: "app.default.svc.cluster.local:80"}},
		{in: "localhost:65535", want: EndpointConfig{Addr: "localhost:65535"}},
		{in: "10.0.1.11", wantErr: `lb: bad endpoint "10.0.1.11": missing port in address`},
		{in: "10.0.1.11:0", wantErr: `lb: bad endpoint "10.0.1.11:0": port "0" is not a number in 1-65535`},
		{in: "10.0.1.11:65536", wantErr: `port "65536" is not a number`},
		{in: "10.0.1.11:http", wantErr: `port "http" is not a number`},
		{in: "10.0.1.11:+80", wantErr: `port "+80" is not a number`},
		{in: ":80", wantErr: `lb: bad endpoint ":80": missing host`},
		{in: "=10.0.1.11:80", wantErr: `lb: bad endpoint "=10.0.1.11:80": empty name before '='`},
		{in: "my pod=10.0.1.11:80", wantErr: `name contains a space`},
		{in: "a=b=10.0.1.11:80", wantErr: `lb: bad endpoint "a=b=10.0.1.11:80": host "b=10.0.1.11"`},
		{in: "[fe80::1:80", wantErr: `lb: bad endpoint "[fe80::1:80"`},
		{in: "[example.com]:80", wantErr: `host "example.com" is not an IPv6 address`},
		{in: "exa mple.com:80", wantErr: `is not an IP address or DNS name`},
		{in: "a..b:80", wantErr: `is not an IP address or DNS name`},
		{in: "", wantErr: `lb: bad endpoint "": missing port in address`},
	}
	for _, tt := range tests {
		got, err := ParseEndpoint(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrBadEndpoint) {
				t.Errorf("ParseEndpoint(%q) = %+v, %v; want error containing %q", tt.in, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseEndpoint(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}

func TestParseHashOn(t *testing.T) {
	tests := []struct {
		in      string
		want    HashOn
		wantErr string
	}{
		{in: "client_ip", want: HashOn{Kind: HashClientIP}},
		{in: "sni", want: HashOn{Kind: HashSNI}},
		{in: "header:X-User-Id", want: HashOn{Kind: HashHeader, Name: "X-User-Id"}},
		{in: "cookie:session", want: HashOn{Kind: HashCookie, Name: "session"}},
		{in: "claim:sub", want: HashOn{Kind: HashClaim, Name: "sub"}},
		{in: "claim:https://example.com/tenant", want: HashOn{Kind: HashClaim, Name: "https://example.com/tenant"}},
		{in: "", wantErr: `lb: bad hash_on "": want client_ip`},
		{in: "ip", wantErr: `lb: bad hash_on "ip"`},
		{in: "query:x", wantErr: `unknown source "query"`},
		{in: "header:", wantErr: `empty header name`},
		{in: "header:X User", wantErr: `header name is not an RFC 9110 token`},
		{in: "cookie:a;b", wantErr: `cookie name is not an RFC 9110 token`},
		{in: "claim:a\nb", wantErr: `claim name contains a control character`},
	}
	for _, tt := range tests {
		got, err := ParseHashOn(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrBadHashOn) {
				t.Errorf("ParseHashOn(%q) = %+v, %v; want error containing %q", tt.in, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseHashOn(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
		if s := got.String(); s != tt.in {
			t.Errorf("ParseHashOn(%q).String() = %q", tt.in, s)
		}
	}
}

func TestParsePolicy(t *testing.T) {
	for in, want := range map[string]Policy{"": RoundRobin, "round_robin": RoundRobin, "least_request": LeastRequest, "random": Random, "consistent_hash": ConsistentHash} {
		if got, err := ParsePolicy(in); err != nil || got != want {
			t.Errorf("ParsePolicy(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	_, err := ParsePolicy("foo")
	if err == nil || err.Error() != `lb: unknown balance "foo"` || !errors.Is(err, ErrUnknownPolicy) {
		t.Errorf(`ParsePolicy("foo") error = %v, want lb: unknown balance "foo"`, err)
	}
}

func TestConfigValidate(t *testing.T) {
	ok := []EndpointConfig{{Addr: "10.0.0.1:80"}}
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"no endpoints", Config{}, "lb: no endpoints"},
		{"bad addr", Config{Endpoints: []EndpointConfig{{Addr: "10.0.0.1"}}}, `lb: bad endpoint "10.0.0.1": endpoints[0]: missing port`},
		{"bad name", Config{Endpoints: []EndpointConfig{{Name: "a b", Addr: "10.0.0.1:80"}}}, `name contains a space`},
		{"name with =", Config{Endpoints: []EndpointConfig{{Name: "a=b", Addr: "10.0.0.1:80"}}}, `"a=b": endpoints[0]: name contains a space, '='`},
		{"negative weight", Config{Endpoints: []EndpointConfig{{Addr: "10.0.0.1:80", Weight: -1}}}, "weight -1 outside 0-1000000"},
		{"huge weight", Config{Endpoints: []EndpointConfig{{Addr: "10.0.0.1:80", Weight: 1 << 40}}}, "outside 0-1000000"},
		{"duplicate address", Config{Endpoints: []EndpointConfig{{Addr: "10.0.0.1:80"}, {Addr: "10.0.0.1:80"}}}, `"10.0.0.1:80": endpoints[0] and endpoints[1] have the same name`},
		{"duplicate name", Config{Endpoints: []EndpointConfig{{Name: "a", Addr: "10.0.0.1:80"}, {Name: "a", Addr: "10.0.0.2:80"}}}, `"a": endpoints[0] and endpoints[1] have the same name`},
		{"name equal to other address", Config{Endpoints: []EndpointConfig{{Addr: "10.0.0.1:80"}, {Name: "10.0.0.1:80", Addr: "10.0.0.2:80"}}}, "have the same name"},
		{"unknown balance", Config{Endpoints: ok, Balance: "fastest"}, `lb: unknown balance "fastest"`},
		{"balance factor below 1", Config{Endpoints: ok, HashBalanceFactor: 0.5}, "hash_balance_factor 0.5"},
		{"hash_on header without name", Config{Endpoints: ok, HashOn: HashOn{Kind: HashHeader}}, `lb: bad hash_on "header:"`},
		{"negative interval", Config{Endpoints: ok, HealthCheck: HealthCheck{Interval: -time.Second}}, "health_check"},
		{"ejected percent", Config{Endpoints: ok, Outlier: OutlierDetection{MaxEjectedPercent: 101}}, "outlier detection"},
		{"panic above 1", Config{Endpoints: ok, PanicThreshold: 1.5}, "panic_threshold 1.5"},
		{"negative limit", Config{Endpoints: ok, MaxPending: -1}, "must not be negative"},
	}
	for _, tt := range tests {
		err := tt.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%s: Validate() = %v, want error containing %q", tt.name, err, tt.wantErr)
		}
		if _, err := NewPool("p", tt.cfg, nil); err == nil {
			t.Errorf("%s: NewPool accepted the config", tt.name)
		}
	}
	if err := (&Config{Endpoints: ok}).Validate(); err != nil {
		t.Errorf("minimal config: %v", err)
	}
}

func TestConfigDefaults(t *testing.T) {
	p, err := NewPool("p", Config{Endpoints: []EndpointConfig{{Addr: "10.0.0.1:80"}}, HealthCheck: HealthCheck{Interval: 2 * time.Second}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := p.Config()
	if c.Balance != RoundRobin || c.RetryBudget != 0.2 || c.Endpoints[0].Name != "10.0.0.1:80" || c.Endpoints[0].Weight != 1 {
		t.Errorf("defaults not filled: %+v", c)
	}
	if hc := c.HealthCheck; hc.Timeout != time.Second || hc.Fall != 3 || hc.Rise != 2 {
		t.Errorf("health check defaults = %+v", hc)
	}
	od := c.Outlier
	if od.ConsecutiveConnectFailures != 3 || od.Consecutive5xx != 5 || od.BaseEjection != 30*time.Second || od.MaxEjection != 300*time.Second || od.MaxEjectedPercent != 50 {
		t.Errorf("outlier defaults = %+v", od)
	}
}

func FuzzParseEndpoint(f *testing.F) {
	for _, s := range []string{"10.0.1.11:8080", "pod=10.0.1.11:8080", "[::1]:443", "a=b=c:1", "host:0", ":", "=", "x.y.z:65535"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ec, err := ParseEndpoint(s)
		if err != nil {
			if !errors.Is(err, ErrBadEndpoint) {
				t.Fatalf("error %v does not wrap ErrBadEndpoint", err)
			}
			return
		}
		if err := checkAddr(ec.Addr); err != nil {
			t.Fatalf("accepted %q with bad address: %v", s, err)
		}
		// A parsed endpoint must make a valid pool and round-trip through its String form.
		p, err := NewPool("fuzz", Config{Endpoints: []EndpointConfig{ec}}, nil)
		if err != nil {
			t.Fatalf("ParseEndpoint(%q) = %+v, but NewPool: %v", s, ec, err)
		}
		again, err := ParseEndpoint(p.Endpoints()[0].String())
		if err != nil {
			t.Fatalf("String() of %q does not parse: %v", s, err)
		}
		wantName := ec.Name
		if wantName == ec.Addr {
			wantName = "" // String() writes a name equal to the address as the bare address
		}
		if again.Name != wantName || again.Addr != ec.Addr {
			t.Fatalf("round trip of %q: %+v, then %+v", s, ec, again)
		}
	})
}

func FuzzParseHashOn(f *testing.F) {
	for _, s := range []string{"client_ip", "sni", "header:X-User", "cookie:sid", "claim:sub", "claim:", "x:y", ":"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h, err := ParseHashOn(s)
		if err != nil {
			if !errors.Is(err, ErrBadHashOn) {
				t.Fatalf("error %v does not wrap ErrBadHashOn", err)
			}
			return
		}
		if h.String() != s {
			t.Fatalf("ParseHashOn(%q).String() = %q", s, h.String())
		}
		cfg := Config{Endpoints: []EndpointConfig{{Addr: "10.0.0.1:80"}}, HashOn: h}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("parsed %q but Validate rejects it: %v", s, err)
		}
	})
}

func TestPoolAccessors(t *testing.T) {
	h := HashOn{Kind: HashCookie, Name: "sid"}
	p := mustPool(t, Config{Endpoints: endpoints(2), Balance: ConsistentHash, HashOn: h, Retries: 2})
	if p.Name() != "app" || p.Balance() != ConsistentHash || p.HashOn() != h || p.Retries() != 2 || len(p.Endpoints()) != 2 {
		t.Errorf("accessors: %q %q %v %d %d", p.Name(), p.Balance(), p.HashOn(), p.Retries(), len(p.Endpoints()))
	}
	if s := p.Endpoints()[0].String(); s != "pod-0=10.0.0.1:8080" {
		t.Errorf("String() = %q", s)
	}
}
