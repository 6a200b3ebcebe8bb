#!/usr/bin/env bash
# Load numbers of the decision API (BENCHMARKS.md), with wrk (scripts/install-wrk.sh):
#   scripts/api-bench.sh rates RATE...   the demo (light Kafka traffic, 200/s, once
#                                        its history is replayed) and wrk at each
#                                        RATE calls/s, 50 connections
#   scripts/api-bench.sh kafka RATE      `fraudstream loadtest` (Kafka path flat out)
#                                        without, then with wrk at RATE calls/s
# Run from the repository root after `cargo build --release` (BIN=path runs
# another build, e.g. a baseline's). API_PORT (default 18080) is where the API
# listens: the first free port from there up is taken, and a run stops if the
# process it started is not the one answering (a stale run's port, say).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-wrk.sh
bin=${BIN:-target/release/fraudstream}
conns=50
secs=${SECS:-20}
log=$(mktemp /tmp/api-bench.XXXXXX)
child=

port_free() { # port: nothing listens on it
  ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

free_port() { # the first free port from API_PORT up
  local p=${API_PORT:-18080}
  for _ in $(seq 1 100); do
    if port_free "$p"; then echo "$p"; return 0; fi
    p=$((p + 1))
  done
  echo "no free port from ${API_PORT:-18080} up" >&2
  return 1
}

stop() { # the process this run started, and wait for it (its port is free after)
  if [ -n "$child" ] && kill -0 "$child" 2>/dev/null; then
    kill "$child" 2>/dev/null || true
    wait "$child" 2>/dev/null || true
  fi
  child=
}
trap 'stop; rm -f "$log"' EXIT

wait_for_api() { # until a payment is decided (partitions assigned and restored)
  for i in $(seq 1 600); do
    if ! kill -0 "$child" 2>/dev/null; then
      echo "the process serving the API stopped:" >&2; tail -5 "$log" >&2; return 1
    fi
    # Ours, not a stale process on the same port: it says so once it listens.
    if grep -q "decision API not started" "$log"; then
      grep "decision API" "$log" >&2; return 1
    fi
    # The demo replays its history flat out first (a core's worth of work):
    # measured during it, the calls would wait for the replay, not the API.
    local settled=true
    if [ "$mode" = rates ] && ! grep -q "history replayed" "$log"; then settled=false; fi
    if $settled && grep -q "decision API: POST http://$api/" "$log"; then
      body='{"event_id":"bench-ready-'$$-$i'","ts":'$(date +%s000)',"account_id":"a","terminal_id":"t","amount":1,"currency":"EUR"}'
      # Decided, not the deadline's fallback (which a call gets while the demo
      # still trains its model or partitions are not assigned yet).
      answer=$(curl -s -w ' %{http_code}' -X POST "http://$api/v1/decisions" -d "$body" || true)
      if [ "${answer##* }" = 200 ] && ! grep -q api_deadline_exceeded <<<"$answer"; then sleep 2; return 0; fi
    fi
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

api=127.0.0.1:$(free_port)
echo "== the API on $api"
mode=${1:-}
case "$mode" in
  rates)
    shift
    $bin demo --events 0 --rate 200 --quiet --metrics-addr "" --api-addr "$api" >/dev/null 2>"$log" &
    child=$!
    wait_for_api
    for rate in "$@"; do load "$rate"; done
    ;;
  kafka)
    rate=$2
    echo "== loadtest alone"
    $bin loadtest --events "${EVENTS:-600000}" | tail -3
    echo "== loadtest with the API under wrk"
    $bin loadtest --events "${EVENTS:-600000}" --api-addr "$api" >"$log" 2>&1 &
    child=$!
    wait_for_api
    load "$rate"
    wait "$child"
    child=
    tail -3 "$log"
    ;;
  *) echo "usage: $0 rates RATE... | kafka RATE" >&2; exit 2 ;;
esac
