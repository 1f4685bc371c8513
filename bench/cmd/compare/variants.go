package main

import (
	"fmt"
	"strconv"
	"strings"

	"example.com/edge/bench/anchors"
)

// Edge variants. Every edge row of the table is edge with some of its tuning
// changed, named by what changes: "edge" followed by any of
//
//	-pipe    pools' pipeline: N, N from -edge-pipeline (default 2)
//	-pipeN   pools' pipeline: N (1-64)
//	-loop    -serve loop: plaintext HTTP on the gnet event loops
//
// so edge-pipe, edge-loop, edge-loop-pipe and edge-pipe4 are all rows.
// Variants are measured like the anchors, in the same run, so their
// differences are not the machine's drift between runs.

// edgeVariant is the tuning one edge row changes. The zero value is edge as
// the harness has always run it: a goroutine per connection, no pipelining.
type edgeVariant struct {
	pipeline int  // pools' pipeline setting (0: off)
	loop     bool // -serve loop
}

// maxPipeline is the largest pipeline edge's configuration accepts.
const maxPipeline = 64

// parseEdgeVariant reads an edge row's name; pipe is the pipeline that a
// bare -pipe suffix means (-edge-pipeline). ok is false when name is not an
// edge row at all; usesPipe reports a bare -pipe suffix.
func parseEdgeVariant(name string, pipe int) (v edgeVariant, usesPipe, ok bool, err error) {
	if name != "edge" && !strings.HasPrefix(name, "edge-") {
		return edgeVariant{}, false, false, nil
	}
	parts := strings.Split(name, "-")[1:]
	seenPipe := false
	for _, part := range parts {
		switch {
		case part == "loop":
			if v.loop {
				return edgeVariant{}, false, true, fmt.Errorf("compare: edge variant %q: loop twice", name)
			}
			v.loop = true
		case strings.HasPrefix(part, "pipe"):
			if seenPipe {
				return edgeVariant{}, false, true, fmt.Errorf("compare: edge variant %q: pipe twice", name)
			}
			seenPipe = true
			n := pipe
			if digits := part[len("pipe"):]; digits != "" {
				var convErr error
				n, convErr = strconv.Atoi(digits)
				if convErr != nil || n < 1 || n > maxPipeline {
					return edgeVariant{}, false, true, fmt.Errorf("compare: edge variant %q: pipeline %q is not 1-%d", name, digits, maxPipeline)
				}
			} else {
				usesPipe = true
			}
			v.pipeline = n
		default:
			return edgeVariant{}, false, true, fmt.Errorf("compare: edge variant %q: unknown part %q (have loop, pipe, pipeN)", name, part)
		}
	}
	return v, usesPipe, true, nil
}

// args are the edge flags the variant adds after -edge-args.
func (v edgeVariant) args() []string {
	if v.loop {
		return []string{"-serve", "loop"}
	}
	return nil
}

// in is what of v applies in sc: pools pipeline only where requests are
// routed (an L4 relay has no HTTP pools), -serve loop only on a plaintext
// HTTP listener (TLS is always served by fasthttp goroutines).
func (v edgeVariant) in(sc scenario) edgeVariant {
	if sc.mode == anchors.L4 {
		v.pipeline = 0
	}
	if sc.mode != anchors.HTTP {
		v.loop = false
	}
	return v
}

// inert says which of v's changes have no effect in sc ("" when all
// apply), for the table's notes.
func (v edgeVariant) inert(sc scenario) string {
	var what []string
	eff := v.in(sc)
	if v.pipeline != eff.pipeline {
		what = append(what, "pipeline")
	}
	if v.loop != eff.loop {
		what = append(what, "-serve loop")
	}
	if len(what) == 0 {
		return ""
	}
	on := "an L4 relay"
	if sc.mode == anchors.TLS {
		on = "TLS listeners"
	}
	if len(what) == 1 {
		return what[0] + " has no effect on " + on
	}
	return strings.Join(what, " and ") + " have no effect on " + on
}

// describe is the variant for the header.
func (v edgeVariant) describe() string {
	var d []string
	if v.pipeline > 0 {
		d = append(d, fmt.Sprintf("pools pipeline: %d (idempotent requests pipelined upstream)", v.pipeline))
	}
	if v.loop {
		d = append(d, "-serve loop (plaintext HTTP on the event loops; TLS and L4 as edge)")
	}
	if len(d) == 0 {
		return "a goroutine per connection, no upstream pipelining"
	}
	return strings.Join(d, ", ")
}

// flagValue is the value the last -name or -name=value in args sets, as
// Go's flag package reads it (one or two dashes); ok is false when unset.
func flagValue(args []string, name string) (value string, ok bool) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") {
			continue
		}
		a = strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
		if a == name && i+1 < len(args) {
			value, ok = args[i+1], true
			i++
		} else if v, found := strings.CutPrefix(a, name+"="); found {
			value, ok = v, true
		}
	}
	return value, ok
}

// checkEdgeArgs refuses -edge-args that would make a row other than its
// name says: -serve belongs to the -loop variants, and -serve loop needs
// gnet's accept.
func checkEdgeArgs(args []string, rows []*proxy) error {
	if v, ok := flagValue(args, "serve"); ok {
		return fmt.Errorf("compare: -edge-args sets -serve %s for every edge row; name the edge-loop variants in -proxies instead", v)
	}
	if v, ok := flagValue(args, "accept"); ok && v == "go" {
		for _, p := range rows {
			if p.prog == "edge" && p.variant.loop {
				return fmt.Errorf("compare: %s: -serve loop needs gnet's accept, and -edge-args sets -accept go", p.name)
			}
		}
	}
	return nil
}

// twin is the earlier edge row that runs the same configuration as rows[i]
// in sc (nil when none does): edge-loop in a TLS scenario is edge.
func twin(rows []*proxy, i int, sc scenario) *proxy {
	p := rows[i]
	if p.prog != "edge" {
		return nil
	}
	for _, q := range rows[:i] {
		if q.prog == "edge" && q.variant.in(sc) == p.variant.in(sc) {
			return q
		}
	}
	return nil
}
