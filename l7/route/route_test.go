package route

import (
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// contractSpecs are the routes of ../shared/spec/edge.example.yaml plus an any-host fallback.
var contractSpecs = []Spec{
	{Host: "example.com", Prefix: "/auth/"},
	{Host: "example.com", Prefix: "/app/", Methods: []string{"GET", "POST", "PUT", "DELETE"}},
	{Host: "*", Prefix: "/"},
}

func TestLookup(t *testing.T) {
	specs := []Spec{
		0:  {Host: "example.com", Prefix: "/app/", Methods: []string{"GET", "POST"}},
		1:  {Host: "example.com", Prefix: "/app/admin/"},
		2:  {Host: "example.com", Prefix: "/auth/"},
		3:  {Host: "*.example.com", Prefix: "/"},
		4:  {Host: "*.api.example.com", Prefix: "/v1/"},
		5:  {Host: "", Prefix: "/"},
		6:  {Host: "*", Prefix: "/static/"},
		7:  {Host: "Shop.Example.ORG.", Prefix: "/cart"},
		8:  {Host: "[::1]", Prefix: "/ip6/"},
		9:  {Host: "10.0.0.1", Prefix: "/ip4/"},
		10: {Host: "example.com", Prefix: "/app"},
		11: {Host: "locked.example.net", Prefix: "/", Methods: []string{"GET"}},
		12: {Host: "locked.example.net", Prefix: "/open/"},
	}
	tab, err := New(specs)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	tests := []struct {
		name, host, path, method string
		wantIdx                  int
		wantSt                   Status
	}{
		{"exact host, prefix", "example.com", "/auth/login", "POST", 2, Matched},
		{"longest prefix wins", "example.com", "/app/admin/users", "DELETE", 1, Matched},
		{"shorter prefix, method allowed", "example.com", "/app/dashboard", "GET", 0, Matched},
		{"byte prefix without slash", "example.com", "/application", "GET", 10, Matched},
		{"prefix equals path", "example.com", "/app/", "POST", 0, Matched},
		{"trailing slash prefix does not match shorter path", "example.com", "/app", "GET", 10, Matched},
		{"method not allowed does not fall through", "example.com", "/app/x", "PUT", 0, MethodNotAllowed},
		{"methods are case-sensitive", "example.com", "/app/x", "get", 0, MethodNotAllowed},
		{"HEAD is not implied by GET", "example.com", "/app/x", "HEAD", 0, MethodNotAllowed},
		{"host with port", "example.com:8443", "/auth/", "GET", 2, Matched},
		{"host mixed case", "ExAmPlE.CoM", "/auth/x", "GET", 2, Matched},
		{"host trailing dot and port", "example.com.:80", "/auth/x", "GET", 2, Matched},
		{"exact host falls back to any host", "example.com", "/other", "GET", 5, Matched},
		{"exact host falls back to any host, longer any prefix", "example.com", "/static/a.css", "GET", 6, Matched},
		{"wildcard", "www.example.com", "/x", "GET", 3, Matched},
		{"wildcard, several labels", "a.b.example.com", "/x", "GET", 3, Matched},
		{"wildcard does not match its apex", "example.org", "/x", "GET", 5, Matched},
		{"longest wildcard first", "eu.api.example.com", "/v1/users", "GET", 4, Matched},
		{"longest wildcard falls back to shorter wildcard", "eu.api.example.com", "/v2/users", "GET", 3, Matched},
		{"wildcard needs a label before the suffix", ".api.example.com", "/v1/", "GET", 3, Matched},
		{"wildcard beats any host even with a shorter prefix", "x.example.com", "/static/a.css", "GET", 3, Matched},
		{"spec host normalized", "shop.example.org", "/cart/42", "GET", 7, Matched},
		{"IPv6 literal with port", "[::1]:8080", "/ip6/x", "GET", 8, Matched},
		{"IPv6 literal without port", "[::1]", "/ip6/", "GET", 8, Matched},
		{"IPv4 literal with port", "10.0.0.1:80", "/ip4/x", "GET", 9, Matched},
		{"unknown host reaches any host", "nope.test", "/", "GET", 5, Matched},
		{"empty host reaches any host", "", "/static/x", "GET", 6, Matched},
		{"restricted root route is chosen before any host", "locked.example.net", "/x", "POST", 11, MethodNotAllowed},
		{"longer prefix without methods", "locked.example.net", "/open/x", "POST", 12, Matched},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gotIdx, gotSt := tab.Lookup([]byte(tt.host), []byte(tt.path), []byte(tt.method))
			if gotIdx != tt.wantIdx || gotSt != tt.wantSt {
				t.Errorf("Lookup(%q, %q, %q) = %d, %v; want %d, %v",
					tt.host, tt.path, tt.method, gotIdx, gotSt, tt.wantIdx, tt.wantSt)
			}
		})
	}
}

