// Package anchors holds the configurations the comparison harness
// (bench/cmd/compare) gives edge and the two anchors it is measured against,
// nginx and HAProxy, plus the nginx configuration of the upstream pods all
// three share. Each file is a text/template rendered once per run with that
// run's ports and paths, so the three proxies always route the same traffic:
// host example.com, /app/ to two app pods and /auth/ to two auth pods, each
// pool round robin over keep-alive upstream connections.
//
// The templates are plain files beside this one so users can read and copy
// them; this package only embeds them.
package anchors

import (
	"bytes"
	"embed"
	"fmt"
	"text/template"
)

//go:embed *.tmpl
var files embed.FS

// Mode is what a rendered proxy configuration listens for.
type Mode string

// The modes a scenario asks for.
const (
	// HTTP is plaintext HTTP/1.1 routing.
	HTTP Mode = "http"
	// TLS terminates TLS 1.2/1.3 and routes the plaintext requests.
	TLS Mode = "tls"
	// L4 relays TCP bytes to one upstream without looking at them.
	L4 Mode = "l4"
)

// Data is what every template is rendered with. The zero value renders
// nothing useful; the harness fills every field its scenario needs.
type Data struct {
	// Dir is the run's private directory: pid files, logs, temp paths.
	Dir string
	// Listen is the proxy's 127.0.0.1 port.
	Listen int
	// Mode selects the listener kind.
	Mode Mode
	// Gateway adds HS256 JWT verification and a per-client-IP rate limit
	// to both routes (HTTP and TLS modes).
	Gateway bool
	// App and Auth are the pods (host:port) of the two HTTP pools.
	App, Auth []string
	// Bulk is the L4 relay's upstream (host:port).
	Bulk string
	// CertFile and KeyFile are the PEM certificate and key for example.com;
	// CertKeyFile is both in one file, the way HAProxy wants them.
	CertFile, KeyFile, CertKeyFile string
	// SecretFile holds the HS256 secret (edge reads the file); Secret is its
	// content, since HAProxy's jwt_verify takes HMAC secrets inline.
	SecretFile, Secret string
	// Issuer and Audience are the claims gateway tokens must carry.
	Issuer, Audience string
	// MaxConns is the client-connection capacity each proxy is given. The
	// idle-connection scenario sizes it to the file-descriptor limit.
	MaxConns int
	// NoFile is the open-file limit the proxies run with (nginx's
	// worker_rlimit_nofile), and WorkerConns nginx's worker_connections,
	// which count upstream connections too.
	NoFile, WorkerConns int
	// RateLimit is the gateway's requests per second per client IP; the
	// harness sets it far above what one machine can send, so the limit is
	// paid for on every request but never refuses one.
	RateLimit int
	// StreamModule is the load_module path of nginx's stream module when it
	// is a dynamic module ("" when built in or absent).
	StreamModule string
	// JWTCacheBytes is edge's verified-token cache size (0: edge's default,
	// negative: disabled).
	JWTCacheBytes int
	// Pipeline is edge pools' pipeline setting (0: off).
	Pipeline int
	// Pods are the upstream pods, for pods.conf.
	Pods []Pod
}

// Pod is one upstream pod: a name that goes into its response body, and its
// address.
type Pod struct {
	Name string
	Addr string
}

// Names of the templates.
const (
	Edge    = "edge.yaml.tmpl"
	Nginx   = "nginx.conf.tmpl"
	HAProxy = "haproxy.cfg.tmpl"
	Pods    = "pods.conf.tmpl"
)

// Render renders the template called name with d. It is safe for
// concurrent use.
func Render(name string, d Data) ([]byte, error) {
	t, err := template.New(name).Option("missingkey=error").ParseFS(files, name)
	if err != nil {
		return nil, fmt.Errorf("anchors: %w", err)
	}
	var b bytes.Buffer
	if err := t.Execute(&b, d); err != nil {
		return nil, fmt.Errorf("anchors: render %q: %w", name, err)
	}
	return b.Bytes(), nil
}
