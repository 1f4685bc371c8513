//go:build !race

package metrics

import (
	"testing"
	"time"
)

func TestUpdatesAllocateNothing(t *testing.T) {
	r := NewRegistry()
	c := r.Counter("c", "c", "l").With("x")
	h := r.Histogram("h", "h", DurationBuckets, "l").With("x")
	if n := testing.AllocsPerRun(1000, func() {
		c.Inc()
		h.Observe(3 * time.Millisecond)
	}); n != 0 {
		t.Errorf("allocs per update = %v, want 0", n)
	}
}
