package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"example.com/edge/cmd/edge/config"
	"example.com/edge/l7/jwt"
	"example.com/edge/l7/jwt/mint"
)

// checkLines runs edge check's logic on path and returns its problems.
func checkLines(t *testing.T, path string) []string {
	t.Helper()
	err := checkConfig(path)
	if err == nil {
		return nil
	}
	if _, ok := err.(*config.Errors); !ok {
		t.Fatalf("check %s: %v, want config problems", path, err)
	}
	lines := strings.Split(err.Error(), "\n")
	// Every problem is its own FILE:LINE: line.
	re := regexp.MustCompile(`^` + regexp.QuoteMeta(path) + `:\d+: \S`)
	for _, l := range lines {
		if !re.MatchString(l) {
			t.Errorf("problem without its FILE:LINE: prefix: %q", l)
		}
	}
	return lines
}

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// wantLines checks that each want (a line prefix, then substrings it
// must contain, separated by " ... ") matches exactly one line, and that
// no line is left over.
func wantLines(t *testing.T, got []string, want ...string) {
	t.Helper()
	used := make([]bool, len(got))
	for _, w := range want {
		parts := strings.Split(w, " ... ")
		n := 0
		for i, g := range got {
			ok := strings.Contains(g, parts[0])
			for _, p := range parts[1:] {
				ok = ok && strings.Contains(g, p)
			}
			if ok {
				used[i] = true
				n++
			}
		}
		if n != 1 {
			t.Errorf("%d problems match %q, want 1", n, w)
		}
	}
	for i, g := range got {
		if !used[i] {
			t.Errorf("unexpected problem: %s", g)
		}
	}
	if t.Failed() {
		t.Logf("all problems:\n%s", strings.Join(got, "\n"))
	}
}

const checkBase = `listeners:
  - {name: h, address: "127.0.0.1:0"}
pools:
  p: {endpoints: ["127.0.0.1:1"]}
`

// Audit item 1: every JWT key problem is its own FILE:LINE line, at that
// key's entry (the second and later ones used to come bare).
func TestCheckJWTKeyProblemsEachOnItsLine(t *testing.T) {
	dir := t.TempDir()
	ed, err := mint.GenerateKey("EdDSA", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	hs, err := mint.GenerateKey("HS256", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	badX := regexp.MustCompile(`"x":"[^"]*"`).ReplaceAllString(string(ed.PublicJWKS()), `"x":"!!bad"`)
	writeFiles(t, dir, map[string]string{"badx.jwks": badX, "bad.jwks": "not json\n", "hs.key": string(hs.Secret)})
	path := filepath.Join(dir, "jw.yaml")
	writeFiles(t, dir, map[string]string{"jw.yaml": checkBase + `jwt:
  a:
    keys:
      - {jwks_file: badx.jwks}
      - {jwks_file: bad.jwks}
      - {pem_file: hs.key, alg: HS256}
    algorithms: [EdDSA, HS256]
routes:
  - {prefix: /, pool: p, jwt: a}
`})
	wantLines(t, checkLines(t, path),
		path+`:8: jwt.a.keys[0]: jwks_file `+filepath.Join(dir, "badx.jwks")+`: no usable keys: keys[0]: ... "x"`,
		path+`:9: jwt.a.keys[1]: jwks_file `+filepath.Join(dir, "bad.jwks")+`: not JSON (line 1 of the file)`,
		path+`:10: jwt.a.keys[2]: pem_file `+filepath.Join(dir, "hs.key")+`: ... hmac_secret_file`,
	)
}

// The reference configuration without its key files: one line per key.
func TestCheckReferenceConfigMissingKeys(t *testing.T) {
	dir := t.TempDir()
	src, err := os.ReadFile("config/testdata/edge.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "edge.yaml")
	writeFiles(t, dir, map[string]string{"edge.yaml": string(src)})
	wantLines(t, checkLines(t, path),
		path+`:21: listeners[public-https].tls: ... example.com.crt`,
		path+`:21: listeners[public-https].tls: ... example.com.key`,
		path+`:55: jwt.users.keys[1]: ... keys/ed25519.pub: no such file`,
		path+`:56: jwt.users.keys[2]: ... keys/internal.secret: no such file`,
	)
}

// Audit item 3: a JWKS file jwt cannot read is described as a file (it
// used to say "jwt: malformed token").
func TestCheckJWKSFileProblems(t *testing.T) {
	tests := []struct{ data, want string }{
		{"", "the file is empty"},
		{"not json", "not JSON (line 1 of the file): invalid character"},
		{"{\n  \"keys\": [\n}\n", "not JSON (line 3 of the file)"},
		{"[]", `not a JWK Set: the file holds a JSON array, want an object with a "keys" array`},
		{`{"kty": "OKP", "crv": "Ed25519", "x": "AAAA"}`, "not a JWK Set: the file holds a single JWK"},
		{`{"foo": 1}`, `not a JWK Set: no "keys" array`},
		{`{"keys": {}}`, `not a JWK Set: "keys" is a JSON object, want an array`},
		{`{"keys": [1]}`, `no usable keys: keys[0] is not an object`},
		{`{"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "AAAA"}, {"kty": "RSA"}]}`, `no usable keys: keys[0]: ... ; keys[1]:`},
	}
	for i, tt := range tests {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "e.yaml")
			writeFiles(t, dir, map[string]string{"k.jwks": tt.data, "e.yaml": checkBase + "jwt:\n  a:\n    keys:\n      - {jwks_file: k.jwks}\n"})
			got := checkLines(t, path)
			wantLines(t, got, path+":8: jwt.a.keys[0]: jwks_file "+filepath.Join(dir, "k.jwks")+": "+tt.want)
			if strings.Contains(strings.Join(got, "\n"), "token") {
				t.Errorf("a key file problem speaks of a token: %s", got)
			}
		})
	}
}

