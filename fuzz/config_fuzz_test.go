package fuzz

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"unicode/utf16"

	"example.com/edge/cmd/edge/config"
)

// configName is the file name FuzzConfig parses under; every problem must
// be reported against it.
const configName = "edge.yaml"

// FuzzConfig feeds arbitrary bytes to the configuration loader: it must
// never panic, and every problem it reports must read `edge.yaml:LINE: ...`
// with LINE a line of the file, or `edge.yaml: ...` for the file as a
// whole, one problem per line of the error (the contract's FILE:LINE form,
// which editors and `edge check` users rely on).
func FuzzConfig(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := config.Parse(configName, data)
		if err == nil {
			if file == nil {
				t.Fatal("Parse returned neither a file nor an error")
			}
			return
		}
		lines := countLines(data)
		var errs *config.Errors
		if !errors.As(err, &errs) {
			t.Fatalf("error %T %q is not a *config.Errors", err, err)
		}
		if len(errs.Problems) == 0 {
			t.Fatal("an error without problems")
		}
		for _, p := range errs.Problems {
			if p.File != configName || p.Line < 0 || p.Line > lines || p.Msg == "" || strings.ContainsAny(p.Msg, "\r\n") {
				t.Errorf("problem %+v: want file %q, line 0..%d, a one-line message", p, configName, lines)
			}
		}
		for _, line := range strings.Split(err.Error(), "\n") {
			if !wellFormedProblem(line, lines) {
				t.Errorf("error line %q is not %s:LINE: what (LINE 1..%d) or %s: what", line, configName, lines, configName)
			}
		}
		if t.Failed() {
			t.Logf("input %q", data)
		}
	})
}

// countLines counts the lines of data the way the YAML parser numbers them:
// it decodes UTF-16 input that starts with a byte-order mark, and breaks
// lines at CRLF, CR and LF, and also at NEL, LINE SEPARATOR and PARAGRAPH
// SEPARATOR (U+0085, U+2028, U+2029), as YAML 1.1 does. (So in a file with
// one of those three, say pasted into a comment, the loader's line numbers
// run ahead of an editor's that does not break lines there.)
func countLines(data []byte) int {
	text := string(data)
	if len(data) >= 2 && (data[0] == 0xfe && data[1] == 0xff || data[0] == 0xff && data[1] == 0xfe) {
		u := make([]uint16, 0, len(data)/2)
		for i := 2; i+1 < len(data); i += 2 {
			if data[0] == 0xfe {
				u = append(u, uint16(data[i])<<8|uint16(data[i+1]))
			} else {
				u = append(u, uint16(data[i+1])<<8|uint16(data[i]))
			}
		}
		text = string(utf16.Decode(u))
	}
	n := 1
	for i, r := range text {
		switch r {
		case '\n', '\u0085', '\u2028', '\u2029':
			n++
		case '\r':
			if i+1 == len(text) || text[i+1] != '\n' {
				n++
			}
		}
	}
	return n
}

// wellFormedProblem reports whether line reads "edge.yaml:N: msg" with N in
// 1..lines, or "edge.yaml: msg".
func wellFormedProblem(line string, lines int) bool {
	rest, ok := strings.CutPrefix(line, configName+":")
	if !ok {
		return false
	}
	if msg, ok := strings.CutPrefix(rest, " "); ok {
		return msg != ""
	}
	num, msg, ok := strings.Cut(rest, ": ")
	if !ok || msg == "" {
		return false
	}
	n, err := strconv.Atoi(num)
	return err == nil && n >= 1 && n <= lines && strconv.Itoa(n) == num
}

// configSeeds are the contract's example and broken variants of it, each
// with problems the loader must place on their lines.
func configSeeds(t testing.TB) []string {
	example, err := os.ReadFile("../cmd/edge/config/testdata/edge.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ex := string(example)
	return []string{
		ex,
		strings.Replace(ex, "rate: 50", "rate: -1", 1),
		strings.Replace(ex, "pool: auth", "pool: nope", 1),
		strings.Replace(ex, "idle_timeout: 60s", "idle_timeout: forever", 1),
		strings.Replace(ex, "address: 0.0.0.0:80\n", "address: 0.0.0.0:80\n    unknown_key: 1\n", 1),
		strings.Replace(ex, "  app:\n", "  app:\n  app:\n", 1),
		ex[:len(ex)/2],
		"",
		"# only a comment\n",
		"admin: [\n",
		"a: &a [*a]\n",
		"a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n",
		"listeners:\n  - name: web\n    address: \"127.0.0.1:8080\"\npools:\n  app: {endpoints: [127.0.0.1:9000]}\nroutes:\n  - {prefix: /, pool: app, methods: [GET, \"BAD METHOD\"]}\n",
		"listeners: 5\npools: [1, 2]\nroutes: {a: b}\njwt: null\n",
		"\t- tab\n",
		"key: \"unterminated\n",
		"---\na: 1\n---\nb: 2\n",
		"admin: 127.0.0.1:9901\r\ntuning:\r\n  max_conns: 1e99\r\n",
	}
}
