// Command compare benchmarks edge side by side with nginx and HAProxy on one
// machine: the same upstream pods, the same routing, the same load from wrk
// over loopback, one worker or thread per proxy, and one table of medians
// with each proxy's CPU time per request read from /proc.
//
//	make bench-compare                     # installs the tools, builds, runs
//	go run ./bench/cmd/compare -edge bin/edge -duration 10s -runs 3
//
// Scenarios: plain routing, gateway (HS256 JWT + rate limit + routing), TLS
// keep-alive, TLS with a new connection per request, L4 bulk relay, and
// memory with 10k idle keep-alive connections. bench/README.md explains the
// method and carries the results.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	benchwrk "example.com/edge/bench/wrk"
)

// options are the command's flags.
type options struct {
	scenarios     string
	proxies       string
	duration      time.Duration
	warmup        time.Duration
	connections   int
	runs          int
	edge          string
	l4Bytes       int64
	idleConns     int
	pin           bool
	proxyCPUs     string
	loadCPUs      string
	pods          string
	jwtCacheBytes int
	edgePipeline  int
	pipelineSet   bool // -edge-pipeline was given
	edgeArgs      string
	nice          int
	keep          bool
}

// harness is one comparison's shared state: the processes it started, the
// pods, the credentials and the machine's limits.
type harness struct {
	cfg       options
	sup       *supervisor
	pods      *podSet
	bulk      *bulkServer
	creds     *credentials
	wrkBin    string
	wrkScript string
	taskset   string
	clk       float64
	proxyCPUs string // taskset list for the proxy, "" unpinned
	loadCPUs  string // taskset list for wrk and the pods, "" unpinned
	noFile    int    // open-file limit every process runs with
	maxConns  int    // client connections each proxy is sized for
	idleConns int    // connections the idle-memory scenario opens
}

func main() {
	if len(os.Args) == 2 && os.Args[1] == watchdogFlag {
		runWatchdog(os.Stdin)
		return
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	var o options
	fs := flag.NewFlagSet("compare", flag.ContinueOnError)
	fs.SetOutput(stderr)
	names := make([]string, 0, 6)
	for _, sc := range scenarios() {
		names = append(names, sc.name)
	}
	fs.StringVar(&o.scenarios, "scenarios", "all", "comma-separated scenarios: "+strings.Join(names, ", ")+" (or all)")
	fs.StringVar(&o.proxies, "proxies", "edge,edge-pipe,nginx,haproxy", "comma-separated rows: nginx, haproxy, and edge or edge variants named edge[-loop][-pipe|-pipeN] (-loop: -serve loop; -pipe: pools pipeline: -edge-pipeline; -pipeN: pipeline: N)")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "measured time of each run (whole seconds for wrk)")
	fs.DurationVar(&o.warmup, "warmup", 2*time.Second, "unmeasured load before each run (0 for none)")
	fs.IntVar(&o.connections, "connections", 64, "wrk connections (wrk runs one thread)")
	fs.IntVar(&o.runs, "runs", 3, "runs of every proxy in every scenario; the table shows medians")
	fs.StringVar(&o.edge, "edge", "bin/edge", "edge binary (make build writes bin/edge)")
	fs.Int64Var(&o.l4Bytes, "l4-bytes", 1<<30, "bytes per transfer in l4-bulk")
	fs.IntVar(&o.idleConns, "idle-conns", 10000, "idle keep-alive connections in idle-memory (capped by the open-file limit)")
	fs.BoolVar(&o.pin, "pin", true, "pin the proxy to its own CPU and everything else to the others (taskset)")
	fs.StringVar(&o.proxyCPUs, "proxy-cpus", "", "CPUs for the proxy (default: the last CPU)")
	fs.StringVar(&o.loadCPUs, "load-cpus", "", "CPUs for wrk, the pods and the harness (default: all others)")
	fs.StringVar(&o.pods, "pods", "auto", "upstream pods: nginx (one worker serving a static body), go (fasthttp in the harness), or auto")
	fs.IntVar(&o.jwtCacheBytes, "edge-jwt-cache-bytes", 0, "edge's verified-token cache in the gateway scenario (0: edge's default, -1: off)")
	fs.IntVar(&o.edgePipeline, "edge-pipeline", 2, "pools' pipeline setting of the -pipe edge rows (edge-pipe, edge-loop-pipe): connections per pod pipelining idempotent requests, 1-64")
	fs.StringVar(&o.edgeArgs, "edge-args", "", "extra flags for every edge row, space-separated (e.g. '-read-buffer-size 4096' or '-accept go'); -serve is the -loop rows' business")
	fs.IntVar(&o.nice, "nice", defaultNice(), "nice value for the harness and everything it starts; the default (-20 as root, else 0) shields the run from other work on a shared machine")
	fs.BoolVar(&o.keep, "keep", false, "keep the work directory (configs, logs) instead of removing it")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: compare [flags]\n\nBenchmarks edge against nginx and HAProxy on this machine (see bench/README.md).\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	fs.Visit(func(f *flag.Flag) { o.pipelineSet = o.pipelineSet || f.Name == "edge-pipeline" })
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := compare(ctx, o, stdout, stderr); err != nil {
		fmt.Fprintln(stderr, err)
		if ctx.Err() != nil {
			return 130
		}
		return 1
	}
	return 0
}

