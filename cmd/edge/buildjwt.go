package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"example.com/edge/cmd/edge/config"
	"example.com/edge/l7/jwt"
)

// buildJWT loads every policy's keys. A policy replacing one of prev keeps
// its fetched JWKS keys (jwt.Config.Previous), so a reload never brings back
// 503 jwks_unavailable. Every problem is reported at the line of what it is
// about (the key's entry for a key), one line each.
func (p *plan) buildJWT(f *config.File, prev *plan, errs *config.Errors, log *slog.Logger) {
	p.jwt = map[string]*jwt.Policy{}
	for _, name := range sortedKeys(f.JWT) {
		jc := f.JWT[name]
		if jc == nil {
			continue // config: empty policy
		}
		r := &jwtReporter{name: name, jc: jc, errs: errs, seen: map[string]bool{}}
		cfg := jwt.Config{
			Algorithms:  jc.Algorithms,
			Issuer:      jc.Issuer,
			Audience:    jc.Audience,
			Leeway:      jc.Leeway.D(),
			ExpOptional: jc.RequireExp != nil && !*jc.RequireExp,
			CacheBytes:  jc.CacheBytes,
			Logf: func(format string, args ...any) {
				r.capture(format, args)
				// A failed JWKS fetch or a skipped key is a warning.
				log.Log(context.Background(), slog.Level(jwt.Severity(args...)), fmt.Sprintf(format, args...), "component", "jwt", "policy", name)
			},
		}
		if len(jc.ForwardClaims) > 0 {
			cfg.ForwardClaims = jc.ForwardClaims
		}
		// A key entry that does not name exactly one source is the file's
		// checks' to report; the others go to jwt, idx mapping jwt's index
		// back to the entry's.
		for i, k := range jc.Keys {
			if keySources(k) != 1 {
				continue
			}
			cfg.Keys = append(cfg.Keys, keyConfig(k))
			r.idx = append(r.idx, i)
		}
		if prev != nil {
			cfg.Previous = prev.jwt[name]
		}
		r.capturing(true)
		pol, err := jwt.NewPolicy(name, cfg)
		r.capturing(false)
		if err == nil {
			p.jwt[name] = pol
			continue
		}
		for _, e := range unjoin(err) {
			r.report(e, r.idx)
		}
		r.recheckFailedKeys()
	}
}

func keySources(k config.JWTKey) int {
	n := 0
	for _, s := range []string{k.JWKSURL, k.JWKSFile, k.PEMFile, k.HMACSecretFile} {
		if s != "" {
			n++
		}
	}
	return n
}

func keyConfig(k config.JWTKey) jwt.KeyConfig {
	return jwt.KeyConfig{
		PEMFile: k.PEMFile, HMACSecretFile: k.HMACSecretFile, JWKSFile: k.JWKSFile, JWKSURL: k.JWKSURL,
		Alg: k.Alg, Kid: k.Kid, Refresh: k.Refresh.D(),
	}
}

// jwtReporter turns one policy's jwt errors into FILE:LINE problems.
type jwtReporter struct {
	name string
	jc   *config.JWTPolicy
	errs *config.Errors
	idx  []int           // jwt key index -> the file's key index
	seen map[string]bool // problems already reported (the recheck finds some again)
	bad  map[int]bool    // file key indexes with a problem

	mu      sync.Mutex
	on      bool
	skipped map[int][]string // by jwt key index: why a JWKS file's keys were skipped
}

func (r *jwtReporter) capturing(on bool) {
	r.mu.Lock()
	r.on = on
	if on {
		r.skipped = map[int][]string{}
	}
	r.mu.Unlock()
}

// capture keeps what jwt logs about JWK Set members it skipped while
// loading, so that "no usable keys" can say why.
func (r *jwtReporter) capture(format string, args []any) {
	if !strings.Contains(format, "skipped key") || len(args) < 3 {
		return
	}
	i, ok := args[1].(int)
	e, isErr := args[len(args)-1].(error)
	if !ok || !isErr {
		return
	}
	// jwt words it "keys[N]: why" (N the member's index in the file) or
	// "SOURCE: keys[N] is not an object".
	why := e.Error()
	if m := memberRE.FindStringIndex(why); m != nil {
		why = why[m[0]:]
	}
	r.mu.Lock()
	if r.on {
		r.skipped[i] = append(r.skipped[i], why)
	}
	r.mu.Unlock()
}

var (
	keyIndexRE = regexp.MustCompile(`^keys\[(\d+)\]: `)
	memberRE   = regexp.MustCompile(`keys\[\d+\]`)
)

// report adds one jwt error. idx maps the key index jwt names to the file's.
func (r *jwtReporter) report(e error, idx []int) {
	jc, path := r.jc, "jwt."+r.name
	msg := e.Error()
	msg = strings.TrimPrefix(msg, fmt.Sprintf("jwt: policy %q: ", r.name))
	if m := keyIndexRE.FindStringSubmatch(msg); m != nil {
		j, _ := strconv.Atoi(m[1])
		if j < len(idx) {
			r.reportKey(idx[j], strings.TrimPrefix(msg, m[0]), e, j)
			return
		}
	}
	// A loaded key's own problem names its source ("pem_file PATH: ...").
	for i, k := range jc.Keys {
		for _, src := range []string{"pem_file " + k.PEMFile, "hmac_secret_file " + k.HMACSecretFile, "jwks_file " + k.JWKSFile} {
			if !strings.HasSuffix(src, " ") && strings.HasPrefix(msg, src+": ") {
				r.reportKey(i, msg, e, -1)
				return
			}
		}
	}
	line := jc.Line
	for _, key := range []string{"algorithms", "audience", "leeway", "forward_claims"} {
		if strings.HasPrefix(msg, key) {
			line = jc.At(key)
			if key == "forward_claims" && r.forwardClaimsReported() {
				return
			}
		}
	}
	r.add(line, path+": "+msg)
}

