package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"text/template"
	"time"

	"example.com/edge/cmd/edge/config"
	"example.com/edge/l7/jwt/mint"
	"example.com/edge/tlsterm"
)

// cmdDemo runs the embedded demo: the contract's example.com SaaS made
// real on loopback, with in-process pods behind the full chain.
func cmdDemo(args []string, stdout, stderr io.Writer) int {
	fs, _, tf := newRunFlags("edge demo", stderr)
	httpAddr := fs.String("http", "127.0.0.1:8080", "demo HTTP listener")
	httpsAddr := fs.String("https", "127.0.0.1:8443", "demo HTTPS listener")
	dir := fs.String("dir", "", "where to write the demo's config, certificate and keys (default: a new temporary folder)")
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: edge demo [-http ADDR] [-https ADDR] [-admin ADDR] [-dir DIR] [tuning flags]\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		return extraArgs(stderr, "edge demo", fs.Args(), fs.Usage)
	}
	tf.parsed()
	if err := tf.check(); err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	if !tf.set["admin"] {
		tf.admin, tf.set["admin"] = "127.0.0.1:9901", true
	}
	d, err := setUpDemo(*dir, *httpAddr, *httpsAddr, tf.admin)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	defer d.close()

	f, err := config.Load(d.configPath)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	tf.apply(f)
	if err := checkServeAccept(f); err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	log := newLogger(f.Tuning, stderr)
	sig := notifySignals()
	rt, err := start(d.configPath, f, tf, log, stdout)
	if err != nil {
		signal.Stop(sig)
		fmt.Fprintln(stderr, err)
		return 1
	}
	d.printWelcome(stdout, rt, f.Tuning.AccessLog)
	return serveSignals(rt, sig)
}

// demo is the demo's pods and files.
type demo struct {
	signer     any // the auth pods' signing key; the edge holds only the public half
	dir        string
	ownDir     bool
	configPath string
	httpAddr   string
	httpsAddr  string
	pods       []*demoPod
}

type demoPod struct {
	name string
	ln   net.Listener
	srv  *http.Server
}

func (p *demoPod) addr() string { return p.ln.Addr().String() }

// setUpDemo starts the pods and writes the demo's files; the addresses are
// written into its edge.yaml as given.
func setUpDemo(dir, httpAddr, httpsAddr, adminAddr string) (*demo, error) {
	d := &demo{dir: dir, httpAddr: httpAddr, httpsAddr: httpsAddr}
	if d.dir == "" {
		tmp, err := os.MkdirTemp("", "edge-demo-")
		if err != nil {
			return nil, fmt.Errorf("edge demo: %w", err)
		}
		d.dir, d.ownDir = tmp, true
	} else if err := os.MkdirAll(d.dir, 0o700); err != nil {
		return nil, fmt.Errorf("edge demo: %w", err)
	}
	kp, err := mint.GenerateKey("EdDSA", demoKid, nil)
	if err != nil {
		return nil, fmt.Errorf("edge demo: key: %w", err)
	}
	d.signer = kp.Private
	for _, name := range []string{"app-1", "app-2", "auth-1", "auth-2"} {
		p, err := startDemoPod(name, d)
		if err != nil {
			d.close()
			return nil, err
		}
		d.pods = append(d.pods, p)
	}
	certPEM, keyPEM, err := tlsterm.GenerateSelfSigned([]string{"example.com", "*.example.com", "localhost", "127.0.0.1"}, time.Now(), 30*24*time.Hour)
	if err != nil {
		d.close()
		return nil, fmt.Errorf("edge demo: certificate: %w", err)
	}
	files := map[string][]byte{"example.com.crt": certPEM, "example.com.key": keyPEM, "users-ed25519.pub": kp.PublicPEM}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(d.dir, name), b, 0o600); err != nil {
			d.close()
			return nil, fmt.Errorf("edge demo: %w", err)
		}
	}
	var cfg strings.Builder
	err = demoConfig.Execute(&cfg, map[string]any{
		"HTTP": httpAddr, "HTTPS": httpsAddr, "Admin": adminAddr,
		"App1": d.pods[0].addr(), "App2": d.pods[1].addr(), "Auth1": d.pods[2].addr(), "Auth2": d.pods[3].addr(),
		"AccessLog": filepath.Join(d.dir, "access.log"),
	})
	if err != nil {
		d.close()
		return nil, fmt.Errorf("edge demo: %w", err)
	}
	d.configPath = filepath.Join(d.dir, "edge.yaml")
	if err := os.WriteFile(d.configPath, []byte(cfg.String()), 0o600); err != nil {
		d.close()
		return nil, fmt.Errorf("edge demo: %w", err)
	}
	return d, nil
}

func (d *demo) close() {
	for _, p := range d.pods {
		p.srv.Close()
	}
	if d.ownDir {
		os.RemoveAll(d.dir)
	}
}

