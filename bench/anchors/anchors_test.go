package anchors

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"example.com/edge/cmd/edge/config"
)

// cases are every configuration the harness renders.
var cases = []struct {
	name    string
	mode    Mode
	gateway bool
}{
	{"plain", HTTP, false},
	{"gateway", HTTP, true},
	{"tls", TLS, false},
	{"l4", L4, false},
}

func testData(t *testing.T, mode Mode, gateway bool) Data {
	t.Helper()
	dir := t.TempDir()
	certPEM, keyPEM := selfSigned(t)
	files := map[string][]byte{
		"cert.pem": certPEM, "key.pem": keyPEM, "both.pem": append(append([]byte{}, certPEM...), keyPEM...),
		"secret": []byte("c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA\n"),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return Data{
		Dir: dir, Listen: 18080, Mode: mode, Gateway: gateway,
		App: []string{"127.0.0.1:19001", "127.0.0.1:19002"}, Auth: []string{"127.0.0.1:19003", "127.0.0.1:19004"},
		Bulk:     "127.0.0.1:19005",
		CertFile: filepath.Join(dir, "cert.pem"), KeyFile: filepath.Join(dir, "key.pem"), CertKeyFile: filepath.Join(dir, "both.pem"),
		SecretFile: filepath.Join(dir, "secret"), Secret: "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA",
		Issuer: "https://auth.example.com", Audience: "example.com",
		MaxConns: 9968, NoFile: 20000, WorkerConns: 19936, RateLimit: 100000000,
	}
}

// TestEdgeConfigsValidate renders edge's configuration for every scenario
// and runs it through edge's own loader and validator.
func TestEdgeConfigsValidate(t *testing.T) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := testData(t, c.mode, c.gateway)
			data, err := Render(Edge, d)
			if err != nil {
				t.Fatal(err)
			}
			f, err := config.Parse(filepath.Join(d.Dir, "edge.yaml"), data)
			if err != nil {
				t.Fatalf("edge rejects the rendered config: %v\n%s", err, data)
			}
			switch c.mode {
			case L4:
				if len(f.Listeners) != 1 || f.Listeners[0].Pool != "bulk" || len(f.Routes) != 0 {
					t.Errorf("l4 config: listeners %+v, %d routes; want one pure L4 listener and no routes", f.Listeners, len(f.Routes))
				}
			default:
				if len(f.Routes) != 2 || f.Routes[0].Prefix != "/app/" || f.Routes[1].Prefix != "/auth/" {
					t.Errorf("routes %+v, want /app/ and /auth/", f.Routes)
				}
				for _, r := range f.Routes {
					if r.Host != "example.com" {
						t.Errorf("route %s host %q, want example.com", r.Prefix, r.Host)
					}
					if got := r.JWT != "" && len(r.RateLimit) == 1; got != c.gateway {
						t.Errorf("route %s: jwt %q limit %v, gateway %t", r.Prefix, r.JWT, r.RateLimit, c.gateway)
					}
				}
				if got := f.Listeners[0].TLS != nil; got != (c.mode == TLS) {
					t.Errorf("listener TLS %t, want %t", got, c.mode == TLS)
				}
			}
		})
	}
}

// TestAnchorConfigsValidate renders the nginx and HAProxy configurations and
// has the installed programs check them (nginx -t, haproxy -c, which load
// the TLS certificate too); it is skipped for a program that is not installed.
func TestAnchorConfigsValidate(t *testing.T) {
	for _, c := range cases {
		t.Run("haproxy-"+c.name, func(t *testing.T) {
			bin := lookPath(t, "haproxy")
			d := testData(t, c.mode, c.gateway)
			path := write(t, d.Dir, "haproxy.cfg", HAProxy, d)
			out, err := exec.Command(bin, "-c", "-f", path).CombinedOutput()
			if err != nil {
				t.Fatalf("haproxy -c: %v\n%s", err, out)
			}
			if strings.Contains(string(out), "[WARNING]") {
				t.Errorf("haproxy -c warns:\n%s", out)
			}
		})
		if c.gateway {
			continue // nginx has no gateway configuration
		}
		t.Run("nginx-"+c.name, func(t *testing.T) {
			bin := lookPath(t, "nginx")
			d := testData(t, c.mode, c.gateway)
			if c.mode == L4 {
				if v, _ := exec.Command(bin, "-V").CombinedOutput(); strings.Contains(string(v), "--with-stream=dynamic") {
					d.StreamModule = "/usr/lib/nginx/modules/ngx_stream_module.so"
					if _, err := os.Stat(d.StreamModule); err != nil {
						t.Skip("nginx stream module not installed")
					}
				}
			}
			if err := os.MkdirAll(filepath.Join(d.Dir, "nginx-tmp"), 0o755); err != nil {
				t.Fatal(err)
			}
			path := write(t, d.Dir, "nginx.conf", Nginx, d)
			out, err := exec.Command(bin, "-t", "-c", path, "-p", d.Dir+"/", "-e", filepath.Join(d.Dir, "error.log")).CombinedOutput()
			if err != nil {
				t.Fatalf("nginx -t: %v\n%s", err, out)
			}
		})
	}
}

