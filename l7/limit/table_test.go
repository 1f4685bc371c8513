package limit

import (
	"encoding/binary"
	"runtime"
	"testing"
	"time"
)

// TestEvictionKeepsLimitedKeys fills a one-group table: a flood of new keys
// evicts the buckets closest to full and never the drained one, and once flood
// buckets are full again, reusing them loses nothing.
func TestEvictionKeepsLimitedKeys(t *testing.T) {
	l := mustNew(t, Config{Rate: 1, Burst: 3, MaxKeys: groupSlots})
	victim := []byte("legit")
	for i := 0; i < 3; i++ {
		l.Allow(victim, t0)
	}
	if l.Allow(victim, t0).Allowed {
		t.Fatal("drained key admitted")
	}
	var k [8]byte
	for i := 0; i < 1000; i++ {
		binary.LittleEndian.PutUint64(k[:], uint64(i))
		if !l.Allow(k[:], t0).Allowed {
			t.Fatalf("flood key %d refused its first request", i)
		}
	}
	st := l.Stats()
	if st.Capacity != groupSlots || st.Keys != groupSlots || st.LossyEvictions != 1000-(groupSlots-1) {
		t.Errorf("stats %+v, want capacity and keys %d, %d lossy evictions", st, groupSlots, 1000-(groupSlots-1))
	}
	if r := l.Allow(victim, t0); r.Allowed {
		t.Errorf("the flood reset the drained key's bucket")
	}
	// Ten seconds on, every flood bucket is full: taking their slots is exact,
	// and so it stays for new keys a second apart (each bucket full again).
	for i := 1000; i < 1100; i++ {
		binary.LittleEndian.PutUint64(k[:], uint64(i))
		l.Allow(k[:], t0.Add(time.Duration(i-990)*time.Second))
	}
	if got := l.Stats().LossyEvictions; got != st.LossyEvictions {
		t.Errorf("evicting full buckets counted %d lossy evictions", got-st.LossyEvictions)
	}
}

// TestMemoryFlood sends 1M distinct client keys through a limiter capped at
// 64Ki keys, and through one of the default size (DefaultMemory): the table's
// own accounting and the heap both stay under the cap, and keys that were being
// limited before the flood are still limited after it.
func TestMemoryFlood(t *testing.T) {
	for _, maxKeys := range []int{1 << 16, 0} {
		capKeys := maxKeys
		if capKeys == 0 {
			capKeys = DefaultMemory / slotBytes
		}
		capBytes := int64(capKeys * slotBytes)
		const flood = 1_000_000

		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)

		l := mustNew(t, Config{Rate: 1, Per: time.Minute, Burst: 20, MaxKeys: maxKeys})
		// 500 legitimate keys, drained.
		legit := make([][]byte, 500)
		for i := range legit {
			legit[i] = binary.BigEndian.AppendUint64([]byte("user-"), uint64(i))
			for range 20 {
				l.Allow(legit[i], t0)
			}
		}
		var k [8]byte
		for i := 0; i < flood; i++ {
			binary.LittleEndian.PutUint64(k[:], uint64(i)+1<<40)
			l.Allow(k[:], t0.Add(time.Duration(i)*time.Microsecond))
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		st := l.Stats()
		delta := int64(after.HeapInuse) - int64(before.HeapInuse)
		t.Logf("1M keys, MaxKeys %d: table keys %d/%d, table bytes %d (cap %d), HeapInuse delta %d, lossy evictions %d",
			capKeys, st.Keys, st.Capacity, st.Bytes, capBytes, delta, st.LossyEvictions)
		if st.Keys > st.Capacity || st.Capacity > capKeys {
			t.Errorf("keys %d, capacity %d: over MaxKeys %d", st.Keys, st.Capacity, capKeys)
		}
		if st.Bytes > capBytes+64<<10 {
			t.Errorf("table accounts %d bytes, over the cap's %d", st.Bytes, capBytes)
		}
		// The heap may hold a little beyond the table (test slices, runtime); a
		// per-key leak of even 8 bytes would show as 8 MB here.
		if delta > capBytes+512<<10 {
			t.Errorf("HeapInuse grew %d bytes for a %d-byte table", delta, capBytes)
		}
		end := t0.Add(time.Duration(flood) * time.Microsecond)
		for i, key := range legit {
			if r := l.Allow(key, end); r.Allowed {
				t.Errorf("MaxKeys %d: legit key %d admitted after the flood: its drained bucket was lost", capKeys, i)
			}
		}
		runtime.KeepAlive(l)
	}
}
