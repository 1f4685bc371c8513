package route

import (
	"fmt"
	"testing"
)

// request is one Lookup's arguments, prepared as byte slices like the proxy holds them.
type request struct {
	host, path, method []byte
}

func req(host, path, method string) request {
	return request{[]byte(host), []byte(path), []byte(method)}
}

// benchTable is a named routing table with requests that exercise it: hits, longest-prefix
// choices, host-tier fallbacks, 405s and 404s.
type benchTable struct {
	name  string
	specs []Spec
	reqs  []request
}

// benchTables returns realistic tables of about 3, 100 and 10k routes.
func benchTables() []benchTable {
	return []benchTable{
		{
			name:  "3routes",
			specs: contractSpecs,
			reqs: []request{
				req("example.com", "/app/dashboard", "GET"),
				req("example.com:8443", "/auth/login", "POST"),
				req("Example.com", "/app/settings/profile", "PATCH"), // 405
				req("127.0.0.1:8080", "/favicon.ico", "GET"),         // any-host fallback
			},
		},
		manyHosts("100routes", 10, 9),
		manyHosts("10kroutes", 100, 100),
	}
}

// manyHosts builds a multi-tenant table: nHosts exact hosts with nPrefixes API prefixes each
// (versioned services with nested resources, sharing long prefixes like real APIs do), a
// wildcard per tenant domain and an any-host fallback.
func manyHosts(name string, nHosts, nPrefixes int) benchTable {
	var specs []Spec
	host := func(h int) string { return fmt.Sprintf("tenant%03d.example.com", h) }
	prefix := func(p int) string { return fmt.Sprintf("/api/v%d/svc%03d/", p%3+1, p) }
	for h := range nHosts {
		for p := range nPrefixes {
			s := Spec{Host: host(h), Prefix: prefix(p)}
			if p%4 == 0 {
				s.Methods = []string{"GET", "POST"}
			}
			specs = append(specs, s)
		}
	}
	specs = append(specs,
		Spec{Host: "*.example.com", Prefix: "/"},
		Spec{Host: "*", Prefix: "/healthz"},
	)
	last := nHosts - 1
	reqs := []request{
		req(host(0), prefix(1)+"items/42", "GET"),
		req(host(last)+":443", prefix(nPrefixes-1)+"items/42/comments", "PUT"),
		req("TENANT001.Example.COM", prefix(nPrefixes/2)+"x", "GET"),
		req(host(last/2), prefix(0)+"orders", "DELETE"),    // 405
		req(host(last/3), "/api/v9/unknown/", "GET"),       // exact host misses, wildcard answers
		req("www.example.com", "/index.html", "GET"),       // wildcard only
		req("10.1.2.3:8080", "/healthz", "GET"),            // any host
		req("unknown.test", "/nothing/here/at/all", "GET"), // 404
	}
	return benchTable{name: name, specs: specs, reqs: reqs}
}

func BenchmarkLookup(b *testing.B) {
	for _, bt := range benchTables() {
		tab, err := New(bt.specs)
		if err != nil {
			b.Fatalf("%s: New: %v", bt.name, err)
		}
		b.Run(fmt.Sprintf("%s/%d", bt.name, tab.Len()), func(b *testing.B) {
			b.ReportAllocs()
			var sink int
			i := 0
			for b.Loop() {
				r := bt.reqs[i%len(bt.reqs)]
				idx, st := tab.Lookup(r.host, r.path, r.method)
				sink += idx + int(st)
				i++
			}
			_ = sink
		})
	}
}

func BenchmarkAppendAllow(b *testing.B) {
	tab, err := New(contractSpecs)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	buf := make([]byte, 0, 64)
	for b.Loop() {
		buf = tab.AppendAllow(buf[:0], 1)
	}
}

// BenchmarkNew measures building a table, which happens at start-up and on every reload.
func BenchmarkNew(b *testing.B) {
	for _, bt := range benchTables() {
		b.Run(fmt.Sprintf("%s/%d", bt.name, len(bt.specs)), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := New(bt.specs); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
