package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"example.com/edge/cmd/edge/config"
)

func TestParseEdgeVariant(t *testing.T) {
	for _, c := range []struct {
		name     string
		want     edgeVariant
		usesPipe bool
	}{
		{"edge", edgeVariant{}, false},
		{"edge-pipe", edgeVariant{pipeline: 3}, true}, // 3: the -edge-pipeline of this test
		{"edge-pipe8", edgeVariant{pipeline: 8}, false},
		{"edge-loop", edgeVariant{loop: true}, false},
		{"edge-loop-pipe", edgeVariant{pipeline: 3, loop: true}, true},
		{"edge-pipe1-loop", edgeVariant{pipeline: 1, loop: true}, false},
		{"edge-loop-pipe64", edgeVariant{pipeline: 64, loop: true}, false},
	} {
		v, usesPipe, ok, err := parseEdgeVariant(c.name, 3)
		if err != nil || !ok || v != c.want || usesPipe != c.usesPipe {
			t.Errorf("parseEdgeVariant(%q) = %+v, usesPipe %t, ok %t, %v; want %+v, usesPipe %t", c.name, v, usesPipe, ok, err, c.want, c.usesPipe)
		}
	}
	for _, name := range []string{"nginx", "haproxy", "edgy", "edge2"} {
		if _, _, ok, err := parseEdgeVariant(name, 2); ok || err != nil {
			t.Errorf("parseEdgeVariant(%q): ok %t, %v; want not an edge row", name, ok, err)
		}
	}
	for name, want := range map[string]string{
		"edge-":          `unknown part ""`,
		"edge-fast":      `unknown part "fast"`,
		"edge-loop-loop": "loop twice",
		"edge-pipe-pipe": "pipe twice",
		"edge-pipe0":     `pipeline "0" is not 1-64`,
		"edge-pipe65":    `pipeline "65" is not 1-64`,
		"edge-pipex":     `pipeline "x" is not 1-64`,
	} {
		_, _, ok, err := parseEdgeVariant(name, 2)
		if !ok || err == nil || !strings.HasPrefix(err.Error(), "compare: ") || !strings.Contains(err.Error(), want) {
			t.Errorf("parseEdgeVariant(%q): ok %t, %v; want an error with %q", name, ok, err, want)
		}
	}
}

// installed is what findProxies returns on a machine with all three installed.
func installed() []*proxy {
	return []*proxy{
		{name: "edge", prog: "edge", bin: "/x/edge"},
		{name: "nginx", prog: "nginx", anchor: true, bin: "/x/nginx"},
		{name: "haproxy", prog: "haproxy", anchor: true, bin: "/x/haproxy"},
	}
}

func TestSelectProxies(t *testing.T) {
	rows, usesPipe, err := selectProxies("edge, edge-pipe,edge-loop,edge-loop-pipe4,nginx,haproxy", installed(), 2)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		name, prog string
		v          edgeVariant
	}{
		{"edge", "edge", edgeVariant{}},
		{"edge-pipe", "edge", edgeVariant{pipeline: 2}},
		{"edge-loop", "edge", edgeVariant{loop: true}},
		{"edge-loop-pipe4", "edge", edgeVariant{pipeline: 4, loop: true}},
		{"nginx", "nginx", edgeVariant{}},
		{"haproxy", "haproxy", edgeVariant{}},
	}
	if len(rows) != len(want) || !usesPipe {
		t.Fatalf("%d rows, usesPipe %t; want %d, true", len(rows), usesPipe, len(want))
	}
	for i, w := range want {
		r := rows[i]
		if r.name != w.name || r.prog != w.prog || r.variant != w.v || r.anchor != (w.prog != "edge") {
			t.Errorf("row %d = %+v, want %+v", i, r, w)
		}
	}
	// Each edge row is its own copy: setting one's binary (the harness
	// points them all at its private copy) leaves the found edge alone.
	rows[1].bin = "/tmp/copy"
	if rows[0].bin != "/x/edge" || rows[2].bin != "/x/edge" {
		t.Error("edge rows share one proxy")
	}
	if _, usesPipe, _ := selectProxies("edge,edge-pipe2,nginx", installed(), 2); usesPipe {
		t.Error("edge-pipe2 counted as using -edge-pipeline")
	}
	for list, want := range map[string]string{
		"edge,nginx,edge":  `"edge" listed twice`,
		"edge,varnish":     `unknown proxy "varnish"`,
		"edge-turbo,nginx": `unknown part "turbo"`,
	} {
		if _, _, err := selectProxies(list, installed(), 2); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("selectProxies(%q) = %v, want an error with %q", list, err, want)
		}
	}
}

