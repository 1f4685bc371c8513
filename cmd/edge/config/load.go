// Package config reads edge's YAML configuration file (the contract's
// edge.example.yaml schema) strictly: every problem is reported as
// FILE:LINE: what is wrong, all of them in one pass. It knows the schema and
// its cross-references (routes naming pools, policies, limits and listeners);
// cmd/edge adapts the result into each component's own Config struct, where
// the components check what only they can (certificates parse, keys load).
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// MaxFileBytes bounds the configuration file size; configs are small and a
// runaway file (or alias bomb) must not exhaust memory.
const MaxFileBytes = 8 << 20

// Load reads, decodes and validates the file at path. Relative paths inside
// it are made absolute against the file's folder. On failure the error is an
// *Errors listing every problem; the *File is then still returned when the
// YAML itself parsed, as a best-effort reading for tools (edge check) that go
// on to find more problems. It must not be run.
func Load(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(path, data)
}

// Parse is Load over bytes already read; name is used in error messages and
// to resolve relative paths.
func Parse(name string, data []byte) (*File, error) {
	errs := &Errors{File: name}
	if len(data) > MaxFileBytes {
		errs.addf(0, "file is %d bytes, more than the %d allowed", len(data), MaxFileBytes)
		return nil, errs.err()
	}
	if line, msg := checkText(data); msg != "" {
		// The YAML library would decode UTF-16 and break lines at U+0085,
		// U+2028 and U+2029, so every line number after them would be off
		// from what an editor shows.
		errs.add(line, msg)
		return nil, errs.err()
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			errs.add(0, "file is empty")
		} else {
			line, msg := yamlErrorLine(err)
			errs.add(line, msg)
		}
		return nil, errs.err()
	}
	var f File
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if aliasBomb(root) {
		errs.add(root.Line, "too many YAML aliases")
		return nil, errs.err()
	}
	d := &decoder{errs: errs}
	d.decode(root, reflect.ValueOf(&f).Elem(), "")
	// Validate even after decoding problems: a field that failed to decode
	// keeps its zero value, which the checks treat as unset, so the run still
	// lists every problem at once.
	validate(&f, errs)
	if dir, err := filepath.Abs(filepath.Dir(name)); err == nil {
		f.resolvePaths(dir)
	} else {
		errs.addf(0, "cannot resolve relative paths: %v", err)
	}
	return &f, errs.err()
}

var yamlLineRE = regexp.MustCompile(`^yaml: (?:line (\d+): )?(.*)$`)

// yamlErrorLine turns "yaml: line 7: mapping values are not allowed in this
// context" into (7, "mapping values are not allowed in this context").
func yamlErrorLine(err error) (int, string) {
	m := yamlLineRE.FindStringSubmatch(err.Error())
	if m == nil {
		return 0, err.Error()
	}
	line, _ := strconv.Atoi(m[1])
	return line, "invalid YAML: " + m[2]
}

// aliasBomb reports whether expanding aliases would visit an absurd number
// of nodes ("billion laughs").
func aliasBomb(n *yaml.Node) bool {
	budget := 1_000_000
	var walk func(*yaml.Node, int) bool
	walk = func(n *yaml.Node, depth int) bool {
		budget--
		if budget < 0 || depth > 256 {
			return true
		}
		if n.Kind == yaml.AliasNode {
			return n.Alias != nil && walk(n.Alias, depth+1)
		}
		for _, c := range n.Content {
			if walk(c, depth+1) {
				return true
			}
		}
		return false
	}
	return walk(n, 0)
}

func (f *File) resolvePaths(dir string) {
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	for i := range f.Listeners {
		if t := f.Listeners[i].TLS; t != nil {
			for j := range t.Certificates {
				abs(&t.Certificates[j].Cert)
				abs(&t.Certificates[j].Key)
			}
			abs(&t.ClientCA)
			abs(&t.SessionTicketKeysFile)
		}
	}
	for _, p := range f.JWT {
		for i := range p.Keys {
			abs(&p.Keys[i].PEMFile)
			abs(&p.Keys[i].HMACSecretFile)
			abs(&p.Keys[i].JWKSFile)
		}
	}
	if a := f.Tuning.AccessLog; a != "" && a != "-" && a != "off" {
		abs(&f.Tuning.AccessLog)
	}
}

// checkText accepts UTF-8 text whose only line breaks are LF (and CRLF), and
// otherwise names the first offending line.
func checkText(data []byte) (line int, msg string) {
	line = 1
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			return line, "the file is not UTF-8 text"
		case r == '\n':
			line++
		case r == 0x85 || r == 0x2028 || r == 0x2029:
			return line, fmt.Sprintf("the file contains U+%04X, a line separator YAML would count as a line break; use a plain newline", r)
		case r == 0xFEFF && i > 0:
			return line, "the file contains a byte-order mark after its start"
		}
		i += size
	}
	return 0, ""
}
