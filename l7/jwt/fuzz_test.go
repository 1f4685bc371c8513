package jwt

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"example.com/edge/l7/jwt/mint"
	gojwt "github.com/golang-jwt/jwt/v5"
)

// Differential fuzzing against golang-jwt/jwt/v5 with the same keys (every fixture key,
// bound to its algorithm and kid), the same algorithms, the same claim rules (issuer,
// audience, 30s leeway, exp required, iat checked) and strict base64 decoding.
//
// The property: l7/jwt never accepts a token golang-jwt rejects, and every token
// golang-jwt accepts but l7/jwt rejects breaks one of the stricter rules listed in doc.go,
// which stricterRule confirms independently of the code under test (with encoding/json,
// unicode/utf8 and math/big). Each token is also verified twice, so a verified-token cache
// hit must agree with the full check.
//
// Seeds are committed in testdata/fuzz; `go test` replays them. Regenerate with
// go test ./l7/jwt -run TestFixtures -update-fixtures.

type diffOracle struct {
	p       *Policy
	parser  *gojwt.Parser
	keyfunc gojwt.Keyfunc
}

var (
	oracleOnce sync.Once
	oracle     *diffOracle
)

func getOracle(t testing.TB) *diffOracle {
	oracleOnce.Do(func() {
		registerGolangJWTMethods()
		fx := loadFixtures(t)
		byKid := make(map[string]any)
		kidAlg := make(map[string]string)
		for _, alg := range mint.Algorithms() {
			k := fx[alg].signing
			if !strings.HasPrefix(alg, "HS") {
				k = publicOf(k)
			}
			byKid[fixtureKid(alg)] = k
			kidAlg[fixtureKid(alg)] = alg
		}
		parser := gojwt.NewParser(
			gojwt.WithValidMethods(mint.Algorithms()),
			gojwt.WithIssuer("https://auth.example.com"),
			gojwt.WithAudience("example.com"),
			gojwt.WithLeeway(30*time.Second),
			gojwt.WithExpirationRequired(),
			gojwt.WithIssuedAt(),
			gojwt.WithStrictDecoding(),
			gojwt.WithTimeFunc(func() time.Time { return testNow }),
		)
		// The contract's key selection: a kid names one key, which must be bound to the
		// token's alg; no kid tries every key bound to the alg.
		keyfunc := func(tok *gojwt.Token) (any, error) {
			alg := tok.Method.Alg()
			if raw, ok := tok.Header["kid"]; ok {
				kid, ok := raw.(string)
				if !ok || kidAlg[kid] != alg {
					return nil, gojwt.ErrTokenUnverifiable
				}
				return byKid[kid], nil
			}
			var set gojwt.VerificationKeySet
			for kid, a := range kidAlg {
				if a == alg {
					set.Keys = append(set.Keys, byKid[kid])
				}
			}
			if len(set.Keys) == 0 {
				return nil, gojwt.ErrTokenUnverifiable
			}
			return set, nil
		}
		cfg := testConfig(t)
		cfg.CacheBytes = 1 << 20
		oracle = &diffOracle{p: newTestPolicy(t, cfg), parser: parser, keyfunc: keyfunc}
	})
	return oracle
}

func (o *diffOracle) check(t *testing.T, token []byte) {
	var c Claims
	ours := o.p.Verify(token, testNow, &c)
	if again := o.p.Verify(token, testNow, &c); again != ours {
		t.Fatalf("second Verify (cache) = %v, first = %v\ntoken %q", again, ours, token)
	}
	_, theirs := o.parser.Parse(string(token), o.keyfunc)
	switch {
	case ours == nil && theirs != nil:
		t.Fatalf("l7/jwt accepts a token golang-jwt rejects (%v)\ntoken %q", theirs, token)
	case ours != nil && theirs == nil:
		if rule := stricterRule(token, ours); rule == "" {
			t.Fatalf("l7/jwt rejects (%v) a token golang-jwt accepts, under no documented rule\ntoken %q", ours, token)
		}
	}
}

func FuzzVerifyDifferential(f *testing.F) {
	for _, seed := range rawSeeds(f) {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, token []byte) {
		getOracle(t).check(t, token)
	})
}

// fuzzSigners are the algorithms FuzzVerifySignedDifferential signs with.
var fuzzSigners = [...]string{"HS256", "EdDSA", "ES256", "Ed448"}

// FuzzVerifySignedDifferential signs arbitrary header and payload bytes with a fixture key,
// so the comparison reaches the JSON and claim rules behind a valid signature.
func FuzzVerifySignedDifferential(f *testing.F) {
	for _, s := range signedSeeds() {
		f.Add(s.header, s.payload, s.signer)
	}
	f.Fuzz(func(t *testing.T, header, payload []byte, signer uint8) {
		alg := fuzzSigners[int(signer)%len(fuzzSigners)]
		getOracle(t).check(t, signRaw(t, alg, string(header), string(payload), nil))
	})
}