// demoConfig is the demo's configuration file: the contract's reference
// configuration, scaled to one machine.
var demoConfig = template.Must(template.New("edge.yaml").Parse(`# edge demo: the contract's example.com SaaS on loopback.
# Written by "edge demo"; the pods it names live inside that process.
admin: {{printf "%q" .Admin}}
tuning:
  access_log: {{.AccessLog}}
  max_conns_per_ip: 512
  idle_timeout: 60s
  read_timeout: 10s

listeners:
  - name: public-http
    address: {{.HTTP}}
  - name: public-https
    address: {{.HTTPS}}
    tls:
      certificates:
        - {cert: example.com.crt, key: example.com.key}

pools:
  app:
    endpoints: [app-1={{.App1}}, app-2={{.App2}}]
    balance: least_request
    health_check: {path: /healthz, interval: 2s, timeout: 1s, fall: 3, rise: 2}
    connect_timeout: 1s
    response_timeout: 15s
    retries: 1
  auth:
    endpoints: [auth-1={{.Auth1}}, auth-2={{.Auth2}}]
    balance: round_robin
    health_check: {path: /healthz, interval: 2s}

jwt:
  users:
    keys:
      - {pem_file: users-ed25519.pub, alg: EdDSA, kid: ` + demoKid + `}
    algorithms: [EdDSA]
    issuer: ` + demoIssuer + `
    audience: [example.com]
    leeway: 30s
    forward_claims: {sub: X-User-Id, scope: X-User-Scope}

rate_limits:
  per_ip:   {key: client_ip, rate: 10, per: 1s, burst: 20}
  per_user: {key: "claim:sub", rate: 5, per: 1s, burst: 10}

routes:
  - {host: example.com, prefix: /auth/, pool: auth, rate_limit: per_ip}
  - host: example.com
    prefix: /app/
    pool: app
    jwt: users
    scopes: [app:read]
    rate_limit: per_user
    methods: [GET, POST, PUT, DELETE]
    request_headers: {add: {X-Edge: "1"}, remove: [X-Debug]}
`))

const (
	demoKid    = "demo-ed25519"
	demoIssuer = "https://auth.example.com"
)

func startDemoPod(name string, d *demo) (*demoPod, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("edge demo: pod %s: %w", name, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	reply := func(w http.ResponseWriter, status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Pod", name)
		w.WriteHeader(status)
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(v) //nolint:errcheck
	}
	if strings.HasPrefix(name, "auth") {
		// The auth service signs tokens; the edge verifies them with the
		// public key alone.
		mux.HandleFunc("POST /auth/login", func(w http.ResponseWriter, r *http.Request) {
			var body struct {
				User string `json:"user"`
			}
			json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&body) //nolint:errcheck // an empty body logs in the demo user
			if body.User == "" {
				body.User = "demo-user"
			}
			tok, err := mint.Sign(mint.Options{
				Alg: "EdDSA", Kid: demoKid, Subject: body.User, Issuer: demoIssuer,
				Audience: []string{"example.com"}, Scope: "app:read", TTL: time.Hour,
			}, d.signer)
			if err != nil {
				reply(w, http.StatusInternalServerError, map[string]any{"error": err.Error()})
				return
			}
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("X-Pod", name)
			fmt.Fprintf(w, "{\"token\":%q}\n", tok)
		})
	}
	if strings.HasPrefix(name, "app") {
		mux.HandleFunc("/app/dashboard", func(w http.ResponseWriter, r *http.Request) {
			reply(w, http.StatusOK, map[string]any{
				"pod":        name,
				"message":    "hello " + r.Header.Get("X-User-Id") + ", this is your dashboard",
				"user":       r.Header.Get("X-User-Id"),
				"scope":      r.Header.Get("X-User-Scope"),
				"request_id": r.Header.Get("X-Request-Id"),
			})
		})
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		reply(w, http.StatusOK, map[string]any{
			"pod":           name,
			"path":          r.URL.Path,
			"request_id":    r.Header.Get("X-Request-Id"),
			"traceparent":   r.Header.Get("Traceparent"),
			"forwarded_for": r.Header.Get("X-Forwarded-For"),
			"proto":         r.Header.Get("X-Forwarded-Proto"),
		})
	})
	p := &demoPod{name: name, ln: ln, srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}}
	go p.srv.Serve(ln) //nolint:errcheck
	return p, nil
}

// dialAddr is where a client on this machine reaches a listener configured
// at addr and bound at bound (nil: not known): the bound port, which differs
// when addr's was 0, and 127.0.0.1 for a wildcard or empty host. An IPv6
// host is bracketed, as URLs and curl's --resolve want it.
func dialAddr(addr string, bound net.Addr) (host, port string) {
	host, port, _ = net.SplitHostPort(addr)
	if bound != nil {
		if _, p, err := net.SplitHostPort(bound.String()); err == nil {
			port = p
		}
	}
	if ip, err := netip.ParseAddr(host); host == "" || err == nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	} else if err == nil && ip.Is6() {
		host = "[" + host + "]"
	}
	return host, port
}

