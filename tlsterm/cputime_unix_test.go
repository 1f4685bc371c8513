//go:build unix

package tlsterm

import (
	"syscall"
	"time"
)

// processCPU returns the user+system CPU time this process has used. Unlike
// ns/op, CPU time per op is not inflated when other work competes for cores.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
