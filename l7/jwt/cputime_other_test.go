//go:build !linux

package jwt

// threadCPUTime is unavailable here; benchmarks then report no cpu-ns/op.
func threadCPUTime() int64 { return -1 }