// printWelcome prints the demo's addresses and curl lines; accessLog is
// the access log in effect (the file's, or -access-log).
func (d *demo) printWelcome(w io.Writer, rt *edgeRuntime, accessLog string) {
	var httpBound, httpsBound net.Addr
	if rt.l4 != nil {
		httpBound, httpsBound = rt.l4.Addr("public-http"), rt.l4.Addr("public-https")
	}
	httpHost, httpPort := dialAddr(d.httpAddr, httpBound)
	httpsHost, httpsPort := dialAddr(d.httpsAddr, httpsBound)
	admin := ""
	if rt.admin != nil {
		host, port := dialAddr(rt.admin.addr, nil)
		admin = host + ":" + port
	}
	// The access log line names the log actually written: none when it
	// goes to stdout or is off.
	logFile, tail := "", ""
	switch accessLog {
	case "", "-", "off":
	default:
		if filepath.Dir(accessLog) == d.dir {
			logFile = ", " + filepath.Base(accessLog)
		}
		tail = "\n  tail -n 3 " + accessLog
	}
	r := strings.NewReplacer(
		"$LOGFILE", logFile, "$TAIL", tail,
		"$HTTPPORT", httpPort, "$HTTPSPORT", httpsPort, "$HTTPHOST", httpHost, "$HTTPSHOST", httpsHost,
		"$ADMIN", admin, "$DIR", d.dir, "$CRT", filepath.Join(d.dir, "example.com.crt"),
		"$APP1", d.pods[0].addr(), "$APP2", d.pods[1].addr(), "$AUTH1", d.pods[2].addr(), "$AUTH2", d.pods[3].addr(),
	)
	r.WriteString(w, `
edge demo: example.com's whole request path, running on loopback
  HTTP   http://example.com:$HTTPPORT   -> $HTTPHOST   (gnet L4 listener -> L7)
  HTTPS  https://example.com:$HTTPSPORT  -> $HTTPSHOST   (TLS 1.3 offering post-quantum X25519MLKEM768 first, self-signed cert for example.com)
  admin  http://$ADMIN                 (/metrics /healthz /readyz /config)
  pods   app-1 $APP1  app-2 $APP2  auth-1 $AUTH1  auth-2 $AUTH2
  files  $DIR  (edge.yaml, certificate, public key$LOGFILE)

Paste these into a shell:

  # 1. log in at the auth pool: an auth pod signs an Ed25519 JWT
  TOKEN=$(curl -s --resolve example.com:$HTTPPORT:$HTTPHOST -X POST -d '{"user":"alice"}' \
      http://example.com:$HTTPPORT/auth/login | sed -E 's/.*"token":"([^"]+)".*/\1/'); echo $TOKEN

  # 2. the dashboard needs it: the edge verifies it, forwards sub as X-User-Id, balances over app-1/app-2
  curl -s --resolve example.com:$HTTPPORT:$HTTPHOST -H "Authorization: Bearer $TOKEN" http://example.com:$HTTPPORT/app/dashboard

  # 3. the same over TLS. Go clients, current browsers and curl on OpenSSL >= 3.5 negotiate the post-quantum
  #    X25519MLKEM768 key exchange; older OpenSSL falls back to X25519. Step 7's edge_tls_handshakes_total{group=...}
  #    shows which one each handshake used
  curl -s --cacert $CRT --resolve example.com:$HTTPSPORT:$HTTPSHOST -H "Authorization: Bearer $TOKEN" https://example.com:$HTTPSPORT/app/dashboard

  # 4. no token, then a forged one (one character of its signature changed): the request stops at the edge
  #    (401, JSON error, WWW-Authenticate)
  curl -si --resolve example.com:$HTTPPORT:$HTTPHOST http://example.com:$HTTPPORT/app/dashboard
  FORGED=$(echo "$TOKEN" | awk -F. '{ i = int(length($3) / 2); c = substr($3, i, 1)
      print $1 "." $2 "." substr($3, 1, i - 1) (c == "A" ? "B" : "A") substr($3, i + 1) }')
  curl -s --resolve example.com:$HTTPPORT:$HTTPHOST -H "Authorization: Bearer $FORGED" http://example.com:$HTTPPORT/app/dashboard

  # 5. rate limit: alice gets 10 at once, then 5/s; watch the 200s turn into 429s
  for i in $(seq 15); do curl -s -o /dev/null -w '%{http_code} ' --resolve example.com:$HTTPPORT:$HTTPHOST \
      -H "Authorization: Bearer $TOKEN" http://example.com:$HTTPPORT/app/dashboard; done; echo

  # 6. edge's own answers: no route (404), method not allowed (405)
  curl -s --resolve example.com:$HTTPPORT:$HTTPHOST http://example.com:$HTTPPORT/nowhere
  curl -s --resolve example.com:$HTTPPORT:$HTTPHOST -X PATCH -H "Authorization: Bearer $TOKEN" http://example.com:$HTTPPORT/app/dashboard

  # 7. what the edge saw
  curl -s http://$ADMIN/metrics | grep -E '^edge_(requests|jwt|ratelimit|tls|upstream_healthy)'$TAIL

Stop with Ctrl-C: the edge drains in-flight requests, then exits.
`)
}
