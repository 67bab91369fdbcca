# paybench — see README.md.
GO      ?= go
BIN     ?= bin/paybench
PKGS    := ./...

.PHONY: all build run test vet race bench bench-peer fmt-check clean

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

## bench-peer: paybench load vs redis-benchmark on the stock script, ratios.
bench-peer: build
	$(GO) run ./bench/peer -paybench ./$(BIN) $(PEERFLAGS)

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	@$(GO) mod tidy -diff >/dev/null || { echo "go.mod/go.sum are not tidy: run go mod tidy"; exit 1; }
	@if grep -n '%%[A-Z]*%%' README.md; then echo "README.md has unfilled placeholders"; exit 1; fi

clean:
	rm -rf bin