// selectScenarios resolves the -scenarios flag.
func selectScenarios(list string) ([]scenario, error) {
	all := scenarios()
	if list == "" || list == "all" {
		return all, nil
	}
	var out []scenario
	for _, name := range strings.Split(list, ",") {
		name = strings.TrimSpace(name)
		found := false
		for _, sc := range all {
			if sc.name == name {
				out, found = append(out, sc), true
			}
		}
		if !found {
			return nil, fmt.Errorf("compare: unknown scenario %q (have %s)", name, scenarioNames(all))
		}
	}
	return out, nil
}

func scenarioNames(ss []scenario) string {
	n := make([]string, len(ss))
	for i, s := range ss {
		n[i] = s.name
	}
	return strings.Join(n, ", ")
}

// selectProxies resolves the -proxies flag against the proxies found: nginx
// and haproxy by name, edge rows by the variant grammar (parseEdgeVariant),
// each edge row a copy of the found edge with its own name and tuning. pipe
// is -edge-pipeline; usesPipe reports that some row takes it.
func selectProxies(list string, found []*proxy, pipe int) (rows []*proxy, usesPipe bool, err error) {
	var edge *proxy
	for _, f := range found {
		if f.prog == "edge" {
			edge = f
		}
	}
	for _, name := range strings.Split(list, ",") {
		name = strings.TrimSpace(name)
		for _, r := range rows {
			if r.name == name {
				return nil, false, fmt.Errorf("compare: proxy %q listed twice", name)
			}
		}
		v, bare, isEdge, err := parseEdgeVariant(name, pipe)
		if err != nil {
			return nil, false, err
		}
		if isEdge && edge != nil {
			row := *edge
			row.name, row.variant = name, v
			rows, usesPipe = append(rows, &row), usesPipe || bare
			continue
		}
		var p *proxy
		for _, f := range found {
			if f.name == name && f.prog != "edge" {
				p = f
			}
		}
		if p == nil {
			return nil, false, fmt.Errorf("compare: unknown proxy %q (have nginx, haproxy, and edge[-loop][-pipe|-pipeN])", name)
		}
		rows = append(rows, p)
	}
	return rows, usesPipe, nil
}

