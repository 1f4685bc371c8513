//go:build !race

package proxy

import (
	"bytes"
	"testing"
)

// The race detector allocates, so these run without it.

func TestFramingAllocs(t *testing.T) {
	h, err := parseHead(t, browserHead)
	if err != nil {
		t.Fatal(err)
	}
	settle := newSettleLoop(t, 1024)
	settle.run(t) // warm the pools
	src := bytes.NewReader(nil)
	dst := make([]byte, 0, 2048)
	body := bytes.Repeat([]byte("y"), 1500)
	for _, tc := range []struct {
		name string
		f    func()
	}{
		{"checkFraming", func() {
			if ok, reason := checkFraming(h); !ok {
				t.Fatal(reason)
			}
		}},
		{"readBody", func() {
			src.Reset(body)
			if b, err := readBody(dst[:0], src, 64<<10); err != nil || len(b) != len(body) {
				t.Fatal(err)
			}
		}},
		{"settleBody", func() { settle.run(t) }},
	} {
		if n := testing.AllocsPerRun(1000, tc.f); n != 0 {
			t.Errorf("%s: %v allocations per run, want 0", tc.name, n)
		}
	}
}