func TestPodsConfigValidates(t *testing.T) {
	bin := lookPath(t, "nginx")
	d := Data{Dir: t.TempDir(), Pods: []Pod{{Name: "app-1", Addr: "127.0.0.1:19001"}, {Name: "auth-1", Addr: "127.0.0.1:19003"}}}
	if err := os.MkdirAll(filepath.Join(d.Dir, "pods-tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	path := write(t, d.Dir, "pods.conf", Pods, d)
	data, _ := os.ReadFile(path)
	for _, want := range []string{`"pod":"app-1"`, `"pod":"auth-1"`, "listen 127.0.0.1:19003"} {
		if !strings.Contains(string(data), want) {
			t.Errorf("pods.conf lacks %q", want)
		}
	}
	out, err := exec.Command(bin, "-t", "-c", path, "-p", d.Dir+"/", "-e", filepath.Join(d.Dir, "error.log")).CombinedOutput()
	if err != nil {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
}

func TestRenderUnknownTemplate(t *testing.T) {
	if _, err := Render("nope.tmpl", Data{}); err == nil || !strings.HasPrefix(err.Error(), "anchors: ") {
		t.Fatalf("Render(nope.tmpl) = %v, want an anchors: error", err)
	}
}

// selfSigned is a throwaway ECDSA certificate for example.com, in PEM.
func selfSigned(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), DNSNames: []string{"example.com"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
}

func lookPath(t *testing.T, name string) string {
	t.Helper()
	for _, p := range []string{name, "/usr/sbin/" + name} {
		if bin, err := exec.LookPath(p); err == nil {
			return bin
		}
	}
	t.Skipf("%s not installed", name)
	return ""
}

func write(t *testing.T, dir, name, tmpl string, d Data) string {
	t.Helper()
	data, err := Render(tmpl, d)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestEdgeJWTCacheOff checks that -edge-jwt-cache-bytes -1 reaches edge's
// policy as a negative cache size (edge: negative disables the cache).
func TestEdgeJWTCacheOff(t *testing.T) {
	d := testData(t, HTTP, true)
	d.JWTCacheBytes = -1
	data, err := Render(Edge, d)
	if err != nil {
		t.Fatal(err)
	}
	f, err := config.Parse(filepath.Join(d.Dir, "edge.yaml"), data)
	if err != nil {
		t.Fatalf("%v\n%s", err, data)
	}
	if got := f.JWT["bench"].CacheBytes; got != -1 {
		t.Errorf("cache_bytes = %d, want -1", got)
	}
}

// TestEdgePipeline checks that Pipeline reaches both HTTP pools in every
// routing mode, and that the L4 relay's pool never gets it (the harness
// counts the pipe variants as plain edge in l4-bulk for that reason).
func TestEdgePipeline(t *testing.T) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := testData(t, c.mode, c.gateway)
			d.Pipeline = 2
			data, err := Render(Edge, d)
			if err != nil {
				t.Fatal(err)
			}
			f, err := config.Parse(filepath.Join(d.Dir, "edge.yaml"), data)
			if err != nil {
				t.Fatalf("%v\n%s", err, data)
			}
			for name, p := range f.Pools {
				want := 2
				if c.mode == L4 {
					want = 0
				}
				if p.Pipeline != want {
					t.Errorf("pool %s: pipeline %d, want %d", name, p.Pipeline, want)
				}
			}
		})
	}
}
