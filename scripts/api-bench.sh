#!/usr/bin/env bash
# Load numbers of the decision API (BENCHMARKS.md), with wrk (scripts/install-wrk.sh):
#   scripts/api-bench.sh rates RATE...   the demo (light Kafka traffic, 200/s)
#                                        and wrk at each RATE calls/s, 50 connections
#   scripts/api-bench.sh kafka RATE      `fraudstream loadtest` (Kafka path flat out)
#                                        without, then with wrk at RATE calls/s
# Run from the repository root after `cargo build --release` (BIN=path runs
# another build, e.g. a baseline's).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-wrk.sh
bin=${BIN:-target/release/fraudstream}
api=127.0.0.1:18080
conns=50
secs=${SECS:-20}

wait_for_api() { # until a payment is decided (partitions assigned and restored)
  for i in $(seq 1 600); do
    body='{"event_id":"bench-ready-'$$-$i'","ts":'$(date +%s000)',"account_id":"a","terminal_id":"t","amount":1,"currency":"EUR"}'
    # Decided, not the deadline's fallback (which a call gets while the demo
    # still trains its model or partitions are not assigned yet).
    answer=$(curl -s -w ' %{http_code}' -X POST "http://$api/v1/decisions" -d "$body" || true)
    if [ "${answer##* }" = 200 ] && ! grep -q api_deadline_exceeded <<<"$answer"; then sleep 2; return 0; fi
    sleep 0.5
  done
  echo "the API never answered on $api" >&2
  return 1
}

load() { # rate
  echo "== wrk: $1 calls/s, $conns connections, ${secs} s"
  RATE_PER_CONN=$(( $1 / conns )) wrk -t2 -c"$conns" -d"${secs}s" --timeout 5s \
    -s scripts/api-load.lua "http://$api" | grep -E '^(requests|p[0-9]|max)'
}

case "${1:-}" in
  rates)
    shift
    $bin demo --events 0 --rate 200 --quiet --metrics-addr "" --api-addr "$api" >/dev/null 2>&1 &
    demo=$!
    trap 'kill $demo 2>/dev/null' EXIT
    wait_for_api
    for rate in "$@"; do load "$rate"; done
    ;;
  kafka)
    rate=$2
    echo "== loadtest alone"
    $bin loadtest --events "${EVENTS:-600000}" | tail -3
    echo "== loadtest with the API under wrk"
    $bin loadtest --events "${EVENTS:-600000}" --api-addr "$api" > /tmp/api-bench-loadtest.txt 2>&1 &
    lt=$!
    wait_for_api
    load "$rate"
    wait $lt
    tail -3 /tmp/api-bench-loadtest.txt
    ;;
  *) echo "usage: $0 rates RATE... | kafka RATE" >&2; exit 2 ;;
esac
