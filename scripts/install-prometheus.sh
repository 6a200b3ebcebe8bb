#!/usr/bin/env bash
# Installs the Debian package `prometheus`: promtool, used by the observability
# tests to lint the live /metrics exposition and to unit-test the alerts, and the
# prometheus server, which they start against a live demo on free loopback ports.
set -euo pipefail
if command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1; then exit 0; fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq --no-install-recommends prometheus >&2
# The package starts a server on some systems; the tests start their own.
(systemctl stop prometheus 2>/dev/null || pkill -x prometheus 2>/dev/null) || true
promtool --version >&2
prometheus --version >&2