// stricterRule names the documented rule (doc.go) that a rejection golang-jwt does not
// share falls under, after checking the rule's condition with independent code; "" when
// none applies.
func stricterRule(token []byte, ours error) string {
	if ours == ErrOversized && len(token) > defaultMaxTokenBytes {
		return "token over MaxTokenBytes"
	}
	if ours == ErrMalformed && bytes.ContainsAny(token, "\r\n") {
		return "line breaks inside base64url" // encoding/base64 skips them
	}
	parts := strings.Split(string(token), ".")
	if len(parts) != 3 {
		return ""
	}
	header, err1 := base64.RawURLEncoding.Strict().DecodeString(parts[0])
	payload, err2 := base64.RawURLEncoding.Strict().DecodeString(parts[1])
	if err1 != nil || err2 != nil {
		return ""
	}
	docs := [][]byte{header, payload}
	switch ours {
	case ErrDuplicateMember:
		for _, d := range docs {
			if hasDuplicateMember(d) {
				return "duplicate member names"
			}
		}
	case ErrInvalidUTF8:
		for _, d := range docs {
			if !utf8.Valid(d) || hasLoneSurrogate(d) {
				return "invalid UTF-8 or unpaired surrogate"
			}
		}
	case ErrTooDeep:
		for _, d := range docs {
			if nestingDepth(d) > maxDepth { // the top-level object counts as one level
				return "nesting deeper than 32"
			}
		}
	case ErrTooManyMembers:
		if memberCount(header) > maxHeaderMembers || memberCount(payload) > maxClaims {
			return "more than 16 header or 64 claim members"
		}
	case ErrCrit:
		if _, ok := topLevel(header)["crit"]; ok {
			return "crit present"
		}
	case ErrB64:
		if v, ok := topLevel(header)["b64"]; ok && v != true {
			return "b64 other than true"
		}
	case ErrBadDate:
		for _, name := range []string{"exp", "nbf", "iat"} {
			if v, ok := topLevel(payload)[name].(float64); ok && (v < 0 || v > maxNumericDate) {
				return "NumericDate outside [0, 9999-12-31]"
			}
		}
	case ErrNotYetValid, ErrIssuedInFuture, ErrExpired:
		if fractionRounding(payload) {
			return "fractional NumericDates rounded toward invalidity"
		}
	}
	return ""
}

func hasDuplicateMember(doc []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(doc))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return false
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		name, _ := tok.(string)
		if seen[name] {
			return true
		}
		seen[name] = true
		var skip json.RawMessage
		if dec.Decode(&skip) != nil {
			return false
		}
	}
	return false
}

// hasLoneSurrogate reports whether a \uXXXX escape outside an escaped backslash encodes
// half of a surrogate pair without its partner.
func hasLoneSurrogate(doc []byte) bool {
	s := string(doc)
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' || i+1 >= len(s) {
			continue
		}
		if s[i+1] != 'u' || i+6 > len(s) {
			i++ // an escape pair such as \\ or \n
			continue
		}
		var r rune
		if _, err := fmt.Sscanf(s[i+2:i+6], "%04x", &r); err != nil {
			return false
		}
		switch {
		case r >= 0xdc00 && r <= 0xdfff:
			return true
		case r >= 0xd800 && r <= 0xdbff:
			var lo rune
			if i+12 > len(s) || s[i+6:i+8] != `\u` {
				return true
			}
			if _, err := fmt.Sscanf(s[i+8:i+12], "%04x", &lo); err != nil || lo < 0xdc00 || lo > 0xdfff {
				return true
			}
			i += 11
		default:
			i += 5
		}
	}
	return false
}

