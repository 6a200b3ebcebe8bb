#!/usr/bin/env bash
# Installs the Debian package `wrk`, the HTTP load generator that
# scripts/api-bench.sh drives against the decision API (BENCHMARKS.md).
set -euo pipefail
if command -v wrk >/dev/null 2>&1; then exit 0; fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq --no-install-recommends wrk >&2
command -v wrk >&2
