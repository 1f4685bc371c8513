package main

import (
	"bufio"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	urlpath "path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"example.com/edge/l7/jwt"
)

// JWT gateway through the running binary (issue 3): tokens minted by
// `edge token`, keys written by `edge token -genkey`, a real pod behind the
// edge, a real JWKS server on loopback, SIGHUP like an operator.

// jwKeySpecs are the keys every JWT test may use, generated once per test
// binary run (RSA generation is slow under -race): name, algorithm, kid.
var jwKeySpecs = [][3]string{
	{"hs256", "HS256", "hs256"},
	{"hs256b", "HS256", "hs"},
	{"hs384", "HS384", "hs384"},
	{"hs512", "HS512", "hs512"},
	{"rsa", "RS256", ""}, // one RSA key, bound to five algorithms under five kids
	{"ps512", "PS512", "ps512"},
	{"es256", "ES256", "es256"},
	{"es256b", "ES256", "es"},
	{"es384", "ES384", "es384"},
	{"es512", "ES512", "es512"},
	{"ed25519", "EdDSA", "ed25519"},
	{"ed448", "Ed448", ""},
	{"ed25519fs", "Ed25519", "ed25519fs"},
	{"ed448fs", "Ed448", "ed448fs"},
	{"mldsa44", "ML-DSA-44", "mldsa44"},
	{"mldsa65", "ML-DSA-65", "mldsa65"},
	{"mldsa87", "ML-DSA-87", "mldsa87"},
	{"r1", "ES256", "r1"},
	{"r2", "ES256", "r2"},
}

var (
	jwKeysOnce sync.Once
	jwKeysDir  string
	jwKeysErr  error
)

// jwKeys returns the folder holding PREFIX.key/.pub/.jwks.json for every
// jwKeySpecs entry. It lives beside the edge binary, so TestMain removes it.
func jwKeys(t *testing.T) string {
	t.Helper()
	jwKeysOnce.Do(func() {
		dir := filepath.Join(filepath.Dir(edgeBin), "jwt-keys")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			jwKeysErr = err
			return
		}
		var wg sync.WaitGroup
		errs := make([]error, len(jwKeySpecs))
		for i, s := range jwKeySpecs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				args := []string{"token", "-alg", s[1], "-genkey", filepath.Join(dir, s[0])}
				if s[2] != "" {
					args = append(args, "-kid", s[2])
				}
				if out, err := exec.Command(edgeBin, args...).CombinedOutput(); err != nil {
					errs[i] = fmt.Errorf("edge %s: %v\n%s", strings.Join(args, " "), err, out)
				}
			}()
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				jwKeysErr = err
				return
			}
		}
		jwKeysDir = dir
	})
	if jwKeysErr != nil {
		t.Fatal(jwKeysErr)
	}
	return jwKeysDir
}

// jwMint runs `edge token -alg alg -key keyFile args...`.
func jwMint(t *testing.T, alg, keyFile string, args ...string) string {
	t.Helper()
	all := append([]string{"token", "-alg", alg, "-key", keyFile}, args...)
	out, err := exec.Command(edgeBin, all...).Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("edge %s: %v\n%s", strings.Join(all, " "), err, stderr)
	}
	return strings.TrimSpace(string(out))
}

const (
	jwIssuer   = "https://issuer.test"
	jwAudience = "edge.test"
)

// jwForwarded are the forward_claims headers of the "all" policy, and a
// header a claim value might try to inject.
var jwForwarded = []string{"X-User-Id", "X-User-Scope", "X-Tenant", "X-Groups", "X-Injected"}

// jwPolicyAll is a policy with a key for every algorithm, loaded through
// hmac_secret_file, pem_file and jwks_file entries, each bound to one
// algorithm (the RSA key five times, under five kids).
func jwPolicyAll(k string) string {
	return fmt.Sprintf(`  all:
    keys:
      - {hmac_secret_file: "%[1]s/hs256.key", alg: HS256, kid: hs256}
      - {hmac_secret_file: "%[1]s/hs384.key", alg: HS384, kid: hs384}
      - {jwks_file: "%[1]s/hs512.jwks.json", alg: HS512}
      - {pem_file: "%[1]s/rsa.pub", alg: RS256, kid: rs256}
      - {pem_file: "%[1]s/rsa.pub", alg: RS384, kid: rs384}
      - {pem_file: "%[1]s/rsa.pub", alg: RS512, kid: rs512}
      - {pem_file: "%[1]s/rsa.pub", alg: PS256, kid: ps256}
      - {pem_file: "%[1]s/rsa.pub", alg: PS384, kid: ps384}
      - {jwks_file: "%[1]s/ps512.jwks.json", alg: PS512}
      - {pem_file: "%[1]s/es256.pub", alg: ES256, kid: es256}
      - {jwks_file: "%[1]s/es384.jwks.json"}
      - {pem_file: "%[1]s/es512.pub", alg: ES512, kid: es512}
      - {pem_file: "%[1]s/ed25519.pub", alg: EdDSA, kid: ed25519}
      - {pem_file: "%[1]s/ed448.pub", alg: EdDSA, kid: ed448-eddsa}
      - {jwks_file: "%[1]s/ed25519fs.jwks.json", alg: Ed25519}
      - {jwks_file: "%[1]s/ed448fs.jwks.json", alg: Ed448}
      - {pem_file: "%[1]s/mldsa44.pub", alg: ML-DSA-44, kid: mldsa44}
      - {jwks_file: "%[1]s/mldsa65.jwks.json", alg: ML-DSA-65}
      - {pem_file: "%[1]s/mldsa87.pub", alg: ML-DSA-87, kid: mldsa87}
    algorithms: [%[2]s]
    issuer: %[3]s
    audience: [%[4]s]
    leeway: 60s
    forward_claims: {sub: X-User-Id, scope: X-User-Scope, tenant: X-Tenant, groups: X-Groups}
`, k, strings.Join(jwt.Algorithms(), ", "), jwIssuer, jwAudience)
}

// jwPod is an upstream that counts requests and answers with what it
// received: the jwForwarded headers (every value of each), the decoded path
// and every Authorization value.
type jwPod struct {
	addr string
	hits atomic.Int64
}

type jwPodView struct {
	Headers map[string][]string
	Path    string
	Auth    []string
}

func jwStartPod(t *testing.T) *jwPod {
	p := &jwPod{}
	p.addr = startPod(t, "pod", func(w http.ResponseWriter, r *http.Request) {
		p.hits.Add(1)
		v := jwPodView{Headers: map[string][]string{}, Path: r.URL.Path, Auth: r.Header.Values("Authorization")}
		for _, h := range jwForwarded {
			if vals := r.Header.Values(h); len(vals) > 0 {
				v.Headers[h] = vals
			}
		}
		json.NewEncoder(w).Encode(v) //nolint:errcheck
	})
	return p
}

