// Package fuzz attacks edge across package boundaries. It holds only tests:
//
//   - FuzzRequestPipeline sends arbitrary bytes (often several pipelined
//     requests) through the whole L7 engine, over an in-memory listener, to a
//     real upstream on loopback, and checks that the edge never panics, that
//     the client gets a well-formed HTTP/1.1 response for each request it
//     completed, and that the upstream sees exactly the requests the edge
//     forwarded, each one complete, in order, with the body the client sent.
//   - FuzzConfig feeds arbitrary bytes to the configuration loader and checks
//     that it never panics and that every problem names a line of the file.
//   - TestSmuggling sends the classic request-smuggling vectors (RFC 9112
//     §6.1, §6.3, §7.1, §5.2, §2.2) over raw TCP and checks both sides: the
//     status the client gets, and the exact bytes the upstream receives.
//
// Package-local targets (l7/route, l7/jwt, l7/limit, l4 ClientHello and
// PROXY parsers) live beside their packages. `make fuzz FUZZTIME=10m` runs
// every target; `go test ./fuzz/` replays the seed corpora in
// testdata/fuzz.
package fuzz
