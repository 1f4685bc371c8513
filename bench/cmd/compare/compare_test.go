package main

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"example.com/edge/bench/anchors"
)

func TestParseStat(t *testing.T) {
	// A command name with spaces and a parenthesis, as proc(5) allows.
	line := "4242 (we ird) cmd) S 17 4242 4242 0 -1 4194560 100 0 0 0 250 31 0 0 20 0 3 0 12345 1000 200 18446744073709551615\n"
	st, err := parseStat([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	if st.ppid != 17 || st.ticks != 281 {
		t.Errorf("parseStat = %+v, want ppid 17, ticks 250+31", st)
	}
	for _, bad := range []string{"", "12 (x S 1 2", "12 (x) S 1 2 3"} {
		if _, err := parseStat([]byte(bad)); err == nil {
			t.Errorf("parseStat(%q) = nil error", bad)
		}
	}
}

func TestReadStatSelf(t *testing.T) {
	st, err := readStat(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if st.ppid != os.Getppid() {
		t.Errorf("ppid %d, want %d", st.ppid, os.Getppid())
	}
}

func TestParseRollup(t *testing.T) {
	data := "55d0a0a00000-7ffd1b9f2000 ---p 00000000 00:00 0   [rollup]\nRss:               26368 kB\nPss:               18235 kB\nPss_Anon:          14000 kB\n"
	m, err := parseRollup([]byte(data))
	if err != nil {
		t.Fatal(err)
	}
	if m.rssKiB != 26368 || m.pssKiB != 18235 {
		t.Errorf("parseRollup = %+v", m)
	}
	if _, err := parseRollup([]byte("Rss: 1 kB\n")); err == nil {
		t.Error("parseRollup without Pss: nil error")
	}
}

func TestTicksSince(t *testing.T) {
	before := map[int]uint64{1: 100, 2: 50}
	now := map[int]uint64{1: 130, 2: 50, 3: 7} // 3 was forked in between
	if got := ticksSince(before, now); got != 37 {
		t.Errorf("ticksSince = %d, want 37", got)
	}
}

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{
		{[]float64{3}, 3},
		{[]float64{5, 1, 3}, 3},
		{[]float64{4, 1, 3, 2}, 2.5},
	} {
		if got := median(c.in); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.in, got, c.want)
		}
	}
	if !math.IsNaN(median(nil)) {
		t.Error("median(nil) is not NaN")
	}
	in := []float64{3, 1, 2}
	median(in)
	if in[0] != 3 {
		t.Error("median sorted its argument")
	}
}