func nestingDepth(doc []byte) int {
	dec := json.NewDecoder(bytes.NewReader(doc))
	depth, deepest := 0, 0
	for {
		tok, err := dec.Token()
		if err != nil {
			return deepest
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			depth++
			deepest = max(deepest, depth)
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
	}
}

func memberCount(doc []byte) int { return len(topLevel(doc)) }

func topLevel(doc []byte) map[string]any {
	var m map[string]any
	_ = json.Unmarshal(doc, &m)
	return m
}

// fractionRounding reports whether a NumericDate's exact decimal value, rounded the
// strict way (exp down, nbf and iat up), lands on another whole second than golang-jwt's
// float64 truncation.
func fractionRounding(payload []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	var m map[string]any
	if dec.Decode(&m) != nil {
		return false
	}
	for _, name := range []string{"exp", "nbf", "iat"} {
		n, ok := m[name].(json.Number)
		if !ok {
			continue
		}
		exact, ok := new(big.Rat).SetString(n.String())
		if !ok {
			continue
		}
		f, _ := n.Float64()
		golang := math.Trunc(f)
		floor := new(big.Int).Quo(exact.Num(), exact.Denom()) // exact >= 0 here
		strict := new(big.Float).SetInt(floor)
		if name != "exp" && !exact.IsInt() {
			strict.SetInt(floor.Add(floor, big.NewInt(1)))
		}
		if s, _ := strict.Float64(); s != golang {
			return true
		}
	}
	return false
}

// rawSeeds are whole tokens: valid ones of every algorithm, and the attack table's.
func rawSeeds(t testing.TB) [][]byte {
	var seeds [][]byte
	for _, alg := range mint.Algorithms() {
		seeds = append(seeds, mintToken(t, alg, nil))
	}
	good := mintToken(t, "HS256", nil)
	seeds = append(seeds,
		[]byte(rfc7515A5Token),
		append(append([]byte{}, good[:20]...), append([]byte("\r\n"), good[20:]...)...),
		append(append([]byte{}, good...), "=="...),
		[]byte("e30.e30."),
		[]byte("..."),
	)
	return seeds
}

type signedSeed struct {
	header, payload []byte
	signer          uint8
}

func signedSeeds() []signedSeed {
	now := testNow.Unix()
	claims := func(extra string) string {
		c := fmt.Sprintf(`{"sub":"u","iss":"https://auth.example.com","aud":"example.com","iat":%d,"exp":%d`, now-60, now+600)
		if extra != "" {
			c += "," + extra
		}
		return c + "}"
	}
	var seeds []signedSeed
	add := func(signer uint8, header, payload string) {
		seeds = append(seeds, signedSeed{[]byte(header), []byte(payload), signer})
	}
	for i, alg := range fuzzSigners {
		add(uint8(i), hdr(alg, fixtureKid(alg)), claims(""))
		add(uint8(i), fmt.Sprintf(`{"alg":%q}`, alg), claims(`"scope":"a b"`))
	}
	h := hdr("HS256", "hs256-1")
	for _, s := range []struct{ header, payload string }{
		{h, claims(`"sub":"v"`)},
		{h, claims(`"\u0073ub":"v"`)},
		{`{"alg":"HS256","kid":"hs256-1","kid":"hs256-1"}`, claims("")},
		{`{"alg":"HS256","kid":"hs256-1","crit":["x"],"x":1}`, claims("")},
		{`{"alg":"HS256","kid":"hs256-1","b64":false}`, claims("")},
		{`{"alg":"HS256","kid":"hs256-1","b64":true}`, claims("")},
		{`{"\u0061lg":"HS\u0032\u00356","kid":"hs256-1"}`, claims("")},
		{`{"alg":"HS256","kid":null}`, claims("")},
		{`{"alg":"HS256","kid":5}`, claims("")},
		{h, claims("\"name\":\"\xff\"")},
		{h, claims(`"name":"\ud83d\ude00"`)},
		{h, claims(`"name":"\ud83d"`)},
		{h, claims(`"name":"\\ud83d"`)},
		{h, claims(`"x":` + strings.Repeat("[", 31) + strings.Repeat("]", 31))},
		{h, claims(`"x":` + strings.Repeat("[", 32) + strings.Repeat("]", 32))},
		{h, claims(`"big":1e400`)},
		{h, claims(`"big":1e308`)},
		{h, claims(`"small":1e-400`)},
		{h, fmt.Sprintf(`{"iss":"https://auth.example.com","aud":"example.com","exp":%d.9999999999999999999}`, now-30)},
		{h, fmt.Sprintf(`{"iss":"https://auth.example.com","aud":"example.com","exp":%d.5}`, now-30)},
		{h, claims(fmt.Sprintf(`"nbf":%d.5`, now+30))},
		{h, claims(fmt.Sprintf(`"nbf":%de0`, now+29))},
		{h, `{"iss":"https://auth.example.com","aud":"example.com","exp":1e15}`},
		{h, claims(`"nbf":-5`)},
		{h, `{"iss":"https://auth.example.com","aud":"example.com","exp":0}`},
		{h, `{"iss":"https://auth.example.com","aud":"example.com"}`},
		{h, strings.Replace(claims(""), `"aud":"example.com"`, `"aud":["example.com",1]`, 1)},
		{h, strings.Replace(claims(""), `"aud":"example.com"`, `"aud":["x","example.com"]`, 1)},
		{h, strings.Replace(claims(""), `"aud":"example.com"`, `"aud":[]`, 1)},
		{h, strings.Replace(claims(""), `"aud":"example.com"`, `"aud":null`, 1)},
		{h, strings.Replace(claims(""), `"iss":"https://auth.example.com"`, `"iss":7`, 1)},
		{h, claims(manyClaims(60))},
		{h, `null`},
		{h, `[]`},
		{h, " \r\n\t" + claims("") + " "},
		{h, claims("") + "x"},
		{"null", claims("")},
	} {
		add(0, s.header, s.payload)
	}
	return seeds
}

// writeFuzzCorpus commits the seeds as files under testdata/fuzz (called by TestFixtures
// with -update-fixtures), so `go test` replays them even without the f.Add calls.
func writeFuzzCorpus(t *testing.T) {
	write := func(target string, i int, values ...string) {
		dir := filepath.Join("testdata", "fuzz", target)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		data := "go test fuzz v1\n" + strings.Join(values, "\n") + "\n"
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%03d", i)), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for i, s := range rawSeeds(t) {
		write("FuzzVerifyDifferential", i, fmt.Sprintf("[]byte(%q)", s))
	}
	for i, s := range signedSeeds() {
		write("FuzzVerifySignedDifferential", i, fmt.Sprintf("[]byte(%q)", s.header), fmt.Sprintf("[]byte(%q)", s.payload), fmt.Sprintf("uint8(%d)", s.signer))
	}
}
