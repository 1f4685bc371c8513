package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"example.com/edge/bench/anchors"
)

// proxy is one row of every scenario: edge or one of its variants, or an
// anchor.
type proxy struct {
	name   string // the row's name: edge, edge-pipe, ..., nginx, haproxy
	prog   string // the program: edge, nginx or haproxy
	anchor bool   // nginx and HAProxy are the anchors edge is compared against
	bin    string // "" when not installed
	// variant is the tuning an edge row changes (the zero value for plain
	// edge and the anchors).
	variant edgeVariant
	// missing says why the proxy cannot run at all ("" when it can).
	missing string
	// streamModule is nginx's load_module path for the stream module, when
	// that is a dynamic module.
	streamModule string
	// noStream says why nginx cannot relay L4 ("" when it can).
	noStream string
}

// unsupported says why p cannot run scenario sc ("" when it can).
func (p *proxy) unsupported(sc scenario) string {
	if p.missing != "" {
		return p.missing
	}
	switch {
	case p.prog == "nginx" && sc.gateway:
		return "n/a: open-source nginx has no JWT verification (auth_jwt is NGINX Plus only)"
	case p.prog == "nginx" && sc.mode == anchors.L4 && p.noStream != "":
		return p.noStream
	}
	return ""
}

// findProxies locates the three programs. edgePath is the -edge flag.
func findProxies(edgePath string) ([]*proxy, error) {
	edge := &proxy{name: "edge", prog: "edge"}
	if p, err := exec.LookPath(edgePath); err == nil {
		edge.bin, _ = filepath.Abs(p)
	} else if _, err := os.Stat(edgePath); err == nil {
		edge.bin, _ = filepath.Abs(edgePath)
	} else {
		return nil, fmt.Errorf("compare: edge binary %q not found: run `make build` (it writes bin/edge) or pass -edge PATH", edgePath)
	}
	nginx := &proxy{name: "nginx", prog: "nginx", anchor: true}
	if p, err := lookPath("nginx"); err == nil {
		nginx.bin = p
		nginx.streamModule, nginx.noStream = nginxStream(p)
	} else {
		nginx.missing = "skipped: nginx not installed (apt-get install nginx, or make bench-compare)"
	}
	haproxy := &proxy{name: "haproxy", prog: "haproxy", anchor: true}
	if p, err := lookPath("haproxy"); err == nil {
		haproxy.bin = p
		if out, err := exec.Command(p, "-vv").CombinedOutput(); err == nil && !haproxyHasJWT(string(out)) {
			haproxy.missing = "skipped: this HAProxy predates jwt_verify (needs 2.5 or later)"
		}
	} else {
		haproxy.missing = "skipped: haproxy not installed (apt-get install haproxy, or make bench-compare)"
	}
	return []*proxy{edge, nginx, haproxy}, nil
}

// lookPath finds a tool in PATH or the sbin directories, which a non-root
// PATH often lacks.
func lookPath(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/usr/local/sbin", "/sbin"} {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("compare: %s not found", name)
}

// nginxStream finds out whether nginx can relay TCP: built with
// --with-stream, or --with-stream=dynamic and the module's file present
// (Debian: libnginx-mod-stream).
func nginxStream(bin string) (module, why string) {
	out, err := exec.Command(bin, "-V").CombinedOutput()
	if err != nil {
		return "", fmt.Sprintf("skipped: nginx -V: %v", err)
	}
	v := string(out)
	switch {
	case strings.Contains(v, "--with-stream ") || strings.HasSuffix(strings.TrimSpace(v), "--with-stream"):
		return "", ""
	case strings.Contains(v, "--with-stream=dynamic"):
		dir := "/usr/lib/nginx/modules"
		if i := strings.Index(v, "--modules-path="); i >= 0 {
			dir = strings.Fields(v[i+len("--modules-path="):])[0]
		}
		path := filepath.Join(dir, "ngx_stream_module.so")
		if _, err := os.Stat(path); err != nil {
			return "", "skipped: nginx's stream module is not installed (apt-get install libnginx-mod-stream)"
		}
		return path, ""
	}
	return "", "skipped: this nginx is built without the stream module"
}

// haproxyHasJWT reports whether haproxy -vv output is of version 2.5 or
// later, the first with jwt_verify.
func haproxyHasJWT(vv string) bool {
	var major, minor int
	if i := strings.Index(vv, "version "); i >= 0 {
		fmt.Sscanf(vv[i+len("version "):], "%d.%d", &major, &minor)
	}
	return major > 2 || (major == 2 && minor >= 5)
}

// launch writes p's configuration for d and starts it pinned to cpus. An
// edge row gets its variant's pipeline in its pools, and extra (the
// -edge-args flag) then its variant's flags after the harness's own; its
// configuration and log are named after the row (edge-loop.yaml,
// edge-loop.log).
func (p *proxy) launch(sup *supervisor, d anchors.Data, cpus string, extra []string) (*child, error) {
	switch p.prog {
	case "edge":
		d.Pipeline = p.variant.pipeline
		path, err := writeConfig(sup.dir, anchors.Edge, p.name+".yaml", d)
		if err != nil {
			return nil, err
		}
		return sup.start(p.name, cpus, []string{"GOMAXPROCS=1"}, p.edgeArgv(path, extra)...)
	case "nginx":
		if err := os.MkdirAll(filepath.Join(sup.dir, "nginx-tmp"), 0o755); err != nil {
			return nil, fmt.Errorf("compare: %w", err)
		}
		path, err := writeConfig(sup.dir, anchors.Nginx, "nginx.conf", d)
		if err != nil {
			return nil, err
		}
		return sup.start("nginx", cpus, nil, p.bin, "-c", path, "-p", sup.dir+"/", "-e", filepath.Join(sup.dir, "nginx-error.log"))
	case "haproxy":
		path, err := writeConfig(sup.dir, anchors.HAProxy, "haproxy.cfg", d)
		if err != nil {
			return nil, err
		}
		return sup.start("haproxy", cpus, nil, p.bin, "-db", "-f", path)
	}
	return nil, fmt.Errorf("compare: unknown proxy %q", p.name)
}

// edgeArgv is an edge row's command line with its configuration at path:
// one event loop (on one P, GOMAXPROCS=1, the like-for-like of one nginx
// worker and one HAProxy thread), then extra, then the variant's flags,
// which win over extra's (the last of a flag counts).
func (p *proxy) edgeArgv(path string, extra []string) []string {
	argv := []string{p.bin, "-config", path, "-event-loops", "1", "-access-log", "off", "-log-level", "warn"}
	argv = append(argv, extra...)
	return append(argv, p.variant.args()...)
}

func writeConfig(dir, tmpl, name string, d anchors.Data) (string, error) {
	data, err := anchors.Render(tmpl, d)
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return "", fmt.Errorf("compare: %w", err)
	}
	return path, nil
}

// version is the first line a tool prints about its version, for the report.
func version(bin string, args ...string) string {
	if bin == "" {
		return "not installed"
	}
	out, _ := exec.Command(bin, args...).CombinedOutput()
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return line
}
