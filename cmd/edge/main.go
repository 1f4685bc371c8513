// Command edge is the edge proxy: one binary for the whole request path in
// front of a SaaS's pods (cloud load balancer, API gateway, ingress, Service).
//
//	edge -config FILE        run until SIGTERM/SIGINT; SIGHUP reloads FILE
//	edge run -config FILE    the same
//	edge demo                the embedded demo on 127.0.0.1:8080/8443/9901
//	edge check -config FILE  validate FILE and the files it names
//	edge token ...           mint a signed JWT
//	edge version             version, Go version, features
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"example.com/edge/cmd/edge/config"
)

// version is set at build time (-ldflags -X main.version=...).
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	cmd := "run"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "run":
		return cmdRun(args, stdout, stderr)
	case "demo":
		return cmdDemo(args, stdout, stderr)
	case "check":
		return cmdCheck(args, stdout, stderr)
	case "token":
		return cmdToken(args, stdout, stderr)
	case "version":
		fmt.Fprintf(stdout, "edge %s %s %s/%s\nfeatures: %s\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH, features)
		return 0
	case "help":
		usage(stdout, nil)
		return 0
	}
	fmt.Fprintf(stderr, "edge: unknown command %q\n\n", cmd)
	usage(stderr, nil)
	return 2
}

// features lists what this build can do, for `edge version`.
const features = "gnet-l4 tls-termination(X25519MLKEM768) sni-passthrough proxy-protocol-v1v2 jwt(HS,RS,PS,ES,EdDSA,Ed25519,Ed448,ML-DSA) rate-limit(local,redis) lb(round_robin,least_request,random,consistent_hash/maglev) health-checks retries prometheus access-log"

func usage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprint(w, `edge: an L4/L7 edge proxy

usage:
  edge -config FILE [flags]      run until SIGTERM/SIGINT (graceful drain); SIGHUP reloads FILE
  edge run -config FILE [flags]  the same
  edge demo [flags]              the embedded demo: pods, TLS, JWT and limits on 127.0.0.1
  edge check -config FILE        validate FILE and every file it names; exit 0 and "ok", or 1 and the problems
  edge token -alg ALG -key FILE [-kid K] [-sub S] [-aud A] [-iss I] [-scope S] [-ttl D] [-claim k=v ...]
                                 mint a signed JWT
  edge version                   version, Go version, enabled features

`)
	if fs != nil {
		fmt.Fprint(w, "flags (each also settable in the file's tuning: block; a flag wins):\n")
		fs.SetOutput(w)
		fs.PrintDefaults()
	} else {
		fmt.Fprint(w, "run `edge -h` for the tuning flags.\n")
	}
}

func newRunFlags(name string, stderr io.Writer) (*flag.FlagSet, *string, *tuningFlags) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "configuration file (YAML, see README)")
	t := registerTuning(fs)
	fs.Usage = func() { usage(stderr, fs) }
	return fs, path, t
}

func cmdRun(args []string, stdout, stderr io.Writer) int {
	fs, path, tf := newRunFlags("edge", stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		return extraArgs(stderr, "edge", fs.Args(), fs.Usage)
	}
	tf.parsed()
	if err := tf.check(); err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	if *path == "" {
		fmt.Fprintln(stderr, "edge: -config FILE is required (or try `edge demo`)")
		return 2
	}
	f, err := config.Load(*path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	tf.apply(f)
	if err := checkServeAccept(f); err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	log := newLogger(f.Tuning, stderr)
	sig := notifySignals()
	rt, err := start(*path, f, tf, log, stdout)
	if err != nil {
		signal.Stop(sig)
		fmt.Fprintln(stderr, err)
		return 1
	}
	return serveSignals(rt, sig)
}

// notifySignals starts catching the signals edge handles. It is called
// before the edge starts serving, so that a signal sent as soon as the
// "serving" line appears is handled rather than killing the process.
func notifySignals() chan os.Signal {
	sig := make(chan os.Signal, 4)
	signal.Notify(sig, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
	return sig
}

// serveSignals runs until SIGTERM/SIGINT, reloading on SIGHUP.
func serveSignals(rt *edgeRuntime, sig chan os.Signal) int {
	defer signal.Stop(sig)
	for s := range sig {
		if s == syscall.SIGHUP {
			if err := rt.reload(); err != nil {
				rt.log.Error("reload failed; still serving the previous configuration", "error", err.Error())
			}
			continue
		}
		rt.log.Info("draining", "signal", s.String(), "deadline", rt.drainTimeout().String())
		ctx, cancel := context.WithTimeout(context.Background(), rt.drainTimeout())
		err := rt.shutdown(ctx)
		cancel()
		if err != nil {
			rt.log.Warn("drain deadline passed with requests still in flight", "error", err.Error())
			return 1
		}
		rt.log.Info("drained")
		return 0
	}
	return 0
}

func cmdCheck(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("edge check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "configuration file to validate")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	// `edge check FILE` is accepted for -config FILE; anything more is a
	// mistake (a flag after the file name is not parsed as one).
	if *path == "" && fs.NArg() == 1 {
		*path = fs.Arg(0)
	} else if fs.NArg() > 0 {
		return extraArgs(stderr, "edge check", fs.Args(), fs.Usage)
	}
	if *path == "" {
		fmt.Fprintln(stderr, "edge check: -config FILE is required")
		return 2
	}
	if err := checkConfig(*path); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	fmt.Fprintln(stdout, "ok")
	return 0
}

// checkConfig is edge check: every problem at once, the file's own, then
// (from a best-effort reading of it) what the components find in the files
// it names. The error is a *config.Errors unless the file cannot be read.
func checkConfig(path string) error {
	f, err := config.Load(path)
	errs := &config.Errors{File: path}
	var ce *config.Errors
	switch {
	case errors.As(err, &ce):
		errs.Problems = append(errs.Problems, ce.Problems...)
	case err != nil:
		return err
	}
	if f != nil {
		if p, err := buildPlan(f, nil, planHooks{}, errs, discardLogger()); err == nil {
			p.release(nil)
		}
	}
	return errs.Err()
}

// extraArgs reports arguments left after the flags (often a flag written
// after a file name, where the flag package stops parsing): usage, exit 2.
func extraArgs(stderr io.Writer, cmd string, args []string, usage func()) int {
	fmt.Fprintf(stderr, "%s: unexpected argument %q (flags go before arguments; see -h)\n", cmd, args[0])
	if usage != nil {
		usage()
	}
	return 2
}

// checkServeAccept refuses serve: loop without the gnet accept layer, from
// the file and the flags together (each alone is checked where it is read).
func checkServeAccept(f *config.File) error {
	if f.Tuning.Serve == "loop" && f.Tuning.Accept == "go" {
		return errors.New("edge: -serve loop (tuning.serve: loop) needs the gnet accept layer, but accept is go; use -accept gnet or -serve goroutine")
	}
	return nil
}