// jwWriteConfig writes an edge config with an admin listener, listener
// "web", pool "app" (pod), the given jwt policies and routes.
func jwWriteConfig(t *testing.T, tuning, pod, policies, routes string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "edge.yaml")
	writeConfig(t, path, fmt.Sprintf(`admin: 127.0.0.1:0
tuning: {%s}
listeners:
  - {name: web, address: "127.0.0.1:0"}
pools:
  app: {endpoints: ["%s"]}
jwt:
%sroutes:
%s`, tuning, pod, policies, routes))
	return path
}

type jwResp struct {
	code   int
	header http.Header
	body   []byte
}

func jwClient() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
}

// jwGet sends GET url with Authorization: auth (none when auth is "") and
// hdr, whose keys are sent exactly as written (so case variants go out).
func jwGet(t *testing.T, c *http.Client, url, auth string, hdr http.Header) jwResp {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if auth != "" {
		req.Header["Authorization"] = []string{auth}
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("GET %s: reading body: %v", url, err)
	}
	return jwResp{code: resp.StatusCode, header: resp.Header, body: b}
}

// jwView decodes the pod's answer.
func jwView(t *testing.T, body []byte) jwPodView {
	t.Helper()
	var v jwPodView
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("pod answer %q: %v", body, err)
	}
	return v
}

// jwSeen returns the forwarded headers the pod received.
func jwSeen(t *testing.T, r jwResp) map[string][]string {
	t.Helper()
	return jwView(t, r.body).Headers
}

// jwRaw sends req (a whole request head, written as is) on a new connection
// to addr and returns the response and its body.
func jwRaw(t *testing.T, addr, req string) (*http.Response, []byte) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second)) //nolint:errcheck
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("reading the answer to %q: %v", req, err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// jwCheckError checks the contract's error response: status, JSON
// Content-Type, {"error","message","request_id"} with the request ID also in
// X-Request-ID, and the WWW-Authenticate challenge for its code. It returns
// the request ID.
func jwCheckError(t *testing.T, what string, r jwResp, status int, code string) string {
	t.Helper()
	if r.code != status {
		t.Errorf("%s: status %d (%s), want %d %s", what, r.code, r.body, status, code)
		return ""
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("%s: Content-Type %q, want application/json", what, ct)
	}
	var body map[string]string
	if err := json.Unmarshal(r.body, &body); err != nil || len(body) != 3 || body["error"] != code || body["message"] == "" || body["request_id"] == "" {
		t.Errorf("%s: body %s (%v), want {\"error\":%q,\"message\":...,\"request_id\":...}", what, r.body, err, code)
	} else if got := r.header.Get("X-Request-ID"); got != body["request_id"] {
		t.Errorf("%s: X-Request-ID %q, body's request_id %q", what, got, body["request_id"])
	}
	www := r.header.Values("WWW-Authenticate")
	switch code {
	case "missing_token", "invalid_token", "insufficient_scope":
		// The contract's challenge: invalid_token for a missing token too.
		want := code
		if code == "missing_token" {
			want = "invalid_token"
		}
		prefix := `Bearer error="` + want + `", error_description="`
		if len(www) != 1 || !strings.HasPrefix(www[0], prefix) {
			t.Errorf("%s: WWW-Authenticate %q, want %s...", what, www, prefix)
		}
	default:
		if len(www) != 0 {
			t.Errorf("%s: WWW-Authenticate %q on a %d, want none", what, www, status)
		}
	}
	return r.header.Get("X-Request-ID")
}

var jwLabelRE = regexp.MustCompile(`(\w+)="([^"]*)"`)

// jwRejections returns edge_jwt_rejections_total of policy by reason.
func jwRejections(t *testing.T, e *proc, policy string) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + e.addr("admin") + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, line := range strings.Split(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, "edge_jwt_rejections_total{")
		if !ok {
			continue
		}
		labels, value, ok := strings.Cut(rest, "} ")
		if !ok {
			continue
		}
		l := map[string]string{}
		for _, m := range jwLabelRE.FindAllStringSubmatch(labels, -1) {
			l[m[1]] = m[2]
		}
		if l["policy"] != policy {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		got[l["reason"]] = v
	}
	return got
}

// jwEventually polls cond every interval, at most timeout/interval times.
func jwEventually(timeout, interval time.Duration, cond func() bool) bool {
	for range int(timeout / interval) {
		if cond() {
			return true
		}
		time.Sleep(interval)
	}
	return cond()
}

// jwLogLine reports whether one of e's log lines holds every part.
func jwLogLine(e *proc, parts ...string) bool {
	for _, line := range strings.Split(e.logText(), "\n") {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			return true
		}
	}
	return false
}

func jwB64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// jwHMAC signs the exact segments header.payload with HMAC-SHA256.
func jwHMAC(secret []byte, header, payload string) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(header + "." + payload))
	return header + "." + payload + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// jwHS256 signs header and claims JSON, as written, with HMAC-SHA256.
func jwHS256(secret []byte, header, claims string) string {
	return jwHMAC(secret, jwB64(header), jwB64(claims))
}

func jwReadSecret(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return jwt.ParseHMACSecret(b)
}

