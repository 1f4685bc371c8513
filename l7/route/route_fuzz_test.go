package route

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// The naive reference: the package documentation's rules written as plainly as possible, with a
// linear scan over the specs and string functions, sharing no code with the table.

// naiveLower lowercases ASCII letters only, as Host comparison does.
func naiveLower(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b.WriteByte(c)
	}
	return b.String()
}

// naiveRequestHost normalizes a Host header; ok is false when it can only reach any-host routes.
func naiveRequestHost(raw string) (host string, ok bool) {
	h := raw
	if strings.HasPrefix(h, "[") {
		if end := strings.Index(h, "]"); end >= 0 {
			h = h[:end+1]
		}
	} else if colon := strings.Index(h, ":"); colon >= 0 {
		h = h[:colon]
	}
	h = strings.TrimSuffix(h, ".")
	if h == "" || len(h) > 253 {
		return "", false
	}
	return naiveLower(h), true
}

// naiveSpecHost classifies a valid spec host: any host, a wildcard with its suffix, or exact.
func naiveSpecHost(h string) (kind string, name string) {
	h = strings.TrimSuffix(naiveLower(h), ".")
	switch {
	case h == "" || h == "*":
		return "any", ""
	case strings.HasPrefix(h, "*."):
		return "wild", h[2:]
	}
	return "exact", h
}

// naiveLookup tries the host tiers in order (exact, wildcards longest suffix first, any host) and
// in the first tier with a matching prefix takes the longest one, then checks the method.
func naiveLookup(specs []Spec, host, path, method string) (int, Status) {
	h, hostOK := naiveRequestHost(host)
	var exact, anyHost []int
	wild := map[string][]int{}
	for i, s := range specs {
		kind, name := naiveSpecHost(s.Host)
		switch {
		case kind == "any":
			anyHost = append(anyHost, i)
		case kind == "exact" && hostOK && h == name:
			exact = append(exact, i)
		case kind == "wild" && hostOK && strings.HasSuffix(h, "."+name) && len(h) > len(name)+1:
			wild[name] = append(wild[name], i)
		}
	}
	suffixes := make([]string, 0, len(wild))
	for s := range wild {
		suffixes = append(suffixes, s)
	}
	slices.SortFunc(suffixes, func(a, b string) int { return len(b) - len(a) })
	tiers := [][]int{exact}
	for _, s := range suffixes {
		tiers = append(tiers, wild[s])
	}
	tiers = append(tiers, anyHost)

	for _, tier := range tiers {
		best := -1
		for _, i := range tier {
			if strings.HasPrefix(path, specs[i].Prefix) && (best < 0 || len(specs[i].Prefix) > len(specs[best].Prefix)) {
				best = i
			}
		}
		if best < 0 {
			continue
		}
		if len(specs[best].Methods) == 0 || slices.Contains(specs[best].Methods, method) {
			return best, Matched
		}
		return best, MethodNotAllowed
	}
	return -1, NotFound
}

// naiveDuplicate reports whether two valid specs have the same host and prefix.
func naiveDuplicate(specs []Spec) bool {
	for i := range specs {
		for j := range i {
			ki, ni := naiveSpecHost(specs[i].Host)
			kj, nj := naiveSpecHost(specs[j].Host)
			if ki == kj && ni == nj && specs[i].Prefix == specs[j].Prefix {
				return true
			}
		}
	}
	return false
}

// fuzzBytes hands out the fuzzer's bytes as small choices; it answers 0 once they run out.
type fuzzBytes []byte

func (f *fuzzBytes) next(n int) int {
	if len(*f) == 0 {
		return 0
	}
	c := (*f)[0]
	*f = (*f)[1:]
	return int(c) % n
}

// Small alphabets make hosts collide and prefixes nest, which is where the tiers and the radix
// tree's edge splits can go wrong.
var (
	fuzzSpecHosts = []string{"", "*", "example.com", "EXAMPLE.com.", "a.example.com", "b.a.example.com",
		"*.example.com", "*.a.example.com", "*.com", "[::1]", "10.0.0.1", "other.org", "*.Example.COM"}
	fuzzReqHosts = []string{"example.com", "EXAMPLE.COM:8080", "example.com.", "a.example.com", "x.a.example.com",
		"B.A.Example.com:1", ".example.com", "com", "x.com", "[::1]:80", "[::1]", "[::1", "10.0.0.1:443",
		"other.org", "", ":80", "example.com..", "x.y.z.example.com", "a.example.com.:9"}
	fuzzMethods   = [][]string{nil, {"GET"}, {"GET", "POST"}, {"POST"}, {"PUT", "DELETE"}}
	fuzzReqMethod = []string{"GET", "POST", "PUT", "DELETE", "get"}
)

// fuzzPath builds "/" followed by up to max bytes of "ab-/", never two slashes in a row, so every
// generated prefix is valid.
func fuzzPath(f *fuzzBytes, maxLen int) string {
	b := []byte{'/'}
	for range f.next(maxLen + 1) {
		c := "ab-/"[f.next(4)]
		if c == '/' && b[len(b)-1] == '/' {
			c = 'a'
		}
		b = append(b, c)
	}
	return string(b)
}