// forwardClaimsReported reports whether the file's checks already found a
// bad forward_claims entry (jwt finds the same one).
func (r *jwtReporter) forwardClaimsReported() bool {
	for claim, header := range r.jc.ForwardClaims {
		if claim == "" || !config.IsToken(header) {
			return true
		}
	}
	return false
}

// reportKey adds a problem of the file's key i; j is jwt's index for it
// (-1 when unknown), to find what was captured while loading it.
func (r *jwtReporter) reportKey(i int, detail string, e error, j int) {
	k := r.jc.Keys[i]
	if k.Alg == "" && (k.PEMFile != "" || k.HMACSecretFile != "") && strings.Contains(detail, " alg ") {
		return // the file's checks say alg is required
	}
	var je *jwt.Error
	if k.JWKSFile != "" && (errors.As(e, &je) || strings.Contains(detail, ": invalid JWK Set: ")) {
		// jwt's JSON reader speaks of tokens; say what is wrong with the file.
		fallback := detail
		if je != nil {
			fallback = "jwks_file " + k.JWKSFile + ": invalid JWK Set: " + strings.Replace(strings.Replace(jwt.Message(je), " token", " JSON", 1), "token ", "", 1)
		}
		detail = jwksProblem(k.JWKSFile, fallback)
	}
	if strings.HasSuffix(detail, ": no usable keys") && j >= 0 {
		r.mu.Lock()
		why := r.skipped[j]
		r.mu.Unlock()
		if len(why) > 0 {
			detail += ": " + strings.ReplaceAll(strings.Join(why, "; "), "jwks_file "+k.JWKSFile+": ", "")
		}
	}
	if k.PEMFile != "" && strings.HasPrefix(k.Alg, "HS") {
		detail += " (an HMAC secret belongs in hmac_secret_file)"
	}
	if r.bad == nil {
		r.bad = map[int]bool{}
	}
	r.bad[i] = true
	r.add(k.Line, fmt.Sprintf("jwt.%s.keys[%d]: %s", r.name, i, detail))
}

func (r *jwtReporter) add(line int, msg string) {
	if r.seen[msg] {
		return
	}
	r.seen[msg] = true
	r.errs.Addf(line, "%s", msg)
}

// recheckFailedKeys loads every key that had a problem on its own, with
// every algorithm allowed: jwt does not read the file of a key whose
// settings are wrong (an alg outside algorithms, a kid on a JWK Set), which
// would hide a missing or broken file until the setting is fixed.
func (r *jwtReporter) recheckFailedKeys() {
	for _, fi := range slices.Sorted(maps.Keys(r.bad)) {
		k := r.jc.Keys[fi]
		kc := keyConfig(k)
		if kc.JWKSFile != "" || kc.JWKSURL != "" {
			kc.Kid = ""
		}
		kc.JWKSURL = "" // nothing to read
		if kc.PEMFile == "" && kc.HMACSecretFile == "" && kc.JWKSFile == "" {
			continue
		}
		r.capturing(true)
		pol, err := jwt.NewPolicy(r.name, jwt.Config{Keys: []jwt.KeyConfig{kc}, Logf: func(format string, args ...any) {
			r.capture(format, args)
		}})
		r.capturing(false)
		if err == nil {
			pol.Close()
			continue
		}
		for _, e := range unjoin(err) {
			r.report(e, []int{fi})
		}
	}
}

// jwksProblem says what is wrong with a JWK Set file jwt could not read,
// as "jwks_file PATH: what"; fallback is what to say when nothing is found.
func jwksProblem(path, fallback string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return fallback
	}
	if what := jwksFileProblem(data); what != "" {
		return "jwks_file " + path + ": " + what
	}
	return fallback
}

func jwksFileProblem(data []byte) string {
	if len(bytes.TrimSpace(data)) == 0 {
		return "the file is empty (want a JWK Set: {\"keys\": [...]})"
	}
	if !utf8.Valid(data) {
		return "not a JWK Set: the file is not UTF-8 text"
	}
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			line := 1 + bytes.Count(data[:min(int(se.Offset), len(data))], []byte("\n"))
			return fmt.Sprintf("not JSON (line %d of the file): %v", line, err)
		}
		return fmt.Sprintf("not JSON: %v", err)
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return fmt.Sprintf("not a JWK Set: the file holds a JSON %s, want an object with a \"keys\" array", jsonKind(v))
	}
	keys, ok := obj["keys"]
	switch {
	case !ok && obj["kty"] != nil:
		return "not a JWK Set: the file holds a single JWK; put it in {\"keys\": [...]}"
	case !ok:
		return "not a JWK Set: no \"keys\" array"
	}
	list, ok := keys.([]any)
	if !ok {
		return fmt.Sprintf("not a JWK Set: \"keys\" is a JSON %s, want an array", jsonKind(keys))
	}
	for i, k := range list {
		if _, ok := k.(map[string]any); !ok {
			return fmt.Sprintf("keys[%d] is a JSON %s, want a JWK object", i, jsonKind(k))
		}
	}
	return ""
}

func jsonKind(v any) string {
	switch v.(type) {
	case map[string]any:
		return "object"
	case []any:
		return "array"
	case string:
		return "string"
	case float64:
		return "number"
	case bool:
		return "boolean"
	}
	return "null"
}
