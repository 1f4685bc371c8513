package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	"go.yaml.in/yaml/v3"

	"example.com/edge/cmd/edge/config"
	"example.com/edge/l7/metrics"
)

// adminGet fetches path from the edge's admin listener with hdr.
func adminGet(t *testing.T, p *proc, path string, hdr http.Header) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest("GET", "http://"+p.addr("admin")+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

// contractMetrics are the metric names CONTRACT.md's "Admin listener"
// section says a scraper finds, and the other label-ful families that have
// no series until their first event.
var contractMetrics = []string{
	"edge_requests_total", "edge_request_duration_seconds", "edge_upstream_requests_total",
	"edge_upstream_healthy", "edge_jwt_rejections_total", "edge_ratelimit_rejections_total",
	"edge_l4_connections_active", "edge_tls_handshakes_total", "edge_config_reloads_total",
	"edge_l4_rejections_total", "edge_l4_relay_bytes_total",
}

// Audit: label-ful families without a series yet were missing from
// /metrics until their first event.
func TestMetricsNameEveryFamilyFromStartUp(t *testing.T) {
	pod := startPod(t, "pod", nil)
	path := filepath.Join(t.TempDir(), "edge.yaml")
	writeConfig(t, path, fmt.Sprintf(`admin: 127.0.0.1:0
listeners:
  - {name: web, address: "127.0.0.1:0"}
pools:
  app: {endpoints: ["%s"]}
routes:
  - {prefix: /, pool: app}
`, pod))
	p := startEdge(t, path)
	// Before any traffic, and whatever format the scraper prefers: the
	// text format is served, so families without samples can be named.
	for _, accept := range []string{"", "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7,text/plain;version=0.0.4;q=0.3", "application/openmetrics-text;version=1.0.0"} {
		hdr := http.Header{"Accept-Encoding": {"gzip"}}
		if accept != "" {
			hdr.Set("Accept", accept)
		}
		resp, body := adminGet(t, p, "/metrics", hdr)
		if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || !strings.HasPrefix(ct, "text/plain; version=0.0.4") || resp.Header.Get("Content-Encoding") != "" {
			t.Errorf("Accept %q: /metrics answered %d, Content-Type %q, Content-Encoding %q", accept, resp.StatusCode, ct, resp.Header.Get("Content-Encoding"))
		}
		for _, name := range contractMetrics {
			if !strings.Contains(body, "\n# TYPE "+name+" ") || !strings.Contains(body, "\n# HELP "+name+" ") {
				t.Errorf("Accept %q: /metrics before any traffic does not name %s:\n%s", accept, name, body)
			}
		}
		// Valid text exposition: each family once, HELP and TYPE before samples.
		if _, err := promlint.New(strings.NewReader(body)).Lint(); err != nil {
			t.Errorf("Accept %q: /metrics is not valid text exposition: %v\n%s", accept, err, body)
		}
	}
	// After traffic the families with samples are named once.
	http.Get("http://" + p.addr("web") + "/") //nolint:errcheck
	_, body := adminGet(t, p, "/metrics", nil)
	if n := strings.Count(body, "# TYPE edge_requests_total "); n != 1 || !strings.Contains(body, `edge_requests_total{code="200",route="*/"} 1`) {
		t.Errorf("after one request: %d TYPE lines for edge_requests_total, want 1:\n%s", n, body)
	}
	if _, err := promlint.New(strings.NewReader(body)).Lint(); err != nil {
		t.Errorf("/metrics after traffic is not valid text exposition: %v", err)
	}
}

func TestAppendUnsampledEscapesHelp(t *testing.T) {
	r := metrics.NewRegistry()
	r.Counter("a_total", `back\slash and`+"\n"+`newline`, "x")
	r.Counter("b_total", "already there", "x").With("1").Inc()
	buf := bytes.NewBufferString("# HELP b_total already there\n# TYPE b_total counter\nb_total{x=\"1\"} 1\n")
	appendUnsampled(buf, r.Families())
	want := "# HELP b_total already there\n# TYPE b_total counter\nb_total{x=\"1\"} 1\n" +
		"# HELP a_total back\\\\slash and\\nnewline\n# TYPE a_total counter\n"
	if buf.String() != want {
		t.Errorf("got\n%s\nwant\n%s", buf.String(), want)
	}
}

// Audit: /config showed the file as written (zeros for defaults), not the
// running values.
func TestConfigShowsRunningValues(t *testing.T) {
	pod := startPod(t, "pod", nil)
	path := filepath.Join(t.TempDir(), "edge.yaml")
	writeConfig(t, path, fmt.Sprintf(`admin: 127.0.0.1:0
tuning: {max_header_bytes: 8192}
listeners:
  - {name: web, address: "127.0.0.1:0"}
pools:
  app:
    endpoints: ["%s"]
    health_check: {path: /}
rate_limits:
  global: {key: client_ip, rate: 100, store: redis}
redis: {address: "127.0.0.1:1", password: hunter2}
routes:
  - {prefix: /, pool: app, rate_limit: global}
`, pod))
	p := startEdge(t, path, "-read-timeout", "7s", "-max-conns", "500")
	resp, body := adminGet(t, p, "/config", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("/config: %d %s", resp.StatusCode, body)
	}
	var got map[string]any
	if err := yaml.Unmarshal([]byte(body), &got); err != nil {
		t.Fatalf("/config is not YAML: %v\n%s", err, body)
	}
	at := func(path string) any {
		var v any = got
		for _, k := range strings.Split(path, ".") {
			switch c := v.(type) {
			case map[string]any:
				v = c[k]
			case []any:
				var i int
				fmt.Sscan(k, &i) //nolint:errcheck
				v = c[i]
			default:
				return nil
			}
		}
		return v
	}
	for path, want := range map[string]any{
		// flags
		"tuning.read_timeout": "7s", "tuning.max_conns": 500,
		// the file
		"tuning.max_header_bytes": 8192, "tuning.read_buffer_size": 8192,
		// defaults
		"tuning.idle_timeout": "1m0s", "tuning.handshake_timeout": "10s", "tuning.drain_timeout": "15s",
		"tuning.write_buffer_size": 4096, "tuning.max_body_bytes": 10 << 20, "tuning.upstream_max_conns": 1024,
		"tuning.accept": "gnet", "tuning.serve": "goroutine", "tuning.log_level": "info", "tuning.log_format": "json",
		"tuning.access_log": "off", // startEdge's -access-log off
		"pools.app.balance": "round_robin", "pools.app.connect_timeout": "1s", "pools.app.response_timeout": "15s",
		"pools.app.retry_budget": 20, "pools.app.health_check.interval": "5s", "pools.app.health_check.timeout": "1s",
		"pools.app.health_check.fall": 3, "pools.app.health_check.rise": 2,
		"pools.app.outlier_detection.base_ejection": "30s", "pools.app.outlier_detection.max_ejection": "5m0s",
		"rate_limits.global.per": "1s", "rate_limits.global.burst": 100, "rate_limits.global.on_store_error": "allow",
		"rate_limits.global.lease": 10, "rate_limits.global.ipv6_prefix": 64,
		"redis.timeout": "100ms", "redis.password": "REDACTED",
		"routes.0.name": "*/", "routes.0.timeout": "15s", "routes.0.max_body_bytes": 10 << 20,
	} {
		if g := at(path); fmt.Sprint(g) != fmt.Sprint(want) {
			t.Errorf("/config %s = %v, want %v", path, g, want)
		}
	}
	if v, ok := at("tuning.event_loops").(int); !ok || v < 1 {
		t.Errorf("/config tuning.event_loops = %v, want the running count", at("tuning.event_loops"))
	}
	if strings.Contains(body, "hunter2") {
		t.Errorf("/config shows the Redis password:\n%s", body)
	}
	// What /config shows is a valid configuration file of its own.
	if _, err := config.Parse("config.yaml", []byte(body)); err != nil {
		t.Errorf("/config does not load back: %v\n%s", err, body)
	}
}

// Audit: go-redis's own plain-text log lines broke the JSON log on stderr.
func TestRedisLogLinesJoinTheJSONLog(t *testing.T) {
	pod := startPod(t, "pod", nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := ln.Addr().String()
	ln.Close() // nothing listens there: every dial is refused
	path := filepath.Join(t.TempDir(), "edge.yaml")
	writeConfig(t, path, fmt.Sprintf(`listeners:
  - {name: web, address: "127.0.0.1:0"}
pools:
  app: {endpoints: ["%s"]}
rate_limits:
  global: {key: client_ip, rate: 100, store: redis}
redis: {address: "%s"}
routes:
  - {prefix: /, pool: app, rate_limit: global}
`, pod, down))
	p := startEdge(t, path, "-log-format", "json")
	if resp, err := http.Get("http://" + p.addr("web") + "/"); err == nil {
		resp.Body.Close()
	}
	if !p.waitLog("failed to dial") {
		t.Fatalf("no go-redis dial failure logged:\n%s", p.logText())
	}
	for _, line := range strings.Split(strings.TrimSpace(p.logText()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("stderr line is not JSON: %q", line)
			continue
		}
		if msg, _ := rec["msg"].(string); strings.Contains(msg, "failed to dial") && (rec["level"] != "WARN" || rec["component"] != "redis") {
			t.Errorf("go-redis line logged as %v, component %v; want WARN, redis: %s", rec["level"], rec["component"], line)
		}
	}
}

// Audit: a failed JWKS fetch was logged at INFO.
func TestJWKSFetchFailureIsAWarning(t *testing.T) {
	k := jwKeys(t)
	pod := jwStartPod(t)
	js := jwStartJWKSServer(t)
	jwksURL := "http://" + js.ln.Addr().String() + "/jwks.json"
	path := jwWriteConfig(t, "", pod.addr, fmt.Sprintf("  remote:\n    keys: [{jwks_url: %q, refresh: 1s}]\n", jwksURL),
		"  - {prefix: /, pool: app, jwt: remote}\n")
	e := startEdge(t, path)
	levelOf := func(parts ...string) string {
		for _, line := range strings.Split(e.logText(), "\n") {
			all := true
			for _, p := range parts {
				all = all && strings.Contains(line, p)
			}
			var rec struct{ Level string }
			if all && json.Unmarshal([]byte(line), &rec) == nil {
				return rec.Level
			}
		}
		return ""
	}
	if !jwEventually(15*time.Second, 50*time.Millisecond, func() bool { return levelOf("keeping 0 keys") != "" }) {
		t.Fatalf("no failed JWKS fetch logged:\n%s", e.logText())
	}
	if got := levelOf("keeping 0 keys"); got != "WARN" {
		t.Errorf("failed JWKS fetch logged at %s, want WARN:\n%s", got, e.logText())
	}
	js.serve(t, filepath.Join(k, "r1.jwks.json"))
	if !jwEventually(15*time.Second, 50*time.Millisecond, func() bool { return levelOf("jwks_url", ": 1 keys at ") != "" }) {
		t.Fatalf("no JWKS fetch logged after the server came up:\n%s", e.logText())
	}
	if got := levelOf("jwks_url", ": 1 keys at "); got != "INFO" {
		t.Errorf("successful JWKS fetch logged at %s, want INFO", got)
	}
}