// TestJWTEveryAlgorithmReachesPodWithClaims: a valid token of every
// algorithm passes, its claims reach the pod as headers, and client copies of
// those headers never do.
func TestJWTEveryAlgorithmReachesPodWithClaims(t *testing.T) {
	t.Parallel()
	k := jwKeys(t)
	pod := jwStartPod(t)
	path := jwWriteConfig(t, "max_header_bytes: 16384", pod.addr, jwPolicyAll(k), `  - {prefix: /api/, pool: app, jwt: all}
`)
	e := startEdge(t, path)
	c := jwClient()
	url := "http://" + e.addr("web") + "/api/x"

	type valid struct{ alg, key, kid string }
	cases := []valid{
		{"HS256", "hs256", "hs256"}, {"HS384", "hs384", "hs384"}, {"HS512", "hs512", "hs512"},
		{"RS256", "rsa", "rs256"}, {"RS384", "rsa", "rs384"}, {"RS512", "rsa", "rs512"},
		{"PS256", "rsa", "ps256"}, {"PS384", "rsa", "ps384"}, {"PS512", "ps512", "ps512"},
		{"ES256", "es256", "es256"}, {"ES384", "es384", "es384"}, {"ES512", "es512", "es512"},
		{"EdDSA", "ed25519", "ed25519"}, {"EdDSA", "ed448", "ed448-eddsa"},
		{"Ed25519", "ed25519fs", "ed25519fs"}, {"Ed448", "ed448fs", "ed448fs"},
		{"ML-DSA-44", "mldsa44", "mldsa44"}, {"ML-DSA-65", "mldsa65", "mldsa65"}, {"ML-DSA-87", "mldsa87", "mldsa87"},
		// Without a kid the token tries every key bound to its alg.
		{"HS256", "hs256", ""}, {"EdDSA", "ed448", ""}, {"ES256", "es256", ""}, {"PS384", "rsa", ""},
	}
	covered := map[string]bool{}
	for _, v := range cases {
		covered[v.alg] = true
	}
	for _, alg := range jwt.Algorithms() {
		if !covered[alg] {
			t.Errorf("l7/jwt verifies %s but no token of it is tried here", alg)
		}
	}
	tokens := map[string]string{}
	for _, v := range cases {
		name := v.alg + "/" + v.key
		if v.kid == "" {
			name += "/no-kid"
		}
		t.Run(name, func(t *testing.T) {
			sub := "user-" + strings.ReplaceAll(name, "/", "-")
			args := []string{"-sub", sub, "-aud", jwAudience, "-iss", jwIssuer, "-scope", "app:read app:write",
				"-claim", "tenant=acme", "-claim", `groups=["ops","dev"]`}
			if v.kid != "" {
				args = append(args, "-kid", v.kid)
			}
			tok := jwMint(t, v.alg, filepath.Join(k, v.key+".key"), args...)
			tokens[name] = tok
			before := pod.hits.Load()
			// Twice: the second time asymmetric tokens come from the verified-token cache.
			for i := range 2 {
				r := jwGet(t, c, url, "Bearer "+tok, nil)
				if r.code != 200 {
					t.Fatalf("try %d: %d %s (WWW-Authenticate %q), want 200", i, r.code, r.body, r.header.Get("WWW-Authenticate"))
				}
				want := map[string][]string{
					"X-User-Id": {sub}, "X-User-Scope": {"app:read app:write"}, "X-Tenant": {"acme"}, "X-Groups": {"ops dev"},
				}
				if got := jwSeen(t, r); fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("try %d: pod saw %v, want %v", i, got, want)
				}
			}
			if got := pod.hits.Load() - before; got != 2 {
				t.Errorf("pod served %d requests, want 2", got)
			}
		})
	}
	// The scheme name is case-insensitive (RFC 9110 §11.1).
	if r := jwGet(t, c, url, "bearer "+tokens["EdDSA/ed25519"], nil); r.code != 200 {
		t.Errorf("lowercase bearer scheme: %d %s, want 200", r.code, r.body)
	}

	t.Run("client copies of claim headers are removed", func(t *testing.T) {
		alice := jwMint(t, "EdDSA", filepath.Join(k, "ed25519.key"), "-kid", "ed25519", "-sub", "alice",
			"-aud", jwAudience, "-iss", jwIssuer, "-scope", "app:read")
		spoof := http.Header{
			"X-User-Id":    {"admin", "root"},
			"x-user-id":    {"lowercase-admin"},
			"X-USER-SCOPE": {"admin:write"},
			"X-Tenant":     {"evil"},
			"x-groups":     {"wheel"},
		}
		r := jwGet(t, c, url, "Bearer "+alice, spoof)
		if r.code != 200 {
			t.Fatalf("alice with spoofed headers: %d %s, want 200", r.code, r.body)
		}
		// alice's token has no tenant or groups: those headers must be gone, not kept.
		want := map[string][]string{"X-User-Id": {"alice"}, "X-User-Scope": {"app:read"}}
		if got := jwSeen(t, r); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("pod saw %v, want %v", got, want)
		}
		before := pod.hits.Load()
		jwCheckError(t, "spoofed headers without a token", jwGet(t, c, url, "", spoof), 401, "missing_token")
		if got := pod.hits.Load(); got != before {
			t.Errorf("a request without a token reached the pod")
		}
	})

	// Claim values become header values only when they are valid field values
	// (RFC 9110 §5.5): no header line can be injected through a claim.
	t.Run("claim values", func(t *testing.T) {
		hs := jwReadSecret(t, filepath.Join(k, "hs256.key"))
		exp := time.Now().Unix() + 600
		for _, v := range []struct {
			name, extra string
			want        map[string][]string
		}{
			{"CRLF in sub", `"sub":"alice\r\nX-Injected: 1"`, map[string][]string{}},
			{"LF in tenant", `"sub":"bob","tenant":"acme\nX-Injected: 1"`, map[string][]string{"X-User-Id": {"bob"}}},
			{"NUL in sub", `"sub":"al\u0000ice"`, map[string][]string{}},
			{"number and boolean", `"sub":"carol","tenant":42,"groups":true`, map[string][]string{"X-User-Id": {"carol"}, "X-Tenant": {"42"}, "X-Groups": {"true"}}},
			{"array holding a non-string, object", `"sub":"dave","groups":["a",1],"tenant":{"id":"acme"}`, map[string][]string{"X-User-Id": {"dave"}}},
			{"escaped text", `"sub":"\u0065ve","scope":"a\/b c"`, map[string][]string{"X-User-Id": {"eve"}, "X-User-Scope": {"a/b c"}}},
		} {
			tok := jwHS256(hs, `{"alg":"HS256","kid":"hs256"}`, fmt.Sprintf(`{%s,"iss":%q,"aud":%q,"exp":%d}`, v.extra, jwIssuer, jwAudience, exp))
			r := jwGet(t, c, url, "Bearer "+tok, http.Header{"X-Tenant": {"spoofed"}})
			if r.code != 200 {
				t.Errorf("%s: %d %s, want 200", v.name, r.code, r.body)
				continue
			}
			if got := jwSeen(t, r); fmt.Sprint(got) != fmt.Sprint(v.want) {
				t.Errorf("%s: pod saw %v, want %v", v.name, got, v.want)
			}
		}
	})

	// ML-DSA-87 tokens are over 6 KB; the 16 KiB head limit above admits them
	// (shown by the subtest), a 4 KiB one does not: 431 before any JWT work.
	t.Run("small max_header_bytes", func(t *testing.T) {
		small := startEdge(t, path, "-max-header-bytes", "4096")
		url := "http://" + small.addr("web") + "/api/x"
		big := tokens["ML-DSA-87/mldsa87"]
		if len(big) < 6000 {
			t.Fatalf("ML-DSA-87 token is %d bytes, expected over 6000", len(big))
		}
		before := pod.hits.Load()
		jwCheckError(t, fmt.Sprintf("%d-byte ML-DSA-87 token under a 4096-byte head limit", len(big)),
			jwGet(t, jwClient(), url, "Bearer "+big, nil), 431, "headers_too_large")
		if pod.hits.Load() != before {
			t.Error("a 431 request reached the pod")
		}
		if r := jwGet(t, jwClient(), url, "Bearer "+tokens["ML-DSA-44/mldsa44"], nil); r.code != 200 {
			t.Errorf("%d-byte ML-DSA-44 token under a 4096-byte head limit: %d %s, want 200", len(tokens["ML-DSA-44/mldsa44"]), r.code, r.body)
		}
	})
}

