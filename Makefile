# hookstream — one workspace, one module per folder (see go.work).
SHELL := /bin/bash
GO ?= go
MODULES := proto pkg services/ingest services/matcher services/signer services/delivery services/api services/hookstream
BIN := bin/hookstream

.PHONY: all build run test test-unit test-e2e bench fmt vet tidy clean

all: build

build:
	cd services/hookstream && $(GO) build -o ../../$(BIN) .

## run: build and start every service with embedded NATS (127.0.0.1:4222) and the API on 127.0.0.1:8080.
run: build
	./$(BIN) --dev --data ./data --log-format text

## test: unit and integration tests of every module (with -race), then the end-to-end suite.
test: build vet test-unit test-e2e

vet:
	@set -e; for m in $(MODULES) test; do (cd $$m && $(GO) vet ./...); done

test-unit:
	@set -e; for m in $(MODULES); do echo "== $$m"; (cd $$m && $(GO) test -race -count=1 -timeout 10m ./...); done

test-e2e: build
	cd test && HOOKSTREAM_BIN=$(CURDIR)/$(BIN) $(GO) test -count=1 -timeout 12m ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

tidy:
	@set -e; for m in $(MODULES) test; do (cd $$m && $(GO) mod tidy); done

## bench: every load scenario (a–f) with its own all-in-one instance and receiver, under 10 minutes;
## the table goes to stdout, the figures to bench-results/bench.json. Then bench-match, if defined.
## It fails when any reading was lost. BENCH_FLAGS adds flags, e.g. --cpuprofile bench-results/cpu.pprof.
BENCH_DURATION ?= 20s
BENCH_FLAGS ?=
bench: build
	@mkdir -p bench-results
	@rc=0; ./$(BIN) bench --scenario all --duration $(BENCH_DURATION) --json bench-results/bench.json $(BENCH_FLAGS) || rc=$$?; \
	if grep -qE '^bench-match[[:space:]]*:' $(MAKEFILE_LIST); then $(MAKE) bench-match || rc=1; fi; exit $$rc

clean:
	rm -rf bin
