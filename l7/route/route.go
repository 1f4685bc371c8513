// Package route maps a request's host, path and method to one of the configured routes.
//
// A Table is built once from a list of Specs (at start-up or on reload, off the request path), is
// immutable afterwards, and is safe for any number of concurrent Lookups. The proxy keeps the current
// table in an atomic.Pointer and swaps in a new one on reload; requests in flight finish on the table
// they started with.
//
// # Matching rules
//
// Lookup first normalizes the Host header value: a ":port" suffix is dropped (for an IPv6 literal
// "[::1]:8080" everything after "]" is dropped), then one trailing dot ("example.com." is the same
// name as "example.com", RFC 1034 §3.1), and ASCII letters are lowercased (host names are
// case-insensitive, RFC 9110 §4.2.3). A normalized host longer than 253 bytes cannot be a DNS name
// (RFC 1035 §2.3.4) and is treated like an absent host: it only reaches any-host routes.
//
// The routes of a table fall into host tiers, tried in this order:
//
//  1. the exact tier: routes whose host equals the request's host;
//  2. wildcard tiers: routes with host "*.suffix" whose suffix is a proper domain suffix of the
//     request's host ("*.example.com" matches "a.example.com" and "a.b.example.com", never
//     "example.com"); longer suffixes are tried first, so "*.api.example.com" beats "*.example.com";
//  3. the any-host tier: routes with host "" or "*".
//
// Within a tier the route with the longest path prefix that is a byte prefix of the request path
// wins (Envoy's prefix semantics: "/app" matches "/application"; "/app/" does not match "/app").
// If a tier has routes for the host but none whose prefix matches the path, the next tier is tried:
// with routes {example.com /app/} and {* /}, a request for example.com/other is served by the "*"
// route. The first tier with a prefix match decides the route; methods play no part in choosing it.
//
// Finally the method: a route with Methods answers MethodNotAllowed for any other method, and the
// lookup does not fall back to a shorter prefix or a later tier (RFC 9110 §15.5.6: the target
// resource exists but does not support the method). Methods compare case-sensitively (RFC 9110 §9.1),
// and HEAD is not implied by GET: list it when the route should answer it.
package route

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Spec is the match part of one route.
//
// The zero Spec is invalid (it has no prefix); Spec{Prefix: "/"} matches every request.
type Spec struct {
	// Host selects the requests by their Host header. "" or "*" matches any host; "example.com"
	// matches that host exactly (case-insensitively, with or without a port or trailing dot);
	// "*.example.com" matches any host ending in ".example.com" with at least one label before it.
	// An IP literal is written as the client sends it: "10.0.0.1" or "[::1]" (RFC 5952 form).
	// A port is not allowed: routes are tied to listeners, not to ports.
	Host string

	// Prefix is the path prefix, a byte prefix of the normalized request path. It must start with
	// "/" and must not hold an empty segment, a "." or ".." segment, or an ASCII control byte, since
	// a normalized path never contains those and such a route could never match.
	Prefix string

	// Methods restricts the route to these request methods (uppercase tokens, RFC 9110 §9.1).
	// Empty allows every method.
	Methods []string
}

// Status is the outcome of a Lookup.
type Status uint8

const (
	// NotFound means no route matches host and path; the proxy answers 404 no_route.
	NotFound Status = iota
	// Matched means the route at the returned index serves the request.
	Matched
	// MethodNotAllowed means the route at the returned index matches host and path but restricts
	// methods; the proxy answers 405 with an Allow header from AppendAllow.
	MethodNotAllowed
)

// String returns the status name, for logs and test messages.
func (s Status) String() string {
	switch s {
	case NotFound:
		return "NotFound"
	case Matched:
		return "Matched"
	case MethodNotAllowed:
		return "MethodNotAllowed"
	}
	return "Status(" + strconv.Itoa(int(s)) + ")"
}

// Sentinel errors wrapped by the *SpecError values New reports, for callers that branch on the kind.
var (
	ErrBadHost   = errors.New("route: bad host")
	ErrBadPrefix = errors.New("route: bad prefix")
	ErrBadMethod = errors.New("route: bad method")
	ErrDuplicate = errors.New("route: duplicate route")
)

