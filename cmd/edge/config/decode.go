package config

import (
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Pos records where a YAML mapping sits in its file: the mapping's own line and
// the line of each key's value, so that semantic checks made after decoding
// can still point at the offending line.
type Pos struct {
	Line int
	keys map[string]int
}

// At returns the line of key's value, or the mapping's line if key was not set.
func (p Pos) At(key string) int {
	if l, ok := p.keys[key]; ok {
		return l
	}
	return p.Line
}

// Has reports whether key was present in the mapping.
func (p Pos) Has(key string) bool {
	_, ok := p.keys[key]
	return ok
}

// Duration is a time.Duration written in Go syntax ("250ms", "2s", "1h"); a
// bare 0 is accepted too.
type Duration time.Duration

// D returns the duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// MarshalYAML renders the duration in Go syntax (used by /config).
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

var (
	posType      = reflect.TypeFor[Pos]()
	durationType = reflect.TypeFor[Duration]()
)

// nodeDecoder is implemented by schema types with their own YAML shape.
type nodeDecoder interface {
	decodeNode(d *decoder, n *yaml.Node, path string)
}

func (e *Endpoint) decodeNode(d *decoder, n *yaml.Node, path string) {
	e.Line = n.Line
	if n.Kind != yaml.ScalarNode {
		d.errorf(n.Line, path, "want host:port or name=host:port, got %s", kindName(n))
		return
	}
	e.Value = n.Value
}

func (it *ListItem) decodeNode(d *decoder, n *yaml.Node, path string) {
	it.Line = n.Line
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		d.errorf(n.Line, path, "want a string, got %s", kindName(n))
		it.bad = true
		return
	}
	it.Value = n.Value
}

func (s *StringOrList) decodeNode(d *decoder, n *yaml.Node, path string) {
	if n.Kind == yaml.ScalarNode {
		*s = StringOrList{n.Value}
		return
	}
	var list []string
	d.decode(n, reflect.ValueOf(&list).Elem(), path)
	*s = list
}

// decoder walks a yaml.Node tree into Go values strictly: unknown keys, wrong
// kinds, duplicate keys and unparsable scalars are all reported with their line,
// and decoding goes on so that one run lists every problem.
type decoder struct {
	errs *Errors
}

func (d *decoder) errorf(line int, path, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if path != "" {
		msg = path + ": " + msg
	}
	d.errs.add(line, msg)
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "null"
		}
		return fmt.Sprintf("%q", n.Value)
	}
	return "an unsupported node"
}

func resolve(n *yaml.Node) *yaml.Node {
	for depth := 0; n != nil && n.Kind == yaml.AliasNode && depth < 32; depth++ {
		n = n.Alias
	}
	return n
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// decode stores n into v (a settable value), reporting problems under path.
func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	n = resolve(n)
	if n == nil {
		return
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		// An explicit null leaves the zero value ("key:" with nothing after
		// it), except that a named section ("pools: {app: }") still exists.
		if v.Kind() == reflect.Pointer && v.Type().Elem().Kind() == reflect.Struct && v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
			if _, _, pi := fieldIndex(v.Type().Elem()); pi >= 0 {
				v.Elem().Field(pi).Set(reflect.ValueOf(Pos{Line: n.Line}))
			}
		}
		return
	}
	if v.CanAddr() {
		if u, ok := v.Addr().Interface().(nodeDecoder); ok {
			u.decodeNode(d, n, path)
			return
		}
	}
	t := v.Type()
	switch {
	case t == durationType:
		d.duration(n, v, path)
		return
	case t.Kind() == reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(t.Elem()))
		}
		d.decode(n, v.Elem(), path)
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		d.structure(n, v, path)
	case reflect.Map:
		d.mapping(n, v, path)
	case reflect.Slice:
		d.sequence(n, v, path)
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			d.errorf(n.Line, path, "want a string, got %s", kindName(n))
			return
		}
		v.SetString(n.Value)
	case reflect.Bool:
		if n.Kind != yaml.ScalarNode {
			d.errorf(n.Line, path, "want true or false, got %s", kindName(n))
			return
		}
		switch strings.ToLower(n.Value) {
		case "true", "yes", "on":
			v.SetBool(true)
		case "false", "no", "off":
			v.SetBool(false)
		default:
			d.errorf(n.Line, path, "want true or false, got %q", n.Value)
		}
	case reflect.Int, reflect.Int64, reflect.Int32:
		if n.Kind != yaml.ScalarNode {
			d.errorf(n.Line, path, "want an integer, got %s", kindName(n))
			return
		}
		i, err := strconv.ParseInt(strings.ReplaceAll(n.Value, "_", ""), 0, 64)
		if err != nil || v.OverflowInt(i) {
			d.errorf(n.Line, path, "want an integer, got %q", n.Value)
			return
		}
		v.SetInt(i)
	case reflect.Float64:
		if n.Kind != yaml.ScalarNode {
			d.errorf(n.Line, path, "want a number, got %s", kindName(n))
			return
		}
		f, err := strconv.ParseFloat(n.Value, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			d.errorf(n.Line, path, "want a number, got %q", n.Value)
			return
		}
		v.SetFloat(f)
	default:
		d.errorf(n.Line, path, "internal: cannot decode into %s", t)
	}
}