// TestJWTAttacksAreRejected: every attack of the table gets 401
// invalid_token (a missing token 401 missing_token, a missing scope 403),
// never reaches the pod, is counted by reason, and never reaches a log.
func TestJWTAttacksAreRejected(t *testing.T) {
	t.Parallel()
	k := jwKeys(t)
	pod := jwStartPod(t)
	// 64 KiB heads, so the oversized token reaches the verifier (16 KiB cap).
	path := jwWriteConfig(t, "max_header_bytes: 65536", pod.addr, jwPolicyAll(k), `  - {prefix: /api/, pool: app, jwt: all}
  - {prefix: /admin/, pool: app, jwt: all, scopes: [admin:write]}
`)
	accessLog := filepath.Join(t.TempDir(), "access.log")
	e := startEdge(t, path, "-access-log", accessLog)
	c := jwClient()
	base := "http://" + e.addr("web")

	hs := jwReadSecret(t, filepath.Join(k, "hs256.key"))
	rsaPub, err := os.ReadFile(filepath.Join(k, "rsa.pub"))
	if err != nil {
		t.Fatal(err)
	}
	edPub, err := os.ReadFile(filepath.Join(k, "ed25519.pub"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().Unix()
	claims := func(extra string) string {
		s := fmt.Sprintf(`{"sub":"mallory","iss":%q,"aud":%q,"exp":%d`, jwIssuer, jwAudience, now+600)
		if extra != "" {
			s += "," + extra
		}
		return s + "}"
	}
	hsHdr := `{"alg":"HS256","kid":"hs256"}`
	std := []string{"-aud", jwAudience, "-iss", jwIssuer}
	mint := func(alg, key string, args ...string) string {
		return jwMint(t, alg, filepath.Join(k, key+".key"), append(slices.Clone(std), args...)...)
	}
	edAlice := mint("EdDSA", "ed25519", "-kid", "ed25519", "-sub", "alice")
	edMallory := mint("EdDSA", "ed25519", "-kid", "ed25519", "-sub", "mallory", "-scope", "admin:write")
	rsAlice := mint("RS256", "rsa", "-kid", "rs256", "-sub", "alice")
	rsMallory := mint("RS256", "rsa", "-kid", "rs256", "-sub", "mallory", "-scope", "admin:write")
	esGood := mint("ES256", "es256", "-kid", "es256", "-sub", "alice")
	swap := func(a, b string) string {
		pa, pb := strings.Split(a, "."), strings.Split(b, ".")
		return pa[0] + "." + pb[1] + "." + pa[2]
	}
	// The valid originals first, so the asymmetric ones sit in the verified-token cache
	// when their tampered copies arrive.
	var sent []string // every credential sent, to look for in the logs
	requests := 0
	for _, tok := range []string{edAlice, rsAlice, esGood} {
		sent = append(sent, tok)
		requests++
		if r := jwGet(t, c, base+"/api/x", "Bearer "+tok, nil); r.code != 200 {
			t.Fatalf("valid token: %d %s", r.code, r.body)
		}
	}

	// A payload whose base64url needs '-' or '_', to resend in the standard alphabet.
	var stdAlphabet string
	for n := range 64 {
		p := jwB64(claims(fmt.Sprintf(`"pad":"%s"`, strings.Repeat("?>", n+1))))
		if strings.ContainsAny(p, "-_") {
			p = strings.NewReplacer("-", "+", "_", "/").Replace(p)
			stdAlphabet = jwHMAC(hs, jwB64(hsHdr), p)
			break
		}
	}
	if stdAlphabet == "" {
		t.Fatal("no payload needed '-' or '_' in base64url")
	}
	good := jwHS256(hs, hsHdr, claims(""))
	goodParts := strings.Split(good, ".")
	esParts := strings.Split(esGood, ".")
	mid := len(esParts[2]) / 2
	flip := byte('A')
	if esParts[2][mid] == 'A' {
		flip = 'B'
	}
	esTampered := esParts[0] + "." + esParts[1] + "." + esParts[2][:mid] + string(flip) + esParts[2][mid+1:]
	none := func(alg, sig string) string {
		return jwB64(fmt.Sprintf(`{"alg":%q,"typ":"JWT"}`, alg)) + "." + jwB64(claims("")) + "." + sig
	}
	hdrPadded := jwB64(hsHdr) // 29 bytes of JSON: one '=' of padding in base64
	if len(hdrPadded)%4 == 0 {
		t.Fatalf("header %s needs no padding", hsHdr)
	}
	hdrPadded += strings.Repeat("=", 4-len(hdrPadded)%4)

	attacks := []struct{ name, token, reason string }{
		{"alg none", none("none", ""), "alg_not_allowed"},
		{"alg None", none("None", ""), "alg_not_allowed"},
		{"alg NONE", none("NONE", ""), "alg_not_allowed"},
		{"alg nOnE", none("nOnE", ""), "alg_not_allowed"},
		{"alg none with a signature", none("none", goodParts[2]), "alg_not_allowed"},
		{"alg none with the HS256 key's kid", jwB64(`{"alg":"none","kid":"hs256"}`) + "." + jwB64(claims("")) + ".", "alg_not_allowed"},
		{"no alg", jwHS256(hs, `{"kid":"hs256"}`, claims("")), "alg_not_allowed"},
		{"HS256 keyed with the RSA public key, RSA kid", jwHS256(rsaPub, `{"alg":"HS256","kid":"rs256"}`, claims("")), "alg_mismatch"},
		{"HS256 keyed with the RSA public key, no kid", jwHS256(rsaPub, `{"alg":"HS256"}`, claims("")), "bad_signature"},
		{"HS256 keyed with the RSA public key minus newline", jwHS256([]byte(strings.TrimSpace(string(rsaPub))), `{"alg":"HS256","kid":"rs256"}`, claims("")), "alg_mismatch"},
		{"HS256 keyed with the Ed25519 public key", jwHS256(edPub, `{"alg":"HS256","kid":"ed25519"}`, claims("")), "alg_mismatch"},
		{"swapped payload, EdDSA", swap(edAlice, edMallory), "bad_signature"},
		{"swapped payload, RS256 (original cached)", swap(rsAlice, rsMallory), "bad_signature"},
		{"tampered ES256 signature (original cached)", esTampered, "bad_signature"},
		{"HS256 signed with another secret", jwHS256([]byte(strings.Repeat("k", 64)), hsHdr, claims("")), "bad_signature"},
		{"expired, minted by edge token", mint("HS256", "hs256", "-kid", "hs256", "-sub", "mallory", "-ttl", "-2m"), "expired"},
		{"no exp", jwHS256(hs, hsHdr, fmt.Sprintf(`{"sub":"mallory","iss":%q,"aud":%q}`, jwIssuer, jwAudience)), "missing_exp"},
		{"exp as a string", jwHS256(hs, hsHdr, fmt.Sprintf(`{"sub":"mallory","iss":%q,"aud":%q,"exp":"%d"}`, jwIssuer, jwAudience, now+600)), "bad_date"},
		{"wrong iss", jwHS256(hs, hsHdr, fmt.Sprintf(`{"sub":"mallory","iss":"https://evil.test","aud":%q,"exp":%d}`, jwAudience, now+600)), "bad_issuer"},
		{"no iss", jwHS256(hs, hsHdr, fmt.Sprintf(`{"sub":"mallory","aud":%q,"exp":%d}`, jwAudience, now+600)), "bad_issuer"},
		{"wrong aud", jwHS256(hs, hsHdr, fmt.Sprintf(`{"sub":"mallory","iss":%q,"aud":"evil.test","exp":%d}`, jwIssuer, now+600)), "bad_audience"},
		{"wrong aud array", jwHS256(hs, hsHdr, fmt.Sprintf(`{"sub":"mallory","iss":%q,"aud":["evil.test","edge.test.evil"],"exp":%d}`, jwIssuer, now+600)), "bad_audience"},
		{"wrong aud, minted by edge token", mint("ES256", "es256", "-kid", "es256", "-sub", "mallory", "-aud", "evil.test"), "bad_audience"},
		{"unknown kid", jwHS256(hs, `{"alg":"HS256","kid":"nope"}`, claims("")), "unknown_kid"},
		{"RS256 signed by the RSA key, kid of its PS256 binding", mint("RS256", "rsa", "-kid", "ps256", "-sub", "mallory"), "alg_mismatch"},
		{"ES384 token, kid of the ES256 key", mint("ES384", "es384", "-kid", "es256", "-sub", "mallory"), "alg_mismatch"},
		{"HS256 token, kid of the HS384 key", jwHS256(jwReadSecret(t, filepath.Join(k, "hs384.key")), `{"alg":"HS256","kid":"hs384"}`, claims("")), "alg_mismatch"},
		{"crit", jwHS256(hs, `{"alg":"HS256","kid":"hs256","crit":["exp"]}`, claims("")), "crit"},
		{"crit naming an extension", jwHS256(hs, `{"alg":"HS256","kid":"hs256","crit":["urn:x"],"urn:x":1}`, claims("")), "crit"},
		{"b64 false with crit", jwHS256(hs, `{"alg":"HS256","kid":"hs256","b64":false,"crit":["b64"]}`, claims("")), "crit"},
		{"b64 false", jwHS256(hs, `{"alg":"HS256","kid":"hs256","b64":false}`, claims("")), "b64"},
		{"padded header", jwHMAC(hs, hdrPadded, jwB64(claims(""))), "malformed"},
		{"padded signature", good + "=", "malformed"},
		{"standard base64 alphabet", stdAlphabet, "malformed"},
		{"duplicate sub", jwHS256(hs, hsHdr, claims(`"sub":"admin"`)), "duplicate_member"},
		{"duplicate sub, escaped", jwHS256(hs, hsHdr, claims(`"s\u0075b":"admin"`)), "duplicate_member"},
		{"duplicate exp", jwHS256(hs, hsHdr, claims(fmt.Sprintf(`"exp":%d`, now+999999))), "duplicate_member"},
		{"duplicate alg", jwHS256(hs, `{"alg":"HS256","kid":"hs256","alg":"none"}`, claims("")), "duplicate_member"},
		{"oversized", jwHS256(hs, hsHdr, claims(fmt.Sprintf(`"pad":"%s"`, strings.Repeat("a", 17<<10)))), "oversized"},
		{"garbage", "garbage-garbage-garbage", "malformed"},
		{"two segments", goodParts[0] + "." + goodParts[1], "malformed"},
		{"four segments", good + ".x", "malformed"},
		{"five segments (JWE shape)", "eyJhbGciOiJSU0EtT0FFUCJ9.a.b.c.d", "malformed"},
		{"dots only", "..", "malformed"},
		{"header not base64url", "!!!." + goodParts[1] + "." + goodParts[2], "malformed"},
		{"header not JSON", jwHMAC(hs, jwB64("not json at all"), goodParts[1]), "malformed"},
		{"header a JSON array", jwHMAC(hs, jwB64(`["HS256"]`), goodParts[1]), "not_object"},
		{"claims JSON null", jwHS256(hs, hsHdr, "null"), "not_object"},
		{"space inside the token", goodParts[0] + "." + goodParts[1] + " " + goodParts[2], "malformed"},
	}
	want := map[string]float64{}
	byID := map[string][2]string{} // request ID -> attack, reason
	for _, a := range attacks {
		t.Run(a.name, func(t *testing.T) {
			sent = append(sent, a.token)
			requests++
			want[a.reason]++
			before := pod.hits.Load()
			id := jwCheckError(t, a.name, jwGet(t, c, base+"/api/x", "Bearer "+a.token, nil), 401, "invalid_token")
			byID[id] = [2]string{a.name, a.reason}
			if pod.hits.Load() != before {
				t.Errorf("%s reached the pod", a.name)
			}
		})
	}

	// The leeway (60s) edges, 10s to either side; each token is signed just
	// before it is sent, so only a 10s stall between the two could flip one.
	for _, v := range []struct {
		name   string
		claims func(now int64) string
		reason string // "" for 200
	}{
		{"exp 50s ago", func(n int64) string {
			return fmt.Sprintf(`{"sub":"lee","iss":%q,"aud":%q,"exp":%d}`, jwIssuer, jwAudience, n-50)
		}, ""},
		{"exp 70s ago", func(n int64) string {
			return fmt.Sprintf(`{"sub":"lee","iss":%q,"aud":%q,"exp":%d}`, jwIssuer, jwAudience, n-70)
		}, "expired"},
		{"nbf in 50s", func(n int64) string { return claims(fmt.Sprintf(`"nbf":%d`, n+50)) }, ""},
		{"nbf in 70s", func(n int64) string { return claims(fmt.Sprintf(`"nbf":%d`, n+70)) }, "not_yet_valid"},
		{"iat in 50s", func(n int64) string { return claims(fmt.Sprintf(`"iat":%d`, n+50)) }, ""},
		{"iat in 70s", func(n int64) string { return claims(fmt.Sprintf(`"iat":%d`, n+70)) }, "issued_in_future"},
		{"aud array holding ours", func(n int64) string {
			return fmt.Sprintf(`{"sub":"lee","iss":%q,"aud":["other",%q],"exp":%d}`, jwIssuer, jwAudience, n+600)
		}, ""},
	} {
		tok := jwHS256(hs, hsHdr, v.claims(time.Now().Unix()))
		sent = append(sent, tok)
		requests++
		r := jwGet(t, c, base+"/api/x", "Bearer "+tok, nil)
		if v.reason == "" {
			if r.code != 200 {
				t.Errorf("%s: %d %s, want 200", v.name, r.code, r.body)
			}
			continue
		}
		want[v.reason]++
		byID[jwCheckError(t, v.name, r, 401, "invalid_token")] = [2]string{v.name, v.reason}
	}

	for _, m := range []struct{ name, auth string }{
		{"no Authorization", ""},
		{"empty bearer", "Bearer "},
		{"Basic scheme", "Basic YWxpY2U6c2VjcmV0"},
		{"token without a scheme", good},
	} {
		sent = append(sent, m.auth)
		requests++
		want["missing_token"]++
		before := pod.hits.Load()
		id := jwCheckError(t, m.name, jwGet(t, c, base+"/api/x", m.auth, nil), 401, "missing_token")
		byID[id] = [2]string{m.name, "missing_token"}
		if pod.hits.Load() != before {
			t.Errorf("%s reached the pod", m.name)
		}
	}

	// Scopes: alice has none, a scope string without admin:write, mallory has it; scp arrays count too.
	for _, s := range []struct {
		name, token string
		ok          bool
	}{
		{"no scope claim", edAlice, false},
		{"scope without admin:write", mint("ES256", "es256", "-kid", "es256", "-sub", "bob", "-scope", "admin:read app:write"), false},
		{"scope admin:write", edMallory, true},
		{"scp array with admin:write", mint("HS256", "hs256", "-kid", "hs256", "-sub", "carol", "-claim", `scp=["x","admin:write"]`), true},
		// scope, when present, is the token's scopes; scp is not added to it.
		{"scope without admin:write, scp with it", mint("HS256", "hs256", "-kid", "hs256", "-sub", "dan", "-scope", "app:read", "-claim", `scp=["admin:write"]`), false},
	} {
		sent = append(sent, s.token)
		requests++
		before := pod.hits.Load()
		r := jwGet(t, c, base+"/admin/panel", "Bearer "+s.token, nil)
		if s.ok {
			if r.code != 200 {
				t.Errorf("%s on a route needing admin:write: %d %s, want 200", s.name, r.code, r.body)
			}
			continue
		}
		want["insufficient_scope"]++
		byID[jwCheckError(t, s.name, r, 403, "insufficient_scope")] = [2]string{s.name, "insufficient_scope"}
		if www := r.header.Get("WWW-Authenticate"); !strings.HasSuffix(www, `, scope="admin:write"`) {
			t.Errorf("%s: WWW-Authenticate %q does not name the required scope", s.name, www)
		}
		if pod.hits.Load() != before {
			t.Errorf("%s reached the pod", s.name)
		}
	}

	if got := jwRejections(t, e, "all"); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("edge_jwt_rejections_total{policy=\"all\"} by reason:\n got %v\nwant %v", got, want)
	}

	// The access log has one line per request, with the rejection reason, and
	// no credential; neither has edge's own log.
	var lines []string
	jwEventually(5*time.Second, 50*time.Millisecond, func() bool {
		b, _ := os.ReadFile(accessLog)
		lines = strings.Split(strings.TrimSpace(string(b)), "\n")
		return len(lines) >= requests
	})
	if len(lines) != requests {
		t.Errorf("access log has %d lines, want %d (one per request)", len(lines), requests)
	}
	reasons := map[string]float64{}
	for _, line := range lines {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("access log line %q: %v", line, err)
			continue
		}
		reason, _ := rec["reason"].(string)
		if reason != "" {
			reasons[reason]++
		}
		id, _ := rec["request_id"].(string)
		if a, ok := byID[id]; ok && reason != a[1] {
			t.Errorf("%s: access log reason %q, want %q", a[0], reason, a[1])
		}
		if rec["status"] == float64(200) && rec["jwt_sub"] == nil {
			t.Errorf("access log line for a 200 has no jwt_sub: %s", line)
		}
	}
	if fmt.Sprint(reasons) != fmt.Sprint(want) {
		t.Errorf("access log reasons:\n got %v\nwant %v", reasons, want)
	}
	logs := map[string]string{"access log": strings.Join(lines, "\n"), "edge log": e.logText()}
	for name, text := range logs {
		for _, cred := range sent {
			// Every segment of a token is a secret's part worth hiding; short
			// garbage like ".." could match by accident.
			for _, seg := range strings.FieldsFunc(cred, func(r rune) bool { return r == '.' || r == ' ' }) {
				if len(seg) >= 16 && strings.Contains(text, seg) {
					t.Errorf("%s contains a credential fragment %.24s...", name, seg)
				}
			}
		}
		if strings.Contains(text, "Bearer") || strings.Contains(text, "eyJ") {
			t.Errorf("%s contains an Authorization value or a JWT header", name)
		}
	}
}