// Audit item 2: a key jwt refuses for its settings still has its file
// checked.
func TestCheckKeySettingsDoNotHideFileProblems(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "e.yaml")
	writeFiles(t, dir, map[string]string{"e.yaml": checkBase + `jwt:
  a:
    keys:
      - {pem_file: nope.pub, alg: RS256}
      - {jwks_file: nope.jwks, kid: k1}
      - {hmac_secret_file: nope.secret, alg: HS256, jwks_file: x.jwks}
    algorithms: [EdDSA]
`})
	wantLines(t, checkLines(t, path),
		path+`:8: jwt.a.keys[0]: alg RS256 is not in algorithms`,
		path+`:8: jwt.a.keys[0]: ... nope.pub: no such file`,
		path+`:9: jwt.a.keys[1]: kid applies to pem_file and hmac_secret_file only`,
		path+`:9: jwt.a.keys[1]: ... nope.jwks: no such file`,
		// Two sources: the file's check says so, once.
		path+`:10: jwt.a.keys[2]: set exactly one of`,
	)
}

// Audit item 2: a bad curve_preferences used to hide the files' problems,
// and a pure L4 listener's tls block was not read at all.
func TestCheckTLSProblemsNotHidden(t *testing.T) {
	dir := t.TempDir()
	a, b := newTestCert(t, "a.test"), newTestCert(t, "b.test")
	writeFiles(t, dir, map[string]string{"a.crt": string(a.certPEM), "b.key": string(b.keyPEM)})
	path := filepath.Join(dir, "e.yaml")
	writeFiles(t, dir, map[string]string{"e.yaml": `listeners:
  - name: s
    address: "127.0.0.1:0"
    tls:
      certificates:
        - {cert: a.crt, key: b.key}
      curve_preferences: [x25519, bogus]
      client_ca: missing-ca.pem
      session_ticket_keys_file: missing-tickets
  - name: l4
    address: "127.0.0.1:0"
    pool: p
    tls:
      certificates:
        - {cert: nope.crt, key: nope.key}
pools:
  p: {endpoints: ["127.0.0.1:1"]}
`})
	wantLines(t, checkLines(t, path),
		path+`:7: listeners[s].tls.curve_preferences: ... bogus`,
		path+`:6: listeners[s].tls: ... b.key`,
		path+`:8: listeners[s].tls: ... missing-ca.pem`,
		path+`:9: listeners[s].tls: ... missing-tickets`,
		path+`:12: listeners[1]: a listener with a pool is pure L4: tls, passthrough and redirect_https do not apply`,
		path+`:15: listeners[l4].tls: ... nope.crt`,
		path+`:15: listeners[l4].tls: ... nope.key`,
	)
}

// Audit item 3: pool problems the file's checks report are not reported
// again by lb.
func TestCheckPoolProblemsOnce(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "e.yaml")
	writeFiles(t, dir, map[string]string{"e.yaml": `listeners:
  - {name: h, address: "127.0.0.1:0"}
pools:
  empty: {endpoints: []}
  dup: {endpoints: ["127.0.0.1:1", "127.0.0.1:1"]}
  names: {endpoints: ["a=127.0.0.1:1", "a=127.0.0.1:2"]}
  factor: {endpoints: ["nope"], balance: consistent_hash, hash_balance_factor: 0.5}
`})
	wantLines(t, checkLines(t, path),
		path+`:4: pools.empty.endpoints: at least one endpoint is required`,
		path+`:5: pools.dup.endpoints[1]: duplicate endpoint "127.0.0.1:1"`,
		path+`:6: pools.names.endpoints[1]: endpoint name "a" is already that of endpoints[0]`,
		path+`:7: pools.factor.endpoints[0]: `,
		path+`:7: pools.factor: lb: hash_balance_factor 0.5`,
	)
}