// FuzzLookup compares the table with the naive reference: specs and requests come from data,
// plus one request with the fuzzer's raw host and path.
func FuzzLookup(f *testing.F) {
	f.Add([]byte{3, 0, 2, 1, 1, 2, 0, 3, 1, 0, 0, 4, 8, 1, 2, 3, 4, 5, 6, 7}, "example.com", "/a")
	f.Add([]byte{5, 6, 3, 1, 2, 0, 7, 4, 0, 1, 0, 1, 1, 3, 4, 1, 0, 2, 9, 9, 9}, "Q.A.EXAMPLE.COM.:1", "/ab/")
	f.Fuzz(func(t *testing.T, data []byte, rawHost, rawPath string) {
		fb := fuzzBytes(data)
		specs := make([]Spec, 1+fb.next(12))
		for i := range specs {
			specs[i] = Spec{
				Host:    fuzzSpecHosts[fb.next(len(fuzzSpecHosts))],
				Prefix:  fuzzPath(&fb, 4),
				Methods: fuzzMethods[fb.next(len(fuzzMethods))],
			}
		}
		tab, err := New(specs)
		if dup := naiveDuplicate(specs); dup || err != nil {
			if !dup || !errors.Is(err, ErrDuplicate) {
				t.Fatalf("New(%q) error = %v; naive duplicate = %v", specs, err, dup)
			}
			return
		}
		check := func(host, path, method string) {
			gotIdx, gotSt := tab.Lookup([]byte(host), []byte(path), []byte(method))
			wantIdx, wantSt := naiveLookup(specs, host, path, method)
			if gotIdx != wantIdx || gotSt != wantSt {
				t.Fatalf("specs %q\nLookup(%q, %q, %q) = %d, %v; naive = %d, %v",
					specs, host, path, method, gotIdx, gotSt, wantIdx, wantSt)
			}
		}
		for range 1 + fb.next(16) {
			check(fuzzReqHosts[fb.next(len(fuzzReqHosts))], fuzzPath(&fb, 7), fuzzReqMethod[fb.next(len(fuzzReqMethod))])
		}
		check(rawHost, rawPath, "GET")
		for _, s := range specs {
			check(rawHost, s.Prefix+rawPath, "GET")
		}
	})
}

// FuzzNew feeds New arbitrary spec fields: it must not panic, must explain every rejection with
// a *SpecError, and a route it accepts must be found by a request for its own host and prefix.
func FuzzNew(f *testing.F) {
	f.Add("example.com", "/app/", "GET")
	f.Add("*.Example.COM.", "/", "")
	f.Add("[::1]", "/a/./b", "get")
	f.Add("a..b:80", "app", "G T")
	f.Fuzz(func(t *testing.T, host, prefix, method string) {
		spec := Spec{Host: host, Prefix: prefix}
		if method != "" {
			spec.Methods = []string{method}
		}
		tab, err := New([]Spec{spec})
		if err != nil {
			errs := err.(interface{ Unwrap() []error }).Unwrap()
			for _, e := range errs {
				var se *SpecError
				if !errors.As(e, &se) || se.Index != 0 || !strings.HasPrefix(e.Error(), "route: routes[0]") {
					t.Fatalf("New(%q): error %q is not a *SpecError for routes[0]", spec, e)
				}
			}
			return
		}
		reqHost := host
		if strings.HasPrefix(host, "*.") {
			reqHost = "x" + host[1:]
		}
		if host == "" || host == "*" {
			reqHost = "any.test"
		}
		if method == "" {
			method = "GET"
		}
		for _, path := range []string{prefix, prefix + "tail"} {
			if idx, st := tab.Lookup([]byte(reqHost+":8080"), []byte(path), []byte(method)); idx != 0 || st != Matched {
				t.Fatalf("New(%q) accepted; Lookup(%q, %q, %q) = %d, %v; want 0, Matched",
					spec, reqHost+":8080", path, method, idx, st)
			}
		}
		if len(prefix) > 1 {
			if idx, st := tab.Lookup([]byte(reqHost), []byte(prefix[:len(prefix)-1]), []byte(method)); idx != -1 || st != NotFound {
				t.Fatalf("New(%q): Lookup of a shorter path = %d, %v; want -1, NotFound", spec, idx, st)
			}
		}
	})
}

// TestBenchTablesAgreeWithNaive checks the benchmark requests against the reference, so the
// benchmarks measure the outcomes their comments claim and not, say, a run of 404s.
func TestBenchTablesAgreeWithNaive(t *testing.T) {
	for _, bt := range benchTables() {
		tab, err := New(bt.specs)
		if err != nil {
			t.Fatalf("%s: New: %v", bt.name, err)
		}
		seen := map[Status]bool{}
		for _, r := range bt.reqs {
			gotIdx, gotSt := tab.Lookup(r.host, r.path, r.method)
			wantIdx, wantSt := naiveLookup(bt.specs, string(r.host), string(r.path), string(r.method))
			if gotIdx != wantIdx || gotSt != wantSt {
				t.Errorf("%s: Lookup(%q, %q, %q) = %d, %v; naive = %d, %v",
					bt.name, r.host, r.path, r.method, gotIdx, gotSt, wantIdx, wantSt)
			}
			seen[gotSt] = true
		}
		if bt.name != "3routes" && len(seen) != 3 {
			t.Errorf("%s: requests reach statuses %v; want all three", bt.name, seen)
		}
	}
}
