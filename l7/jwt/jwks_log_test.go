package jwt

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"example.com/edge/l7/jwt/mint"
)

// logLine is one Config.Logf call.
type logLine struct {
	level LogLevel
	text  string
}

type logRecorder struct {
	mu    sync.Mutex
	lines []logLine
}

func (r *logRecorder) logf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines = append(r.lines, logLine{Severity(args...), fmt.Sprintf(format, args...)})
}

// find returns the level of the first line containing s, and whether there is one.
func (r *logRecorder) find(s string) (LogLevel, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, l := range r.lines {
		if strings.Contains(l.text, s) {
			return l.level, true
		}
	}
	return 0, false
}

// A failed JWKS fetch is a warning; a successful one is not.
func TestJWKSLogLevels(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://" + ln.Addr().String() + "/jwks.json"
	ln.Close() // connection refused
	var rec logRecorder
	p := newTestPolicy(t, Config{Keys: []KeyConfig{{JWKSURL: down, Alg: "ES256"}}, Logf: rec.logf})
	defer p.Close()
	if err := p.FetchJWKS(context.Background()); err == nil {
		t.Fatal("fetch from a closed port succeeded")
	}
	if lv, ok := rec.find("keeping 0 keys"); !ok || lv != LevelWarn {
		t.Errorf("failed fetch: level %v (logged %v), want LevelWarn; lines %v", lv, ok, rec.lines)
	}

	srv := newJWKSServer(t, mint.JWKS(pubJWK(t, "ES256")))
	p2 := newTestPolicy(t, Config{
		Keys:       []KeyConfig{{JWKSURL: srv.URL + "/jwks.json", Refresh: time.Hour}},
		Algorithms: []string{"EdDSA"}, // the served ES256 key is outside them
		HTTPClient: srv.Client(),
		Logf:       rec.logf,
	})
	defer p2.Close()
	if err := p2.FetchJWKS(context.Background()); err != nil {
		t.Fatal(err)
	}
	if lv, ok := rec.find("1 keys at"); !ok || lv != LevelInfo {
		t.Errorf("successful fetch: level %v (logged %v), want LevelInfo; lines %v", lv, ok, rec.lines)
	}
	if lv, ok := rec.find("not in algorithms"); !ok || lv != LevelWarn {
		t.Errorf("key outside the algorithms: level %v (logged %v), want LevelWarn; lines %v", lv, ok, rec.lines)
	}

	srv.set(http.StatusInternalServerError, nil)
	rec.lines = nil
	if err := p2.FetchJWKS(context.Background()); err == nil {
		t.Fatal("fetch of a 500 succeeded")
	}
	if lv, ok := rec.find("keeping 1 keys"); !ok || lv != LevelWarn {
		t.Errorf("failed refresh: level %v (logged %v), want LevelWarn; lines %v", lv, ok, rec.lines)
	}
}

func TestSeverity(t *testing.T) {
	if Severity("users", 3) != LevelInfo || Severity() != LevelInfo {
		t.Error("a line without an error is not LevelInfo")
	}
	if Severity("users", fmt.Errorf("boom")) != LevelWarn {
		t.Error("a line with an error is not LevelWarn")
	}
}
