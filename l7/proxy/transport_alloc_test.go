//go:build !race

package proxy

import (
	"bufio"
	"strings"
	"testing"
)

// The race detector allocates, so these run without it.

func TestResponseChecksAllocateNothing(t *testing.T) {
	src := strings.NewReader(typicalResponseHead)
	br := bufio.NewReaderSize(src, 8192)
	if n := testing.AllocsPerRun(1000, func() {
		src.Reset(typicalResponseHead)
		br.Reset(src)
		if err := checkResponseHead(br); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("checkResponseHead: %v allocations per run, want 0", n)
	}

	pc, peer := probedPair(t)
	defer peer.Close()
	if n := testing.AllocsPerRun(1000, func() {
		if !pc.silent() {
			t.Fatal("a quiet connection probed as not silent")
		}
	}); n != 0 {
		t.Errorf("probedConn.silent: %v allocations per run, want 0", n)
	}
}
