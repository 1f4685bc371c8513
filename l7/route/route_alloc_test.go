//go:build !race

package route

import "testing"

// TestLookupAllocs guards the hot path: a Lookup, on any table and outcome, allocates nothing.
func TestLookupAllocs(t *testing.T) {
	for _, bt := range benchTables() {
		tab, err := New(bt.specs)
		if err != nil {
			t.Fatalf("%s: New: %v", bt.name, err)
		}
		for _, r := range bt.reqs {
			allocs := testing.AllocsPerRun(100, func() {
				tab.Lookup(r.host, r.path, r.method)
			})
			if allocs != 0 {
				t.Errorf("%s: Lookup(%q, %q, %q) allocates %v times; want 0", bt.name, r.host, r.path, r.method, allocs)
			}
		}
	}
}

func TestAppendAllowAllocs(t *testing.T) {
	tab, err := New(contractSpecs)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 0, 64)
	if allocs := testing.AllocsPerRun(100, func() { buf = tab.AppendAllow(buf[:0], 1) }); allocs != 0 {
		t.Errorf("AppendAllow into a large enough buffer allocates %v times; want 0", allocs)
	}
}