// Audit item 4: allow_ips and deny_ips reach the proxy's route as masked
// prefixes, a bare IP as a /32 or /128.
func TestBuildMapsRouteIPLists(t *testing.T) {
	f, err := config.Parse("e.yaml", []byte(checkBase+`routes:
  - {prefix: /, pool: p, allow_ips: [10.1.2.3/8, 192.0.2.7, "2001:db8::1"], deny_ips: [10.9.0.0/16]}
  - {prefix: /open/, pool: p}
`))
	if err != nil {
		t.Fatal(err)
	}
	p, err := buildPlan(f, nil, planHooks{}, &config.Errors{File: "e.yaml"}, discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer p.release(nil)
	r := p.proxy.Routes[0]
	if got, want := fmt.Sprint(r.AllowIPs), "[10.0.0.0/8 192.0.2.7/32 2001:db8::1/128]"; got != want {
		t.Errorf("AllowIPs = %s, want %s", got, want)
	}
	if got, want := fmt.Sprint(r.DenyIPs), "[10.9.0.0/16]"; got != want {
		t.Errorf("DenyIPs = %s, want %s", got, want)
	}
	if r := p.proxy.Routes[1]; r.AllowIPs != nil || r.DenyIPs != nil {
		t.Errorf("a route without the keys got %v / %v", r.AllowIPs, r.DenyIPs)
	}
}

// edgeRun runs the binary and returns its exit code and output.
func edgeRun(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(edgeBin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, stdout.String(), stderr.String()
}

// Audit item 7: extra arguments are usage errors, and -serve loop without
// the gnet accept layer is refused.
func TestCommandLineMistakes(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	loop := filepath.Join(dir, "loop.yaml")
	writeFiles(t, dir, map[string]string{
		"good.yaml": checkBase + "routes:\n  - {prefix: /, pool: p}\n",
		"loop.yaml": "tuning: {serve: loop}\n" + checkBase + "routes:\n  - {prefix: /, pool: p}\n",
		"hs.key":    "secret\n",
	})
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"check", "-config", good, "extra"}, `edge check: unexpected argument "extra"`},
		{[]string{"check", good, "-v"}, `edge check: unexpected argument`},
		{[]string{"-config", good, "extra"}, `edge: unexpected argument "extra"`},
		{[]string{"run", "-config", good, "extra"}, `edge: unexpected argument "extra"`},
		{[]string{"token", "-alg", "HS256", "-key", filepath.Join(dir, "hs.key"), "extra"}, `edge token: unexpected argument "extra"`},
		{[]string{"-config", good, "-serve", "loop", "-accept", "go"}, "needs the gnet accept layer"},
		{[]string{"-config", loop, "-accept", "go"}, "needs the gnet accept layer"},
		{[]string{"token", "-alg", "FOO", "-key", filepath.Join(dir, "hs.key")}, `edge token: unknown algorithm "FOO" (want one of HS256, `},
	}
	for _, tt := range tests {
		code, _, stderr := edgeRun(t, tt.args...)
		if code != 2 || !strings.Contains(stderr, tt.want) {
			t.Errorf("edge %s: exit %d\n%s\nwant exit 2 and %q", strings.Join(tt.args, " "), code, stderr, tt.want)
		}
		if strings.Contains(stderr, "mint:") {
			t.Errorf("edge %s: %s", strings.Join(tt.args, " "), stderr)
		}
	}
	if code, _, stderr := edgeRun(t, "check", good); code != 0 {
		t.Errorf("edge check FILE: exit %d %s", code, stderr)
	}
}

