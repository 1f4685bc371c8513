//go:build !unix

package tlsterm

import "time"

// processCPU is unavailable here; benchmarks then report no cpu-ns/op.
func processCPU() time.Duration { return 0 }
