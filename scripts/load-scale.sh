#!/usr/bin/env bash
# Scale test (issue 7): seeds a bbolt data dir with INSTANCES xsuaa
# instances of BINDINGS binding-secret bindings each, written through the
# store API exactly as the broker writes them (tools/scaletest checks that
# against a probe the real broker provisions and binds), then starts the
# broker (pure-Go build) on it pinned to one core (taskset, GOMAXPROCS=1),
# the load from the other core, and prints: seeding time, data file size,
# start → /healthz and start → first token, RSS after start and after the
# load, client_credentials tokens/s and latency at concurrency 8
# (tools/tokenload), and p50/p99/max of 200 sequential provisions and 200
# sequential binding-secret binds over OSB — each next to the same figure
# for a broker with an empty store, measured in the same run.
# Usage: scripts/load-scale.sh [INSTANCES (default 100000) [BINDINGS per instance (default 10)]] [scaletest flags…]
#   e.g. scripts/load-scale.sh 10000 10          quick run
#        scripts/load-scale.sh 100000 10 -keep   keep the seeded dir; reuse it with -data DIR
# The full run needs about 4 GiB of free disk for the seeded store.
set -euo pipefail
cd "$(dirname "$0")/.."
instances=${1:-100000}; [ $# -gt 0 ] && shift
bindings=${1:-10}; [ $# -gt 0 ] && shift
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
go build -o "$work/broker" ./cmd/broker
go build -o "$work/tokenload" ./tools/tokenload
go build -o "$work/scaletest" ./tools/scaletest
cpu=""; pin_load=""
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then cpu=1; pin_load="taskset -c 0"; fi
$pin_load "$work/scaletest" -broker "$work/broker" -tokenload "$work/tokenload" -server-cpu "$cpu" \
  -instances "$instances" -bindings-per-instance "$bindings" "$@"
