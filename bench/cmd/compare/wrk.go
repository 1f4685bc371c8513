package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"syscall"
	"time"
)

// wrkResult is what bench/wrk/mixed.lua's done() prints on its WRK_JSON line.
type wrkResult struct {
	Requests      int64   `json:"requests"`
	DurationUS    int64   `json:"duration_us"`
	Bytes         int64   `json:"bytes"`
	ConnectErrors int64   `json:"connect_errors"`
	ReadErrors    int64   `json:"read_errors"`
	WriteErrors   int64   `json:"write_errors"`
	StatusErrors  int64   `json:"status_errors"`
	Timeouts      int64   `json:"timeouts"`
	P50US         float64 `json:"p50_us"`
	P90US         float64 `json:"p90_us"`
	P99US         float64 `json:"p99_us"`
	MeanUS        float64 `json:"mean_us"`
	MaxUS         float64 `json:"max_us"`
}

// rate is requests per second over wrk's own measured duration.
func (r wrkResult) rate() float64 {
	if r.DurationUS <= 0 {
		return 0
	}
	return float64(r.Requests) / (float64(r.DurationUS) / 1e6)
}

// problems describes failed requests, "" when there were none worth noting
// (a few socket errors at the very end of a close-per-request run are
// normal; more than 0.1% of requests is not).
func (r wrkResult) problems() string {
	bad := r.StatusErrors + r.ConnectErrors + r.ReadErrors + r.WriteErrors + r.Timeouts
	if bad == 0 || (r.Requests > 0 && float64(bad)/float64(r.Requests) < 0.001 && r.StatusErrors == 0) {
		return ""
	}
	return fmt.Sprintf("errors: %d non-2xx/3xx, %d connect, %d read, %d write, %d timeout of %d",
		r.StatusErrors, r.ConnectErrors, r.ReadErrors, r.WriteErrors, r.Timeouts, r.Requests)
}

var wrkMarker = []byte("WRK_JSON ")

// parseWrk finds the WRK_JSON line in wrk's output.
func parseWrk(out []byte) (wrkResult, error) {
	i := bytes.Index(out, wrkMarker)
	if i < 0 {
		return wrkResult{}, errors.New("compare: wrk printed no WRK_JSON line (is the script bench/wrk/mixed.lua?)")
	}
	line := out[i+len(wrkMarker):]
	if j := bytes.IndexByte(line, '\n'); j >= 0 {
		line = line[:j]
	}
	var r wrkResult
	if err := json.Unmarshal(line, &r); err != nil {
		return r, fmt.Errorf("compare: wrk result %q: %w", line, err)
	}
	return r, nil
}

// wrkRun is one wrk invocation.
type wrkRun struct {
	bin, script, url string
	conns            int
	duration         time.Duration
	headers          []string // extra -H values
	env              []string // TOKEN=...
	cpus             string   // taskset list, "" for none
	taskset          string
}

// run runs wrk with one thread and returns its result. Cancelling ctx kills
// wrk's process group.
func (w wrkRun) run(ctx context.Context) (wrkResult, error) {
	secs := int(w.duration.Round(time.Second) / time.Second)
	if secs < 1 {
		secs = 1
	}
	args := []string{"-t1", "-c" + strconv.Itoa(w.conns), "-d" + strconv.Itoa(secs) + "s", "--timeout", "5s", "-s", w.script}
	for _, h := range w.headers {
		args = append(args, "-H", h)
	}
	args = append(args, w.url)
	argv := append([]string{w.bin}, args...)
	if w.cpus != "" && w.taskset != "" {
		argv = append([]string{w.taskset, "-c", w.cpus}, argv...)
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(cmd.Environ(), w.env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return wrkResult{}, ctx.Err()
		}
		return wrkResult{}, fmt.Errorf("compare: wrk: %w\n%s", err, out.Bytes())
	}
	r, err := parseWrk(out.Bytes())
	if err != nil {
		return r, fmt.Errorf("%w\n%s", err, out.Bytes())
	}
	return r, nil
}
