#!/usr/bin/env bash
# Latency of X.509 binds with the background key pool (credentials.KeyPool).
# The broker (pure-Go build) runs pinned to one core (GOMAXPROCS=1 and
# taskset), the load generator (tools/bindload) on the other, over
# loopback. After the pool of 2048-bit keys has filled and an xsuaa
# instance allowing binding-secret and x509 is provisioned, the broker is
# left alone for a quiet period (the pool keeps refilling its larger keys
# meanwhile), then these phases run back to back, each printing p50/p99/max
# latency and the key pool depths before and after:
#   - 20 x509 binds with 2048-bit keys, started at 10/s (open loop)
#   - 20 x509 binds with 4096-bit keys, started at 10/s
#   - 20 binding-secret binds, started at 10/s, for comparison
#   - one x509 bind with an 8192-bit key
# Usage: scripts/load-bind.sh [quiet period in seconds, default 60]
set -euo pipefail
cd "$(dirname "$0")/.."
quiet=${1:-60}
work=$(mktemp -d)
pid=""
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
go build -o "$work/broker" ./cmd/broker
go build -o "$work/bindload" ./tools/bindload
pin_server=""; pin_load=""
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then pin_server="taskset -c 1"; pin_load="taskset -c 0"; fi

port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
BROKER_DATA_DIR="$work/data" BROKER_ADDR="127.0.0.1:$port" BROKER_USERNAME=load BROKER_PASSWORD=load-password \
  BROKER_ENCRYPTION_KEY=load-test-encryption-key-0123456789abcdef GOMAXPROCS=1 \
  $pin_server "$work/broker" >"$work/broker.log" 2>&1 &
pid=$!
base="https://localhost:$port"
for _ in $(seq 200); do curl -sf --cacert "$work/data/ca.pem" "$base/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
curl -sf --cacert "$work/data/ca.pem" "$base/healthz" >/dev/null || { echo "broker did not start:"; cat "$work/broker.log"; exit 1; }

depths() { curl -sf --cacert "$work/data/ca.pem" "$base/metrics" | awk '/^broker_key_pool_depth_/{sub("broker_key_pool_depth_","");printf "%s=%s ", $1, $2}'; }
# Wait (bounded) until the 2048-bit pool is full: 32 keys, the target of
# cmd/broker/serve.go.
filled=no
for _ in $(seq 360); do
  d=$(curl -sf --cacert "$work/data/ca.pem" "$base/metrics" | awk '/^broker_key_pool_depth_2048 /{print $2}')
  if [ "${d:-0}" -ge 32 ] 2>/dev/null; then filled=yes; break; fi
  sleep 0.5
done
echo "key pool after start-up (2048-bit pool full: $filled): $(depths)"

osb() { curl -sf --cacert "$work/data/ca.pem" -u load:load-password -H X-Broker-API-Version:2.15 -H Content-Type:application/json "$@"; }
svc=94b57714-eb17-42a9-bb73-659a953e7531 plan=c274f824-9b3a-4a8d-b607-0b01d3992fe5
osb -X PUT "$base/v2/service_instances/bind-1" -d '{"service_id":"'$svc'","plan_id":"'$plan'","organization_guid":"o","space_guid":"s",
  "parameters":{"xsappname":"bindload","scopes":[{"name":"$XSAPPNAME.Read"}],
  "oauth2-configuration":{"credential-types":["binding-secret","x509"]}}}' >/dev/null

echo "quiet period: ${quiet} s"
sleep "$quiet"

# A failed phase is reported and the next one still runs; the script
# then exits non-zero.
status=0
load() {
  $pin_load "$work/bindload" -url "$base" -ca "$work/data/ca.pem" -user load -password load-password \
    -instance bind-1 -service-id "$svc" -plan-id "$plan" "$@" || status=1
}
load -label "x509 2048-bit" -prefix x2048 -n 20 -rate 10 \
  -params '{"credential-type":"x509","x509":{"key-length":2048}}'
load -label "x509 4096-bit" -prefix x4096 -n 20 -rate 10 \
  -params '{"credential-type":"x509","x509":{"key-length":4096}}'
load -label "binding-secret" -prefix secret -n 20 -rate 10 \
  -params '{"credential-type":"binding-secret"}'
# An 8192-bit key is made on demand unless the pool holds its one spare
# (see "key pool before"); generating one can take minutes on one core,
# longer than the server's 90 s WriteTimeout (cmd/broker/serve.go), after
# which the response cannot be delivered: the error then shows how long
# the request took.
load -label "x509 8192-bit" -prefix x8192 -n 1 -rate 1 -timeout 15m \
  -params '{"credential-type":"x509","x509":{"key-length":8192}}'
# Whether the 8192-bit binding exists even if its response was lost.
echo "GET of binding x8192-0 afterwards: HTTP $(curl -s -o /dev/null -w '%{http_code}' --cacert "$work/data/ca.pem" -u load:load-password \
  -H X-Broker-API-Version:2.15 "$base/v2/service_instances/bind-1/service_bindings/x8192-0")"
exit $status