// SpecError is one problem New found in a spec. New joins all of them with errors.Join, so a
// caller that maps routes back to configuration lines (cmd/edge) can walk them with
// errors.As on each element of Unwrap() []error.
type SpecError struct {
	Index  int    // index of the offending spec
	Field  string // "host", "prefix", "methods[1]"; "" when the whole route is at fault (a duplicate)
	Reason string // what is wrong, carrying the offending value
	Kind   error  // ErrBadHost, ErrBadPrefix, ErrBadMethod or ErrDuplicate
}

// Error returns `route: routes[3].prefix: "app" must start with "/"`.
func (e *SpecError) Error() string {
	var b strings.Builder
	b.WriteString("route: routes[")
	b.WriteString(strconv.Itoa(e.Index))
	b.WriteString("]")
	if e.Field != "" {
		b.WriteString(".")
		b.WriteString(e.Field)
	}
	b.WriteString(": ")
	b.WriteString(e.Reason)
	return b.String()
}

// Unwrap returns the sentinel, so errors.Is(err, ErrDuplicate) works through errors.Join.
func (e *SpecError) Unwrap() error { return e.Kind }

// Table is an immutable routing table built by New. It is safe for concurrent use by any number of
// goroutines. The zero Table and a nil *Table have no routes: every Lookup answers NotFound.
type Table struct {
	// exact maps a normalized host to the root of its prefix tree; wild maps a wildcard's
	// suffix including its leading dot (".example.com") to its root; any is the root of the
	// any-host tree when hasAny.
	exact  map[string]int32
	wild   map[string]int32
	any    int32
	hasAny bool

	// maxWild is the length of the longest key in wild: shorter hosts skip the wildcard scan
	// of all suffixes longer than it.
	maxWild int

	tree    tree
	methods [][]string // per spec; nil allows all
	allow   [][]byte   // per spec; precomputed "GET, POST" for the Allow header
}

// New validates specs and builds their table. Lookup returns indexes into specs.
//
// Every problem is reported, not just the first: the result is an errors.Join of *SpecError values,
// each naming the route index, e.g. `route: routes[3]: duplicate of routes[1] (host "example.com",
// prefix "/app/")`. Two specs are duplicates when their normalized hosts ("" and "*" are the same)
// and prefixes are equal, whatever their methods. New does not keep specs or their slices.
func New(specs []Spec) (*Table, error) {
	t := &Table{
		exact:   make(map[string]int32),
		wild:    make(map[string]int32),
		methods: make([][]string, len(specs)),
		allow:   make([][]byte, len(specs)),
	}
	var errs []error
	type key struct{ host, prefix string }
	seen := make(map[key]int, len(specs))
	builders := make(map[string]*builder) // by host key: "*" any, ".suffix" wildcard, else exact
	var order []string                    // host keys in first-seen order, for a deterministic layout

	for i, s := range specs {
		hostKey, herr := specHost(s.Host)
		if herr != "" {
			errs = append(errs, &SpecError{Index: i, Field: "host", Reason: herr, Kind: ErrBadHost})
		}
		if perr := checkPrefix(s.Prefix); perr != "" {
			errs = append(errs, &SpecError{Index: i, Field: "prefix", Reason: perr, Kind: ErrBadPrefix})
		}
		methods, merrs := checkMethods(i, s.Methods)
		errs = append(errs, merrs...)
		if herr != "" {
			continue // the duplicate check needs a normalized host
		}
		k := key{hostKey, s.Prefix}
		if j, dup := seen[k]; dup {
			errs = append(errs, &SpecError{Index: i, Kind: ErrDuplicate,
				Reason: fmt.Sprintf("duplicate of routes[%d] (host %q, prefix %q)", j, specs[j].Host, s.Prefix)})
			continue
		}
		seen[k] = i
		t.methods[i] = methods
		if len(methods) > 0 {
			t.allow[i] = []byte(strings.Join(methods, ", "))
		}
		b := builders[hostKey]
		if b == nil {
			b = newBuilder()
			builders[hostKey] = b
			order = append(order, hostKey)
		}
		b.insert(s.Prefix, int32(i))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}

	for _, hk := range order {
		root := t.tree.add(builders[hk])
		switch {
		case hk == "*":
			t.any, t.hasAny = root, true
		case hk[0] == '.':
			t.wild[hk] = root
			t.maxWild = max(t.maxWild, len(hk))
		default:
			t.exact[hk] = root
		}
	}
	t.tree.finish()
	return t, nil
}

