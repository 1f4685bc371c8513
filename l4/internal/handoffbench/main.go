// Command handoffbench measures what the gnet accept path and its descriptor
// hand-off cost against accepting with Go's net.Listener (l4's accept=go),
// side by side in one run: keep-alive requests per second and new
// connections per second, each with the server's CPU time per request.
//
// It runs an l4.Server with one plaintext HTTP listener feeding a minimal
// fasthttp server in this process, and wrk (a separate process, so its CPU is
// not counted) as the load generator, alternating the two accept modes.
//
//	go run ./l4/internal/handoffbench -duration 5s -rounds 2
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/exec"
	"regexp"
	"runtime/pprof"
	"strconv"
	"syscall"
	"time"

	"example.com/edge/l4"
	"github.com/valyala/fasthttp"
)

func main() {
	duration := flag.Duration("duration", 5*time.Second, "length of each wrk run")
	rounds := flag.Int("rounds", 2, "rounds; each runs every mode and workload once")
	conns := flag.Int("conns", 50, "wrk connections")
	threads := flag.Int("threads", 1, "wrk threads")
	loops := flag.Int("event-loops", 0, "gnet event loops (0 = GOMAXPROCS)")
	reusePort := flag.Bool("reuseport", false, "SO_REUSEPORT: one listening socket per gnet event loop, no accept reactor")
	wrk := flag.String("wrk", "wrk", "path to wrk")
	only := flag.String("accept", "", "run only this accept mode (gnet or go)")
	workload := flag.String("workload", "", "run only this workload (keep-alive or new-connection)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			log.Fatal(err)
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}

	type key struct {
		mode     l4.AcceptMode
		workload string
	}
	type sample struct{ rate, cpuPerOp float64 }
	results := map[key][]sample{}
	workloads := []string{"keep-alive", "new-connection"}
	modes := []l4.AcceptMode{l4.AcceptGnet, l4.AcceptGo}
	if *only != "" {
		modes = []l4.AcceptMode{l4.AcceptMode(*only)}
	}
	if *workload != "" {
		workloads = []string{*workload}
	}
	for r := range *rounds {
		for _, w := range workloads {
			for i := range modes {
				mode := modes[(i+r)%len(modes)] // alternate which mode goes first
				rate, cpu, err := run(mode, w, *wrk, *duration, *conns, *threads, *loops, *reusePort)
				if err != nil {
					log.Fatalf("%s %s: %v", mode, w, err)
				}
				fmt.Fprintf(os.Stderr, "round %d %-14s accept=%-4s %10.0f /s  %6.1f us CPU/op\n", r+1, w, mode, rate, cpu)
				results[key{mode, w}] = append(results[key{mode, w}], sample{rate, cpu})
			}
		}
	}
	fmt.Printf("| workload | accept | rate (/s, mean of %d) | server CPU per op (us) |\n| --- | --- | --- | --- |\n", *rounds)
	for _, w := range workloads {
		for _, m := range modes {
			var rate, cpu float64
			ss := results[key{m, w}]
			for _, s := range ss {
				rate += s.rate
				cpu += s.cpuPerOp
			}
			fmt.Printf("| %s | %s | %.0f | %.1f |\n", w, m, rate/float64(len(ss)), cpu/float64(len(ss)))
		}
	}
}

var reqPerSec = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
var totalReqs = regexp.MustCompile(`([0-9]+) requests in`)

// run serves one workload under one accept mode and returns the request (or
// connection) rate and the server's CPU microseconds per request.
func run(mode l4.AcceptMode, workload, wrk string, d time.Duration, conns, threads, loops int, reusePort bool) (float64, float64, error) {
	addr := "127.0.0.1:0"
	if reusePort { // SO_REUSEPORT needs a fixed port: take one that was just free
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return 0, 0, err
		}
		addr = ln.Addr().String()
		ln.Close()
	}
	srv, err := l4.New(l4.Config{
		Accept:     mode,
		EventLoops: loops,
		ReusePort:  reusePort,
		Listeners:  []l4.ListenerConfig{{Name: "web", Address: addr}},
	})
	if err != nil {
		return 0, 0, err
	}
	if err := srv.Start(); err != nil {
		return 0, 0, err
	}
	hs := &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("ok") },
		Logger:  quiet{},
	}
	go hs.Serve(srv.Listener("web"))
	defer func() {
		hs.Shutdown()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}()

	args := []string{"-t", strconv.Itoa(threads), "-c", strconv.Itoa(conns), "-d", d.String()}
	if workload == "new-connection" {
		args = append(args, "-H", "Connection: close")
	}
	args = append(args, "http://"+srv.Addr("web").String()+"/")
	before := cpuTime()
	out, err := exec.Command(wrk, args...).CombinedOutput()
	used := cpuTime() - before
	if err != nil {
		return 0, 0, fmt.Errorf("wrk: %v\n%s", err, out)
	}
	m := reqPerSec.FindSubmatch(out)
	n := totalReqs.FindSubmatch(out)
	if m == nil || n == nil {
		return 0, 0, fmt.Errorf("wrk output not understood:\n%s", out)
	}
	rate, _ := strconv.ParseFloat(string(m[1]), 64)
	total, _ := strconv.ParseFloat(string(n[1]), 64)
	return rate, float64(used.Microseconds()) / total, nil
}

// cpuTime is the user+system CPU this process (the server side) has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

type quiet struct{}

func (quiet) Printf(string, ...any) {}
