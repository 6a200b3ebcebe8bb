#!/usr/bin/env bash
# Runs the rule fuzz targets for a while (needs the nightly toolchain):
#   scripts/fuzz.sh [SECONDS_PER_TARGET]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
for target in rule_expression rule_file; do
  cargo +nightly fuzz run "$target" -- -max_total_time="$secs" -max_len=512
done
