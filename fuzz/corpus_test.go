package fuzz

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

var writeCorpus = flag.Bool("corpus.write", false, "rewrite the seed files in testdata/fuzz from pipelineSeeds and configSeeds")

// TestSeedCorpora keeps the committed seed corpora (which `go test` replays
// and `go test -fuzz` starts from) in step with the seed lists in this
// package: seed-NN files are generated, findings kept beside them are not.
// Regenerate with `go test ./fuzz -run TestSeedCorpora -corpus.write`.
func TestSeedCorpora(t *testing.T) {
	for target, seeds := range map[string][]string{
		"FuzzRequestPipeline": pipelineSeeds(),
		"FuzzConfig":          configSeeds(t),
	} {
		dir := filepath.Join("testdata", "fuzz", target)
		for i, s := range seeds {
			path := filepath.Join(dir, fmt.Sprintf("seed-%02d", i))
			want := corpusFile([]byte(s))
			if *writeCorpus {
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, want, 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			got, err := os.ReadFile(path)
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("%s is missing or stale (%v); rerun with -corpus.write", path, err)
			}
		}
	}
}

// corpusFile is a one-value corpus entry in the native fuzzing format.
func corpusFile(b []byte) []byte {
	return []byte("go test fuzz v1\n[]byte(" + strconv.Quote(string(b)) + ")\n")
}
