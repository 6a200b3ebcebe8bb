#!/usr/bin/env bash
# Runs every fuzz target for a while, each from its seeds (fuzz/seeds/TARGET,
# the shipped feature sets and rules) and the corpus it grew before
# (fuzz/corpus/TARGET):
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
# FUZZ_ARGS adds libFuzzer flags, e.g. FUZZ_ARGS="-fork=1 -ignore_crashes=1"
# to go on past a known crash.
# Only the stable toolchain is needed: RUSTC_BOOTSTRAP=1 unlocks the nightly
# flags cargo-fuzz passes (sanitizer, coverage). Crashes land in
# fuzz/artifacts/TARGET; each one found becomes a regression test.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(rule_expression rule_file feature_set model_file payment_event routed_record)
fi
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
failed=()
for target in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$target"
  dirs=("fuzz/corpus/$target")
  [ -d "fuzz/seeds/$target" ] && dirs+=("fuzz/seeds/$target")
  # The shipped files are seeds too.
  [ "$target" = feature_set ] && dirs+=(config/features)
  [ "$target" = rule_file ] && dirs+=(rules)
  # The largest seed (a model file) is ~2 KiB; room to grow beyond it.
  if ! cargo fuzz run --release "$target" "${dirs[@]}" -- \
    -max_total_time="$secs" -max_len=8192 -print_final_stats=1 ${FUZZ_ARGS:-}; then
    failed+=("$target")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: crashes in ${failed[*]} (inputs in fuzz/artifacts/)" >&2
  exit 1
fi
