package config

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoadContractExample(t *testing.T) {
	f, err := Load("testdata/edge.example.yaml")
	if err != nil {
		t.Fatalf("the contract's example must load: %v", err)
	}
	if got, want := f.Admin, "127.0.0.1:9901"; got != want {
		t.Errorf("admin = %q, want %q", got, want)
	}
	if got, want := len(f.Listeners), 3; got != want {
		t.Fatalf("listeners = %d, want %d", got, want)
	}
	if got := f.Listeners[0].TLS.Certificates[0].Cert; !filepath.IsAbs(got) || !strings.HasSuffix(got, "certs/example.com.crt") {
		t.Errorf("cert path = %q, want absolute path ending certs/example.com.crt", got)
	}
	if got, want := f.Pools["app"].ResponseTimeout.D(), 15*time.Second; got != want {
		t.Errorf("pools.app.response_timeout = %v, want %v", got, want)
	}
	if got, want := f.JWT["users"].Audience, (StringOrList{"example.com"}); len(got) != 1 || got[0] != want[0] {
		t.Errorf("jwt.users.audience = %q, want %q", got, want)
	}
	if got, want := f.Routes[1].RequestHeaders.Add["X-Edge"], "1"; got != want {
		t.Errorf("routes[1].request_headers.add.X-Edge = %q, want %q", got, want)
	}
	if got, want := f.Routes[1].RateLimit, (StringOrList{"per_user"}); len(got) != 1 || got[0] != want[0] {
		t.Errorf("routes[1].rate_limit = %q, want %q", got, want)
	}
	if got, want := f.Routes[1].Pos.At("pool"), 74; got != want {
		t.Errorf("line of routes[1].pool = %d, want %d", got, want)
	}
}

func TestLoadReportsEveryProblemWithItsLine(t *testing.T) {
	const src = `admin: 127.0.0.1
trusted_proxies: [10.0.0.0/33]
tuning:
  idle_timout: 5s
  read_timeout: forever
  max_conns: -1
listeners:
  - {name: web, address: "127.0.0.1:8080"}
  - {name: web, address: "127.0.0.1:8080"}
pools:
  app:
    endpoints: [127.0.0.1:9000, 127.0.0.1:9000]
    health_check: {path: healthz}
jwt:
  users:
    keys:
      - {pem_file: a.pem}
rate_limits:
  per_ip: {key: client_ip, rate: 0, burst: 1, store: redis}
routes:
  - {prefix: /app/, pool: ap}
  - {prefix: /app/, pool: app, jwt: user, rate_limit: per_ipp}
  - {prefix: nope, pool: app, methods: [get], scopes: [x], listeners: [other]}
`
	_, err := Parse("edge.yaml", []byte(src))
	if err == nil {
		t.Fatal("Parse accepted a broken file")
	}
	want := []string{
		`edge.yaml:1: admin: "127.0.0.1" is not host:port`,
		`edge.yaml:2: trusted_proxies[0]: not a CIDR: "10.0.0.0/33"`,
		`edge.yaml:4: tuning: unknown key "idle_timout" (did you mean "idle_timeout"?)`,
		`edge.yaml:5: tuning.read_timeout: want a duration such as 250ms or 2s, got "forever"`,
		`edge.yaml:6: tuning.max_conns: must not be negative, got -1`,
		`edge.yaml:9: listeners[1]: duplicate of listeners[0]: same name "web" and address "127.0.0.1:8080"`,
		`edge.yaml:12: pools.app.endpoints[1]: duplicate endpoint "127.0.0.1:9000"`,
		`edge.yaml:13: pools.app.health_check.path: must start with /, got "healthz"`,
		`edge.yaml:17: jwt.users.keys[0]: alg is required for pem_file and hmac_secret_file (a key is bound to one algorithm)`,
		`edge.yaml:19: rate_limits.per_ip.store: redis needs redis.address`,
		`edge.yaml:19: rate_limits.per_ip.rate: must be positive`,
		`edge.yaml:21: routes[0].pool: unknown pool "ap" (defined: app)`,
		`edge.yaml:22: routes[1]: duplicate of routes[0] (host "", prefix "/app/")`,
		`edge.yaml:22: routes[1].jwt: unknown jwt policy "user" (defined: users)`,
		`edge.yaml:22: routes[1].rate_limit: unknown rate limit "per_ipp" (defined: per_ip)`,
		`edge.yaml:23: routes[2].prefix: must start with /, got "nope"`,
		`edge.yaml:23: routes[2].scopes: needs a jwt policy on the route`,
		`edge.yaml:23: routes[2].methods: "get" is not an HTTP method (uppercase token)`,
		`edge.yaml:23: routes[2].listeners: unknown listener "other"`,
	}
	got := strings.Split(err.Error(), "\n")
	missing := map[string]bool{}
	for _, w := range want {
		missing[w] = true
	}
	for _, g := range got {
		delete(missing, g)
	}
	for w := range missing {
		t.Errorf("missing problem %s", w)
	}
	if len(got) != len(want) {
		t.Errorf("got %d problems, want %d:\n%s", len(got), len(want), err)
	}
}

