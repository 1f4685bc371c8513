package jwt

import (
	"syscall"
	"unsafe"
)

// threadCPUTime returns the calling thread's CPU time (CLOCK_THREAD_CPUTIME_ID) in
// nanoseconds. Benchmarks lock their goroutine to a thread and report CPU time per
// operation next to wall time, so numbers from a busy shared machine stay comparable:
// time spent waiting for a CPU is not counted.
func threadCPUTime() int64 {
	const clockThreadCPUTimeID = 3
	var ts syscall.Timespec
	if _, _, errno := syscall.Syscall(syscall.SYS_CLOCK_GETTIME, clockThreadCPUTimeID, uintptr(unsafe.Pointer(&ts)), 0); errno != 0 {
		return -1
	}
	return ts.Nano()
}
