package config

import (
	"fmt"
	"sort"
	"strings"
)

// Problem is one thing wrong with a configuration file, at a line.
type Problem struct {
	File string
	Line int
	Msg  string
}

func (p Problem) String() string {
	if p.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", p.File, p.Line, p.Msg)
	}
	return fmt.Sprintf("%s: %s", p.File, p.Msg)
}

// Errors is every problem found in one configuration, in line order. Its
// Error method prints them one per line as FILE:LINE: what is wrong.
type Errors struct {
	File     string
	Problems []Problem
}

func (e *Errors) add(line int, msg string) {
	e.Problems = append(e.Problems, Problem{File: e.File, Line: line, Msg: msg})
}

// Addf records a problem at line; cmd/edge uses it for what the components
// find while being built from the file.
func (e *Errors) Addf(line int, format string, args ...any) {
	e.addf(line, format, args...)
}

// Err returns e sorted by line, or nil if nothing was recorded.
func (e *Errors) Err() error { return e.err() }

func (e *Errors) addf(line int, format string, args ...any) {
	e.add(line, fmt.Sprintf(format, args...))
}

func (e *Errors) err() error {
	if len(e.Problems) == 0 {
		return nil
	}
	sort.SliceStable(e.Problems, func(i, j int) bool { return e.Problems[i].Line < e.Problems[j].Line })
	return e
}

func (e *Errors) Error() string {
	var b strings.Builder
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(p.String())
	}
	return b.String()
}