func TestParseSyntaxAndShapeErrors(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"yaml syntax", "routes:\n  - {prefix: /a\n", "edge.yaml:"},
		{"empty", "", "edge.yaml: file is empty"},
		{"wrong kind", "routes: {prefix: /}\n", "edge.yaml:1: routes: want a list, got a mapping"},
		{"duplicate key", "admin: 127.0.0.1:1\nadmin: 127.0.0.1:2\n", "edge.yaml:2: admin: duplicate key"},
		{"bad int", "tuning: {max_conns: lots}\n", `edge.yaml:1: tuning.max_conns: want an integer, got "lots"`},
		{"unknown top-level", "pool: {}\n", `edge.yaml:1: unknown key "pool" (did you mean "pools"?)`},
		{"null pool", "pools:\n  app:\n", "edge.yaml:2: pools.app.endpoints: at least one endpoint is required"},
		{"wildcard overlaps", "listeners:\n  - {name: a, address: \"127.0.0.1:80\"}\n  - {name: b, address: \":80\"}\n", `edge.yaml:3: listeners[1].address: ":80" overlaps listeners[0] ("a", 127.0.0.1:80)`},
		{"line separator", "admin: 127.0.0.1:1\n# a comment \u2028 with a separator\n", "edge.yaml:2: the file contains U+2028"},
		{"not utf-8", "admin: \xff\n", "edge.yaml:1: the file is not UTF-8 text"},
		{"utf-16", "\xff\xfea\x00:\x00", "edge.yaml:1: the file is not UTF-8 text"},
		{"alias bomb", "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\ng: [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\n", "too many YAML aliases"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("edge.yaml", []byte(tt.src))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Parse() error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

// problemsOf parses src and returns its problems, one per line.
func problemsOf(t *testing.T, src string) []string {
	t.Helper()
	_, err := Parse("edge.yaml", []byte(src))
	if err == nil {
		return nil
	}
	return strings.Split(err.Error(), "\n")
}

// wantProblems checks that got is exactly want, in any order.
func wantProblems(t *testing.T, got, want []string) {
	t.Helper()
	missing := map[string]bool{}
	for _, w := range want {
		missing[w] = true
	}
	for _, g := range got {
		if !missing[g] {
			t.Errorf("unexpected problem %s", g)
		}
		delete(missing, g)
	}
	for w := range missing {
		t.Errorf("missing problem %s", w)
	}
}

func TestListenerClashesReportedOnce(t *testing.T) {
	const src = `listeners:
  - {name: a, address: "127.0.0.1:8080"}
  - {name: a, address: "127.0.0.1:8080"}
  - {name: a, address: "127.0.0.1:0"}
  - {name: b, address: "0.0.0.0:8080"}
  - {name: c, address: "127.0.0.1:9090"}
  - {name: c, address: "0.0.0.0:9090"}
`
	wantProblems(t, problemsOf(t, src), []string{
		`edge.yaml:3: listeners[1]: duplicate of listeners[0]: same name "a" and address "127.0.0.1:8080"`,
		`edge.yaml:4: listeners[2].name: "a" is already the name of listeners[0]`,
		`edge.yaml:5: listeners[3].address: "0.0.0.0:8080" overlaps listeners[0] ("a", 127.0.0.1:8080)`,
		// Same name, and a wildcard after a specific host: both clashes,
		// in one line (the wildcard overlap used to be missed).
		`edge.yaml:7: listeners[5]: duplicate of listeners[4]: same name "c" and address "0.0.0.0:9090"`,
	})
}

func TestHeaderNamesMustBeTokens(t *testing.T) {
	const src = `listeners:
  - {name: web, address: "127.0.0.1:0"}
pools:
  app: {endpoints: ["127.0.0.1:1"]}
routes:
  - prefix: /
    pool: app
    request_headers:
      add: {"a b": "1", X-Ok: "2"}
      remove: ["", "x y", X-Fine]
    response_headers:
      add: {"": "1"}
      remove: ["bad:name"]
`
	wantProblems(t, problemsOf(t, src), []string{
		`edge.yaml:9: routes[0].request_headers.add: "a b" is not a valid header name (an RFC 9110 token)`,
		`edge.yaml:10: routes[0].request_headers.remove[0]: "" is not a valid header name (an RFC 9110 token)`,
		`edge.yaml:10: routes[0].request_headers.remove[1]: "x y" is not a valid header name (an RFC 9110 token)`,
		`edge.yaml:12: routes[0].response_headers.add: "" is not a valid header name (an RFC 9110 token)`,
		`edge.yaml:13: routes[0].response_headers.remove[0]: "bad:name" is not a valid header name (an RFC 9110 token)`,
	})
}

func TestRouteIPLists(t *testing.T) {
	const src = `listeners:
  - {name: web, address: "127.0.0.1:0"}
pools:
  app: {endpoints: ["127.0.0.1:1"]}
routes:
  - prefix: /a/
    pool: app
    allow_ips: [10.0.0.0/8, 192.0.2.7, "2001:db8::/32", "::ffff:198.51.100.0/120"]
    deny_ips:
      - 10.1.2.3
      - 10.0.0.0/33
      - nope
      - "fe80::1%eth0"
  - {prefix: /b/, pool: app, allow_ips: [{a: b}]}
`
	f, err := Parse("edge.yaml", []byte(src))
	wantProblems(t, strings.Split(fmt.Sprint(err), "\n"), []string{
		`edge.yaml:11: routes[0].deny_ips[1]: not a CIDR: "10.0.0.0/33"`,
		`edge.yaml:12: routes[0].deny_ips[2]: not an IP or CIDR: "nope"`,
		`edge.yaml:13: routes[0].deny_ips[3]: an IP zone is not allowed: "fe80::1%eth0"`,
		`edge.yaml:14: routes[1].allow_ips[0]: want a string, got a mapping`,
	})
	got := fmt.Sprint(Prefixes(f.Routes[0].AllowIPs))
	if want := "[10.0.0.0/8 192.0.2.7/32 2001:db8::/32 198.51.100.0/24]"; got != want {
		t.Errorf("allow_ips = %s, want %s", got, want)
	}
	if got, want := fmt.Sprint(Prefixes(f.Routes[0].DenyIPs)), "[10.1.2.3/32]"; got != want {
		t.Errorf("deny_ips = %s, want %s", got, want)
	}
	if p, _ := ParsePrefix("2001:db8::1"); p.String() != "2001:db8::1/128" {
		t.Errorf("ParsePrefix(2001:db8::1) = %s, want a /128", p)
	}
	if p, _ := ParsePrefix("10.1.2.3/8"); p.String() != "10.0.0.0/8" {
		t.Errorf("ParsePrefix(10.1.2.3/8) = %s, want it masked to 10.0.0.0/8", p)
	}
}