// jwJWKSServer serves a JWK Set on loopback: "down" answers nothing (each
// connection is closed unanswered), "up" serves the current set.
type jwJWKSServer struct {
	ln    net.Listener
	srv   *http.Server
	up    atomic.Bool
	jwks  atomic.Pointer[[]byte]
	tries atomic.Int64
}

func jwStartJWKSServer(t *testing.T) *jwJWKSServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &jwJWKSServer{ln: ln}
	s.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.tries.Add(1)
		if !s.up.Load() {
			if c, _, err := http.NewResponseController(w).Hijack(); err == nil {
				c.Close()
			}
			return
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Write(*s.jwks.Load()) //nolint:errcheck
	})}
	go s.srv.Serve(ln) //nolint:errcheck
	t.Cleanup(func() { s.srv.Close() })
	return s
}

func (s *jwJWKSServer) serve(t *testing.T, files ...string) {
	t.Helper()
	var keys []json.RawMessage
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var set struct{ Keys []json.RawMessage }
		if err := json.Unmarshal(b, &set); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, set.Keys...)
	}
	b, err := json.Marshal(map[string]any{"keys": keys})
	if err != nil {
		t.Fatal(err)
	}
	s.jwks.Store(&b)
	s.up.Store(true)
}

// TestJWTJWKSURLRotationAndOutage: a route whose keys come only from a JWKS
// URL answers 503 until the first fetch, then verifies, follows a key
// rotation, and keeps the fetched keys when the server goes away.
func TestJWTJWKSURLRotationAndOutage(t *testing.T) {
	t.Parallel()
	k := jwKeys(t)
	pod := jwStartPod(t)
	js := jwStartJWKSServer(t)
	jwksURL := "http://" + js.ln.Addr().String() + "/.well-known/jwks.json"
	path := jwWriteConfig(t, "", pod.addr, fmt.Sprintf(`  remote:
    keys: [{jwks_url: "%[1]s", refresh: 1s}]
  mixed:
    keys:
      - {jwks_url: "%[1]s", refresh: 1s}
      - {pem_file: "%[2]s/ed25519.pub", alg: EdDSA, kid: ed25519}
`, jwksURL, k), `  - {prefix: /remote/, pool: app, jwt: remote}
  - {prefix: /mixed/, pool: app, jwt: mixed}
`)
	e := startEdge(t, path)
	c := jwClient()
	remote := "http://" + e.addr("web") + "/remote/x"
	get := func(tok string) jwResp { return jwGet(t, c, remote, "Bearer "+tok, nil) }
	r1 := jwMint(t, "ES256", filepath.Join(k, "r1.key"), "-kid", "r1", "-sub", "r1-user")
	r2 := jwMint(t, "ES256", filepath.Join(k, "r2.key"), "-kid", "r2", "-sub", "r2-user")
	ed := jwMint(t, "EdDSA", filepath.Join(k, "ed25519.key"), "-kid", "ed25519", "-sub", "static")

	// Down and never answered: 503 jwks_unavailable, not 401.
	if !jwEventually(10*time.Second, 20*time.Millisecond, func() bool { return js.tries.Load() > 0 }) {
		t.Fatal("edge never tried the JWKS URL")
	}
	jwCheckError(t, "JWKS never fetched", get(r1), 503, "jwks_unavailable")
	if pod.hits.Load() != 0 {
		t.Error("a 503 jwks_unavailable request reached the pod")
	}
	// A policy that also has a static key still serves tokens of that key.
	if r := jwGet(t, c, "http://"+e.addr("web")+"/mixed/x", "Bearer "+ed, nil); r.code != 200 {
		t.Errorf("static key of a policy whose JWKS is down: %d %s, want 200", r.code, r.body)
	}
	jwCheckError(t, "JWKS key on the mixed policy before the first fetch", jwGet(t, c, "http://"+e.addr("web")+"/mixed/x", "Bearer "+r1, nil), 503, "jwks_unavailable")
	if got := jwRejections(t, e, "remote")["jwks_unavailable"]; got != 1 {
		t.Errorf(`edge_jwt_rejections_total{policy="remote",reason="jwks_unavailable"} = %v, want 1`, got)
	}

	// Up: the failed fetch is retried (1s backoff while it has never worked).
	js.serve(t, filepath.Join(k, "r1.jwks.json"))
	var last jwResp
	if !jwEventually(15*time.Second, 100*time.Millisecond, func() bool { last = get(r1); return last.code == 200 }) {
		t.Fatalf("r1 token after the JWKS server came up: %d %s, want 200", last.code, last.body)
	}
	if got := jwSeen(t, last); fmt.Sprint(got) != fmt.Sprint(map[string][]string{}) {
		t.Errorf("pod saw %v, want no forwarded claims (policy has none)", got)
	}

	// Rotation: r2 in, r1 out. Until the edge refetches (refresh: 1s) r2 is
	// an unknown kid: 401, not 503, since keys were fetched once.
	js.serve(t, filepath.Join(k, "r2.jwks.json"))
	if r := get(r2); r.code != 200 {
		jwCheckError(t, "r2 before the edge refetched", r, 401, "invalid_token")
	}
	if !jwEventually(25*time.Second, 200*time.Millisecond, func() bool { last = get(r2); return last.code == 200 }) {
		t.Fatalf("r2 token after rotation: %d %s, want 200", last.code, last.body)
	}
	// r1's token was verified (and cached) before; its key is gone now.
	jwCheckError(t, "r1 after its key left the JWKS", get(r1), 401, "invalid_token")
	if got := jwRejections(t, e, "remote")["unknown_kid"]; got < 1 {
		t.Errorf(`edge_jwt_rejections_total{policy="remote",reason="unknown_kid"} = %v, want at least 1 (r1 after rotation)`, got)
	}

	// The server fails: the fetched key stays in use, for a token never
	// seen before too (no cache can answer for it).
	js.srv.Close()
	if !jwEventually(25*time.Second, 100*time.Millisecond, func() bool {
		return jwLogLine(e, `"policy":"remote"`, "keeping 1 keys")
	}) {
		t.Fatalf("no failed refresh logged after the JWKS server closed:\n%s", e.logText())
	}
	if r := get(r2); r.code != 200 {
		t.Errorf("cached r2 token while the JWKS server is down: %d %s, want 200", r.code, r.body)
	}
	fresh := jwMint(t, "ES256", filepath.Join(k, "r2.key"), "-kid", "r2", "-sub", "fresh")
	if r := get(fresh); r.code != 200 {
		t.Errorf("new r2 token while the JWKS server is down: %d %s, want 200", r.code, r.body)
	} else if got := jwSeen(t, r); len(got) != 0 {
		t.Errorf("pod saw %v", got)
	}

	// A reload while the server is down keeps the fetched keys (no 503).
	e.signal(syscall.SIGHUP)
	if !e.waitLog("configuration reloaded") {
		t.Fatalf("no reload after SIGHUP:\n%s", e.logText())
	}
	fresh = jwMint(t, "ES256", filepath.Join(k, "r2.key"), "-kid", "r2", "-sub", "after-reload")
	if r := get(fresh); r.code != 200 {
		t.Errorf("new r2 token after a reload with the JWKS server down: %d %s, want 200", r.code, r.body)
	}

	t.Run("jwks_url must be https except to loopback", func(t *testing.T) {
		bad := jwWriteConfig(t, "", pod.addr, `  remote:
    keys: [{jwks_url: "http://auth.example.com/jwks.json"}]
`, `  - {prefix: /, pool: app, jwt: remote}
`)
		out, err := exec.Command(edgeBin, "check", "-config", bad).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "must be https") {
			t.Errorf("edge check of a plain-http non-loopback jwks_url: %v\n%s", err, out)
		}
	})
}

