# paybench — see README.md.
GO      ?= go
BIN     ?= bin/paybench
PKGS    := ./...

.PHONY: all build run test vet race bench bench-peer fmt-check clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/paybench

## run: the main job against an automatically found or spawned Redis.
run: build
	./$(BIN) run oversell

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

clean:
	rm -rf bin