func TestLookupNotFound(t *testing.T) {
	tab, err := New([]Spec{
		{Host: "example.com", Prefix: "/app/"},
		{Host: "*.example.com", Prefix: "/api/"},
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	tests := []struct{ host, path string }{
		{"example.com", "/ap"},
		{"example.com", "/"},
		{"example.com", ""},
		{"example.org", "/app/"},
		{"x.example.com", "/app/"},
		{"", "/app/"},
		{strings.Repeat("a", 250) + ".example.com", "/api/"}, // over 253 bytes: no host tiers
		{"[::1", "/app/"},
	}
	for _, tt := range tests {
		if idx, st := tab.Lookup([]byte(tt.host), []byte(tt.path), []byte("GET")); idx != -1 || st != NotFound {
			t.Errorf("Lookup(%q, %q) = %d, %v; want -1, NotFound", tt.host, tt.path, idx, st)
		}
	}

	var zero Table
	if idx, st := zero.Lookup([]byte("example.com"), []byte("/"), []byte("GET")); idx != -1 || st != NotFound {
		t.Errorf("zero table Lookup = %d, %v; want -1, NotFound", idx, st)
	}
	var nilTab *Table
	if idx, st := nilTab.Lookup([]byte("example.com"), []byte("/"), []byte("GET")); idx != -1 || st != NotFound {
		t.Errorf("nil table Lookup = %d, %v; want -1, NotFound", idx, st)
	}
	if n := nilTab.Len(); n != 0 {
		t.Errorf("nil table Len = %d; want 0", n)
	}
	if got := nilTab.AppendAllow([]byte("x"), 0); string(got) != "x" {
		t.Errorf("nil table AppendAllow = %q; want %q", got, "x")
	}
}

func TestEmptyTable(t *testing.T) {
	tab, err := New(nil)
	if err != nil {
		t.Fatalf("New(nil): %v", err)
	}
	if idx, st := tab.Lookup([]byte("example.com"), []byte("/"), []byte("GET")); idx != -1 || st != NotFound {
		t.Errorf("empty table Lookup = %d, %v; want -1, NotFound", idx, st)
	}
	if n := tab.Len(); n != 0 {
		t.Errorf("Len = %d; want 0", n)
	}
}

func TestContractRoutes(t *testing.T) {
	tab, err := New(contractSpecs)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if n := tab.Len(); n != len(contractSpecs) {
		t.Errorf("Len = %d; want %d", n, len(contractSpecs))
	}
	tests := []struct {
		host, path, method string
		wantIdx            int
		wantSt             Status
	}{
		{"example.com", "/auth/login", "POST", 0, Matched},
		{"example.com", "/app/dashboard", "GET", 1, Matched},
		{"example.com", "/app/dashboard", "PATCH", 1, MethodNotAllowed},
		{"127.0.0.1:8080", "/app/dashboard", "GET", 2, Matched},
	}
	for _, tt := range tests {
		gotIdx, gotSt := tab.Lookup([]byte(tt.host), []byte(tt.path), []byte(tt.method))
		if gotIdx != tt.wantIdx || gotSt != tt.wantSt {
			t.Errorf("Lookup(%q, %q, %q) = %d, %v; want %d, %v",
				tt.host, tt.path, tt.method, gotIdx, gotSt, tt.wantIdx, tt.wantSt)
		}
	}
}

func TestAppendAllow(t *testing.T) {
	tab, err := New([]Spec{
		{Host: "example.com", Prefix: "/app/", Methods: []string{"GET", "POST", "PUT", "DELETE"}},
		{Prefix: "/"},
		{Prefix: "/one/", Methods: []string{"PURGE"}},
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	tests := []struct {
		idx  int
		want string
	}{
		{0, "pre:GET, POST, PUT, DELETE"},
		{1, "pre:"},
		{2, "pre:PURGE"},
		{-1, "pre:"},
		{3, "pre:"},
	}
	for _, tt := range tests {
		if got := tab.AppendAllow([]byte("pre:"), tt.idx); string(got) != tt.want {
			t.Errorf("AppendAllow(%d) = %q; want %q", tt.idx, got, tt.want)
		}
	}
}

func TestNewErrors(t *testing.T) {
	tests := []struct {
		name  string
		specs []Spec
		want  []string // every line of the joined error, in order
		kinds []error
	}{
		{
			name: "duplicate",
			specs: []Spec{
				{Host: "example.com", Prefix: "/auth/"},
				{Host: "example.com", Prefix: "/app/"},
				{Host: "*", Prefix: "/"},
				{Host: "EXAMPLE.com.", Prefix: "/app/", Methods: []string{"GET"}},
				{Host: "", Prefix: "/"},
			},
			want: []string{
				`route: routes[3]: duplicate of routes[1] (host "example.com", prefix "/app/")`,
				`route: routes[4]: duplicate of routes[2] (host "*", prefix "/")`,
			},
			kinds: []error{ErrDuplicate, ErrDuplicate},
		},
		{
			name: "bad prefixes",
			specs: []Spec{
				{Prefix: ""},
				{Prefix: "app/"},
				{Prefix: "/a\x00"},
				{Prefix: "//x"},
				{Prefix: "/a/../b"},
				{Prefix: "/a/./"},
			},
			want: []string{
				`route: routes[0].prefix: empty; it must start with "/"`,
				`route: routes[1].prefix: "app/" must start with "/"`,
				`route: routes[2].prefix: "/a\x00" holds control byte 0x00`,
				`route: routes[3].prefix: "//x" holds an empty, "." or ".." segment, which a normalized path never has`,
				`route: routes[4].prefix: "/a/../b" holds an empty, "." or ".." segment, which a normalized path never has`,
				`route: routes[5].prefix: "/a/./" holds an empty, "." or ".." segment, which a normalized path never has`,
			},
			kinds: []error{ErrBadPrefix, ErrBadPrefix, ErrBadPrefix, ErrBadPrefix, ErrBadPrefix, ErrBadPrefix},
		},
		{
			name: "bad methods",
			specs: []Spec{
				{Prefix: "/", Methods: []string{"GET", "get", "", "GE T", "GET"}},
			},
			want: []string{
				`route: routes[0].methods[1]: "get" must be uppercase: methods are case-sensitive (RFC 9110 §9.1), write "GET"`,
				`route: routes[0].methods[2]: empty method`,
				`route: routes[0].methods[3]: "GE T" is not a method token (RFC 9110 §9.1)`,
				`route: routes[0].methods[4]: "GET" is listed twice`,
			},
			kinds: []error{ErrBadMethod, ErrBadMethod, ErrBadMethod, ErrBadMethod},
		},
		{
			name: "bad hosts",
			specs: []Spec{
				{Host: "example.com:8080", Prefix: "/"},
				{Host: "::1", Prefix: "/"},
				{Host: "[0:0::1]", Prefix: "/"},
				{Host: "[::1]:80", Prefix: "/"},
				{Host: "[10.0.0.1]", Prefix: "/"},
				{Host: "a.*.com", Prefix: "/"},
				{Host: "*example.com", Prefix: "/"},
				{Host: "*.", Prefix: "/"},
				{Host: "*.exa mple.com", Prefix: "/"},
				{Host: "exa mple.com", Prefix: "/"},
				{Host: "a..b", Prefix: "/"},
				{Host: strings.Repeat("a", 64) + ".com", Prefix: "/"},
				{Host: "ex\u212Ample.com", Prefix: "/"}, // Kelvin sign: strings.ToLower would make it "k"
			},
			want: []string{
				`route: routes[0].host: "example.com:8080" must not carry a port`,
				`route: routes[1].host: "::1": an IPv6 literal must be bracketed, like "[::1]"`,
				`route: routes[2].host: "[0:0::1]" is not in canonical form (RFC 5952): write "[::1]"`,
				`route: routes[3].host: "[::1]:80": an IPv6 literal must end with "]" and carry no port`,
				`route: routes[4].host: "[10.0.0.1]" is not a bracketed IPv6 address like "[::1]"`,
				`route: routes[5].host: "a.*.com": a wildcard must be the whole first label, like "*.example.com"`,
				`route: routes[6].host: "*example.com": a wildcard must be the whole first label, like "*.example.com"`,
				`route: routes[7].host: "*.": a wildcard must be the whole first label, like "*.example.com"`,
				`route: routes[8].host: "*.exa mple.com": the domain after "*." is not a valid host name`,
				`route: routes[9].host: "exa mple.com" is not a valid host name (dot-separated labels of 1-63 letters, digits, "-" or "_")`,
				`route: routes[10].host: "a..b" is not a valid host name (dot-separated labels of 1-63 letters, digits, "-" or "_")`,
				`route: routes[11].host: "` + strings.Repeat("a", 64) + `.com" is not a valid host name (dot-separated labels of 1-63 letters, digits, "-" or "_")`,
				"route: routes[12].host: \"ex\u212Ample.com\" is not a valid host name (dot-separated labels of 1-63 letters, digits, \"-\" or \"_\")",
			},
			kinds: []error{ErrBadHost, ErrBadHost, ErrBadHost, ErrBadHost, ErrBadHost, ErrBadHost,
				ErrBadHost, ErrBadHost, ErrBadHost, ErrBadHost, ErrBadHost, ErrBadHost, ErrBadHost},
		},
		{
			name: "all problems of one route",
			specs: []Spec{
				{Host: "a b", Prefix: "x", Methods: []string{"x y"}},
			},
			want: []string{
				`route: routes[0].host: "a b" is not a valid host name (dot-separated labels of 1-63 letters, digits, "-" or "_")`,
				`route: routes[0].prefix: "x" must start with "/"`,
				`route: routes[0].methods[0]: "x y" is not a method token (RFC 9110 §9.1)`,
			},
			kinds: []error{ErrBadHost, ErrBadPrefix, ErrBadMethod},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tab, err := New(tt.specs)
			if err == nil {
				t.Fatalf("New = %v, nil; want errors", tab)
			}
			if tab != nil {
				t.Errorf("New returned a table with an error")
			}
			got := strings.Split(err.Error(), "\n")
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("New error:\n%s\nwant:\n%s", err, strings.Join(tt.want, "\n"))
			}
			joined, ok := err.(interface{ Unwrap() []error })
			if !ok {
				t.Fatalf("error %T does not unwrap to a list", err)
			}
			list := joined.Unwrap()
			if len(list) != len(tt.kinds) {
				t.Fatalf("got %d errors; want %d", len(list), len(tt.kinds))
			}
			for i, e := range list {
				var se *SpecError
				if !errors.As(e, &se) {
					t.Errorf("error %d is %T; want *SpecError", i, e)
					continue
				}
				if !errors.Is(e, tt.kinds[i]) {
					t.Errorf("error %d (%v) is not %v", i, e, tt.kinds[i])
				}
			}
		})
	}
}

func TestStatusString(t *testing.T) {
	tests := []struct {
		s    Status
		want string
	}{
		{NotFound, "NotFound"}, {Matched, "Matched"}, {MethodNotAllowed, "MethodNotAllowed"}, {Status(9), "Status(9)"},
	}
	for _, tt := range tests {
		if got := tt.s.String(); got != tt.want {
			t.Errorf("Status(%d).String() = %q; want %q", uint8(tt.s), got, tt.want)
		}
	}
}

// TestTableShape checks the radix tree compresses shared prefixes: the contract's routes under
// example.com need a root, a shared "/a" edge, and the "pp/" and "uth/" leaves.
func TestTableShape(t *testing.T) {
	tab, err := New(contractSpecs[:2])
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	var labels []string
	for _, n := range tab.tree.nodes {
		labels = append(labels, tab.tree.arena[n.labelOff:n.labelOff+n.labelLen])
	}
	if got, want := strings.Join(labels, "|"), "|/a|pp/|uth/"; got != want {
		t.Errorf("node labels = %q; want %q", got, want)
	}
}

// TestConcurrentSwap runs Lookups while tables are swapped through an atomic.Pointer, the way the
// proxy reloads; under -race it shows a built table is safe to share without locks.
func TestConcurrentSwap(t *testing.T) {
	old, err := New([]Spec{{Host: "example.com", Prefix: "/app/"}})
	if err != nil {
		t.Fatal(err)
	}
	next, err := New([]Spec{{Prefix: "/"}, {Host: "example.com", Prefix: "/app/", Methods: []string{"POST"}}})
	if err != nil {
		t.Fatal(err)
	}
	var cur atomic.Pointer[Table]
	cur.Store(old)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 2000 {
				tab := cur.Load()
				idx, st := tab.Lookup([]byte("example.com"), []byte("/app/x"), []byte("GET"))
				switch tab {
				case old:
					if idx != 0 || st != Matched {
						t.Errorf("old table: Lookup = %d, %v; want 0, Matched", idx, st)
						return
					}
				case next:
					if idx != 1 || st != MethodNotAllowed {
						t.Errorf("new table: Lookup = %d, %v; want 1, MethodNotAllowed", idx, st)
						return
					}
				}
			}
		})
	}
	for i := range 200 {
		if i%2 == 0 {
			cur.Store(next)
		} else {
			cur.Store(old)
		}
	}
	wg.Wait()
}
