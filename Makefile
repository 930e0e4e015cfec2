# hookstream — one workspace, one module per folder (see go.work).
SHELL := /bin/bash
GO ?= go
MODULES := proto pkg testkit services/ingest services/matcher services/signer services/delivery services/api services/hookstream
BIN := bin/hookstream

.PHONY: all build image-bin run test test-unit test-e2e test-cluster bench bench-cluster bench-match fmt vet tidy clean fuzz

all: build

build:
	cd services/hookstream && $(GO) build -o ../../$(BIN) .

## image-bin: what deploy/Dockerfile copies (docker compose up --build): the statically linked
## binary (CGO_ENABLED=0), the build machine's CA certificates and an empty data directory.
CA_CERTS ?= /etc/ssl/certs/ca-certificates.crt
image-bin:
	mkdir -p bin/image/data
	cd services/hookstream && CGO_ENABLED=0 $(GO) build -trimpath -o ../../bin/image/hookstream .
	cp $(CA_CERTS) bin/image/ca-certificates.crt

## run: build and start every service with embedded NATS (127.0.0.1:4222) and the API on 127.0.0.1:8080,
## data under ./data. HTTP_ADDR, NATS_LISTEN and DATA move them (make run HTTP_ADDR=127.0.0.1:9090);
## left unset, the binary's HOOKSTREAM_HTTP_ADDR, HOOKSTREAM_NATS_LISTEN and HOOKSTREAM_DATA apply.
HTTP_ADDR ?=
NATS_LISTEN ?=
DATA ?=
run: build
	./$(BIN) --dev --log-format text$(if $(HTTP_ADDR), --http-addr '$(HTTP_ADDR)')$(if $(NATS_LISTEN), --nats-listen '$(NATS_LISTEN)')$(if $(DATA), --data '$(DATA)')

## test: unit and integration tests of every module (with -race), then the end-to-end suite.
test: build vet test-unit test-e2e

vet:
	@set -e; for m in $(MODULES) test; do (cd $$m && $(GO) vet ./...); done

test-unit:
	@set -e; for m in $(MODULES); do echo "== $$m"; (cd $$m && $(GO) test -race -count=1 -timeout 10m ./...); done

test-e2e: build
	cd test && HOOKSTREAM_BIN=$(CURDIR)/$(BIN) $(GO) test -count=1 -timeout 12m ./...

## test-cluster: the fault scenarios of test/cluster against docker-compose.yml (needs Docker and
## compose; every container, volume and network it makes is removed at the end). SCENARIOS picks and
## repeats scenarios on one deployment: make test-cluster SCENARIOS=e,e,e
SCENARIOS ?=
test-cluster: image-bin
	cd test && HOOKSTREAM_CLUSTER_TEST=1 HOOKSTREAM_CLUSTER_SCENARIOS=$(SCENARIOS) $(GO) test -count=1 -v -timeout 15m -run '^TestCluster$$' ./cluster

## fuzz: explore each fuzz target for FUZZTIME (their seed corpora already run in make test).
FUZZTIME ?= 10s
fuzz:
	cd services/ingest && $(GO) test -run '^$$' -fuzz '^FuzzParseReadings$$' -fuzztime $(FUZZTIME) .
	cd services/ingest && $(GO) test -run '^$$' -fuzz '^FuzzEdgesAgree$$' -fuzztime $(FUZZTIME) .
	cd services/api && $(GO) test -run '^$$' -fuzz '^FuzzStreamCreate$$' -fuzztime $(FUZZTIME) .
	cd pkg && $(GO) test -run '^$$' -fuzz '^FuzzCompile$$' -fuzztime $(FUZZTIME) ./livequery/

## bench-cluster: the bench against docker-compose.yml (R3, two replicas of every service) under
## --fsync interval and always, then against the all-in-one, in one run (deploy/bench-cluster.sh;
## needs Docker with compose; about 8 minutes). JSON in bench-results/.
bench-cluster: build image-bin
	BENCH_DURATION=$(BENCH_DURATION) deploy/bench-cluster.sh

## bench-match: the matcher's decision per event at 1k, 10k and 100k streams in one partition
## (mixed point-id, event-type and expression streams), one core; prints the scaling table.
bench-match:
	@cd services/matcher && GOMAXPROCS=1 $(GO) test -run '^$$' -bench BenchmarkMatch -benchmem -benchtime 2s -count 1 . | awk '\
	/^BenchmarkMatch\// { split($$1, a, "="); n = a[2]; sub(/-[0-9]+$$/, "", n); \
	  for (i = 2; i < NF; i++) { u = $$(i+1); if (u == "ns/op") ns = $$i; if (u == "events/s") eps = $$i; \
	    if (u == "matched/event") m = $$i; if (u == "allocs/op") al = $$i; if (u == "B/op") by = $$i; if (u == "candidates/event") c = $$i } \
	  rows[++r] = sprintf("%-9s %12.0f %10.2f %13.1f %16.1f %14s %12s", n, eps, ns / 1000, m, c, al, by) } \
	/^(FAIL|ok|PASS)/ { st = $$0 } \
	END { printf "%-9s %12s %10s %13s %16s %14s %12s\n", "streams", "events/s", "us/event", "matched/event", "candidates/event", "allocs/event", "bytes/event"; \
	  for (i = 1; i <= r; i++) print rows[i]; if (r == 0) { print "no benchmark ran: " st; exit 1 } }'

fmt:
	gofmt -w $$(git ls-files '*.go')

tidy:
	@set -e; for m in $(MODULES) test; do (cd $$m && $(GO) mod tidy); done

## bench: the load scenarios a–i but g, with l-batch beside h (g-big-tenant, j-fsync-points and k-fsync-submit only by name), each with its own all-in-one instance and receiver, under 10 minutes;
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
