// Package wrk embeds the wrk scripts beside it, so the comparison harness
// (bench/cmd/compare) runs exactly the script users run by hand.
package wrk

import _ "embed"

// Mixed is mixed.lua: GET requests alternating between /app/ and /auth/ of
// example.com, with an optional bearer token, and a WRK_JSON summary line.
//
//go:embed mixed.lua
var Mixed string
