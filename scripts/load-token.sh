#!/usr/bin/env bash
# Load test of the token endpoint (client_credentials). Each build (pure Go
# and, when libcrypto is available, the OpenSSL build `make build` makes)
# runs pinned to one core (GOMAXPROCS=1 and taskset: all its threads), the
# load generator on the other core, over loopback. Printed: tokens/s and
# latency medians over rounds at concurrency 8 and 64, next to Go's raw
# RSA-2048 sign rate and `openssl speed rsa2048`, measured in the same run.
# Usage: scripts/load-token.sh [round-duration, default 5s]
set -euo pipefail
cd "$(dirname "$0")/.."
D=${1:-5s}
work=$(mktemp -d)
pid=""
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
builds="pure"
go build -o "$work/broker-pure" ./cmd/broker
if [ -f /usr/include/openssl/evp.h ]; then
  CGO_ENABLED=1 go build -tags openssl -o "$work/broker-openssl" ./cmd/broker
  builds="pure openssl"
else
  echo "(no OpenSSL headers: apt-get install libssl-dev to measure the OpenSSL build)"
fi
go build -o "$work/tokenload" ./tools/tokenload
pin_server=""; pin_load=""
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then pin_server="taskset -c 1"; pin_load="taskset -c 0"; fi
osb() { curl -sf --cacert "$work/data/ca.pem" -u load:load-password -H X-Broker-API-Version:2.15 -H Content-Type:application/json "$@"; }
svc=94b57714-eb17-42a9-bb73-659a953e7531 plan=c274f824-9b3a-4a8d-b607-0b01d3992fe5
for b in $builds; do
  rm -rf "$work/data"
  port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
  BROKER_DATA_DIR="$work/data" BROKER_ADDR="127.0.0.1:$port" BROKER_USERNAME=load BROKER_PASSWORD=load-password \
    BROKER_ENCRYPTION_KEY=load-test-encryption-key-0123456789abcdef GOMAXPROCS=1 \
    $pin_server "$work/broker-$b" >"$work/broker.log" 2>&1 &
  pid=$!
  base="https://localhost:$port"
  for _ in $(seq 200); do curl -sf --cacert "$work/data/ca.pem" "$base/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
  # Measure the steady state: wait (bounded) until the background key pool
  # has filled, so its key generation does not share the server's core.
  for _ in $(seq 240); do
    full=$(curl -sf --cacert "$work/data/ca.pem" "$base/metrics" | awk '/^broker_key_pool_depth_2048 /{a=$2} /^broker_key_pool_depth_4096 /{b=$2} END{print (a>=16 && b>=2) ? "yes" : "no"}')
    [ "$full" = yes ] && break
    sleep 0.5
  done
  osb -X PUT "$base/v2/service_instances/load-1" -d '{"service_id":"'$svc'","plan_id":"'$plan'","organization_guid":"o","space_guid":"s",
    "parameters":{"xsappname":"load","scopes":[{"name":"$XSAPPNAME.Read"}],"authorities":["$XSAPPNAME.Read"]}}' >/dev/null
  creds=$(osb -X PUT "$base/v2/service_instances/load-1/service_bindings/b-1" -d '{"service_id":"'$svc'","plan_id":"'$plan'"}')
  cid=$(printf '%s' "$creds" | python3 -c 'import json,sys;print(json.load(sys.stdin)["credentials"]["clientid"])')
  sec=$(printf '%s' "$creds" | python3 -c 'import json,sys;print(json.load(sys.stdin)["credentials"]["clientsecret"])')
  for c in 8 64; do
    echo "== build $b, concurrency $c (server: 1 core) =="
    $pin_load "$work/tokenload" -url "$base/oauth/token" -ca "$work/data/ca.pem" -client-id "$cid" -client-secret "$sec" -c "$c" -d "$D" -rounds 3
  done
  kill $pid; wait $pid 2>/dev/null || true; pid=""
done
if command -v openssl >/dev/null; then
  echo "== openssl speed rsa2048 (one core) =="
  $pin_server openssl speed -seconds 3 rsa2048 2>/dev/null | grep '^rsa 2048'
fi
