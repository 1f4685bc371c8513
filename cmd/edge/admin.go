package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.yaml.in/yaml/v3"

	"example.com/edge/cmd/edge/config"
	"example.com/edge/l7/metrics"
)

// adminServer is the admin listener: metrics, health, readiness and the
// running configuration. It is never one of the public listeners.
type adminServer struct {
	addr string
	srv  *http.Server
}

func startAdmin(addr string, rt *edgeRuntime) (*adminServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("edge: admin listener: %w", err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), rt.reg)
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metricsHandler(reg, rt.reg))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		switch {
		case rt.draining.Load():
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, "draining")
		case !rt.ready.Load():
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, "starting")
		default:
			fmt.Fprintln(w, "ready")
		}
	})
	// Go's profiler, for tuning: go tool pprof http://ADMIN/debug/pprof/profile
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("GET /config", func(w http.ResponseWriter, _ *http.Request) {
		b, err := yaml.Marshal(redacted(effectiveConfig(rt.cur.Load(), rt.eventLoops)))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/yaml")
		w.Write(b) //nolint:errcheck
	})
	a := &adminServer{addr: ln.Addr().String(), srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}}
	go a.srv.Serve(ln) //nolint:errcheck // returns ErrServerClosed on close
	return a, nil
}

// metricsHandler serves reg in the Prometheus text format (0.0.4) whatever
// the scraper's Accept header asks for, with HELP and TYPE lines added for
// every family of own that has no samples yet (a labelled counter before its
// first event), which the gatherer leaves out: every edge metric can be
// found from start-up. A family with no samples is valid text exposition;
// the protobuf format could not carry it, so it is never offered.
func metricsHandler(reg prometheus.Gatherer, own *metrics.Registry) http.Handler {
	h := promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError, DisableCompression: true})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r = r.Clone(r.Context())
		r.Header.Set("Accept", "text/plain; version=0.0.4")
		buf := &bufferedResponse{header: w.Header(), status: http.StatusOK}
		h.ServeHTTP(buf, r)
		if buf.status == http.StatusOK {
			appendUnsampled(&buf.body, own.Families())
		}
		w.Header().Del("Content-Length")
		w.Header().Del("Vary") // the format does not depend on Accept
		w.WriteHeader(buf.status)
		w.Write(buf.body.Bytes()) //nolint:errcheck // the scraper went away
	})
}

// appendUnsampled appends to text, a text exposition, HELP and TYPE lines
// for each family it does not already have.
func appendUnsampled(text *bytes.Buffer, families []metrics.Family) {
	have := map[string]bool{}
	for line := range strings.Lines(text.String()) {
		if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
			name, _, _ := strings.Cut(rest, " ")
			have[name] = true
		}
	}
	escape := strings.NewReplacer(`\`, `\\`, "\n", `\n`)
	for _, f := range families {
		if have[f.Name] {
			continue
		}
		have[f.Name] = true
		fmt.Fprintf(text, "# HELP %s %s\n# TYPE %s %s\n", f.Name, escape.Replace(f.Help), f.Name, f.Type)
	}
}

// bufferedResponse holds a handler's response so that it can be added to.
type bufferedResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header         { return b.header }
func (b *bufferedResponse) Write(p []byte) (int, error) { return b.body.Write(p) }
func (b *bufferedResponse) WriteHeader(status int)      { b.status = status }

func (a *adminServer) close() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	a.srv.Shutdown(ctx) //nolint:errcheck
}

const redactedValue = "REDACTED"

// redacted returns a copy of f safe to show: secrets replaced, and query
// strings (which may carry credentials) dropped from URLs. Key files are
// shown by path only; their contents never leave the process.
func redacted(f *config.File) *config.File {
	c := *f
	if c.Redis.Password != "" {
		c.Redis.Password = redactedValue
	}
	if len(f.JWT) > 0 {
		c.JWT = make(map[string]*config.JWTPolicy, len(f.JWT))
		for name, p := range f.JWT {
			cp := *p
			cp.Keys = append([]config.JWTKey(nil), p.Keys...)
			for i := range cp.Keys {
				if u, err := url.Parse(cp.Keys[i].JWKSURL); err == nil && (u.RawQuery != "" || u.User != nil) {
					u.RawQuery, u.User = "", nil
					cp.Keys[i].JWKSURL = u.String() + "?" + redactedValue
				}
			}
			c.JWT[name] = &cp
		}
	}
	return &c
}