func TestParseWrk(t *testing.T) {
	out := "Running 1s test @ http://127.0.0.1:1/\n  1 threads and 64 connections\nRequests/sec: 9.00\n" +
		`WRK_JSON {"requests":90000,"duration_us":3000000,"bytes":1,"connect_errors":0,"read_errors":2,"write_errors":0,"status_errors":0,"timeouts":0,"p50_us":812,"p90_us":1500,"p99_us":4100,"mean_us":900.5,"max_us":9000}` + "\n"
	r, err := parseWrk([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	if r.Requests != 90000 || r.P50US != 812 || r.P99US != 4100 || r.ReadErrors != 2 {
		t.Errorf("parseWrk = %+v", r)
	}
	if got := r.rate(); got != 30000 {
		t.Errorf("rate = %v, want 30000", got)
	}
	if p := r.problems(); p != "" {
		t.Errorf("2 read errors in 90000 flagged: %q", p)
	}
	r.StatusErrors = 1
	if p := r.problems(); !strings.Contains(p, "1 non-2xx") {
		t.Errorf("a non-2xx answer not flagged: %q", p)
	}
	if _, err := parseWrk([]byte("Requests/sec: 1\n")); err == nil {
		t.Error("parseWrk without WRK_JSON: nil error")
	}
}

func TestParseCPUList(t *testing.T) {
	got, err := parseCPUList("0,2-4, 7")
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{0, 2, 3, 4, 7}; !equalInts(got, want) {
		t.Errorf("parseCPUList = %v, want %v", got, want)
	}
	for _, bad := range []string{"", "a", "3-1", "-1"} {
		if _, err := parseCPUList(bad); err == nil {
			t.Errorf("parseCPUList(%q) = nil error", bad)
		}
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestHAProxyVersion(t *testing.T) {
	for vv, want := range map[string]bool{
		"HAProxy version 2.6.12-1+deb12u4 2026/10/17": true,
		"HAProxy version 2.4.22-0ubuntu0.22.04.3":     false,
		"HAProxy version 3.0.5":                       true,
		"garbage":                                     false,
	} {
		if got := haproxyHasJWT(vv); got != want {
			t.Errorf("haproxyHasJWT(%q) = %t, want %t", vv, got, want)
		}
	}
}

func TestSelectScenarios(t *testing.T) {
	all, err := selectScenarios("all")
	if err != nil || len(all) != 6 {
		t.Fatalf("all: %d scenarios, %v", len(all), err)
	}
	two, err := selectScenarios("gateway, l4-bulk")
	if err != nil || len(two) != 2 || two[0].name != "gateway" || two[1].name != "l4-bulk" {
		t.Fatalf("two: %+v, %v", two, err)
	}
	if _, err := selectScenarios("plain,nope"); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("unknown scenario: %v", err)
	}
}

func TestFormatting(t *testing.T) {
	for v, want := range map[float64]string{0: "0", 999: "999", 1000: "1,000", 1234567.4: "1,234,567"} {
		if got := thousands(v); got != want {
			t.Errorf("thousands(%v) = %q, want %q", v, got, want)
		}
	}
	if got := latency(850); got != "850 µs" {
		t.Errorf("latency(850) = %q", got)
	}
	if got := latency(1234); got != "1.23 ms" {
		t.Errorf("latency(1234) = %q", got)
	}
	if got := sig3(21.34); got != "21.3" {
		t.Errorf("sig3(21.34) = %q", got)
	}
}

// TestTable checks the ratios: throughput against the fastest anchor, cost
// against the cheapest, and that skipped proxies keep their note.
func TestTable(t *testing.T) {
	plain := scenarios()[0]
	edge, nginx, haproxy := &proxy{name: "edge", prog: "edge"}, &proxy{name: "nginx", prog: "nginx", anchor: true}, &proxy{name: "haproxy", prog: "haproxy", anchor: true}
	rs := []*result{
		{sc: plain, p: edge, samples: []sample{{rate: 30000, cost: 15, busy: 90, p50: 900, p99: 3000}, {rate: 32000, cost: 14, busy: 90}, {rate: 31000, cost: 16, busy: 90}}},
		{sc: plain, p: nginx, samples: []sample{{rate: 20000, cost: 20, busy: 80}}},
		{sc: plain, p: haproxy, samples: []sample{{rate: 25000, cost: 25, busy: 80}}},
	}
	gw := scenarios()[1]
	rs = append(rs, &result{sc: gw, p: nginx, notes: []string{"n/a: no JWT"}})
	var b bytes.Buffer
	writeTable(&b, rs)
	out := b.String()
	for _, want := range []string{
		"| plain    | edge    | 31,000 req/s | ", // median throughput
		"15.0 µs/req",                            // median cost
		"| 1.24x ",                               // 31000 / 25000 (haproxy is the fastest anchor)
		"| 0.75x ",                               // 15 / 20 (nginx is the cheapest anchor)
		"median of 3",
		"n/a: no JWT",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}

// TestSupervisorKillsGroups starts a shell with a grandchild and checks that
// stopping the shell also ends the grandchild, the way nginx's workers must
// go with their master.
func TestSupervisorKillsGroups(t *testing.T) {
	sup := newSupervisor(t.TempDir(), "")
	c, err := sup.start("sh", "", nil, "sh", "-c", "sleep 30 & echo $!; wait")
	if err != nil {
		t.Fatal(err)
	}
	var grandchild int
	for i := 0; i < 200 && grandchild == 0; i++ {
		data, _ := os.ReadFile(c.log)
		grandchild, _ = strconv.Atoi(strings.TrimSpace(string(data)))
		time.Sleep(10 * time.Millisecond)
	}
	if grandchild == 0 {
		t.Fatal("the shell never printed its child's pid")
	}
	if got := tree(c.pid()); len(got) < 2 {
		t.Errorf("tree(%d) = %v, want the shell and its sleep", c.pid(), got)
	}
	sup.Close()
	if !c.exited() {
		t.Error("the shell still runs after Close")
	}
	for i := 0; i < 200; i++ {
		if err := syscall.Kill(grandchild, 0); err != nil {
			return // gone
		}
		if st, err := readStat(grandchild); err == nil && st.ppid != c.pid() && st.ppid != 1 {
			return // pid reused by another process
		}
		time.Sleep(10 * time.Millisecond)
	}
	// A zombie reparented to init still answers kill(0); that is dead.
	data, _ := os.ReadFile("/proc/" + strconv.Itoa(grandchild) + "/stat")
	if !strings.Contains(string(data), ") Z ") {
		t.Errorf("grandchild %d survived: %s", grandchild, data)
	}
	if _, err := sup.start("again", "", nil, "true"); err == nil {
		t.Error("start after Close succeeded")
	}
}

// TestBulkRelayDirect runs the L4 client against the bulk server with no
// proxy in between.
func TestBulkRelayDirect(t *testing.T) {
	s, err := startBulkServer(3<<20 + 5)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := bulkPing(s.addr()); err != nil {
		t.Fatal(err)
	}
	n, err := bulkTransfer(context.Background(), s.addr(), 3<<20+5)
	if err != nil || n != 3<<20+5 {
		t.Fatalf("bulkTransfer = %d, %v", n, err)
	}
}

// TestIdleConnsAgainstPods opens idle connections straight to the Go pods and
// reads their memory-free side: every connection answered and stays open.
func TestIdleConnsAgainstPods(t *testing.T) {
	pods, err := startPods(newSupervisor(t.TempDir(), ""), "", "go", "")
	if err != nil {
		t.Fatal(err)
	}
	defer pods.stop()
	conns, err := openIdle(context.Background(), pods.app[0], 50)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	if err != nil || len(conns) != 50 {
		t.Fatalf("openIdle: %d conns, %v", len(conns), err)
	}
	for i, c := range conns {
		if !stillOpen(c) {
			t.Fatalf("connection %d closed", i)
		}
	}
}

// TestWrkScript runs bench/wrk/mixed.lua in real wrk against the Go pods,
// one of which sits on both routes here, and checks the WRK_JSON line.
func TestWrkScript(t *testing.T) {
	bin, err := exec.LookPath("wrk")
	if err != nil {
		t.Skip("wrk not installed")
	}
	dir := t.TempDir()
	pods, err := startPods(newSupervisor(dir, ""), "", "go", "")
	if err != nil {
		t.Fatal(err)
	}
	defer pods.stop()
	h := &harness{wrkBin: bin}
	script, err := writeScript(dir)
	if err != nil {
		t.Fatal(err)
	}
	h.wrkScript = script
	w := wrkRun{bin: bin, script: script, url: "http://" + pods.app[0] + "/", conns: 4, duration: time.Second,
		env: []string{"TOKEN=abc"}, headers: []string{"Connection: close"}}
	r, err := w.run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if r.Requests == 0 || r.StatusErrors != 0 || r.P50US <= 0 || r.P99US < r.P50US {
		t.Errorf("wrk result %+v", r)
	}
}

func TestDataCarriesEverything(t *testing.T) {
	h := &harness{sup: newSupervisor(t.TempDir(), ""), pods: &podSet{app: []string{"a:1", "a:2"}, auth: []string{"b:1", "b:2"}},
		creds: &credentials{certFile: "c", keyFile: "k", certKeyFile: "ck", secretFile: "s", secret: "x"}, noFile: 20000, maxConns: 9968}
	for _, sc := range scenarios() {
		d := h.data(sc, 1234)
		if d.Listen != 1234 || d.Mode != sc.mode || d.Gateway != sc.gateway || len(d.App) != 2 || d.MaxConns != 9968 {
			t.Errorf("%s: data %+v", sc.name, d)
		}
		for _, tmpl := range []string{anchors.Edge, anchors.Nginx, anchors.HAProxy} {
			if _, err := anchors.Render(tmpl, d); err != nil {
				t.Errorf("%s: %v", sc.name, err)
			}
		}
	}
}

// TestWatchdog checks the watchdog's protocol: groups still listed when its
// input ends are killed, groups taken off the list are left alone, and the
// work directory goes.
func TestWatchdog(t *testing.T) {
	start := func() *exec.Cmd {
		cmd := exec.Command("sleep", "30")
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	listed, forgotten := start(), start()
	defer forgotten.Process.Kill()
	dir := filepath.Join(t.TempDir(), "bench-compare-1")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	input := fmt.Sprintf("+%d\n+%d\n-%d\nr%s\n", listed.Process.Pid, forgotten.Process.Pid, forgotten.Process.Pid, dir)
	runWatchdog(strings.NewReader(input))
	if err := listed.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Errorf("listed group: Wait = %v, want killed", err)
	}
	if err := forgotten.Process.Signal(syscall.Signal(0)); err != nil {
		t.Errorf("forgotten group was killed: %v", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("work directory still there: %v", err)
	}
}

func TestUnsupported(t *testing.T) {
	all := scenarios()
	gateway, l4 := all[1], all[4]
	nginx := &proxy{name: "nginx", prog: "nginx", anchor: true, noStream: "skipped: no stream module"}
	if why := nginx.unsupported(gateway); !strings.HasPrefix(why, "n/a") {
		t.Errorf("nginx gateway: %q, want n/a", why)
	}
	if why := nginx.unsupported(l4); why != nginx.noStream {
		t.Errorf("nginx l4 without stream: %q", why)
	}
	if why := nginx.unsupported(all[0]); why != "" {
		t.Errorf("nginx plain: %q, want runnable", why)
	}
	gone := &proxy{name: "haproxy", prog: "haproxy", anchor: true, missing: "skipped: haproxy not installed"}
	for _, sc := range all {
		if why := gone.unsupported(sc); why != gone.missing {
			t.Errorf("missing haproxy, %s: %q", sc.name, why)
		}
	}
}
