# paybench — see README.md.
GO      ?= go
BIN     ?= bin/paybench
PKGS    := ./...

.PHONY: all build run test vet race bench bench-peer fuzz fmt-check clean

all: build

build:
	$(GO) build -buildvcs=auto -o $(BIN) ./cmd/paybench

## run: the quick suite (every scenario and operation, both backends)
## against an automatically found or spawned Redis, with an HTML report.
REPORT ?= bin/report.html
run: build
	@./$(BIN) suite --quick --html $(REPORT) --json $(REPORT:.html=.json); status=$$?; \
	echo "HTML report: $(abspath $(REPORT))"; exit $$status

## test: vet, then every test with the race detector.
test:
	$(GO) vet $(PKGS)
	$(GO) test -race -count=1 -timeout 20m $(PKGS)

## bench: Go benchmarks (engine overhead, record path).
bench:
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

## fuzz: every fuzz target (func FuzzXxx in a _test.go file, found by
## grep) for FUZZTIME each, one after another; FUZZ_TARGETS=./pkg:FuzzXxx
## picks some. A crasher is written to the package's testdata/fuzz/FuzzXxx/
## and fails the run: fix the code and keep the file as a regression test.
## Go 1.26's fuzz coordinator may end a run with a bare "context deadline
## exceeded" when -fuzztime expires on a busy machine (go.dev/issue/75804,
## fixed in Go 1.27): without a new crasher that is reported, not failed.
FUZZTIME         ?= 10s
FUZZMINIMIZETIME ?= 5s
FUZZ_TARGETS     ?= $(shell grep -r --include='*_test.go' -o '^func Fuzz[A-Za-z0-9_]*(f \*testing.F)' . | sed 's|^\(.*\)/[^/]*:func \(Fuzz[A-Za-z0-9_]*\).*|\1:\2|' | sort)
fuzz:
	@test -n "$(FUZZ_TARGETS)" || { echo "no fuzz targets found"; exit 1; }
	@failed=""; log=$$(mktemp); start=$$(date +%s); \
	for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t#*:}; corpus=$$pkg/testdata/fuzz/$$name; \
		before=$$(ls $$corpus 2>/dev/null | wc -l); \
		echo "== $$name in $$pkg for $(FUZZTIME)"; \
		if $(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZETIME) $$pkg >$$log 2>&1; then \
			tail -n 2 $$log; \
		elif [ "$$(ls $$corpus 2>/dev/null | wc -l)" = "$$before" ] && grep -q 'context deadline exceeded' $$log && ! grep -q -- '--- FAIL: .*/' $$log; then \
			tail -n 4 $$log; echo "   (no crasher: Go's fuzz-time deadline race, go.dev/issue/75804)"; \
		else \
			cat $$log; failed="$$failed $$name"; \
		fi; \
	done; rm -f $$log; \
	echo "fuzz: $(words $(FUZZ_TARGETS)) targets in $$(( $$(date +%s) - start ))s"; \
	if [ -n "$$failed" ]; then echo "fuzz: FAILED:$$failed"; exit 1; fi

## bench-peer: paybench load vs redis-benchmark on the stock script, ratios.
bench-peer: build
	$(GO) run ./bench/peer -paybench ./$(BIN) $(PEERFLAGS)

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	@$(GO) mod tidy -diff >/dev/null || { echo "go.mod/go.sum are not tidy: run go mod tidy"; exit 1; }
	@if grep -n '%%[A-Z]*%%' README.md; then echo "README.md has unfilled placeholders"; exit 1; fi

clean:
	rm -rf bin
