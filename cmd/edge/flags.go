package main

import (
	"flag"
	"fmt"
	"time"

	"example.com/edge/cmd/edge/config"
)

// tuningFlags are the contract's tuning flags. Each mirrors a key of the
// file's tuning: block (or admin:); a flag given on the command line wins
// over the file, on start-up and on every reload.
type tuningFlags struct {
	fs  *flag.FlagSet
	set map[string]bool

	eventLoops, readBuf, writeBuf, maxConns, maxConnsPerIP int
	maxHeader, upstreamMaxConns                            int
	maxBody                                                int64
	idle, read, write, handshake, drain                    time.Duration
	logLevel, accessLog, logFormat, admin, accept, serve   string
	reusePort                                              bool
}

// tuningDefaults are what a zero (unset) tuning key stands for: the flags'
// defaults, and what GET /config shows for a key neither the file nor a flag
// set. They are the components' own defaults (l4, l7/proxy), written out.
// Keys whose zero is itself the setting (event_loops: GOMAXPROCS,
// read_buffer_size: max_header_bytes, max_conns_per_ip: unlimited,
// write_timeout: none) are left zero here.
var tuningDefaults = config.Tuning{
	Accept:           "gnet",
	Serve:            "goroutine",
	WriteBufferSize:  4096,
	MaxConns:         100000,
	IdleTimeout:      config.Duration(60 * time.Second),
	ReadTimeout:      config.Duration(10 * time.Second),
	HandshakeTimeout: config.Duration(10 * time.Second),
	DrainTimeout:     config.Duration(15 * time.Second),
	MaxHeaderBytes:   16384,
	MaxBodyBytes:     10 << 20,
	UpstreamMaxConns: 1024,
	LogLevel:         "info",
	AccessLog:        "-",
	LogFormat:        "json",
}

// registerTuning defines the tuning flags; -h shows tuningDefaults.
func registerTuning(fs *flag.FlagSet) *tuningFlags {
	t := &tuningFlags{fs: fs}
	d := tuningDefaults
	fs.IntVar(&t.eventLoops, "event-loops", 0, "gnet event loops accepting connections (0 = GOMAXPROCS)")
	fs.IntVar(&t.readBuf, "read-buffer-size", 0, "per-connection read buffer in bytes; also caps the request head (0 = max-header-bytes)")
	fs.IntVar(&t.writeBuf, "write-buffer-size", d.WriteBufferSize, "per-connection write buffer in bytes")
	fs.IntVar(&t.maxConns, "max-conns", d.MaxConns, "open client connections, all listeners together")
	fs.IntVar(&t.maxConnsPerIP, "max-conns-per-ip", 0, "open client connections per source IP (0 = unlimited)")
	fs.DurationVar(&t.idle, "idle-timeout", d.IdleTimeout.D(), "close keep-alive connections idle this long")
	fs.DurationVar(&t.read, "read-timeout", d.ReadTimeout.D(), "time to receive a whole request, head and body (slowloris guard)")
	fs.DurationVar(&t.write, "write-timeout", 0, "time to send a whole response (0 = none, so large downloads stream)")
	fs.DurationVar(&t.handshake, "handshake-timeout", d.HandshakeTimeout.D(), "time to receive a ClientHello or first request head")
	fs.DurationVar(&t.drain, "drain-timeout", d.DrainTimeout.D(), "on SIGTERM, how long in-flight requests may take to finish")
	fs.IntVar(&t.maxHeader, "max-header-bytes", d.MaxHeaderBytes, "request head limit in bytes; 431 beyond")
	fs.Int64Var(&t.maxBody, "max-body-bytes", d.MaxBodyBytes, "request body limit in bytes for routes without their own; 413 beyond")
	fs.IntVar(&t.upstreamMaxConns, "upstream-max-conns", d.UpstreamMaxConns, "connections per upstream endpoint (a pool's max_conns_per_endpoint wins)")
	fs.StringVar(&t.logLevel, "log-level", d.LogLevel, "debug, info, warn or error")
	fs.StringVar(&t.accessLog, "access-log", d.AccessLog, "access log: a file path, - for stdout, or off")
	fs.StringVar(&t.logFormat, "log-format", d.LogFormat, "format of edge's own log lines: json or text")
	fs.StringVar(&t.admin, "admin", "", "admin listener address for /metrics, /healthz, /readyz, /config (overrides the file's admin:)")
	fs.StringVar(&t.accept, "accept", d.Accept, "how connections are accepted: gnet event loops, or go (net.Listener; to measure the gnet hand-off)")
	fs.BoolVar(&t.reusePort, "reuse-port", false, "set SO_REUSEPORT on listeners")
	fs.StringVar(&t.serve, "serve", d.Serve, "how plaintext HTTP is served: goroutine (fasthttp, one per connection) or loop (on the gnet event loops; needs -accept gnet)")
	return t
}