func (d *decoder) duration(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.ScalarNode {
		d.errorf(n.Line, path, "want a duration such as 250ms or 2s, got %s", kindName(n))
		return
	}
	if n.Value == "0" {
		v.SetInt(0)
		return
	}
	dur, err := time.ParseDuration(n.Value)
	if err != nil {
		d.errorf(n.Line, path, "want a duration such as 250ms or 2s, got %q", n.Value)
		return
	}
	if dur < 0 {
		d.errorf(n.Line, path, "duration must not be negative, got %q", n.Value)
		return
	}
	v.SetInt(int64(dur))
}

// fieldIndex maps a struct's yaml keys to field indexes and finds its Pos field.
func fieldIndex(t reflect.Type) (fields map[string]int, names []string, pos int) {
	fields = make(map[string]int, t.NumField())
	pos = -1
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Type == posType {
			pos = i
			continue
		}
		tag := f.Tag.Get("yaml")
		name, _, _ := strings.Cut(tag, ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		fields[name] = i
		names = append(names, name)
	}
	return fields, names, pos
}

func (d *decoder) structure(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.errorf(n.Line, path, "want a mapping, got %s", kindName(n))
		return
	}
	fields, names, posIdx := fieldIndex(v.Type())
	pos := Pos{Line: n.Line, keys: make(map[string]int, len(n.Content)/2)}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := resolve(n.Content[i]), n.Content[i+1]
		key := k.Value
		if _, dup := pos.keys[key]; dup {
			d.errorf(k.Line, join(path, key), "duplicate key")
			continue
		}
		pos.keys[key] = resolve(val).Line
		fi, ok := fields[key]
		if !ok {
			d.errorf(k.Line, path, "unknown key %q%s", key, suggest(key, names))
			continue
		}
		d.decode(val, v.Field(fi), join(path, key))
	}
	if posIdx >= 0 {
		v.Field(posIdx).Set(reflect.ValueOf(pos))
	}
}

func (d *decoder) mapping(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.errorf(n.Line, path, "want a mapping, got %s", kindName(n))
		return
	}
	t := v.Type()
	if t.Key().Kind() != reflect.String {
		d.errorf(n.Line, path, "internal: map key must be a string")
		return
	}
	if v.IsNil() {
		v.Set(reflect.MakeMapWithSize(t, len(n.Content)/2))
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := resolve(n.Content[i])
		if k.Kind != yaml.ScalarNode {
			d.errorf(k.Line, path, "want a name as key, got %s", kindName(k))
			continue
		}
		key := reflect.ValueOf(k.Value).Convert(t.Key())
		if v.MapIndex(key).IsValid() {
			d.errorf(k.Line, join(path, k.Value), "duplicate key")
			continue
		}
		elem := reflect.New(t.Elem()).Elem()
		d.decode(n.Content[i+1], elem, join(path, k.Value))
		v.SetMapIndex(key, elem)
	}
}

func (d *decoder) sequence(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.SequenceNode {
		d.errorf(n.Line, path, "want a list, got %s", kindName(n))
		return
	}
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, item := range n.Content {
		d.decode(item, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
	}
	v.Set(s)
}

// suggest names the closest known key, so a typo reads as a typo.
func suggest(key string, names []string) string {
	best, bestDist := "", 3
	for _, name := range names {
		if dist := editDistance(key, name); dist < bestDist {
			best, bestDist = name, dist
		}
	}
	if best != "" {
		return fmt.Sprintf(" (did you mean %q?)", best)
	}
	sorted := append([]string(nil), names...)
	sort.Strings(sorted)
	return " (known keys: " + strings.Join(sorted, ", ") + ")"
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// MarshalYAML renders the endpoint as written (used by /config).
func (e Endpoint) MarshalYAML() (any, error) { return e.Value, nil }

// MarshalYAML renders the item as written (used by /config).
func (it ListItem) MarshalYAML() (any, error) { return it.Value, nil }