// Len returns the number of routes, the length of the specs New was given.
func (t *Table) Len() int {
	if t == nil {
		return 0
	}
	return len(t.methods)
}

// Lookup finds the route for a request, following the rules in the package documentation.
//
// host is the raw Host header value (it may carry a port, mixed case, or be an IPv6 literal such as
// "[::1]:8080"; empty when the request has none), path the normalized request path, and method the
// request method. It returns the route's index into the specs given to New and Matched; or that index
// and MethodNotAllowed; or -1 and NotFound. Lookup allocates nothing and keeps none of its arguments.
func (t *Table) Lookup(host, path, method []byte) (idx int, st Status) {
	if t == nil {
		return -1, NotFound
	}
	r := int32(-1)
	var buf [maxHostLen]byte
	if h, ok := normalizeHost(&buf, host); ok && len(h) > 0 {
		if root, ok := t.exact[string(h)]; ok {
			r = t.tree.match(root, path)
		}
		if r < 0 && len(t.wild) > 0 {
			// Every '.' after the first byte starts a candidate suffix; the leftmost is the
			// longest, which is the order the tiers are tried in.
			for i := max(1, len(h)-t.maxWild); i < len(h) && r < 0; i++ {
				if h[i] != '.' {
					continue
				}
				if root, ok := t.wild[string(h[i:])]; ok {
					r = t.tree.match(root, path)
				}
			}
		}
	}
	if r < 0 && t.hasAny {
		r = t.tree.match(t.any, path)
	}
	if r < 0 {
		return -1, NotFound
	}
	ms := t.methods[r]
	if len(ms) == 0 {
		return int(r), Matched
	}
	for _, m := range ms {
		if string(method) == m {
			return int(r), Matched
		}
	}
	return int(r), MethodNotAllowed
}

// AppendAllow appends the value of the Allow header (RFC 9110 §10.2.1) for the route at idx, the
// route's methods in configured order joined by ", ", to dst and returns it. For a route without
// method restrictions, or an idx out of range, it returns dst unchanged.
func (t *Table) AppendAllow(dst []byte, idx int) []byte {
	if t == nil || idx < 0 || idx >= len(t.allow) {
		return dst
	}
	return append(dst, t.allow[idx]...)
}

// checkMethods validates one spec's methods and returns them, or nil when all are allowed.
func checkMethods(i int, ms []string) ([]string, []error) {
	if len(ms) == 0 {
		return nil, nil
	}
	var errs []error
	for j, m := range ms {
		field := "methods[" + strconv.Itoa(j) + "]"
		reason := ""
		switch {
		case m == "":
			reason = "empty method"
		case !isToken(m):
			reason = fmt.Sprintf("%q is not a method token (RFC 9110 §9.1)", m)
		case strings.ToUpper(m) != m:
			reason = fmt.Sprintf("%q must be uppercase: methods are case-sensitive (RFC 9110 §9.1), write %q", m, strings.ToUpper(m))
		default:
			for k := range j {
				if ms[k] == m {
					reason = fmt.Sprintf("%q is listed twice", m)
					break
				}
			}
		}
		if reason != "" {
			errs = append(errs, &SpecError{Index: i, Field: field, Reason: reason, Kind: ErrBadMethod})
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return append([]string(nil), ms...), nil
}

// isToken reports whether s is a non-empty token (RFC 9110 §5.6.2).
func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' {
			continue
		}
		if strings.IndexByte("!#$%&'*+-.^_`|~", c) < 0 {
			return false
		}
	}
	return s != ""
}

// checkPrefix returns what is wrong with a route prefix, or "".
func checkPrefix(p string) string {
	if p == "" {
		return `empty; it must start with "/"`
	}
	if p[0] != '/' {
		return fmt.Sprintf("%q must start with \"/\"", p)
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; c < 0x20 || c == 0x7f {
			return fmt.Sprintf("%q holds control byte %#02x", p, c)
		}
	}
	// A normalized path has no empty, "." or ".." segments (RFC 3986 §5.2.4), so a prefix with one
	// could never match; a last segment may be a partial name ("/app/." prefixes "/app/.well-known").
	for rest := p[1:]; ; {
		seg, tail, more := strings.Cut(rest, "/")
		if !more {
			break
		}
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Sprintf("%q holds an empty, \".\" or \"..\" segment, which a normalized path never has", p)
		}
		rest = tail
	}
	return ""
}