// TestJWTSIGHUPReReadsKeyFiles: replaced hmac_secret_file and pem_file
// contents take effect on SIGHUP; a broken file fails the reload and keeps
// the keys in use.
func TestJWTSIGHUPReReadsKeyFiles(t *testing.T) {
	t.Parallel()
	k := jwKeys(t)
	pod := jwStartPod(t)
	dir := t.TempDir()
	secretFile, pemFile := filepath.Join(dir, "hs.secret"), filepath.Join(dir, "es.pub")
	copyFile := func(from, to string) {
		t.Helper()
		b, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(to, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	copyFile(filepath.Join(k, "hs256.key"), secretFile)
	copyFile(filepath.Join(k, "es256.pub"), pemFile)
	path := jwWriteConfig(t, "", pod.addr, fmt.Sprintf(`  hup:
    keys:
      - {hmac_secret_file: "%s", alg: HS256, kid: hs}
      - {pem_file: "%s", alg: ES256, kid: es}
    forward_claims: {sub: X-User-Id}
`, secretFile, pemFile), `  - {prefix: /, pool: app, jwt: hup}
`)
	e := startEdge(t, path)
	c := jwClient()
	url := "http://" + e.addr("web") + "/x"
	oldHS := jwMint(t, "HS256", filepath.Join(k, "hs256.key"), "-kid", "hs", "-sub", "old-hs")
	oldES := jwMint(t, "ES256", filepath.Join(k, "es256.key"), "-kid", "es", "-sub", "old-es")
	newHS := jwMint(t, "HS256", filepath.Join(k, "hs256b.key"), "-kid", "hs", "-sub", "new-hs")
	newES := jwMint(t, "ES256", filepath.Join(k, "es256b.key"), "-kid", "es", "-sub", "new-es")
	expect := func(when string, tokens map[string]int) {
		t.Helper()
		for _, name := range []string{"oldHS", "oldES", "newHS", "newES"} {
			code, ok := tokens[name]
			if !ok {
				continue
			}
			tok := map[string]string{"oldHS": oldHS, "oldES": oldES, "newHS": newHS, "newES": newES}[name]
			r := jwGet(t, c, url, "Bearer "+tok, nil)
			if code == 401 {
				jwCheckError(t, when+": "+name, r, 401, "invalid_token")
				continue
			}
			if r.code != code {
				t.Errorf("%s: %s: %d %s, want %d", when, name, r.code, r.body, code)
			}
		}
	}
	expect("before any reload", map[string]int{"oldHS": 200, "oldES": 200})

	// A cached ES256 token still dies at its exp (this policy has no leeway).
	short := jwMint(t, "ES256", filepath.Join(k, "es256.key"), "-kid", "es", "-sub", "short", "-ttl", "5s")
	if r := jwGet(t, c, url, "Bearer "+short, nil); r.code != 200 {
		t.Fatalf("5s token: %d %s, want 200", r.code, r.body)
	}
	var last jwResp
	if !jwEventually(15*time.Second, 200*time.Millisecond, func() bool {
		last = jwGet(t, c, url, "Bearer "+short, nil)
		return last.code != 200
	}) {
		t.Fatal("a 5s token still passes 15s later")
	}
	jwCheckError(t, "5s token after its exp", last, 401, "invalid_token")
	if got := jwRejections(t, e, "hup")["expired"]; got != 1 {
		t.Errorf(`edge_jwt_rejections_total{policy="hup",reason="expired"} = %v, want 1`, got)
	}

	// A broken pem_file fails the reload; the keys loaded before stay.
	writeConfig(t, pemFile, "-----BEGIN PUBLIC KEY-----\nnot a key\n-----END PUBLIC KEY-----\n")
	e.signal(syscall.SIGHUP)
	if !e.waitLog("reload failed") {
		t.Fatalf("a broken pem_file did not fail the reload:\n%s", e.logText())
	}
	if !jwLogLine(e, "reload failed", "es.pub") {
		t.Errorf("the reload failure does not name the broken file:\n%s", e.logText())
	}
	expect("after a failed reload", map[string]int{"oldHS": 200, "oldES": 200})

	copyFile(filepath.Join(k, "hs256b.key"), secretFile)
	copyFile(filepath.Join(k, "es256b.pub"), pemFile)
	e.signal(syscall.SIGHUP)
	if !e.waitLog("configuration reloaded") {
		t.Fatalf("no reload after SIGHUP:\n%s", e.logText())
	}
	expect("after SIGHUP with new key files", map[string]int{"oldHS": 401, "oldES": 401, "newHS": 200, "newES": 200})
	r := jwGet(t, c, url, "Bearer "+newES, nil)
	if got := jwSeen(t, r); fmt.Sprint(got["X-User-Id"]) != "[new-es]" {
		t.Errorf("pod saw %v, want X-User-Id new-es", got)
	}
	if got := jwRejections(t, e, "hup")["bad_signature"]; got != 2 {
		t.Errorf(`edge_jwt_rejections_total{policy="hup",reason="bad_signature"} = %v, want 2`, got)
	}
}

// TestJWTPathTricksDoNotBypass: dot segments and percent-encodings cannot
// carry a request past a JWT route: the pod receives a path inside the route
// the edge matched (401 otherwise, or a refusal).
func TestJWTPathTricksDoNotBypass(t *testing.T) {
	t.Parallel()
	k := jwKeys(t)
	pod := jwStartPod(t)
	path := jwWriteConfig(t, "", pod.addr, fmt.Sprintf(`  p:
    keys: [{pem_file: "%s/ed25519.pub", alg: EdDSA}]
`, k), `  - {prefix: /api/, pool: app, jwt: p}
  - {prefix: /public/, pool: app}
`)
	e := startEdge(t, path)
	for _, target := range []string{
		"/public/../api/x",
		"/public/./../api/x",
		"/public/x/../../api/x",
		"/public/%2e%2e/api/x",
		"/public/%2E%2E/api/x",
		"/public/.%2e/api/x",
		"/public/..%2fapi/x",
		"/public/%2e%2e%2fapi/x",
		"/public/x/..%2f..%2fapi/x",
		"/public%2f..%2fapi/x",
		"/%2e%2e/api/x",
		"//api/x",
		"/public/%252e%252e/api/x",
		"/public/..;/api/x",
		"/public/%2fapi/x",
		"/public/%00/../api/x",
		"/public/../api/x?q=1",
		"http://example.com/public/../api/x",
	} {
		before := pod.hits.Load()
		resp, body := jwRaw(t, e.addr("web"), "GET "+target+" HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n")
		switch resp.StatusCode {
		case 401:
			jwCheckError(t, target, jwResp{code: resp.StatusCode, header: resp.Header, body: body}, 401, "missing_token")
			if pod.hits.Load() != before {
				t.Errorf("%s: answered 401 but reached the pod", target)
			}
		case 200:
			// The pod (or any server behind it) may resolve dot segments
			// itself: what it resolves to must still be under /public/.
			if got := jwView(t, body).Path; !strings.HasPrefix(urlpath.Clean(got)+"/", "/public/") {
				t.Errorf("%s: routed without a token, and the pod received %q (resolving to %q)", target, got, urlpath.Clean(got))
			}
		case 400, 404:
		default:
			t.Errorf("%s: %d %s", target, resp.StatusCode, body)
		}
	}
}

// TestJWTDuplicateAuthorization: Authorization is not a list field (RFC 9110
// §5.3, §11.6.2), so a request with two must not bring the pod a credential
// the edge did not verify: refused, or forwarded with the verified one only.
func TestJWTDuplicateAuthorization(t *testing.T) {
	t.Parallel()
	k := jwKeys(t)
	pod := jwStartPod(t)
	path := jwWriteConfig(t, "", pod.addr, fmt.Sprintf(`  p:
    keys: [{pem_file: "%s/ed25519.pub", alg: EdDSA}]
    forward_claims: {sub: X-User-Id}
`, k), `  - {prefix: /, pool: app, jwt: p}
`)
	e := startEdge(t, path)
	alice := jwMint(t, "EdDSA", filepath.Join(k, "ed25519.key"), "-sub", "alice")
	// mallory's token is signed by a key the edge does not know.
	mallory := jwMint(t, "EdDSA", filepath.Join(k, "ed25519fs.key"), "-sub", "mallory")
	for _, second := range []string{"Bearer " + mallory, "Bearer garbage", "Basic bWFsbG9yeTpzZWNyZXQ="} {
		before := pod.hits.Load()
		resp, body := jwRaw(t, e.addr("web"), "GET / HTTP/1.1\r\nHost: example.com\r\nAuthorization: Bearer "+alice+
			"\r\nAuthorization: "+second+"\r\nConnection: close\r\n\r\n")
		what := "a valid token, then Authorization: " + strings.SplitN(second, " ", 2)[0] + " <unverified>"
		switch resp.StatusCode {
		case 400, 401:
			if pod.hits.Load() != before {
				t.Errorf("%s: answered %d but reached the pod", what, resp.StatusCode)
			}
		case 200:
			if got := jwView(t, body).Auth; len(got) != 1 || got[0] != "Bearer "+alice {
				t.Errorf("%s: the pod received %d Authorization fields, not only the verified one", what, len(got))
			}
		default:
			t.Errorf("%s: %d %s", what, resp.StatusCode, body)
		}
	}
}
