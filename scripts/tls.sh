#!/usr/bin/env bash
# What tests/tls.rs needs besides tansu: socat, which terminates TLS in front of
# tansu (tansu 0.6.0 cannot serve TLS itself: its --cert and --key flags conflict,
# and --cert alone leaves the listener in plaintext).
#
#   scripts/tls.sh install    # installs socat (Debian package) if missing
set -euo pipefail

install() {
  if command -v socat >/dev/null 2>&1; then return; fi
  if [ "$(id -u)" != 0 ]; then
    echo "socat is missing; install the Debian package socat" >&2
    exit 1
  fi
  apt-get install -y -qq socat >/dev/null 2>&1 || {
    apt-get update -qq >/dev/null
    apt-get install -y -qq socat >/dev/null
  }
  echo "installed $(socat -V | sed -n 2p)" >&2
}

case "${1:-}" in
  install) install ;;
  *) echo "usage: $0 install" >&2; exit 2 ;;
esac
