#!/usr/bin/env bash
# Start hookstream (all-in-one, --dev) exporting its spans to a local OpenTelemetry Collector.
# Needs the collector binary (otelcol or otelcol-contrib) on PATH.
set -euo pipefail
cd "$(dirname "$0")/../.."
otelcol --config deploy/otel/otel-collector.yaml &
collector=$!
trap 'kill $collector' EXIT
export OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318
export OTEL_SERVICE_NAME=hookstream
make build
bin/hookstream --dev --data ./data