func compare(ctx context.Context, o options, stdout, stderr io.Writer) error {
	if o.runs < 1 || o.connections < 1 || o.duration <= 0 || o.l4Bytes < 1 || o.idleConns < 1 {
		return errors.New("compare: -runs, -connections, -duration, -l4-bytes and -idle-conns must be positive")
	}
	scs, err := selectScenarios(o.scenarios)
	if err != nil {
		return err
	}
	found, err := findProxies(o.edge)
	if err != nil {
		return err
	}
	if o.edgePipeline < 1 || o.edgePipeline > maxPipeline {
		return fmt.Errorf("compare: -edge-pipeline %d is not 1-%d (it is the -pipe rows' pipeline; plain edge does not pipeline)", o.edgePipeline, maxPipeline)
	}
	proxies, usesPipe, err := selectProxies(o.proxies, found, o.edgePipeline)
	if err != nil {
		return err
	}
	if o.pipelineSet && !usesPipe {
		return fmt.Errorf("compare: -edge-pipeline %d applies to the -pipe edge rows, and -proxies %q has none (add edge-pipe)", o.edgePipeline, o.proxies)
	}
	if err := checkEdgeArgs(strings.Fields(o.edgeArgs), proxies); err != nil {
		return err
	}
	h := &harness{cfg: o, clk: clockTicks()}

	// Every process inherits the raised limit. Each proxy is sized for the
	// idle-memory connections plus a margin, and no more: nginx and HAProxy
	// allocate per-connection tables up front, so a limit of a million would
	// otherwise inflate their memory. HAProxy needs two descriptors per
	// connection, which bounds the connections under a low limit.
	limit := int(raiseNoFile(1 << 20))
	h.maxConns = min((limit-64)/2, o.idleConns+1000)
	h.noFile = min(limit, 2*h.maxConns+128)
	h.idleConns = min(o.idleConns, (h.maxConns-100)/100*100)
	if h.idleConns < 1 {
		return fmt.Errorf("compare: open-file limit %d is too low for the idle-memory scenario", limit)
	}

	if err := h.setupPinning(); err != nil {
		return err
	}
	if o.nice != 0 {
		if err := reniceSelf(o.nice); err != nil {
			fmt.Fprintf(stderr, "%v; running at the inherited priority\n", err)
			h.cfg.nice = 0
		}
	}
	if p, err := exec.LookPath("wrk"); err == nil {
		h.wrkBin = p
	}

	dir, err := os.MkdirTemp("", "bench-compare-")
	if err != nil {
		return fmt.Errorf("compare: %w", err)
	}
	// Proxies run their workers as nobody; they must read the configs.
	_ = os.Chmod(dir, 0o755)
	if o.keep {
		fmt.Fprintf(stderr, "work directory (kept): %s\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	h.sup = newSupervisor(dir, h.taskset)
	defer h.sup.Close()
	if err := h.sup.startWatchdog(); err != nil {
		return err
	}
	if !o.keep {
		h.sup.removeOnDeath(dir)
	}
	// Ctrl-C: kill every child right away, even mid-run.
	go func() {
		<-ctx.Done()
		h.sup.Close()
	}()

	if h.wrkScript, err = writeScript(dir); err != nil {
		return err
	}
	var edge *proxy
	for _, p := range found {
		if p.prog == "edge" {
			edge = p
		}
	}
	// Measure a private copy: a rebuild of bin/edge during the run (someone
	// else at work in the same checkout) must not change what is measured.
	if edge.bin, err = copyExecutable(edge.bin, filepath.Join(dir, "edge")); err != nil {
		return err
	}
	for _, p := range proxies {
		if p.prog == "edge" {
			p.bin = edge.bin
		}
	}
	if h.creds, err = makeCredentials(dir, edge.bin); err != nil {
		return err
	}
	nginxBin := ""
	for _, p := range found {
		if p.prog == "nginx" {
			nginxBin = p.bin
		}
	}
	if h.pods, err = startPods(h.sup, nginxBin, o.pods, h.loadCPUs); err != nil {
		return err
	}
	defer h.pods.stop()
	for _, sc := range scs {
		if sc.kind == kindL4 {
			if h.bulk, err = startBulkServer(o.l4Bytes); err != nil {
				return err
			}
			defer h.bulk.Close()
			break
		}
	}

	h.header(stdout, scs, found, proxies)

	var results []*result
	for _, sc := range scs {
		group := h.group(sc, proxies)
		for run := 0; run < o.runs; run++ {
			// Rotate who goes first, so drift on a busy machine is shared.
			for k := range group {
				r := group[(k+run)%len(group)]
				if r.skip != "" {
					continue
				}
				if err := ctx.Err(); err != nil {
					return fmt.Errorf("compare: interrupted")
				}
				s, err := h.runOne(ctx, sc, r.p)
				if ctx.Err() != nil {
					return fmt.Errorf("compare: interrupted")
				}
				if err != nil {
					fmt.Fprintf(stderr, "%-13s run %d/%d %-14s FAILED: %v\n", sc.name, run+1, o.runs, r.p.name, err)
					msg, _, _ := strings.Cut(err.Error(), "\n")
					r.addNote("failed: " + msg)
					continue
				}
				if s.note != "" {
					r.addNote(fmt.Sprintf("run %d: %s", run+1, s.note))
				}
				r.samples = append(r.samples, s)
				fmt.Fprintf(stderr, "%-13s run %d/%d %-14s %s\n", sc.name, run+1, o.runs, r.p.name, progress(sc, s))
			}
		}
		results = append(results, group...)
	}
	fmt.Fprintln(stdout)
	writeTable(stdout, results)
	return nil
}

// group is one scenario's rows before any run, one per proxy, each with
// why it is not run ("" when it is) and what of its variant has no effect.
func (h *harness) group(sc scenario, proxies []*proxy) []*result {
	group := make([]*result, len(proxies))
	for i, p := range proxies {
		r := &result{sc: sc, p: p}
		group[i] = r
		switch why := p.unsupported(sc); {
		case why != "":
			r.skip = why
		case sc.kind == kindWrk && h.wrkBin == "":
			r.skip = "skipped: wrk not installed (apt-get install wrk, or make bench-compare)"
		case twin(proxies, i, sc) != nil:
			// A variant whose changes have no effect here would measure
			// its twin again and show the machine's drift as a difference.
			r.skip = fmt.Sprintf("not run: same as %s here (%s)", twin(proxies, i, sc).name, p.variant.inert(sc))
		}
		if r.skip != "" {
			r.addNote(r.skip)
		} else if p.prog == "edge" && p.variant.inert(sc) != "" {
			r.addNote(p.variant.inert(sc))
		}
	}
	return group
}

// progress is one run's line on stderr.
func progress(sc scenario, s sample) string {
	switch sc.kind {
	case kindIdle:
		return fmt.Sprintf("%s conns: PSS %.1f MiB, RSS %.1f MiB, %+.2f KiB/conn", thousands(s.rate), s.cost, s.rssMiB, s.connKiB)
	case kindL4:
		return fmt.Sprintf("%s MB/s, %s ms/GiB CPU, %.0f%% of a core", thousands(s.rate), sig3(s.cost), s.busy)
	}
	return fmt.Sprintf("%s %s, p50 %s, p99 %s, %s %s CPU, %.0f%% of a core %s", thousands(s.rate), sc.unit,
		latency(s.p50), latency(s.p99), sig3(s.cost), sc.costUnit, s.busy, s.note)
}

// setupPinning decides the CPU split and pins the harness itself to the
// load CPUs. With one CPU nothing is pinned.
func (h *harness) setupPinning() error {
	if !h.cfg.pin {
		return nil
	}
	p, err := exec.LookPath("taskset")
	if err != nil {
		return errors.New("compare: taskset not found (util-linux); install it or pass -pin=false")
	}
	cpus := onlineCPUs()
	if len(cpus) < 2 {
		return nil
	}
	h.taskset = p
	h.proxyCPUs, h.loadCPUs = h.cfg.proxyCPUs, h.cfg.loadCPUs
	if h.proxyCPUs == "" {
		h.proxyCPUs = strconv.Itoa(cpus[len(cpus)-1])
	}
	proxy, err := parseCPUList(h.proxyCPUs)
	if err != nil {
		return err
	}
	if h.loadCPUs == "" {
		var rest []string
		for _, c := range cpus {
			taken := false
			for _, pc := range proxy {
				taken = taken || pc == c
			}
			if !taken {
				rest = append(rest, strconv.Itoa(c))
			}
		}
		if len(rest) == 0 {
			return fmt.Errorf("compare: -proxy-cpus %s leaves no CPU for the load", h.proxyCPUs)
		}
		h.loadCPUs = strings.Join(rest, ",")
	}
	load, err := parseCPUList(h.loadCPUs)
	if err != nil {
		return err
	}
	return pinSelf(load)
}

// header prints the machine, the tools and the settings, so a table is
// never quoted without them.
func (h *harness) header(w io.Writer, scs []scenario, found, rows []*proxy) {
	fmt.Fprintf(w, "# edge vs nginx vs HAProxy (bench/cmd/compare)\n\n")
	fmt.Fprintf(w, "machine:  %d CPUs, %s, %s\n", runtime.NumCPU(), cpuModel(), kernel())
	for _, p := range found {
		switch p.prog {
		case "edge":
			fmt.Fprintf(w, "edge:     %s\n", version(p.bin, "version"))
		case "nginx":
			fmt.Fprintf(w, "nginx:    %s\n", version(p.bin, "-v"))
		case "haproxy":
			fmt.Fprintf(w, "haproxy:  %s\n", version(p.bin, "-v"))
		}
	}
	fmt.Fprintf(w, "wrk:      %s\n", version(h.wrkBin, "-v"))
	fmt.Fprintf(w, "pods:     %s, 2 app + 2 auth\n", h.pods.kind)
	pin := "off"
	if h.proxyCPUs != "" {
		pin = fmt.Sprintf("proxy on CPU %s; wrk, pods and harness on CPU %s", h.proxyCPUs, h.loadCPUs)
	}
	if h.cfg.nice != 0 {
		pin += fmt.Sprintf("; nice %d", h.cfg.nice)
	}
	fmt.Fprintf(w, "pinning:  %s\n", pin)
	fmt.Fprintf(w, "load:     wrk -t1 -c%d, %s measured after %s warm-up, %d runs, medians; open-file limit %d\n",
		h.cfg.connections, h.cfg.duration, h.cfg.warmup, h.cfg.runs, h.noFile)
	edgeArgs := ""
	if h.cfg.edgeArgs != "" {
		edgeArgs = " " + h.cfg.edgeArgs
	}
	fmt.Fprintf(w, "proxies:  1 worker each: edge -event-loops 1%s GOMAXPROCS=1; nginx worker_processes 1; haproxy nbthread 1; access logs off\n", edgeArgs)
	for _, p := range rows {
		if p.prog == "edge" {
			fmt.Fprintf(w, "  %-14s %s\n", p.name, p.variant.describe())
		}
	}
	fmt.Fprintf(w, "cost:     the proxy's utime+stime from /proc (all its processes) per request, handshake, GiB, or its memory\n")
	fmt.Fprintf(w, "\nscenarios:\n")
	for _, sc := range scs {
		about := sc.about
		if sc.kind == kindIdle {
			about = strings.Replace(about, "N ", thousands(float64(h.idleConns))+" ", 1)
		}
		fmt.Fprintf(w, "  %-13s %s\n", sc.name, about)
	}
}

func cpuModel() string {
	data, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

func kernel() string {
	data, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return runtime.GOOS
	}
	return "Linux " + strings.TrimSpace(string(data))
}

// defaultNice is -20 for root, which may raise its priority, and 0 for
// others.
func defaultNice() int {
	if os.Geteuid() == 0 {
		return -20
	}
	return 0
}

// writeScript writes bench/wrk/mixed.lua (embedded) into dir.
func writeScript(dir string) (string, error) {
	path := filepath.Join(dir, "mixed.lua")
	if err := os.WriteFile(path, []byte(benchwrk.Mixed), 0o644); err != nil {
		return "", fmt.Errorf("compare: %w", err)
	}
	return path, nil
}

// copyExecutable copies the program at src to dst and returns dst.
func copyExecutable(src, dst string) (string, error) {
	in, err := os.Open(src)
	if err != nil {
		return "", fmt.Errorf("compare: %w", err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return "", fmt.Errorf("compare: %w", err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return "", fmt.Errorf("compare: copy %s: %w", src, err)
	}
	if err := out.Close(); err != nil {
		return "", fmt.Errorf("compare: %w", err)
	}
	return dst, nil
}
