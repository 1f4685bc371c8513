package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"text/template"
	"time"

	"example.com/edge/cmd/edge/config"
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
	tf.parsed()
	if err := tf.check(); err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	if !tf.set["admin"] {
		tf.admin, tf.set["admin"] = "127.0.0.1:9901", true
	}
	d, err := setUpDemo(*dir, *httpAddr, *httpsAddr)
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
	log := newLogger(f.Tuning, stderr)
	rt, err := start(d.configPath, f, tf, log, stdout)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	d.printWelcome(stdout, rt)
	return serveSignals(rt)
}

// demo is the demo's pods and files.
type demo struct {
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

func setUpDemo(dir, httpAddr, httpsAddr string) (*demo, error) {
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
	files := map[string][]byte{"example.com.crt": certPEM, "example.com.key": keyPEM}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(d.dir, name), b, 0o600); err != nil {
			d.close()
			return nil, fmt.Errorf("edge demo: %w", err)
		}
	}
	var cfg strings.Builder
	err = demoConfig.Execute(&cfg, map[string]any{
		"HTTP": httpAddr, "HTTPS": httpsAddr,
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
admin: 127.0.0.1:9901
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

routes:
  - {host: example.com, prefix: /auth/, pool: auth}
  - host: example.com
    prefix: /app/
    pool: app
    methods: [GET, POST, PUT, DELETE]
    request_headers: {add: {X-Edge: "1"}, remove: [X-Debug]}
`))

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
		mux.HandleFunc("POST /auth/login", func(w http.ResponseWriter, r *http.Request) {
			reply(w, http.StatusOK, map[string]any{"pod": name, "message": "logged in"})
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

func (d *demo) printWelcome(w io.Writer, rt *edgeRuntime) {
	_, httpPort, _ := net.SplitHostPort(d.httpAddr)
	_, httpsPort, _ := net.SplitHostPort(d.httpsAddr)
	httpHost, _, _ := net.SplitHostPort(d.httpAddr)
	httpsHost, _, _ := net.SplitHostPort(d.httpsAddr)
	crt := filepath.Join(d.dir, "example.com.crt")
	admin := ""
	if rt.admin != nil {
		admin = rt.admin.addr
	}
	fmt.Fprintf(w, `
edge demo is running: example.com's request path on loopback
  HTTP   http://example.com:%[1]s   (-> %[3]s)
  HTTPS  https://example.com:%[2]s  (-> %[4]s, self-signed certificate for example.com)
  admin  http://%[5]s  (/metrics /healthz /readyz /config)
  pods   app-1 %[6]s, app-2 %[7]s, auth-1 %[8]s, auth-2 %[9]s
  files  %[10]s (config edge.yaml, certificate, access.log)

Try it (paste into a shell):

  # the app pool, answered by app-1 and app-2 in turn
  curl -s --resolve example.com:%[1]s:%[3]s http://example.com:%[1]s/app/dashboard

  # the same over TLS (X25519MLKEM768 key exchange when your curl supports it)
  curl -s --cacert %[11]s --resolve example.com:%[2]s:%[4]s https://example.com:%[2]s/app/dashboard

  # log in at the auth pool
  curl -s --resolve example.com:%[1]s:%[3]s -X POST http://example.com:%[1]s/auth/login

  # edge's own answers: no route (404) and method not allowed (405)
  curl -s --resolve example.com:%[1]s:%[3]s http://example.com:%[1]s/nowhere
  curl -s --resolve example.com:%[1]s:%[3]s -X PATCH http://example.com:%[1]s/app/dashboard

  # metrics, then the running configuration
  curl -s http://%[5]s/metrics | grep '^edge_'
  curl -s http://%[5]s/config

Stop with Ctrl-C (the edge drains in-flight requests first).
`, httpPort, httpsPort, httpHost, httpsHost, admin,
		d.pods[0].addr(), d.pods[1].addr(), d.pods[2].addr(), d.pods[3].addr(), d.dir, crt)
}
