# hookstream — one workspace, one module per folder (see go.work).
SHELL := /bin/bash
GO ?= go
MODULES := proto pkg services/ingest services/matcher services/signer services/delivery services/api services/hookstream
BIN := bin/hookstream

.PHONY: all build run test test-unit test-e2e bench fmt vet tidy clean fuzz

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

## fuzz: explore each fuzz target for FUZZTIME (their seed corpora already run in make test).
FUZZTIME ?= 10s
fuzz:
	cd services/ingest && $(GO) test -run '^$$' -fuzz '^FuzzParseReadings$$' -fuzztime $(FUZZTIME) .
	cd services/api && $(GO) test -run '^$$' -fuzz '^FuzzStreamCreate$$' -fuzztime $(FUZZTIME) .

fmt:
	gofmt -w $$(git ls-files '*.go')

tidy:
	@set -e; for m in $(MODULES) test; do (cd $$m && $(GO) mod tidy); done

clean:
	rm -rf bin
