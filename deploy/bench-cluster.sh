#!/usr/bin/env bash
# make bench-cluster: `hookstream bench` against docker-compose.yml (three NATS nodes, every stream
# and bucket R3, two replicas of every service) under --fsync interval and then always, and
# against the single-node all-in-one, one after another in one run, on this machine. The
# deployment is a compose project of its own (random host ports on 127.0.0.1, removed with its
# volumes at the end); deliveries go to its bench-receiver container over the compose network.
#
#   BENCH_DURATION   how long each scenario publishes (default 10s)
#   BENCH_OUT        where the JSON results go (default bench-results)
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${BENCH_DURATION:-10s}
out=${BENCH_OUT:-bench-results}
mkdir -p "$out"
if docker compose version >/dev/null 2>&1; then compose=(docker compose); else compose=(docker-compose); fi
project=hsbench$$
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
for v in API API2 NATS1 NATS2 NATS3 RECEIVER BENCH_RECEIVER; do export "HOST_${v}_PORT=$(free_port)"; done
dc() { "${compose[@]}" -p "$project" --profile bench "$@"; }
down() { dc down -v --remove-orphans -t 5 >/dev/null 2>&1 || true; }
trap down EXIT

# up FSYNC starts the deployment with every NATS node and service at that --fsync and waits
# until the API answers, the receiver is up and every container is healthy.
up() {
	down
	HOOKSTREAM_FSYNC=$1 dc up --build -d >/dev/null
	for _ in $(seq 180); do
		if curl -sf -o /dev/null "http://127.0.0.1:$HOST_API_PORT/readyz" &&
			curl -sf -o /dev/null "http://127.0.0.1:$HOST_BENCH_RECEIVER_PORT/progress" &&
			! dc ps | grep -Eq 'starting|unhealthy|Exit'; then
			return 0
		fi
		sleep 1
	done
	dc ps
	echo "bench-cluster: the deployment did not become healthy within 3 minutes" >&2
	return 1
}

# cluster FSYNC SCENARIOS runs the bench's scenarios against the deployment.
cluster() {
	up "$1"
	token=$(dc exec -T api-1 /hookstream token --partition bench)
	echo "== cluster, R3, --fsync $1: $2 (load average $(cut -d' ' -f1 /proc/loadavg))"
	bin/hookstream bench --scenario "$2" --duration "$duration" --quiet --json "$out/cluster-$1.json" \
		--nats-url "nats://127.0.0.1:$HOST_NATS1_PORT,nats://127.0.0.1:$HOST_NATS2_PORT,nats://127.0.0.1:$HOST_NATS3_PORT" \
		--api-url "http://127.0.0.1:$HOST_API_PORT" --token "$token" \
		--receiver-url "http://127.0.0.1:$HOST_BENCH_RECEIVER_PORT" --webhook-base http://bench-receiver:9000
}

cluster interval a-max,c-latency
cluster always e-fsync-always,h-fsync-batch
down
echo "== all-in-one, one node, R1 (load average $(cut -d' ' -f1 /proc/loadavg))"
bin/hookstream bench --scenario a-max,c-latency,e-fsync-always,h-fsync-batch --duration "$duration" --quiet --json "$out/all-in-one.json"