// TestVariantsPerScenario checks which edge rows run where: -serve loop only
// changes plaintext HTTP listeners and the pipeline only HTTP pools, so a
// variant that would run its twin's configuration is not run.
func TestVariantsPerScenario(t *testing.T) {
	rows, _, err := selectProxies("edge,edge-pipe,edge-loop,edge-loop-pipe,nginx", installed(), 2)
	if err != nil {
		t.Fatal(err)
	}
	// The twin of each row per scenario ("" runs).
	want := map[string][]string{
		"plain":         {"", "", "", "", ""},
		"gateway":       {"", "", "", "", ""},
		"idle-memory":   {"", "", "", "", ""},
		"tls-keepalive": {"", "", "edge", "edge-pipe", ""},
		"tls-handshake": {"", "", "edge", "edge-pipe", ""},
		"l4-bulk":       {"", "edge", "edge", "edge", ""},
	}
	for _, sc := range scenarios() {
		for i := range rows {
			got := ""
			if tw := twin(rows, i, sc); tw != nil {
				got = tw.name
			}
			if got != want[sc.name][i] {
				t.Errorf("%s, %s: twin %q, want %q", sc.name, rows[i].name, got, want[sc.name][i])
			}
		}
	}
	all := scenarios()
	plain, tlsKA, l4 := all[0], all[2], all[4]
	loopPipe := rows[3].variant
	if why := loopPipe.inert(plain); why != "" {
		t.Errorf("edge-loop-pipe in plain: inert %q", why)
	}
	if why := loopPipe.inert(tlsKA); why != "-serve loop has no effect on TLS listeners" {
		t.Errorf("edge-loop-pipe in TLS: inert %q", why)
	}
	if why := loopPipe.inert(l4); why != "pipeline and -serve loop have no effect on an L4 relay" {
		t.Errorf("edge-loop-pipe in l4: inert %q", why)
	}
	if why := rows[1].variant.inert(l4); why != "pipeline has no effect on an L4 relay" {
		t.Errorf("edge-pipe in l4: inert %q", why)
	}
	// Without plain edge in the run, edge-loop does run in TLS (as edge).
	alone, _, _ := selectProxies("edge-loop,haproxy", installed(), 2)
	if tw := twin(alone, 0, tlsKA); tw != nil {
		t.Errorf("edge-loop alone in TLS: twin %s", tw.name)
	}
}