// parsed records which flags the command line set; call after fs.Parse.
func (t *tuningFlags) parsed() {
	t.set = map[string]bool{}
	t.fs.Visit(func(f *flag.Flag) { t.set[f.Name] = true })
}

// apply writes the flags the command line set over the file's values.
func (t *tuningFlags) apply(f *config.File) {
	tu := &f.Tuning
	for name := range t.set {
		switch name {
		case "event-loops":
			tu.EventLoops = t.eventLoops
		case "read-buffer-size":
			tu.ReadBufferSize = t.readBuf
		case "write-buffer-size":
			tu.WriteBufferSize = t.writeBuf
		case "max-conns":
			tu.MaxConns = t.maxConns
		case "max-conns-per-ip":
			tu.MaxConnsPerIP = t.maxConnsPerIP
		case "idle-timeout":
			tu.IdleTimeout = config.Duration(t.idle)
		case "read-timeout":
			tu.ReadTimeout = config.Duration(t.read)
		case "write-timeout":
			tu.WriteTimeout = config.Duration(t.write)
		case "handshake-timeout":
			tu.HandshakeTimeout = config.Duration(t.handshake)
		case "drain-timeout":
			tu.DrainTimeout = config.Duration(t.drain)
		case "max-header-bytes":
			tu.MaxHeaderBytes = t.maxHeader
		case "max-body-bytes":
			tu.MaxBodyBytes = t.maxBody
		case "upstream-max-conns":
			tu.UpstreamMaxConns = t.upstreamMaxConns
		case "log-level":
			tu.LogLevel = t.logLevel
		case "access-log":
			tu.AccessLog = t.accessLog
		case "log-format":
			tu.LogFormat = t.logFormat
		case "admin":
			f.Admin = t.admin
		case "accept":
			tu.Accept = t.accept
		case "reuse-port":
			tu.ReusePort = t.reusePort
		case "serve":
			tu.Serve = t.serve
		}
	}
}

// check validates flag values the way the file's are validated.
func (t *tuningFlags) check() error {
	oneOf := func(name, v string, ok ...string) error {
		for _, o := range ok {
			if v == o {
				return nil
			}
		}
		return fmt.Errorf("edge: -%s: %q is not one of %v", name, v, ok)
	}
	if err := oneOf("log-level", t.logLevel, "debug", "info", "warn", "error"); err != nil {
		return err
	}
	if err := oneOf("log-format", t.logFormat, "json", "text"); err != nil {
		return err
	}
	if err := oneOf("accept", t.accept, "gnet", "go"); err != nil {
		return err
	}
	if err := oneOf("serve", t.serve, "goroutine", "loop"); err != nil {
		return err
	}
	if t.set["serve"] && t.set["accept"] && t.serve == "loop" && t.accept == "go" {
		return fmt.Errorf("edge: -serve loop needs the gnet accept layer (-accept gnet), not -accept go")
	}
	for name, v := range map[string]int64{"event-loops": int64(t.eventLoops), "read-buffer-size": int64(t.readBuf),
		"write-buffer-size": int64(t.writeBuf), "max-conns": int64(t.maxConns), "max-conns-per-ip": int64(t.maxConnsPerIP),
		"max-header-bytes": int64(t.maxHeader), "max-body-bytes": t.maxBody, "upstream-max-conns": int64(t.upstreamMaxConns)} {
		if v < 0 {
			return fmt.Errorf("edge: -%s: must not be negative, got %d", name, v)
		}
	}
	return nil
}
