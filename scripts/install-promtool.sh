#!/usr/bin/env bash
# Installs promtool (Debian package `prometheus`), used by the observability tests
# to lint the live /metrics exposition and the dashboard and alert queries.
set -euo pipefail
if command -v promtool >/dev/null 2>&1; then exit 0; fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq --no-install-recommends prometheus >&2
# The package starts a server on some systems; the tests only need the binary.
(systemctl stop prometheus 2>/dev/null || pkill -x prometheus 2>/dev/null) || true
promtool --version >&2