// TestLaunchEdgeVariants launches each edge row with true(1) standing in
// for edge and checks what edge would get: the row's own configuration
// file, which edge's loader reads with the row's pipeline, and -serve loop
// last on the command line of the -loop rows.
func TestLaunchEdgeVariants(t *testing.T) {
	truePath, err := lookPath("true")
	if err != nil {
		t.Skip(err)
	}
	h := &harness{sup: newSupervisor(t.TempDir(), ""), pods: &podSet{app: []string{"127.0.0.1:1", "127.0.0.1:2"}, auth: []string{"127.0.0.1:3", "127.0.0.1:4"}},
		creds: &credentials{certFile: "c", keyFile: "k", certKeyFile: "ck", secretFile: "s", secret: "x"}, noFile: 20000, maxConns: 9968}
	defer h.sup.Close()
	rows, _, err := selectProxies("edge,edge-pipe,edge-loop,edge-loop-pipe3", installed(), 2)
	if err != nil {
		t.Fatal(err)
	}
	extra := []string{"-read-buffer-size", "4096"}
	for _, p := range rows {
		p.bin = truePath
		c, err := p.launch(h.sup, h.data(scenarios()[0], 8080), "", extra)
		if err != nil {
			t.Fatal(err)
		}
		<-c.done
		args := c.cmd.Args
		conf := filepath.Join(h.sup.dir, p.name+".yaml")
		wantArgs := []string{truePath, "-config", conf, "-event-loops", "1", "-access-log", "off", "-log-level", "warn", "-read-buffer-size", "4096"}
		if p.variant.loop {
			wantArgs = append(wantArgs, "-serve", "loop")
		}
		if strings.Join(args, " ") != strings.Join(wantArgs, " ") {
			t.Errorf("%s: argv %q, want %q", p.name, args, wantArgs)
		}
		if serve, _ := flagValue(args[1:], "serve"); serve != map[bool]string{true: "loop"}[p.variant.loop] {
			t.Errorf("%s: -serve %q", p.name, serve)
		}
		data, err := os.ReadFile(conf)
		if err != nil {
			t.Fatal(err)
		}
		f, err := config.Parse(conf, data)
		if err != nil {
			t.Fatalf("%s: edge rejects its configuration: %v\n%s", p.name, err, data)
		}
		for _, pool := range []string{"app", "auth"} {
			if got := f.Pools[pool].Pipeline; got != p.variant.pipeline {
				t.Errorf("%s: pool %s pipeline %d, want %d", p.name, pool, got, p.variant.pipeline)
			}
		}
	}
}

func TestFlagValue(t *testing.T) {
	for _, c := range []struct {
		args  string
		value string
		ok    bool
	}{
		{"", "", false},
		{"-serve loop", "loop", true},
		{"--serve=loop", "loop", true},
		{"-serve=loop -read-buffer-size 4096 -serve goroutine", "goroutine", true},
		{"-accept go", "", false},
		{"-serve", "", false}, // no value: edge would refuse it, not us
		{"-server x", "", false},
	} {
		v, ok := flagValue(strings.Fields(c.args), "serve")
		if v != c.value || ok != c.ok {
			t.Errorf("flagValue(%q) = %q, %t; want %q, %t", c.args, v, ok, c.value, c.ok)
		}
	}
}

func TestCheckEdgeArgs(t *testing.T) {
	rows, _, _ := selectProxies("edge,edge-loop,nginx", installed(), 2)
	plain, _, _ := selectProxies("edge,edge-pipe,nginx", installed(), 2)
	for _, c := range []struct {
		args string
		rows []*proxy
		want string // "" for accepted
	}{
		{"-read-buffer-size 4096", rows, ""},
		{"-accept go", plain, ""},
		{"-accept=gnet", rows, ""},
		{"-serve loop", plain, "edge-loop variants"},
		{"-serve=goroutine", rows, "edge-loop variants"},
		{"-accept go", rows, "edge-loop: -serve loop needs gnet's accept"},
	} {
		err := checkEdgeArgs(strings.Fields(c.args), c.rows)
		if (c.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.want)) {
			t.Errorf("checkEdgeArgs(%q) = %v, want %q", c.args, err, c.want)
		}
	}
}