// Audit item 7: edge token signs with a JWK Set holding one key (the
// -genkey output for HS*), or the one -kid picks, and says what is wrong
// with the others.
func TestTokenFromJWKSet(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{{"-alg", "HS256", "-genkey", filepath.Join(dir, "hs"), "-kid", "hk"}, {"-alg", "EdDSA", "-genkey", filepath.Join(dir, "ed")}} {
		if code, _, stderr := edgeRun(t, append([]string{"token"}, args...)...); code != 0 {
			t.Fatalf("edge token %s: %s", args, stderr)
		}
	}
	pol, err := jwt.NewPolicy("t", jwt.Config{Keys: []jwt.KeyConfig{{HMACSecretFile: filepath.Join(dir, "hs.key"), Alg: "HS256", Kid: "hk"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer pol.Close()
	verify := func(tok string) error {
		c := jwt.AcquireClaims()
		defer jwt.ReleaseClaims(c)
		if err := pol.Verify([]byte(tok), time.Now(), c); err != nil {
			return err
		}
		if c.KeyID() != "hk" {
			return fmt.Errorf("kid %q, want the JWK's hk", c.KeyID())
		}
		return nil
	}
	set := filepath.Join(dir, "hs.jwks.json")
	for _, extra := range [][]string{nil, {"-kid", "hk"}} {
		code, out, stderr := edgeRun(t, append([]string{"token", "-alg", "HS256", "-key", set, "-sub", "u"}, extra...)...)
		if code != 0 {
			t.Fatalf("edge token -key %s %v: exit %d %s", set, extra, code, stderr)
		}
		if err := verify(strings.TrimSpace(out)); err != nil {
			t.Errorf("token minted from the JWK Set (%v): %v", extra, err)
		}
	}
	two := filepath.Join(dir, "two.json")
	hsSet, _ := os.ReadFile(set)
	k := strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(string(hsSet)), `{"keys":[`), `]}`)
	other := regexp.MustCompile(`"k":"[^"]*"`).ReplaceAllString(strings.Replace(k, `"hk"`, `"other"`, 1), `"k":"b3RoZXItc2VjcmV0LW90aGVyLXNlY3JldC1vdGhlci1zZWNyZXQtb3RoZXI"`)
	writeFiles(t, dir, map[string]string{"two.json": `{"keys":[` + k + `,` + other + `]}`})
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"-alg", "EdDSA", "-key", filepath.Join(dir, "ed.jwks.json")}, `keys[0] is a public key (no "d")`},
		{[]string{"-alg", "HS256", "-key", two}, `a JWK Set of 2 keys: pick one with -kid (kids: "hk", "other")`},
		{[]string{"-alg", "HS256", "-key", set, "-kid", "zz"}, `a JWK Set with no key of kid "zz"`},
	} {
		code, _, stderr := edgeRun(t, append([]string{"token"}, tt.args...)...)
		if code != 1 || !strings.Contains(stderr, tt.want) || strings.Contains(stderr, "kty") {
			t.Errorf("edge token %s: exit %d %s, want exit 1 and %q", strings.Join(tt.args, " "), code, stderr, tt.want)
		}
	}
	both, err := jwt.NewPolicy("two", jwt.Config{Keys: []jwt.KeyConfig{{JWKSFile: two}}})
	if err != nil {
		t.Fatal(err)
	}
	defer both.Close()
	code, out, stderr := edgeRun(t, "token", "-alg", "HS256", "-key", two, "-kid", "other")
	c := jwt.AcquireClaims()
	defer jwt.ReleaseClaims(c)
	if err := both.Verify([]byte(strings.TrimSpace(out)), time.Now(), c); code != 0 || err != nil || c.KeyID() != "other" {
		t.Errorf("-kid other: exit %d %s; verified by the set's key of kid other: %v (kid %q)", code, stderr, err, c.KeyID())
	}
}

// Audit item 8: the demo's tail line names the access log in effect.
func TestDemoWelcomeNamesTheAccessLog(t *testing.T) {
	d := &demo{dir: "/demo", httpAddr: "127.0.0.1:8080", httpsAddr: "127.0.0.1:8443"}
	for range 4 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		d.pods = append(d.pods, &demoPod{ln: ln})
	}
	for _, tt := range []struct{ log, want string }{
		{"/demo/access.log", "tail -n 3 /demo/access.log"},
		{"/var/log/edge.log", "tail -n 3 /var/log/edge.log"},
		{"-", ""},
		{"off", ""},
	} {
		var b bytes.Buffer
		d.printWelcome(&b, &edgeRuntime{}, tt.log)
		out := b.String()
		if tt.want != "" && !strings.Contains(out, tt.want) {
			t.Errorf("access log %s: welcome lacks %q:\n%s", tt.log, tt.want, out)
		}
		if tt.want == "" && strings.Contains(out, "tail") {
			t.Errorf("access log %s: welcome has a tail line:\n%s", tt.log, out)
		}
		if tt.log != "/demo/access.log" && strings.Contains(out, "access.log") {
			t.Errorf("access log %s: welcome names the demo folder's access.log:\n%s", tt.log, out)
		}
	}
}
