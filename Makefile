# edge: see README.md. The two commands a newcomer needs are `make run` and `make test`.
GO        ?= go
BIN       ?= bin/edge
FUZZTIME  ?= 30s
BENCHTIME ?= 1s
PKGS      := ./...
VERSION   ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X main.version=$(VERSION)

.PHONY: build run test lint vet staticcheck unit bench fuzz clean bench-compare

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/edge

run: build
	./$(BIN) demo

# test: static checks, then every test under the race detector. `go test` also replays
# each fuzz target's seed corpus (testdata/fuzz), so the corpora are part of the gate.
test: lint unit

lint: vet staticcheck

vet:
	$(GO) vet $(PKGS)

staticcheck:
	$(GO) tool staticcheck $(PKGS)

unit:
	$(GO) test -race -count=1 -timeout 8m $(PKGS)

bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) $(PKGS)

# fuzz: run every native fuzz target for FUZZTIME each (make fuzz FUZZTIME=10m).
fuzz:
	@set -e; for pkg in $$($(GO) list $(PKGS)); do \
		for t in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
			echo "== $$pkg $$t ($(FUZZTIME))"; \
			$(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 10s $$pkg; \
		done; \
	done

clean:
	rm -rf bin

# bench-compare: edge side by side with nginx and HAProxy (bench/README.md). Installs wrk, nginx
# and haproxy from Debian's packages when missing; pass harness flags in BENCH_FLAGS, e.g.
# make bench-compare BENCH_FLAGS='-scenarios plain,gateway -duration 5s -runs 1'.
bench-compare: build
	sh bench/install-tools.sh
	$(GO) build -o bin/bench-compare ./bench/cmd/compare
	./bin/bench-compare -edge $(BIN) $(BENCH_FLAGS)