// TestRunRefusesMisleadingFlags checks the flag combinations that would
// label a row with something it does not run; they fail before anything
// starts.
func TestRunRefusesMisleadingFlags(t *testing.T) {
	truePath, err := lookPath("true")
	if err != nil {
		t.Skip(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-proxies", "edge,nginx", "-edge-pipeline", "4"}, "-pipe edge rows"},
		{[]string{"-proxies", "edge-pipe", "-edge-pipeline", "0"}, "-edge-pipeline 0 is not 1-64"},
		{[]string{"-proxies", "edge,edge-pipe", "-edge-args", "-serve loop"}, "edge-loop variants"},
		{[]string{"-proxies", "edge,edge-loopy"}, `unknown part "loopy"`},
	} {
		var out, errOut bytes.Buffer
		code := run(append([]string{"-edge", truePath, "-pin=false", "-nice", "0"}, c.args...), &out, &errOut)
		if code != 1 || !strings.Contains(errOut.String(), c.want) {
			t.Errorf("run %q: exit %d, stderr %q; want 1 and %q", c.args, code, errOut.String(), c.want)
		}
	}
}

// TestTableVariants builds two scenarios' rows the way the harness does and
// checks the table: edge variant rows with ratios to the anchors like
// edge's and their cost over plain edge's in the notes, a row not run
// because it would be its twin, and one run alone in TLS with a note saying
// -serve loop has no effect there.
func TestTableVariants(t *testing.T) {
	all := scenarios()
	plain, tlsKA := all[0], all[2]
	rows, _, _ := selectProxies("edge,edge-loop,haproxy", installed(), 2)
	h := &harness{wrkBin: "wrk"}
	var rs []*result
	for _, sc := range []scenario{plain, tlsKA} {
		rs = append(rs, h.group(sc, rows)...)
	}
	measured := map[string]sample{
		"plain/edge":            {rate: 30000, cost: 20, busy: 90},
		"plain/edge-loop":       {rate: 33000, cost: 15, busy: 90},
		"plain/haproxy":         {rate: 30000, cost: 25, busy: 90},
		"tls-keepalive/edge":    {rate: 40000, cost: 22, busy: 98},
		"tls-keepalive/haproxy": {rate: 40000, cost: 22, busy: 98},
	}
	for _, r := range rs {
		s, ok := measured[r.sc.name+"/"+r.p.name]
		if ok == (r.skip != "") {
			t.Fatalf("%s/%s: skip %q", r.sc.name, r.p.name, r.skip)
		}
		if ok {
			r.samples = append(r.samples, s)
		}
	}
	// Alone (without plain edge), edge-loop runs in TLS, as edge.
	alone, _, _ := selectProxies("edge-loop,haproxy", installed(), 2)
	aloneRs := h.group(tlsKA, alone)
	for _, r := range aloneRs {
		if r.skip != "" {
			t.Fatalf("%s alone in TLS: skip %q", r.p.name, r.skip)
		}
		r.samples = append(r.samples, sample{rate: 40000, cost: 22, busy: 98})
	}
	var b bytes.Buffer
	writeTable(&b, rs)
	writeTable(&b, aloneRs)
	lines := strings.Split(b.String(), "\n")
	find := func(sc, name string) string {
		for _, l := range lines {
			if strings.HasPrefix(l, "| "+sc+" ") && strings.Contains(l, "| "+name+" ") {
				return l
			}
		}
		t.Fatalf("no %s row for %s:\n%s", name, sc, b.String())
		return ""
	}
	if l := find("plain", "edge-loop"); !strings.Contains(l, "| 1.10x ") || !strings.Contains(l, "| 0.60x ") || !strings.Contains(l, "| cost 0.75x edge's ") {
		t.Errorf("edge-loop plain row (want 1.10x throughput, 0.60x cost to haproxy, 0.75x edge's cost):\n%s", l)
	}
	if l := find("plain", "edge"); strings.Contains(l, "edge's") {
		t.Errorf("plain edge compared with itself:\n%s", l)
	}
	if l := find("tls-keepalive", "edge-loop"); !strings.Contains(l, "| not run: same as edge here (-serve loop has no effect on TLS listeners) ") || !strings.Contains(l, "| – ") {
		t.Errorf("edge-loop TLS row:\n%s", l)
	}
	if l := lines[len(lines)-3]; !strings.HasPrefix(l, "| tls-keepalive | edge-loop ") || !strings.Contains(l, "| -serve loop has no effect on TLS listeners ") || !strings.Contains(l, "| 1.00x ") {
		t.Errorf("edge-loop alone in TLS:\n%s", l)
	}
}
