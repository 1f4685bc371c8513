package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.yaml.in/yaml/v3"

	"example.com/edge/cmd/edge/config"
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
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
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
		b, err := yaml.Marshal(redacted(rt.cur.Load().file))
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
